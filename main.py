"""keynet-live command line: `python main.py` opens the app; subcommands run headless tools.

    python main.py detect IMAGE --out OUT.png [--weights FILE] [--num N] [--json]
    python main.py track --source VIDEO|IMAGE_DIR|camera:N|demo --target IMAGE | --roi x,y,w,h [--out OUT.mp4]
"""

from __future__ import annotations

import argparse
import sys

from app import prefer_sleeping_threads

prefer_sleeping_threads()  # before torch loads (keynet imports it): see app/__init__.py

from keynet import cli  # noqa: E402
from keynet.runtime import keep_freed_memory  # noqa: E402
from keynet.track_cli import add_track_command  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli.add_detect_command(commands)
    add_track_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()
    if args.command is None:
        from app import run_app

        return run_app()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
