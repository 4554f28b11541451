"""keynet-live's PyQt6 desktop app: live tracking, AR overlays and inspection views (``python main.py``).

It only shows and drives what ``keynet`` computes; nothing here detects, matches or draws overlays.
"""

from __future__ import annotations

import os
import sys


def leave_a_core_free() -> int:
    """Give torch one thread fewer than the CPU has cores (at least one) and return the count.

    The capture and UI threads need a core of their own: when every core runs a torch (OpenMP) thread, each
    barrier waits for a thread the UI or capture pushed off its core, and on a 2-core machine under load Key.Net
    ran 10x slower with 2 threads than with 1 (``bench/app_fps.py``).
    """
    import torch

    threads = max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(threads)
    return threads


def run_app(argv: list[str] | None = None) -> int:
    """Open the main window (the first camera, else the bundled demo) and run the event loop."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                  or os.environ.get("QT_QPA_PLATFORM")):
        print("error: no display to open the app on (DISPLAY is not set); run it in a desktop session, "
              "or under a virtual one: xvfb-run -a python main.py", file=sys.stderr)
        return 2
    from PyQt6.QtWidgets import QApplication

    from .main_window import MainWindow

    leave_a_core_free()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("keynet-live")
    window = MainWindow()
    window.show()
    return app.exec()
