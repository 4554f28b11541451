"""The command line's one way of reporting an expected failure: ``error: <message>`` on stderr, exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from keynet.errors import KeyNetError

Command = Callable[[argparse.Namespace], int]


def reporting_errors(run: Command) -> Command:
    """``run``, with every ``KeyNetError``, ``OSError`` and ``MemoryError`` it raises turned into one line on stderr
    and exit code 2, and an ``Interrupted`` into one line and the signal's exit code."""

    @functools.wraps(run)
    def reported(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (KeyNetError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except MemoryError:
            print("error: not enough memory for this input; use a smaller image or video, or fewer keypoints",
                  file=sys.stderr)
            return 2
        except Interrupted as exc:
            print(f"stopped by {exc.signal_name} before any output was written", file=sys.stderr)
            return exc.exit_code

    return reported


def interruptible(run: Command) -> Command:
    """``reporting_errors(run)`` with SIGINT, SIGTERM and SIGHUP raising ``Interrupted`` while ``run`` runs (see
    ``stopping_on_signals``), so that a long command can finish its outputs with what it has."""

    @functools.wraps(run)
    def stoppable(args: argparse.Namespace) -> int:
        with stopping_on_signals():
            return run(args)

    return reporting_errors(stoppable)


class Interrupted(Exception):
    """The run was asked to stop by a signal (``signal_name``: "SIGINT", "SIGTERM" or "SIGHUP")."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + int(getattr(signal, self.signal_name))


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread, so the command
    finishes its outputs with what it has; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(number).name)

    wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, stop) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
