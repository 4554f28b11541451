"""The planar tracker on the rendered demo (ground truth), target quality, states and events, bad targets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.demo import corner_errors, demo_sequence
from keynet.describe import Describer
from keynet.detect import KeyNetDetector
from keynet.geometry import corners_of
from keynet.sources import open_source
from keynet.tracker import LOST, TRACKING, OneEuroFilter, PlanarTracker, Target, alignment_points
from keynet.weights import load_model


@pytest.fixture(scope="module")
def tracker_factory(request):
    from tests.conftest import AUTHORS_WEIGHTS, require_shared

    model = load_model(require_shared(AUTHORS_WEIGHTS))

    def make(**conf):
        detector = KeyNetDetector(model, num_keypoints=500, mode="fast", multi_scale=False)
        return PlanarTracker(detector, Describer(descriptor="orb"), **conf)

    return make


def run(tracker, seq, frames):
    target = cv2.imread(str(seq.target))
    tracker.add_target(target, "poster")
    errors, tracked, events = [], 0, []
    for i, frame, stamp in open_source(seq.frames):
        if i >= frames:
            break
        result = tracker.process(frame, i, stamp)
        events += result.events
        t = result.targets[0]
        if t.state == TRACKING:
            tracked += 1
            errors.append(corner_errors(t.homography, seq.homographies[i], target.shape[1::-1]).mean())
    return tracked, np.array(errors), events


def test_demo_first_frames(tracker_factory):
    tracked, errors, events = run(tracker_factory(), demo_sequence(), 10)
    assert tracked == 10 and errors.mean() <= 2.0
    assert events == ["found poster"]


@pytest.mark.slow
def test_demo_acceptance(tracker_factory):
    """Issue 6 acceptance: mean corner error <= 2 px and >= 98% of frames tracked on the whole demo."""
    seq = demo_sequence()
    tracked, errors, _ = run(tracker_factory(), seq, len(seq.homographies))
    assert tracked >= 0.98 * len(seq.homographies)
    assert errors.mean() <= 2.0


def test_target_quality_and_too_few_keypoints(tracker_factory):
    tracker = tracker_factory()
    good = tracker.add_target(cv2.imread(str(demo_sequence().target)), assess=True)
    assert good.quality.stars >= 4 and good.quality.spread > 0.8
    with pytest.raises(ValueError, match="at least 30"):
        tracker.add_target(np.full((200, 200, 3), 90, np.uint8))
    half = np.full((200, 200, 3), 90, np.uint8)
    half[:, :100] = cv2.resize(cv2.imread(str(demo_sequence().target)), (100, 200))
    # the texture covers 8 of the 16 cells; its edge at x = 100 is itself a feature, and at the 1.41x level points
    # on it land just right of the boundary, in a ninth cell or so: far below the full target's spread
    assert tracker.assess(tracker.make_target(half)).spread <= 0.6


def test_found_then_lost_then_found_again(tracker_factory):
    seq = demo_sequence()
    tracker = tracker_factory(lost_after=2)
    tracker.add_target(cv2.imread(str(seq.target)), "poster")
    frames = [f for i, f, _ in open_source(seq.frames) if i < 3]
    blank = np.full_like(frames[0], 100)
    states, events = [], []
    for i, f in enumerate([frames[0], blank, blank, blank, frames[1]]):
        r = tracker.process(f, i)
        states.append(r.targets[0].state)
        events += r.events
    assert states == [TRACKING, TRACKING, LOST, LOST, TRACKING]
    assert events == ["found poster", "lost poster", "found poster"]


def test_roi_target_starts_where_it_was_cut(tracker_factory):
    seq = demo_sequence()
    frame = next(iter(open_source(seq.frames)))[1]
    tracker = tracker_factory()
    tracker.add_target_roi(frame, (200, 150, 200, 150))
    r = tracker.process(frame, 0)
    np.testing.assert_allclose(r.targets[0].corners, corners_of(200, 150) + [200, 150], atol=1.0)
    with pytest.raises(ValueError, match="not inside"):
        tracker.add_target_roi(frame, (600, 400, 100, 100))


def test_degenerate_homography_is_refused(tracker_factory):
    """A mirrored view of the target is a degenerate (flipped) homography: refused, never 'tracking'."""
    seq = demo_sequence()
    tracker = tracker_factory()
    target = cv2.imread(str(seq.target))
    tracker.add_target(target)
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[90:390, 120:520] = target[:, ::-1]
    r = tracker.process(frame, 0)
    assert r.targets[0].state != TRACKING and r.targets[0].homography is None


def test_one_euro_filter_smooths_noise_and_follows_steps():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    rng = np.random.default_rng(0)
    still = [f(np.array([10.0]) + rng.normal(0, 1, 1), t / 30)[0] for t in range(60)]
    assert np.std(still[30:]) < 0.7  # the raw noise has std 1
    moved = [f(np.array([10.0 + 5 * t]), 2 + t / 30)[0] for t in range(30)]
    assert abs(moved[-1] - (10 + 5 * 29)) < 15


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
