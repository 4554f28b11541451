"""keynet-live: ``python main.py`` opens the app; the commands run headless tools (``cli/``).

    python main.py detect IMAGE --out OUT.png [--weights FILE] [--num N] [--json]
    python main.py track --source VIDEO|IMAGE_DIR|camera:N|demo --target IMAGE | --roi x,y,w,h [--out OUT.mp4]
    python main.py --compare      # the app's comparison window: two pipelines side by side on the demo

Only opening the app imports ``app`` (and Qt); the commands import neither.
"""

from __future__ import annotations

import sys

from keynet.runtime import keep_freed_memory, prefer_sleeping_threads

prefer_sleeping_threads()  # before torch loads (the commands import it): see keynet/runtime.py

from cli import build_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's arguments), or open the app without one (or its
    comparison window with ``--compare``)."""
    argv = sys.argv[1:] if argv is None else argv
    keep_freed_memory()
    if argv[:1] == ["--compare"]:
        from app import run_app

        return run_app(argv)
    args = build_parser().parse_args(argv)
    if args.command is None:
        from app import run_app

        return run_app()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
