"""The video view: shows the annotated frame, lets the user drag a target rectangle and click a keypoint.

The frame arrives already drawn (``keynet.render`` runs in the processing worker); the view scales it to fit once
per frame (OpenCV, off the painter) and draws the rubber band of a drag in progress. Positions are reported in
frame pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from PyQt6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

MIN_DRAG_PX = 6  # a press and release closer than this (in widget pixels) is a click, not a drag
MARKER_RADIUS_PX, MARKER_COLOUR = 9.0, "#ff00ff"  # the inspected keypoint's ring (widget pixels)
BANNER_HEIGHT_PX = 28


def to_qimage(bgr: np.ndarray) -> QImage:
    """A QImage over the memory of ``bgr`` ((H, W, 3) uint8 BGR, or (H, W) uint8 grey; C-contiguous), no copy:
    keep the array alive as long as the image."""
    if bgr.dtype != np.uint8 or bgr.ndim not in (2, 3) or (bgr.ndim == 3 and bgr.shape[2] != 3):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 frame; got {bgr.shape} {bgr.dtype}")
    if not bgr.flags.c_contiguous:
        raise ValueError("the frame must be C-contiguous (np.ascontiguousarray)")
    h, w = bgr.shape[:2]
    if bgr.ndim == 2:
        return QImage(bgr.data, w, h, w, QImage.Format.Format_Grayscale8)
    return QImage(bgr.data, w, h, 3 * w, QImage.Format.Format_BGR888)


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
        self.frame: np.ndarray | None = None
        self.image = QImage()  # over ``frame``'s memory
        self._scaled: tuple[tuple[int, int], np.ndarray, QImage] | None = None  # the frame at its size on screen
        self.message = "No source"
        self.banner = ""  # a state shown over the frame ("end of video")
        self.marker: QPointF | None = None  # the inspected keypoint, in frame pixels
        self._press: QPoint | None = None
        self._drag: QPoint | None = None
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMouseTracking(False)

    def set_frame(self, frame: np.ndarray) -> None:
        """Show ``frame`` ((H, W, 3) uint8 BGR or (H, W) grey); the view keeps a reference to it."""
        self.frame = np.ascontiguousarray(frame)
        self.image = to_qimage(self.frame)
        self._scaled = None
        self.update()

    def _on_screen(self, rect: QRectF) -> QImage:
        """The frame resized to ``rect`` (cached until the next frame or a new size)."""
        size = (max(1, round(rect.width())), max(1, round(rect.height())))
        if self._scaled is None or self._scaled[0] != size:
            h, w = self.frame.shape[:2]
            if (w, h) == size:
                scaled = self.frame
            else:
                shrink = size[0] < w
                scaled = cv2.resize(self.frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            self._scaled = (size, scaled, to_qimage(scaled))
        return self._scaled[2]

    def set_message(self, text: str) -> None:
        """Text shown when there is no frame (and under the frame when there is)."""
        self.message = text
        self.update()

    def set_banner(self, text: str) -> None:
        """A line shown over the top of the frame ("" removes it)."""
        self.banner = text
        self.update()

    def set_marker(self, point: QPointF | None) -> None:
        """Mark the keypoint at ``point`` (frame pixels) with a ring; None removes the mark."""
        self.marker = point
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
            rect = self.image_rect()
            p.drawImage(rect.topLeft(), self._on_screen(rect))
            if self.marker is not None:
                centre = self.to_widget(self.marker)
                p.setRenderHint(QPainter.RenderHint.Antialiasing)
                for colour, width in (("#000000", 4), (MARKER_COLOUR, 2)):
                    p.setPen(QPen(QColor(colour), width))
                    p.drawEllipse(centre, MARKER_RADIUS_PX, MARKER_RADIUS_PX)
            if self.banner:
                strip = QRectF(rect.left(), rect.top(), rect.width(), BANNER_HEIGHT_PX)
                p.fillRect(strip, QColor(0, 0, 0, 170))
                p.setPen(QColor("#ffd54f"))
                p.drawText(strip, Qt.AlignmentFlag.AlignCenter, self.banner)
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
