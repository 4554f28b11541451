"""The app's file dialogs: ask for a file or a folder and hand its path on; a cancelled dialog does nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtWidgets import QFileDialog, QWidget

VIDEO_FILES = "Videos (*.mp4 *.avi *.mov *.mkv *.webm)"
IMAGE_FILES = "Images (*.png *.jpg *.jpeg *.bmp *.ppm)"
CALIBRATION_FILES = "Calibrations (*.yaml *.yml *.xml *.json)"
WEIGHTS_FILES = "Weights (*.pt *.pth)"
ALL_FILES = "All files (*)"


def ask_file(parent: QWidget, title: str, filters: str, use: Callable[[str], object], start: str = "") -> None:
    """Ask for a file to open (those matching ``filters`` shown first, then all) and call ``use(path)`` with it."""
    path, _ = QFileDialog.getOpenFileName(parent, title, start, f"{filters};;{ALL_FILES}")
    if path:
        use(path)


def ask_folder(parent: QWidget, title: str, use: Callable[[str], object]) -> None:
    """Ask for a folder and call ``use(path)`` with it."""
    path = QFileDialog.getExistingDirectory(parent, title)
    if path:
        use(path)


def ask_save_path(parent: QWidget, title: str, name: str, filters: str) -> str:
    """The file to write that the user chose ("" when cancelled); proposed: ``name``'s stem and the time, in the
    working folder (``recording.mp4`` -> ``recording-20261203-142501.mp4``)."""
    proposed = Path(name)
    path, _ = QFileDialog.getSaveFileName(parent, title, default_name(proposed.stem, proposed.suffix), filters)
    return path


def default_name(stem: str, suffix: str) -> str:
    return str(Path.cwd() / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}")
