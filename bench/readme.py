"""Keep the README's results sections generated from the results files.

A section is the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in README.md.
"""

from __future__ import annotations

from pathlib import Path

from keynet.files import atomic_write_text

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_section(name: str, markdown: str, readme: Path = README) -> None:
    """Replace the README section ``name`` with ``markdown``; a clear error if its markers are missing."""
    text = readme.read_text(encoding="utf-8")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"{readme} has no section markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(f"{head}{begin}\n{markdown.strip()}\n{end}{tail}", readme)
