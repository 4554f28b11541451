"""keynet-live's PyQt6 desktop app: live tracking, AR overlays and inspection views (``python main.py``).

It only shows and drives what ``keynet`` computes; nothing here detects, matches or draws overlays.
"""

from __future__ import annotations

import os
import sys


def app_threads() -> int:
    """Give torch every core when its OpenMP threads sleep while waiting (``keynet.runtime.prefer_sleeping_threads``,
    which the entry points call before torch loads), else every core but one (spinning threads on every core starve
    the capture and UI threads); returns the count."""
    import torch

    cores = os.cpu_count() or 1
    threads = cores if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" else max(1, cores - 1)
    torch.set_num_threads(threads)
    return threads


def run_app(argv: list[str] | None = None) -> int:
    """Open the main window (the first camera, else the bundled demo), or with ``--compare`` in ``argv`` (the app's
    options, without the program's name) the comparison window on the demo, and run the event loop; ``main.py``
    has set the process-wide settings of ``keynet.runtime`` before torch loaded."""
    options = list(argv or [])
    unknown = [o for o in options if o != "--compare"]
    if unknown:
        print(f"error: unknown app option(s) {unknown}; known: --compare", file=sys.stderr)
        return 2
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                  or os.environ.get("QT_QPA_PLATFORM")):
        print("error: no display to open the app on (DISPLAY is not set); run it in a desktop session, "
              "or under a virtual one: xvfb-run -a python main.py", file=sys.stderr)
        return 2
    from PyQt6.QtWidgets import QApplication

    app_threads()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("keynet-live")
    if "--compare" in options:
        from .comparison_window import ComparisonWindow

        window = ComparisonWindow()
    else:
        from .main_window import MainWindow

        window = MainWindow()
    window.show()
    return app.exec()
