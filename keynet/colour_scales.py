"""Colour scales of the drawn layers: turbo colours over values, the response heatmap on a log scale and its
labelled colour bar."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WHITE = (255, 255, 255)


def colour_map(values: np.ndarray) -> np.ndarray:
    """(N,) values -> (N, 3) uint8 BGR turbo colours, the smallest blue and the largest red."""
    if len(values) == 0:
        return np.zeros((0, 3), np.uint8)
    v = np.asarray(values, np.float64)
    span = v.max() - v.min()
    norm = (v - v.min()) / span if span > 0 else np.full_like(v, 0.5)
    return cv2.applyColorMap((norm * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]


HEATMAP_DECADES = 3.0  # the heatmap's log scale spans this many decades below the largest response


@dataclass(frozen=True)
class HeatmapScale:
    """How ``draw_heatmap`` maps a response to a turbo level in 0..1: a log scale over the top ``decades`` decades
    of the response above its background, ``level = log(1 + (r - low) / knee) / log(1 + 10**decades)`` with
    ``knee = (high - low) / 10**decades``: 0 (blue, transparent) at and below ``low`` (the median: the flat
    background), 1 (red) at ``high`` (the largest response), each decade below it about an equal share of the
    colours, so the weak responses that make up most of a frame get colours of their own, not only the peaks."""

    low: float
    high: float
    decades: float = HEATMAP_DECADES

    @classmethod
    def of(cls, response: np.ndarray) -> HeatmapScale | None:
        """The scale of an (H, W) ``response``; None when it is flat (nothing to show)."""
        low, high = float(np.median(response[::4, ::4])), float(response.max())  # a subsample does for the median
        return cls(low, high) if high > low else None

    def levels(self, response: np.ndarray) -> np.ndarray:
        """Response values (any shape) -> float32 levels in 0..1 of the same shape."""
        values = np.asarray(response, np.float32)
        knee = (self.high - self.low) / 10**self.decades
        above = np.maximum(values.reshape(-1, 1) - np.float32(self.low), np.float32(0))
        level = cv2.log(above * np.float32(1 / knee) + np.float32(1))  # OpenCV's log: faster than np.log1p
        level *= np.float32(1 / np.log1p(10**self.decades))
        return np.minimum(level, np.float32(1), out=level).reshape(values.shape)

    def ticks(self) -> list[tuple[float, float]]:
        """(level, response) of the colour bar's labelled ticks, lowest first: the background and the largest
        response divided by each power of ten down to ``10**(decades - 1)``."""
        span = self.high - self.low
        values = [self.low, *(self.low + span / 10**k for k in range(int(self.decades) - 1, -1, -1))]
        return [(float(self.levels(np.float32(v))), v) for v in values]


def draw_heatmap(canvas: np.ndarray, response: np.ndarray, alpha: float = 0.85) -> HeatmapScale | None:
    """Blend a detector ``response`` ((h, w) float, resized to the canvas) over ``canvas`` as a turbo heatmap
    coloured by ``HeatmapScale``; each pixel's opacity is ``alpha`` times its level, so the frame stays visible
    where the detector does not fire. Returns the scale (for ``draw_colour_bar``), None for a flat response."""
    if response.ndim != 2:
        raise ValueError(f"the response must be an (H, W) map; got shape {response.shape}")
    r = response.astype(np.float32, copy=False)
    scale = HeatmapScale.of(r)
    if scale is None:
        return None
    level = scale.levels(r)
    if level.shape != canvas.shape[:2]:
        level = cv2.resize(level, (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(cv2.convertScaleAbs(level, alpha=255), cv2.COLORMAP_TURBO)
    weight = cv2.cvtColor(cv2.convertScaleAbs(level, alpha=255 * alpha), cv2.COLOR_GRAY2BGR)
    canvas[:] = cv2.add(cv2.multiply(canvas, cv2.bitwise_not(weight), scale=1 / 255),
                        cv2.multiply(colours, weight, scale=1 / 255))
    return scale


def colour_bar_rect(width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive, of ``draw_colour_bar``'s strip on a ``width`` x ``height`` frame: 12 px
    wide at the right edge, under its title, half the frame's height (160 px at most)."""
    x1, y0 = width - 10, 26
    return x1 - 12, y0, x1, y0 + max(20, min(160, height // 2))


def draw_colour_bar(canvas: np.ndarray, scale: HeatmapScale, font_scale: float = 0.4) -> None:
    """The heatmap's legend at the right edge (``colour_bar_rect``): the turbo strip from level 0 (bottom) to 1
    (top) and ``scale.ticks()`` labelled with their response values, on a dark box under the title "response"."""
    x0, y0, x1, y1 = colour_bar_rect(canvas.shape[1], canvas.shape[0])
    ticks = [(y1 - 1 - round(level * (y1 - y0 - 1)), f"{value:.3g}") for level, value in scale.ticks()]
    text_w = max(cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] for _, label in ticks)
    title = "response"
    title_w = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]
    left = min(x0 - 8 - text_w, x1 - title_w) - 4
    cv2.rectangle(canvas, (left, 6), (x1 + 4, y1 + 6), (32, 32, 32), cv2.FILLED)
    cv2.putText(canvas, title, (x1 - title_w, y0 - 6), cv2.FONT_HERSHEY_SIMPLEX, font_scale, WHITE, 1, cv2.LINE_AA)
    strip = np.linspace(255, 0, y1 - y0).round().astype(np.uint8)[:, None]
    canvas[y0:y1, x0:x1] = cv2.applyColorMap(strip, cv2.COLORMAP_TURBO)
    for y, label in ticks:
        cv2.line(canvas, (x0 - 4, y), (x0 - 1, y), WHITE, 1)
        cv2.putText(canvas, label, (x0 - 6 - text_w, y + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, WHITE, 1,
                    cv2.LINE_AA)
