"""The video view: shows the annotated frame, lets the user drag a target rectangle and click a keypoint.

The frame arrives already drawn (``keynet.render`` runs in the processing worker); the view only scales the QImage
to fit and draws the rubber band of a drag in progress. Positions are reported in frame pixels.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

MIN_DRAG_PX = 6  # a press and release closer than this (in widget pixels) is a click, not a drag


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage sharing nothing with ``rgb``: (H, W, 3) uint8 RGB, or (H, W) uint8 grey."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim == 2:
        h, w = rgb.shape
        return QImage(rgb.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame; got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class VideoView(QWidget):
    """Displays frames scaled to fit (aspect kept); a drag selects a rectangle, a click picks a point.

    Signals:
        rect_selected(QRect): a dragged rectangle in frame pixels.
        point_clicked(QPointF): a click in frame pixels.
    """

    rect_selected = pyqtSignal(QRect)
    point_clicked = pyqtSignal(QPointF)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = QImage()
        self.message = "No source"
        self._press: QPoint | None = None
        self._drag: QPoint | None = None
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMouseTracking(False)

    def set_image(self, image: QImage) -> None:
        self.image = image
        self.update()

    def set_message(self, text: str) -> None:
        """Text shown when there is no frame (and under the frame when there is)."""
        self.message = text
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is drawn in widget coordinates."""
        if self.image.isNull():
            return QRectF()
        s = min(self.width() / self.image.width(), self.height() / self.image.height())
        w, h = self.image.width() * s, self.image.height() * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_frame(self, p: QPointF) -> QPointF:
        """Widget coordinates to frame pixels (clamped to the frame)."""
        r = self.image_rect()
        if r.isEmpty():
            return QPointF()
        x = (p.x() - r.left()) / r.width() * self.image.width()
        y = (p.y() - r.top()) / r.height() * self.image.height()
        return QPointF(min(max(x, 0.0), self.image.width()), min(max(y, 0.0), self.image.height()))

    def to_widget(self, p: QPointF) -> QPointF:
        r = self.image_rect()
        return QPointF(r.left() + p.x() / self.image.width() * r.width(), r.top() + p.y() / self.image.height() * r.height())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#101010"))
        if self.image.isNull():
            p.setPen(QColor("#cccccc"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
        else:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self.image_rect(), self.image)
        if self._press is not None and self._drag is not None:
            p.setPen(QPen(QColor("#00e5ff"), 2, Qt.PenStyle.DashLine))
            p.drawRect(QRect(self._press, self._drag).normalized())
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and not self.image.isNull():
            self._press = event.position().toPoint()
            self._drag = None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is not None:
            self._drag = event.position().toPoint()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None or event.button() != Qt.MouseButton.LeftButton:
            return
        press, release = self._press, event.position().toPoint()
        self._press = self._drag = None
        self.update()
        if (release - press).manhattanLength() < MIN_DRAG_PX:
            self.point_clicked.emit(self.to_frame(QPointF(release)))
            return
        a, b = self.to_frame(QPointF(press)), self.to_frame(QPointF(release))
        rect = QRectF(a, b).normalized().toRect()
        if rect.width() >= 2 and rect.height() >= 2:
            self.rect_selected.emit(rect)
