"""The settings panel's keypoint colouring: "By scale" is disabled in single-scale mode and says why (every keypoint
has one scale there, so it would show one colour); the user's choice is emitted, a shown mode is not."""

from __future__ import annotations

import pytest

pytest.importorskip("PyQt6")

from PyQt6.QtCore import Qt  # noqa: E402

from app.pipeline import default_view  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.settings_panel import SINGLE_SCALE_TIP, SettingsPanel  # noqa: E402
from keynet.config import TrackerConfig  # noqa: E402
from keynet.render import ONE_SCALE_NOTE  # noqa: E402


def make_panel(qtbot, settings: AppSettings | None = None) -> SettingsPanel:
    panel = SettingsPanel(settings or AppSettings(), ["orb"])
    qtbot.addWidget(panel)
    return panel


def scale_item(panel: SettingsPanel):
    return panel.keypoint_colours.model().item(panel.keypoint_colours.findData("scale"))


def test_by_scale_is_disabled_and_explained_in_single_scale_mode(qtbot):
    assert not AppSettings().tracker_config().detector.multi_scale  # the app's detector: single-scale
    panel = make_panel(qtbot)
    item = scale_item(panel)
    assert not item.isEnabled()
    assert item.text() == f"By scale ({ONE_SCALE_NOTE})" and "one scale" in ONE_SCALE_NOTE
    assert item.toolTip() == SINGLE_SCALE_TIP and SINGLE_SCALE_TIP in panel.keypoint_colours.toolTip()


def test_the_keyboard_skips_by_scale_in_single_scale_mode_and_the_choice_is_emitted(qtbot):
    panel = make_panel(qtbot)
    assert panel.keypoint_colours.currentData() == default_view().keypoints == "score"  # as the video shows them
    chosen: list[str] = []
    panel.keypoints_changed.connect(chosen.append)
    panel.show()
    panel.keypoint_colours.setFocus()
    qtbot.keyClick(panel.keypoint_colours, Qt.Key.Key_Down)
    assert panel.keypoint_colours.currentData() == "rank" and chosen == ["rank"]  # past the disabled "By scale"
    panel.set_keypoints("off")  # shown (the K shortcut changed it), not emitted
    assert panel.keypoint_colours.currentData() == "off" and chosen == ["rank"]


def test_by_scale_is_offered_plainly_when_the_detector_is_multi_scale(qtbot, monkeypatch):
    monkeypatch.setattr(AppSettings, "tracker_config",
                        lambda self, **_: TrackerConfig().replace(multi_scale=True))
    panel = make_panel(qtbot)
    item = scale_item(panel)
    assert item.isEnabled() and item.text() == "By scale" and item.toolTip() == ""
    assert SINGLE_SCALE_TIP not in panel.keypoint_colours.toolTip()


def test_settings_the_panel_does_not_show_are_kept_when_it_shows_new_ones(qtbot):
    panel = make_panel(qtbot)
    panel.set_settings(AppSettings(num_keypoints=321, calibration_file="camera.yaml"))
    assert panel.settings.calibration_file == "camera.yaml" and panel.settings.num_keypoints == 321
