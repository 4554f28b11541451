"""Targets: the pyramid a target is described over, its checks, the star rating and the alignment points."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.config import TargetConfig, TrackerConfig
from keynet.demo import demo_sequence
from keynet.describe import Describer
from keynet.errors import InputError
from keynet.targets import Target, alignment_points, assess, make_target
from keynet.tracker import tracking_detector
from keynet.weights import load_model


@pytest.fixture(scope="module")
def detector():
    from tests.conftest import AUTHORS_WEIGHTS, require_shared

    return tracking_detector(load_model(require_shared(AUTHORS_WEIGHTS)), device="cpu")


def test_a_target_is_described_at_each_scale_with_progress(detector):
    image = cv2.imread(str(demo_sequence().target))
    reported = []
    config = TargetConfig(target_scales=(1.0, 0.5), target_keypoints=200)
    target = make_target(image, "poster", detector, Describer(descriptor="orb"), config,
                         lambda done, total: reported.append((done, total)))
    assert reported == [(1, 2), (2, 2)]
    assert sorted(target.level_rows) == [0.5, 1.0] and target.size == (400, 300)
    for level in (0.5, 1.0):
        rows = target.level_rows[level]
        assert 30 < len(rows) <= 200 and np.all(np.diff(target.scores[rows]) <= 0)  # best score first
    assert np.all((target.xy >= 0) & (target.xy < [400, 300]))  # level points in the target's own pixels


def test_target_quality_and_too_few_keypoints(detector):
    describer = Describer(descriptor="orb")
    image = cv2.imread(str(demo_sequence().target))
    good = make_target(image, "poster", detector, describer)
    quality = assess(good, detector, describer, TrackerConfig())
    assert quality.stars >= 4 and quality.spread > 0.8
    with pytest.raises(InputError, match="at least 30"):
        make_target(np.full((200, 200, 3), 90, np.uint8), "flat", detector, describer)
    with pytest.raises(InputError, match="empty"):
        make_target(np.zeros((0, 0, 3), np.uint8), "empty", detector, describer)
    half = np.full((200, 200, 3), 90, np.uint8)
    half[:, :100] = cv2.resize(image, (100, 200))
    # the texture covers 8 of the 16 cells; its edge at x = 100 is itself a feature, and at the 1.41x level points
    # on it land just right of the boundary, in a ninth cell or so: far below the full target's spread
    assert assess(make_target(half, "half", detector, describer), detector, describer).spread <= 0.6


def test_a_target_needs_one_scale_and_score_per_point():
    with pytest.raises(InputError, match="3 points but 2 scales"):
        Target("t", np.zeros((10, 10), np.uint8), (10, 10), np.zeros((3, 2), np.float32), None, None,
               np.ones(2), np.ones(3))


def test_alignment_points_are_the_inliers_and_the_best_keypoints_of_the_level_in_view():
    # Two levels: full size (scores 0..99) and half size (scores 100..199, every other point outside the frame).
    grid = np.stack(np.meshgrid(np.arange(10) * 40 + 20, np.arange(10) * 30 + 20), -1).reshape(-1, 2).astype(np.float32)
    xy = np.concatenate([grid, grid])
    scales = np.repeat([1.0, 0.5], 100)
    scores = np.arange(200, dtype=np.float32)
    target = Target("t", np.zeros((300, 400), np.uint8), (400, 300), xy, None, None, scales, scores)
    seen_at_half = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1.0]])  # the target shown at half size
    frame_shape = (480, 110)  # x < 204 in the target: 8 px or more inside the frame's right edge (x = 20..180)
    inliers = np.array([3, 7])
    points = alignment_points(target, seen_at_half, frame_shape, inliers, count=10)
    half_rows = 100 + np.flatnonzero(grid[:, 0] <= 180)
    expected = np.union1d(inliers, half_rows[np.argsort(-scores[half_rows])[:10]])
    assert np.array_equal(points, xy[expected])
    assert np.array_equal(alignment_points(target, seen_at_half, frame_shape, inliers, count=0), xy[inliers])
