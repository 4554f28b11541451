"""Take a screenshot of the real main window, or of the comparison window (run it under a display, e.g.
``xvfb-run -a``).

    xvfb-run -a python -m app.screenshot docs/screenshot.png --weights FILE [--source VIDEO|DIR] [--seconds 8]
    xvfb-run -a python -m app.screenshot docs/screenshot-comparison.png --compare keynet,orb

The window opens on the source (default: the bundled demo), runs for ``--seconds`` and is grabbed from the screen.
``--compare LEFT,RIGHT`` opens the comparison window on those pipelines (``keynet.baselines.PIPELINES``, with the
shipped weights) instead of the main window.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from keynet.runtime import keep_freed_memory, prefer_sleeping_threads

prefer_sleeping_threads()  # before torch loads, as main.py does

from PyQt6.QtCore import QEventLoop, QPointF, QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication, QMainWindow  # noqa: E402

from keynet.files import atomic_path  # noqa: E402

from . import app_threads  # noqa: E402
from .comparison_window import ComparisonWindow  # noqa: E402
from .main_window import MainWindow  # noqa: E402
from .pipeline import SourceSpec  # noqa: E402
from .settings import AppSettings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--weights", help="weights file (default: the shipped weights)")
    parser.add_argument("--source", help="a video or image folder (default: the bundled demo)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--view", default="", help="comma-separated layers to turn on in the main window: "
                        "matches,tracks,heatmap")
    parser.add_argument("--compare", metavar="LEFT,RIGHT", help="the comparison window on these two pipelines "
                        "(keynet, tiny_keynet, orb, sift), e.g. keynet,orb")
    args = parser.parse_args(argv)
    keep_freed_memory()
    app_threads()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("keynet-live")
    settings = AppSettings(model="file", weights_file=args.weights, device="cpu") if args.weights else AppSettings()
    if args.source:
        spec = SourceSpec.folder(args.source) if Path(args.source).is_dir() else SourceSpec.video(args.source)
        spec = replace(spec, loop=True)
    else:
        spec = SourceSpec.demo()
    window: QMainWindow
    if args.compare:
        kinds = args.compare.split(",")
        if len(kinds) != 2:
            parser.error(f"--compare takes two pipelines, LEFT,RIGHT; got {args.compare!r}")
        window = ComparisonWindow(spec, settings, *kinds)
        window.resize(1400, 620)
        window.show()
    else:
        window = MainWindow(spec, settings, remember=False, ask=False)
        window.resize(1280, 800)
        window.show()
        for layer in filter(None, args.view.split(",")):
            window.set_view(**{layer: True})
    loop = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), loop.quit)
    loop.exec()
    if isinstance(window, MainWindow) and window.output is not None and len(window.output.keypoints):
        x, y = window.output.keypoints[0, :2]
        window.inspect_point(QPointF(float(x), float(y)))  # fill the inspection panel with the best keypoint
        app.processEvents()
    screen = window.screen()
    image = screen.grabWindow(window.winId()) if screen is not None else window.grab()
    if image.isNull():
        image = window.grab()
    with atomic_path(Path(args.out)) as tmp:
        ok = image.save(str(tmp), "PNG")
    window.close()
    if not ok:
        print(f"error: cannot write {args.out}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({image.width()}x{image.height()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
