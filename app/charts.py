"""A live chart drawn with QPainter over recent frames, in three panels, each with its own labelled axis:
per-stage latency (stacked bars, ms), frames per second, and the inliers of every target (one line each)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer
from PyQt6.QtGui import QColor, QPainter, QPainterPath, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

STAGE_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
TARGET_COLOURS = ["#59ff59", "#ff59d6", "#59d6ff", "#ffd659", "#ff8c59", "#b3a1ff"]
FPS_COLOUR = "#ffffff"
BACKGROUND = "#1e1e1e"
# The panels top to bottom: (name, axis label, share of the plot height).
PANELS = (("latency", "ms", 0.5), ("fps", "fps", 0.25), ("inliers", "inliers", 0.25))
BUDGET_FPS = 15  # the dashed line of the latency panel: the time one frame may take at this rate
AXIS_W, RIGHT_W, TOP, GAP = 52, 8, 6, 6
LINE_H = 16


@dataclass
class FrameSample:
    """One frame's numbers: stage times (ms), the fps shown then and (name, inliers) of each target."""

    timings_ms: dict[str, float]
    fps: float
    inliers: list[tuple[str, int]]


class LatencyChart(QWidget):
    """Stacked bars of each frame's stage timings (ms), the fps line and one inliers line per target, each
    quantity on its own axis.

    ``add(timings_ms, fps, targets)`` appends one frame (``targets``: (name, state, inliers, matches) each, as
    ``FrameOutput.targets``); the last ``history`` frames are shown. The chart repaints at most ``refresh_hz``
    times a second (painting it costs the UI thread several milliseconds, too much to spend on every frame of a
    2-core machine).
    """

    def __init__(self, history: int = 120, refresh_hz: float = 5.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.frames: deque[FrameSample] = deque(maxlen=history)
        self.stages: list[str] = []
        self.targets: list[str] = []  # every target seen, in order of appearance (their colours)
        self.setMinimumHeight(200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / refresh_hz))
        self._timer.timeout.connect(self._refresh)
        self._timer.start()

    def add(self, timings_ms: dict[str, float], fps: float, targets: list[tuple[str, str, int, int]]) -> None:
        for stage in timings_ms:
            if stage not in self.stages:
                self.stages.append(stage)
        for name, *_ in targets:
            if name not in self.targets:
                self.targets.append(name)
        self.frames.append(FrameSample(dict(timings_ms), float(fps), [(name, int(n)) for name, _, n, _ in targets]))
        self._dirty = True

    def _refresh(self) -> None:
        if self._dirty:
            self._dirty = False
            self.update()

    def clear(self) -> None:
        self.frames.clear()
        self.targets.clear()
        self.update()

    # ---------------------------------------------------------------- geometry
    def legend_height(self) -> float:
        items = len(self.stages) + 1 + len(self.targets)
        return LINE_H * ((items + 3) // 4)

    def panels(self) -> dict[str, QRectF]:
        """Each panel's plot rectangle (widget pixels), by name."""
        height = max(3.0, self.height() - TOP - self.legend_height() - GAP * (len(PANELS) + 1))
        width = max(1.0, self.width() - AXIS_W - RIGHT_W)
        out, y = {}, float(TOP)
        for name, _, share in PANELS:
            out[name] = QRectF(AXIS_W, y, width, max(1.0, height * share))
            y += height * share + GAP
        return out

    def scales(self) -> dict[str, float]:
        """The top of each panel's axis: ms, fps, inliers."""
        totals = [sum(f.timings_ms.values()) for f in self.frames]
        inliers = [n for f in self.frames for _, n in f.inliers]
        return {"latency": max([1000 / BUDGET_FPS, *totals]) * 1.1,
                "fps": max([30.0, *(f.fps for f in self.frames)]) * 1.1,
                "inliers": max([50, *inliers]) * 1.1}

    # ---------------------------------------------------------------- painting
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(BACKGROUND))
        panels, tops = self.panels(), self.scales()
        bar_w = panels["latency"].width() / self.history
        for name, label, _ in PANELS:
            self._axis(p, panels[name], tops[name], label)
        self._bars(p, panels["latency"], tops["latency"], bar_w)
        p.setBrush(Qt.BrushStyle.NoBrush)  # the lines below are strokes, not filled shapes
        p.setRenderHint(QPainter.RenderHint.Antialiasing)  # for the lines (the bars are axis-aligned)
        self._hline(p, panels["latency"], 1000 / BUDGET_FPS / tops["latency"], "#bbbbbb",
                    f"{1000 / BUDGET_FPS:.0f} ms = {BUDGET_FPS} fps")
        self._line(p, panels["fps"], [f.fps / tops["fps"] for f in self.frames], bar_w, FPS_COLOUR)
        for name in self.targets:
            values = [next((n for t, n in f.inliers if t == name), None) for f in self.frames]
            self._line(p, panels["inliers"], [None if v is None else v / tops["inliers"] for v in values], bar_w,
                       self.target_colour(name))
        self._legend(p, self.height() - self.legend_height())
        p.end()

    def stage_colour(self, stage: str) -> str:
        return STAGE_COLOURS[self.stages.index(stage) % len(STAGE_COLOURS)]

    def target_colour(self, name: str) -> str:
        return TARGET_COLOURS[self.targets.index(name) % len(TARGET_COLOURS)]

    def _axis(self, p: QPainter, plot: QRectF, top: float, label: str) -> None:
        """The panel's frame, its top and zero values and its unit, on the left."""
        p.setPen(QPen(QColor("#555555")))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(plot)
        p.setPen(QColor("#dddddd"))
        p.drawText(QRectF(0, plot.top() - 2, AXIS_W - 4, LINE_H), Qt.AlignmentFlag.AlignRight, f"{top:.0f}")
        p.drawText(QRectF(0, plot.bottom() - LINE_H + 2, AXIS_W - 4, LINE_H), Qt.AlignmentFlag.AlignRight, "0")
        p.drawText(QRectF(0, plot.center().y() - LINE_H / 2, AXIS_W - 4, LINE_H), Qt.AlignmentFlag.AlignRight,
                   label)

    def _bars(self, p: QPainter, plot: QRectF, top_ms: float, bar_w: float) -> None:
        bars: dict[str, list[QRectF]] = {stage: [] for stage in self.stages}  # one drawRects call per stage
        for i, frame in enumerate(self.frames):
            x, y = plot.left() + i * bar_w, plot.bottom()
            for stage in self.stages:
                h = min(frame.timings_ms.get(stage, 0.0) / top_ms * plot.height(), y - plot.top())
                bars[stage].append(QRectF(x, y - h, max(1.0, bar_w - 0.5), h))
                y -= h
        p.setPen(Qt.PenStyle.NoPen)
        for stage, rects in bars.items():
            p.setBrush(QColor(self.stage_colour(stage)))
            p.drawRects(rects)

    def _hline(self, p: QPainter, plot: QRectF, frac: float, colour: str, label: str) -> None:
        if not 0 < frac < 1:
            return
        y = plot.bottom() - frac * plot.height()
        p.setPen(QPen(QColor(colour), 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.drawText(QPointF(plot.right() - 4 - p.fontMetrics().horizontalAdvance(label), y - 3), label)

    def _line(self, p: QPainter, plot: QRectF, fracs: list[float | None], bar_w: float, colour: str) -> None:
        """A polyline through ``fracs`` (0..1 of the panel's height; None: a gap, where a target was absent)."""
        path = QPainterPath()
        drawing = False
        for i, f in enumerate(fracs):
            if f is None:
                drawing = False
                continue
            pt = QPointF(plot.left() + (i + 0.5) * bar_w, plot.bottom() - min(max(f, 0.0), 1.0) * plot.height())
            path.lineTo(pt) if drawing else path.moveTo(pt)
            drawing = True
        p.setPen(QPen(QColor(colour), 1.5))
        p.drawPath(path)

    def _legend(self, p: QPainter, y: float) -> None:
        last = self.frames[-1] if self.frames else FrameSample({}, 0.0, [])
        now = dict(last.inliers)
        items = [(self.stage_colour(s), f"{s} {last.timings_ms.get(s, 0.0):.1f} ms") for s in self.stages]
        items.append((FPS_COLOUR, f"{last.fps:.1f} fps"))
        items += [(self.target_colour(t), f"{t}: {now[t]} inliers" if t in now else f"{t}: -") for t in self.targets]
        col_w = max(1, self.width() // 4)
        for i, (colour, text) in enumerate(items):
            x, yy = 4 + (i % 4) * col_w, y + LINE_H * (i // 4)
            p.fillRect(QRectF(x, yy + 3, 10, 10), QColor(colour))
            p.setPen(QColor("#dddddd"))
            p.drawText(QPointF(x + 14, yy + 12), text)
