"""Safe file output: a final path is replaced only by a complete file, and only when it is a regular file or absent.

Every writer goes through ``atomic_path``: the new content goes to a temporary file beside the final path (named
with the writing process's id), is checked, fsynced and renamed over the final path; on any failure the final path
keeps what it held. Temporary files that a killed process left behind are removed by the next write beside them.
New files get the permissions the umask gives (``0666 & ~umask``); a replaced file keeps its own.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError

_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp(\.[^.]*)?$")  # .<stem>.<pid>.<random>.tmp<suffix>


def check_output_path(path: str | Path, what: str = "output", suffixes: Iterable[str] | None = None,
                      kind: str = "") -> Path:
    """``path`` as a place a new file may be written: absent or a regular file, in a writable folder, and, when
    ``suffixes`` (lower-case, with the dot) are given, named with one of them (any case).

    Raises:
        InputError: a suffix not in ``suffixes`` (the message calls the expected file a ``kind`` file name, or
            names the suffixes when ``kind`` is empty).
        OutputError: ``path`` is a folder, a device, a link or another special file, or its folder cannot be
            written.
    """
    path = Path(path)
    if suffixes is not None:
        allowed = tuple(suffixes)
        if path.suffix.lower() not in allowed:
            listed = ", ".join(allowed)
            expected = f"{kind} file name ending in {listed}" if kind else f"{listed} file name"
            raise InputError(f"{what} {path}: expected a {expected}")
    if path.is_symlink():
        raise OutputError(f"{what} {path} is a symbolic link; give the file it points to, or another name")
    if path.exists() and not path.is_file():
        kind_of_file = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise OutputError(f"{what} {path} is {kind_of_file}; give a file name")
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: the folder {existing} is not writable")
    return path


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` of the block (a full disk, a missing permission) into an ``OutputError`` naming
    ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files in ``folder`` that a process no longer running left behind; returns them."""
    removed = []
    for p in Path(folder).glob(".*.tmp*"):
        match = _TEMP_NAME.match(p.name)
        if match and p.is_file() and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _new_file_mode() -> int:
    """``0666 & ~umask``: the umask read from /proc (setting it to read it back would change it process-wide for
    a moment), else by setting it and back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds (and ``verify(tmp)``, if given, raises
    nothing) it is fsynced and renamed to ``path``.

    The temporary name keeps ``path``'s suffix, so writers that pick a format by extension (OpenCV, matplotlib)
    still work. On an exception the temporary file is removed and ``path`` is left as it was.

    Raises:
        OutputError: ``path`` cannot be written (see ``check_output_path``), or an OS error while writing.
    """
    path = check_output_path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}",
                                        dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with writing(path):
            yield tmp
            if verify is not None:
                verify(tmp)
            mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else _new_file_mode()
            os.chmod(tmp, mode)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(json.dumps(obj, indent=2) + "\n", path)


class JsonLinesLog:
    """Records written to ``path`` as JSON Lines as they come, so an interrupted run keeps them.

    Nothing touches ``path`` until the first ``write``: then it is replaced, atomically, by ``header`` and that
    record; later records are appended one by one, unbuffered (fsynced at least every ``sync_seconds``), so a
    killed process loses at most that much. ``close(summary)`` appends the summary as the last line; a run that
    wrote no record leaves ``path`` as it was. A record that cannot be written whole (a full disk) is cut off
    again, so the file always ends with a whole record; the log then takes no more.

    Raises:
        OutputError: ``path`` cannot be written (checked when the log is made, before any work).
    """

    def __init__(self, path: str | Path, header: dict[str, Any], sync_seconds: float = 1.0) -> None:
        self.path = check_output_path(path, "--json")
        self.header, self.sync_seconds = header, sync_seconds
        self.records = 0
        self._file: Any = None
        self._whole = 0  # the file's length up to its last whole record
        self._synced = 0.0

    def _line(self, obj: dict[str, Any]) -> bytes:
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")

    def _append(self, data: bytes) -> None:
        """Append ``data`` whole, or cut the file back to its last whole record, close it and raise."""
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view):]
        except OSError:
            self._file.truncate(self._whole)
            self._file.close()
            self._file = False  # broken: no more records
            raise
        self._whole += len(data)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a JSON object)."""
        if self._file is False:
            raise OutputError(f"cannot write {self.path}: an earlier record could not be written")
        with writing(self.path):
            if self._file is None:
                first = self._line(self.header) + self._line(record)
                with atomic_path(self.path) as tmp:
                    tmp.write_bytes(first)
                self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open for the run)
                self._whole, self._synced = len(first), time.monotonic()
            else:
                self._append(self._line(record))
                if time.monotonic() - self._synced >= self.sync_seconds:
                    os.fsync(self._file.fileno())
                    self._synced = time.monotonic()
        self.records += 1

    def close(self, summary: dict[str, Any]) -> None:
        """Append ``summary`` and close (nothing happens when no record was written or the log broke; safe to
        call twice)."""
        if not self._file:
            return
        with writing(self.path):
            self._append(self._line(summary))
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines file (a torn last line, from a killed writer, is left out)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise
    return out
