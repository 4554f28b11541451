"""The command line's one way of reporting an expected failure: ``error: <message>`` on stderr, exit code 2."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from keynet.errors import KeyNetError

Command = Callable[[argparse.Namespace], int]


def reporting_errors(run: Command) -> Command:
    """``run``, with every ``KeyNetError`` and ``OSError`` it raises turned into one line on stderr and exit code 2."""

    @functools.wraps(run)
    def reported(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (KeyNetError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return reported
