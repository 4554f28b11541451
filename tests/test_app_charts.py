"""The latency chart: stacked stage bars in their colours, fps and inlier-ratio lines drawn as strokes only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt6")

from app.charts import STAGE_COLOURS, LatencyChart  # noqa: E402


def rendered(chart: LatencyChart) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the chart as painted."""
    image = chart.grab().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    array = np.frombuffer(image.constBits().asarray(image.sizeInBytes()), np.uint8).copy()  # before image is freed
    return array.reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()].reshape(
        image.height(), image.width(), 3)


def share_of(pixels: np.ndarray, hex_colour: str) -> float:
    rgb = np.array([int(hex_colour[i: i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels.astype(int) - rgb).sum(-1) < 30).mean())


def test_bars_fill_their_stage_colour_and_lines_fill_nothing(qtbot):
    chart = LatencyChart(history=100)
    qtbot.addWidget(chart)
    chart.resize(600, 220)
    for i in range(100):  # fps steps from 30 to 5 half-way: a filled path would cover a large triangle
        chart.add({"detect": 15.0, "match": 5.0}, 30.0 if i < 50 else 5.0, 100, 0.5)  # bars to 20/36.7 of the height
    pixels = rendered(chart)[9:179, 41:499]  # inside the plot frame: (40, 8) to (500, 180) at this size
    detect, match = share_of(pixels, STAGE_COLOURS[0]), share_of(pixels, STAGE_COLOURS[1])
    assert detect > 0.15 and match > 0.04 and detect == pytest.approx(3 * match, rel=0.35)
    assert share_of(pixels, "#ffffff") < 0.03  # the fps line: a stroke
    assert share_of(pixels, "#1e1e1e") > 0.4  # the background above the bars is left as it is
