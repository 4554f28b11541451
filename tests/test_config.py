"""The tracker's configuration: flat and per-part overrides, unknown names, the dict round trip."""

from __future__ import annotations

import json

import pytest

from keynet.config import (
    PARTS,
    AlignmentConfig,
    GeometryConfig,
    SmoothingConfig,
    TrackerConfig,
    known_options,
)
from keynet.errors import OptionError


def test_flat_names_find_their_part_and_the_rest_is_kept():
    config = TrackerConfig().replace(ratio=0.8, nms_size=11, align_window=21, default_fps=25.0)
    assert config.matching.ratio == 0.8 and config.detector.nms_size == 11
    assert config.alignment.align_window == 21 and config.default_fps == 25.0
    assert config.geometry == GeometryConfig() and config.matching.guide_radius == 40.0
    assert TrackerConfig().matching.ratio == 0.9  # frozen: replace made a copy


def test_a_part_is_given_as_a_dict_or_whole():
    config = TrackerConfig().replace(alignment={"align_passes": 1}, geometry=GeometryConfig(fov_deg=70.0))
    assert config.alignment == AlignmentConfig(align_passes=1) and config.geometry.fov_deg == 70.0
    with pytest.raises(OptionError, match="align_pases"):
        TrackerConfig().replace(alignment={"align_pases": 1})
    with pytest.raises(OptionError, match="expected a dict"):
        TrackerConfig().replace(smoothing=3)


def test_unknown_names_are_refused():
    with pytest.raises(OptionError, match="fov"):
        TrackerConfig().replace(fov=60)


def test_flat_view_and_known_options_cover_every_field_once():
    flat = TrackerConfig().flat()
    assert sorted(flat) == sorted(set(known_options()) - set(PARTS))
    assert flat["ratio"] == 0.9 and flat["fov_deg"] == 60.0 and flat["keep_response"] is False


def test_the_dict_round_trips_through_json():
    config = TrackerConfig().replace(target_scales=(1.0, 0.5), ratio=0.85, smoothing=SmoothingConfig())
    again = TrackerConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.targets.target_scales, tuple)
    assert TrackerConfig.from_dict({}) == TrackerConfig()
