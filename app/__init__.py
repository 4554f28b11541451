"""keynet-live's PyQt6 desktop app: live tracking, AR overlays and inspection views (``python main.py``).

It only shows and drives what ``keynet`` computes; nothing here detects, matches or draws overlays.
"""

from __future__ import annotations

import os
import sys


def run_app(argv: list[str] | None = None) -> int:
    """Open the main window (the first camera, else the bundled demo) and run the event loop."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                  or os.environ.get("QT_QPA_PLATFORM")):
        print("error: no display to open the app on (DISPLAY is not set); run it in a desktop session, "
              "or under a virtual one: xvfb-run -a python main.py", file=sys.stderr)
        return 2
    from PyQt6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("keynet-live")
    window = MainWindow()
    window.show()
    return app.exec()
