"""The target-quality preview: before a target is tracked, its star score (``keynet.targets.assess``) and where its
keypoints fall on it (a feature heat map), with "Track it" and "Discard".

The dialog is not modal (the video goes on behind it); a new candidate replaces the one shown. Closing it
discards the candidate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont, QImage, QPixmap
from PyQt6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from keynet.render import PER_AREA, colour_scale_top, even_density, feature_heat_map
from keynet.targets import FULL_COUNT, SPREAD_GRID

from .pipeline import TargetPreview

MAP_SIZE = (480, 360)  # the largest the heat map is shown at (w, h)


def stars_text(stars: int) -> str:
    """``stars`` of 5 as filled and open stars, then the number."""
    return "★" * stars + "☆" * (5 - stars) + f"  {stars}/5"


class QualityView(QDialog):
    """Shows one ``TargetPreview``: its stars, counts, a verdict and the feature heat map.

    Signals:
        kept(TargetPreview): the user chose to track it ("Track it").
        discarded(TargetPreview): the user discarded it ("Discard", Escape or closing the dialog).
    """

    kept = pyqtSignal(object)
    discarded = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Target quality")
        self.setModal(False)
        self.preview: TargetPreview | None = None
        self.heat_map = np.zeros((1, 1, 3), np.uint8)  # (H, W, 3) BGR, as shown
        self.density = np.zeros((1, 1), np.float32)  # (H, W) keypoints per PER_AREA px²

        self.stars = QLabel()
        font = QFont(self.stars.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        self.stars.setFont(font)
        self.stars.setStyleSheet("color: #e6a800")
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(320, 240)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.show_keypoints = QCheckBox("Show the keypoints (coloured by the scale they were found at)")
        self.show_keypoints.toggled.connect(self._draw)
        buttons = QDialogButtonBox()
        self.keep_button = buttons.addButton("Track it", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button = buttons.addButton("Discard", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for widget in (self.stars, self.verdict, self.picture, self.legend, self.show_keypoints, self.details, buttons):
            layout.addWidget(widget)

    def show_preview(self, preview: TargetPreview) -> None:
        """Show ``preview`` (replacing the candidate shown, which is dropped) and raise the dialog."""
        self.preview = preview
        quality = preview.quality
        self.setWindowTitle(f"Target quality: {preview.name}")
        self.stars.setText(stars_text(quality.stars))
        self.verdict.setText(preview.verdict())
        w, h = preview.target.size
        self.details.setText(f"{w}x{h} px, {quality.keypoints} keypoints; in {quality.spread:.0%} of the "
                             f"{SPREAD_GRID}x{SPREAD_GRID} grid's cells; {quality.stability:.0%} stable under "
                             "synthetic views of it.")
        self.keep_button.setEnabled(preview.trackable)
        self.keep_button.setToolTip("" if preview.trackable else preview.verdict())
        self._draw()
        self.show()
        self.raise_()

    def _draw(self) -> None:
        if self.preview is None:
            return
        target = self.preview.target
        self.heat_map, self.density = feature_heat_map(target, self.show_keypoints.isChecked())
        top = colour_scale_top(self.density, target.size)
        self.legend.setText(f"Colour: where the keypoints fall, in keypoints per {PER_AREA:.0f} px²: clear at none, "
                            f"green at {top / 2:.1f}, red from {top:.1f} ({FULL_COUNT} keypoints spread evenly, the "
                            f"star score's full count, would be {even_density(target.size):.1f}).")
        h, w = self.heat_map.shape[:2]
        image = QImage(self.heat_map.data, w, h, 3 * w, QImage.Format.Format_BGR888)
        pixmap = QPixmap.fromImage(image)  # a copy: the array may go
        if w > MAP_SIZE[0] or h > MAP_SIZE[1]:
            pixmap = pixmap.scaled(*MAP_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
        self.picture.setPixmap(pixmap)

    def accept(self) -> None:
        """Track the candidate shown (``kept``) and close."""
        preview = self._close(super().accept)
        if preview is not None and preview.trackable:
            self.kept.emit(preview)

    def reject(self) -> None:
        """Drop the candidate shown (``discarded``) and close."""
        preview = self._close(super().reject)
        if preview is not None:
            self.discarded.emit(preview)

    def _close(self, close: Callable[[], None]) -> TargetPreview | None:
        """Close the dialog with ``close`` (``QDialog.accept`` or ``reject``); the candidate it showed, if any."""
        preview, self.preview = self.preview, None
        close()
        return preview
