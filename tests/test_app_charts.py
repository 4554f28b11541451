"""The latency chart: one panel and axis per quantity (ms, fps, inliers); stacked stage bars in their colours in
the latency panel, the fps line in its own panel, one inliers line per target; lines drawn as strokes only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt6")

from app.charts import FPS_COLOUR, PANELS, STAGE_COLOURS, LatencyChart  # noqa: E402


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


def inside(pixels: np.ndarray, rect) -> np.ndarray:
    """The pixels strictly inside a panel's frame."""
    return pixels[int(rect.top()) + 2: int(rect.bottom()) - 1, int(rect.left()) + 2: int(rect.right()) - 1]


@pytest.fixture
def chart(qtbot) -> LatencyChart:
    chart = LatencyChart(history=100)
    qtbot.addWidget(chart)
    chart.resize(600, 320)
    return chart


def test_each_quantity_has_its_own_panel_and_axis(chart):
    panels = chart.panels()
    assert list(panels) == [name for name, _, _ in PANELS]
    assert {label for _, label, _ in PANELS} == {"ms", "fps", "inliers"}
    rects = list(panels.values())
    for upper, lower in zip(rects, rects[1:], strict=False):
        assert upper.bottom() < lower.top()  # stacked, not overlaid: no axis reads one unit over another


def test_bars_fill_their_stage_colour_and_lines_fill_nothing(chart):
    for i in range(100):  # fps steps from 30 to 5 half-way: a filled path would cover a large triangle
        chart.add({"detect": 15.0, "match": 5.0}, 30.0 if i < 50 else 5.0, [("poster", "tracking", 100, 200)])
    pixels = rendered(chart)
    panels = chart.panels()
    latency = inside(pixels, panels["latency"])
    detect, match = share_of(latency, STAGE_COLOURS[0]), share_of(latency, STAGE_COLOURS[1])
    assert detect > 0.15 and match > 0.04 and detect == pytest.approx(3 * match, rel=0.35)
    assert share_of(latency, "#1e1e1e") > 0.4  # the background above the bars is left as it is
    fps = inside(pixels, panels["fps"])
    assert 0 < share_of(fps, FPS_COLOUR) < 0.1  # the fps line: a stroke, in its own panel
    assert share_of(latency, FPS_COLOUR) < 0.01


def test_every_target_has_its_own_inliers_line(chart):
    for i in range(100):
        targets = [("poster", "tracking", 120, 200)]
        if i >= 30:
            targets.append(("region 1", "tracking", 40, 90))
        chart.add({"detect": 20.0}, 15.0, targets)
    assert chart.targets == ["poster", "region 1"]
    first, second = chart.target_colour("poster"), chart.target_colour("region 1")
    assert first != second
    pixels = inside(rendered(chart), chart.panels()["inliers"])
    assert share_of(pixels, first) > 0.003 and share_of(pixels, second) > 0.003
    top, bottom = (rows.nonzero()[0] for rows in
                   ((np.abs(pixels.astype(int) - np.array([int(c[i: i + 2], 16) for i in (1, 3, 5)])).sum(-1) < 30)
                    .any(1) for c in (first, second)))
    assert top.mean() < bottom.mean()  # 120 inliers drawn above 40
