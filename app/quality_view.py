"""The target-quality preview: before a target is tracked, its star score (``keynet.targets.assess``) and where its
keypoints fall on it (a feature heat map), with "Track it" and "Discard".

The dialog is not modal (the video goes on behind it); a new candidate replaces the one shown. Closing it
discards the candidate.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont, QImage, QPixmap
from PyQt6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from keynet.render import draw_keypoints
from keynet.targets import FULL_COUNT, SPREAD_GRID, Target

from .pipeline import TargetPreview

DENSITY_SIGMA = 0.04  # the heat map's Gaussian, as a share of the target's shorter side
PER_AREA = 1000.0  # densities are keypoints per this many square pixels
RED_AT = 2.0  # the colour scale reaches red at least at this many times the even density of FULL_COUNT keypoints
TOP_PERCENTILE = 99.0  # ... and at least at this percentile of the target's density (a rich target shows its spread)
HEAT_ALPHA = 0.6  # opacity of the densest places (opacity grows with the square root of the density)
MAP_SIZE = (480, 360)  # the largest the heat map is shown at (w, h)
KEYPOINT_SIZE = 8.0  # draw_keypoints' size multiplier for the target's keypoints


def keypoint_density(xy: np.ndarray, size: tuple[int, int], sigma_px: float) -> np.ndarray:
    """(H, W) float32 keypoints per ``PER_AREA`` px² around each pixel of a ``size`` = (W, H) target: the (N, 2)
    keypoints ``xy`` counted at their pixels and blurred with a Gaussian of ``sigma_px``."""
    w, h = size
    counts = np.zeros((h, w), np.float32)
    if len(xy):
        cells = np.clip(np.round(xy).astype(np.int64), 0, [w - 1, h - 1])
        np.add.at(counts, (cells[:, 1], cells[:, 0]), 1.0)
    return cv2.GaussianBlur(counts, (0, 0), sigma_px) * PER_AREA


def even_density(size: tuple[int, int]) -> float:
    """Keypoints per ``PER_AREA`` px² of ``FULL_COUNT`` keypoints (the star score's full count) spread evenly over
    a ``size`` = (W, H) target: the middle (green) of the heat map's colour scale."""
    return FULL_COUNT / (size[0] * size[1]) * PER_AREA


def colour_scale_top(density: np.ndarray, size: tuple[int, int]) -> float:
    """The density shown red: ``RED_AT`` times ``even_density``, or the density's ``TOP_PERCENTILE`` if higher."""
    return max(RED_AT * even_density(size), float(np.percentile(density, TOP_PERCENTILE)))


def feature_heat_map(target: Target, keypoints: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The target's image (H, W, 3) uint8 BGR with its keypoint density over it in turbo colours (clear where
    there are none, red from ``colour_scale_top``), and the density (H, W) float32 (per ``PER_AREA`` px²); with
    ``keypoints`` the keypoints are drawn too, coloured by the pyramid level they came from."""
    density = keypoint_density(target.xy, target.size, DENSITY_SIGMA * min(target.size))
    level = np.clip(density / colour_scale_top(density, target.size) * 255, 0, 255).astype(np.uint8)
    opacity = (HEAT_ALPHA * np.sqrt(level / 255.0))[..., None]
    image = target.image if target.image.ndim == 3 else cv2.cvtColor(target.image, cv2.COLOR_GRAY2BGR)
    canvas = (image * (1 - opacity) + cv2.applyColorMap(level, cv2.COLORMAP_TURBO) * opacity).astype(np.uint8)
    if keypoints and len(target.xy):
        draw_keypoints(canvas, np.column_stack([target.xy, target.scales, target.scores]), "scale", KEYPOINT_SIZE)
    return canvas, density


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
