"""The target-quality preview: the library's star score and a feature heat map of where the keypoints fall,
shown before a dragged or loaded target is tracked; keeping it tracks it, discarding it leaves no target."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import Qt  # noqa: E402

from app.frames import Frame  # noqa: E402
from app.pipeline import TrackingPipeline  # noqa: E402
from app.quality_view import QualityView  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from keynet.render import PER_AREA, keypoint_density  # noqa: E402
from keynet.targets import assess  # noqa: E402

from .test_app_window import drag, shipped_weights, texture_folder  # noqa: E402


def half_textured_frame() -> np.ndarray:
    """(240, 320, 3) uint8: a random texture on the left half, flat grey on the right."""
    rng = np.random.default_rng(1)
    frame = np.full((240, 320, 3), 128, np.uint8)
    frame[:, :160] = cv2.GaussianBlur(rng.integers(0, 255, (240, 160, 3), np.uint8), (0, 0), 1.5)
    return frame


@pytest.fixture(scope="module")
def pipeline() -> TrackingPipeline:
    pipeline = TrackingPipeline(AppSettings(model="file", weights_file=str(shipped_weights()), device="cpu",
                                            num_keypoints=400))
    assert pipeline.configure(pipeline.settings) == ""
    pipeline.process(Frame(0, half_textured_frame(), 0.0))
    return pipeline


def test_the_density_counts_every_keypoint_as_a_gaussian():
    sigma = 5.0
    density = keypoint_density(np.array([[50.0, 40.0]]), (100, 80), sigma)
    assert density.shape == (80, 100)
    assert density[40, 50] == pytest.approx(PER_AREA / (2 * np.pi * sigma**2), rel=0.02)  # the peak, analytic
    xy = np.random.default_rng(0).uniform([20, 20], [80, 60], (37, 2))
    assert keypoint_density(xy, (100, 80), sigma).sum() / PER_AREA == pytest.approx(37, rel=0.01)


def test_a_textured_target_gets_more_stars_and_a_denser_map_than_a_flat_one(qtbot, pipeline):
    textured = pipeline.preview_target_rect((10, 20, 140, 200), 0)
    flat = pipeline.preview_target_rect((170, 20, 140, 200), 0)
    assert pipeline.num_targets == 0  # rated, not tracked
    tracker = pipeline.tracker
    assert textured.quality == assess(textured.target, tracker.detector, tracker.describer, tracker.config)
    assert textured.quality.stars > flat.quality.stars and textured.trackable and not flat.trackable
    view = QualityView()
    qtbot.addWidget(view)
    shown = {}
    for name, preview in (("textured", textured), ("flat", flat)):
        view.show_preview(preview)
        image = preview.target.image
        tinted = np.abs(view.heat_map.astype(int) - image).max(axis=2) > 20
        shown[name] = (view.density.mean(), tinted.mean(), view.keep_button.isEnabled(), view.stars.text())
    assert shown["textured"][0] > 0 and shown["flat"][0] == 0
    assert shown["textured"][1] > 0.5 and shown["flat"][1] == 0  # the map over the texture, none on the flat one
    assert shown["textured"][2] and not shown["flat"][2]  # only the textured one can be tracked
    assert shown["textured"][3].startswith("★" * textured.quality.stars)
    assert "Too plain to track" in view.verdict.text()


def test_the_map_shows_where_the_keypoints_fall(qtbot, pipeline):
    straddling = pipeline.preview_target_rect((80, 20, 160, 200), 0)  # textured left half, flat right half
    view = QualityView()
    qtbot.addWidget(view)
    view.show_preview(straddling)
    left, right = view.density[:, :60].mean(), view.density[:, 100:].mean()
    assert left > 10 * right
    plain = view.heat_map.copy()
    view.show_keypoints.setChecked(True)  # the keypoints drawn on top: over the texture, none on the flat half
    assert not np.array_equal(view.heat_map[:, :60], plain[:, :60])
    assert np.array_equal(view.heat_map[:, 100:], plain[:, 100:])


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = AppSettings(model="file", weights_file=str(shipped_weights()), device="cpu", num_keypoints=400)
    w = MainWindow(replace(texture_folder(tmp_path / "clip", 12), loop=True), settings, remember=False, ask=False)
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitUntil(lambda: w.output is not None and w.output.state == "no target", timeout=60000)
    yield w
    w.shutdown()


def wait_rated(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.quality_view.preview is not None and window.quality_view.isVisible(),
                    timeout=60000)


def test_discarding_leaves_no_target(qtbot, window, tmp_path):
    drag(qtbot, window.view, (80, 60, 160, 120))
    wait_rated(qtbot, window)
    assert window.quality_view.preview.box == (80, 60, 160, 120) and window.pipeline.num_targets == 0
    qtbot.mouseClick(window.quality_view.discard_button, Qt.MouseButton.LeftButton)
    assert not window.quality_view.isVisible() and "discarded" in window.target_label.text()
    path = tmp_path / "poster.png"  # a loaded target image is rated first too; closing the dialog discards it
    cv2.imwrite(str(path), half_textured_frame())
    window.load_target_image(str(path))
    wait_rated(qtbot, window)
    assert window.quality_view.preview.name == "poster" and window.quality_view.preview.box is None
    window.quality_view.close()
    index = window.output.index
    qtbot.waitUntil(lambda: window.output.fresh and window.output.index > index + 3, timeout=30000)
    assert window.pipeline.num_targets == 0 and window.output.state == "no target"


def test_keeping_tracks_it(qtbot, window):
    drag(qtbot, window.view, (80, 60, 160, 120))
    wait_rated(qtbot, window)
    previewed = window.quality_view.preview.target
    stars = previewed.quality.stars
    qtbot.mouseClick(window.quality_view.keep_button, Qt.MouseButton.LeftButton)
    states: list[str] = []
    window.frame_shown.connect(lambda out: states.append(out.state))
    qtbot.waitUntil(lambda: "tracking" in states, timeout=60000)
    assert [name for name, *_ in window.output.targets] == ["region 1"]
    assert window.pipeline.tracker.targets[0].quality.stars == stars
    assert window.pipeline.tracker.targets[0] is previewed  # kept as rated, not described a second time
