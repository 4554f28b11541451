"""Progress of long library work (rendering the demo, building targets), reported through a callback.

The library calls ``progress(done, total)`` as it goes (``total`` fixed for one task, ``done`` growing to it); the
command line and the app each show it as a progress bar. ``None`` reports nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def report(progress: Progress | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback is given."""
    if progress is not None:
        progress(done, total)
