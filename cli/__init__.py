"""keynet-live's headless command line (``python main.py detect ...``, ``python main.py track ...``).

Argument parsing, progress bars and video writing live here; the library ``keynet/`` has none of them. Each command
reports an expected failure as one line ``error: <message>`` on stderr with exit code 2 (``cli.errors``).
"""

from __future__ import annotations

import argparse

from .calibrate import add_calibrate_command
from .detect import add_detect_command
from .track import add_track_command


def build_parser() -> argparse.ArgumentParser:
    """The ``main.py`` parser: no command (``args.command is None``) opens the app; each command sets ``args.run``."""
    parser = argparse.ArgumentParser(prog="main.py", description="keynet-live: without a command, open the app; "
                                     "the commands run headless tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_detect_command(commands)
    add_track_command(commands)
    add_calibrate_command(commands)
    return parser
