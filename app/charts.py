"""A live chart drawn with QPainter: per-stage latency (stacked), frames per second and inliers over recent frames."""

from __future__ import annotations

from collections import deque

from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer
from PyQt6.QtGui import QColor, QPainter, QPainterPath, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

STAGE_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]


class LatencyChart(QWidget):
    """Stacked bars of each frame's stage timings (ms), with fps and inlier ratio as lines on top.

    ``add(timings_ms, fps, inliers, inlier_ratio)`` appends one frame; the last ``history`` frames are shown. The
    chart repaints at most ``refresh_hz`` times a second (painting it costs the UI thread several milliseconds, too
    much to spend on every frame of a 2-core machine).
    """

    def __init__(self, history: int = 120, refresh_hz: float = 5.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.frames: deque[tuple[dict[str, float], float, int, float]] = deque(maxlen=history)
        self.stages: list[str] = []
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / refresh_hz))
        self._timer.timeout.connect(self._refresh)
        self._timer.start()

    def add(self, timings_ms: dict[str, float], fps: float, inliers: int, inlier_ratio: float) -> None:
        for stage in timings_ms:
            if stage not in self.stages:
                self.stages.append(stage)
        self.frames.append((dict(timings_ms), float(fps), int(inliers), float(inlier_ratio)))
        self._dirty = True

    def _refresh(self) -> None:
        if self._dirty:
            self._dirty = False
            self.update()

    def clear(self) -> None:
        self.frames.clear()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1e1e1e"))
        legend_h = 16 * ((len(self.stages) + 3) // 4 + 1)
        plot = QRectF(40, 8, max(1, self.width() - 100), max(1, self.height() - 16 - legend_h))
        p.setPen(QPen(QColor("#555555")))
        p.drawRect(plot)
        totals = [sum(t.values()) for t, *_ in self.frames]
        top_ms = max([33.3, *totals]) * 1.1
        top_fps = max([30.0, *(f for _, f, _, _ in self.frames)]) * 1.1
        bar_w = plot.width() / self.history
        bars: dict[str, list[QRectF]] = {stage: [] for stage in self.stages}  # one drawRects call per stage
        for i, (timings, *_rest) in enumerate(self.frames):
            x = plot.left() + i * bar_w
            y = plot.bottom()
            for stage in self.stages:
                h = timings.get(stage, 0.0) / top_ms * plot.height()
                bars[stage].append(QRectF(x, y - h, max(1.0, bar_w - 0.5), h))
                y -= h
        p.setPen(Qt.PenStyle.NoPen)
        for stage, rects in bars.items():
            p.setBrush(QColor(self._colour(stage)))
            p.drawRects(rects)
        p.setBrush(Qt.BrushStyle.NoBrush)  # the lines below are strokes, not filled shapes
        p.setRenderHint(QPainter.RenderHint.Antialiasing)  # for the lines (the bars are axis-aligned)
        # Reference line at 1/15 s: the real-time budget.
        self._hline(p, plot, 1000 / 15 / top_ms, "#bbbbbb", f"{1000 / 15:.0f} ms")
        self._line(p, plot, [f / top_fps for _, f, _, _ in self.frames], bar_w, "#ffffff")
        self._line(p, plot, [r for *_, r in self.frames], bar_w, "#59ff59")
        p.setPen(QColor("#dddddd"))
        p.drawText(QPointF(2, plot.top() + 10), f"{top_ms:.0f}")
        p.drawText(QPointF(2, plot.bottom()), "0 ms")
        p.drawText(QPointF(plot.right() + 4, plot.top() + 10), f"{top_fps:.0f} fps")
        self._legend(p, plot.bottom() + 6)
        p.end()

    def _colour(self, stage: str) -> str:
        return STAGE_COLOURS[self.stages.index(stage) % len(STAGE_COLOURS)]

    def _hline(self, p: QPainter, plot: QRectF, frac: float, colour: str, label: str) -> None:
        if not 0 < frac < 1:
            return
        y = plot.bottom() - frac * plot.height()
        p.setPen(QPen(QColor(colour), 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.drawText(QPointF(plot.right() + 4, y + 4), label)

    def _line(self, p: QPainter, plot: QRectF, fracs: list[float], bar_w: float, colour: str) -> None:
        if len(fracs) < 2:
            return
        path = QPainterPath()
        for i, f in enumerate(fracs):
            pt = QPointF(plot.left() + (i + 0.5) * bar_w, plot.bottom() - min(max(f, 0.0), 1.0) * plot.height())
            path.lineTo(pt) if i else path.moveTo(pt)
        p.setPen(QPen(QColor(colour), 1.5))
        p.drawPath(path)

    def _legend(self, p: QPainter, y: float) -> None:
        last = self.frames[-1] if self.frames else ({}, 0.0, 0, 0.0)
        items = [(s, self._colour(s), f"{s} {last[0].get(s, 0.0):.1f}") for s in self.stages]
        items += [("fps", "#ffffff", f"fps {last[1]:.1f}"), ("inl", "#59ff59", f"inliers {last[2]} ({last[3]:.0%})")]
        col_w = max(1, self.width() // 4)
        for i, (_, colour, text) in enumerate(items):
            x, yy = 4 + (i % 4) * col_w, y + 16 * (i // 4)
            p.fillRect(QRectF(x, yy + 3, 10, 10), QColor(colour))
            p.setPen(QColor("#dddddd"))
            p.drawText(QPointF(x + 14, yy + 12), text)
