"""The repeatability protocol on analytic cases; no expected value comes from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keynet.metrics import (
    circle_iou,
    common_region_masks,
    corner_error,
    greedy_one_to_one,
    mutual_nearest_neighbours,
    repeatability,
    select_in_mask,
    warp_circles,
)


def raster_iou(r1: float, r2: float, d: float, step: float = 0.05) -> float:
    """IoU of two circles by counting grid cells: an independent, numerical reference."""
    extent = max(r1, d + r2) + 1
    g = np.arange(-extent, extent, step) + step / 2
    x, y = np.meshgrid(g, g)
    a = x**2 + y**2 <= r1**2
    b = (x - d) ** 2 + y**2 <= r2**2
    return float((a & b).sum() / (a | b).sum())


def grid_points(n: int = 10, spacing: float = 40.0, radius: float = 1.0) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(n) * spacing + 100, np.arange(n) * spacing + 100)
    return np.stack([xs.ravel(), ys.ravel(), np.full(n * n, radius)], 1)


def test_identity_homography_gives_full_repeatability():
    pts = grid_points()
    rep = repeatability(pts, pts.copy(), np.eye(3))
    assert rep.repeatability_sl == rep.repeatability_l == 100.0
    assert rep.overlap_error_sl == pytest.approx(0.0, abs=1e-9)


def test_translation_by_half_a_region_gives_the_lens_overlap():
    # Two 30 px circles 15 px apart (half the radius): the lens area by the textbook formula.
    r, d = 30.0, 15.0
    lens = 2 * r**2 * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r**2 - d**2)
    by_hand = lens / (2 * math.pi * r**2 - lens)
    assert circle_iou(r, r, d) == pytest.approx(by_hand, rel=1e-9)
    assert circle_iou(r, r, d) == pytest.approx(raster_iou(r, r, d), abs=2e-3)
    # 15 px moves every point out of correspondence: IoU 0.48 < 0.6.
    pts = grid_points()
    moved = pts + [15.0, 0.0, 0.0]
    h = np.array([[1, 0, 15.0], [0, 1, 0], [0, 0, 1]])
    assert repeatability(pts, moved, h).repeatability_l == 100.0
    assert repeatability(pts, moved, np.eye(3)).repeatability_l == 0.0


def test_a_known_scale_change_gives_the_expected_iou():
    # Concentric circles of radii 2 and 1 normalise to 30 and 15: IoU = (15 / 30)^2 = 0.25.
    assert circle_iou(30.0, 15.0, 0.0) == pytest.approx(0.25)
    pts = grid_points(radius=1.0)
    h = np.diag([2.0, 2.0, 1.0])  # image 2 is image 1 zoomed by 2
    right = np.concatenate([pts[:, :2] * 2, pts[:, 2:] * 2], 1)
    wrong = np.concatenate([pts[:, :2] * 2, pts[:, 2:] * 4], 1)  # detected at twice the true scale
    assert warp_circles(np.linalg.inv(h), wrong)[:, 2] == pytest.approx(2.0)
    assert repeatability(pts, right, h).repeatability_sl == 100.0
    rep = repeatability(pts, wrong, h)
    assert rep.repeatability_sl == 0.0 and rep.repeatability_l == 100.0


@pytest.mark.parametrize("ratio", [1.2, 1.25, 1.3])
def test_a_scale_error_gives_the_concentric_iou_after_normalisation(ratio):
    # Detected 1.2x too large after a zoom by 1.5: the larger circle becomes 30 px, the other 30 / ratio, so
    # IoU = (1 / ratio)^2 whatever the absolute radii: 0.694 (kept), 0.64 (kept), 0.592 (< 0.6, refused).
    pts = grid_points(radius=3.0)
    h = np.diag([1.5, 1.5, 1.0])
    detected = np.concatenate([pts[:, :2] * 1.5, pts[:, 2:] * 1.5 * ratio], 1)
    rep = repeatability(pts, detected, h)
    error = 1 - ratio**-2
    if error < 0.4:
        assert rep.repeatability_sl == 100.0 and rep.overlap_error_sl == pytest.approx(error, abs=1e-9)
    else:
        assert rep.repeatability_sl == 0.0
    assert rep.repeatability_l == 100.0 and rep.overlap_error_l == pytest.approx(0.0, abs=1e-9)


def test_two_points_competing_for_one_give_one_correspondence():
    one = np.array([[200.0, 200.0, 1.0]])
    two = np.array([[200.0, 200.0, 1.0], [201.0, 200.0, 1.0]])
    rep = repeatability(one, two, np.eye(3))
    assert rep.correspondences_l == 1 and rep.repeatability_l == 100.0
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    assert greedy_one_to_one(rows, cols, np.array([0.9, 0.8, 0.7, 0.1]), 0.6).tolist() == [0]
    assert greedy_one_to_one(rows, cols, np.array([0.9, 0.8, 0.7, 0.65]), 0.6).tolist() == [0, 3]


def test_points_outside_the_common_region_are_not_counted():
    # Image 2 is image 1 shifted 200 px to the left: only x >= 200 + 15 of image 1 is seen by both.
    h = np.array([[1, 0, -200.0], [0, 1, 0], [0, 0, 1]])
    mask1, mask2 = common_region_masks(h, (400, 600), (400, 600))
    assert not mask1[:, :214].any() and mask1[20:380, 216:584].all()
    assert not mask2[:, 385:].any() and mask2[20:380, 16:384].all()
    pts = np.array([[100.0, 200.0, 1, 9], [300.0, 200.0, 1, 8], [500.0, 200.0, 1, 7]])
    assert select_in_mask(pts, mask1, None).tolist() == [1, 2]
    assert select_in_mask(pts, mask1, 1).tolist() == [1]


def test_repeatability_counts_only_the_common_region():
    # Image 2 = image 1 moved 200 px left. Image 1 has 100 points outside what image 2 sees and 100 inside; image 2
    # sees the 100 inside plus 50 of its own outside image 1. All 100 shared points repeat: 100 %, not 100 / 150.
    h = np.array([[1, 0, -200.0], [0, 1, 0], [0, 0, 1]])
    inside = grid_points(n=10, spacing=30.0) + [150.0, 0.0, 0.0]  # x in 250..520, y in 100..370
    outside = grid_points(n=10, spacing=15.0) - [50.0, 50.0, 0.0]  # x in 50..185
    extra = grid_points(n=5, spacing=30.0) + [300.0, 0.0, 0.0]  # image-2 x in 400..520 = image-1 x beyond 600
    extra = np.concatenate([extra, grid_points(n=5, spacing=30.0) + [300.0, 150.0, 0.0]])
    points1 = np.concatenate([outside, inside])
    points2 = np.concatenate([extra, inside - [200.0, 0.0, 0.0]])
    mask1, mask2 = common_region_masks(h, (400, 600), (400, 600))
    i1, i2 = select_in_mask(points1, mask1, 1000), select_in_mask(points2, mask2, 1000)
    assert len(i1) == len(i2) == 100
    rep = repeatability(points1[i1], points2[i2], h)
    assert rep.repeatability_sl == rep.repeatability_l == 100.0 and rep.num_points == 100
    assert repeatability(points1, points2, h).repeatability_l == pytest.approx(100.0 * 100 / 150)


def test_mutual_nearest_neighbours_and_corner_error():
    a = np.array([[0.0, 0], [1, 0], [5, 5]])
    b = np.array([[1.1, 0], [0.1, 0], [9, 9]])
    assert mutual_nearest_neighbours(a, b).tolist() == [[0, 1], [1, 0], [2, 2]]
    shift = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]])
    assert corner_error(shift, np.eye(3), (100, 100)) == pytest.approx(5.0)
    assert corner_error(None, np.eye(3), (100, 100)) == math.inf
    zoom = np.diag([1.1, 1.1, 1.0])  # image corners at 0 and w, h (geometry.corner_errors): (0 + 10 + 14.1 + 10) / 4
    assert corner_error(zoom, np.eye(3), (100, 100, 3)) == pytest.approx((20 + 10 * math.sqrt(2)) / 4)
