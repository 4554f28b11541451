"""tqdm progress bars for the library's ``progress(done, total)`` callbacks (``keynet.progress``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from keynet.progress import Progress


@contextmanager
def progress_bar(description: str, unit: str = "step") -> Iterator[Progress]:
    """A callback that shows the work it is told of as a tqdm bar on stderr, opened at the first report (no bar
    for work that reports nothing, such as a demo already rendered) and closed when the block ends."""
    bar: tqdm | None = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit=unit)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
