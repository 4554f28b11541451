"""bench.tracking's per-sequence figures on the first frames of the demo, against its ground truth, and the
still sequence and smoothing figures it reports."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from bench import tracking
from bench.tracking import (
    SMOOTHERS,
    WARMUP_FRAMES,
    frame_jitter,
    median_corner_rms,
    render_still,
    replay_smoother,
    run_sequence,
)
from keynet.baselines import OpenCVDetector
from keynet.config import SmoothingConfig
from keynet.demo import camera_path, demo_sequence, load_sequence, make_target
from keynet.describe import Describer
from keynet.geometry import corners_of, project
from keynet.smoothing import make_smoother
from keynet.tracker import PlanarTracker
from keynet.weights import default_weights


def test_a_run_is_scored_on_every_frame_and_timed_after_the_warm_up(tmp_path):
    seq = demo_sequence()
    frames = 8
    for p in sorted(seq.frames.iterdir())[:frames]:
        shutil.copy(p, tmp_path / p.name)
    tracker = PlanarTracker(OpenCVDetector("sift"), Describer(descriptor="sift"))
    r = run_sequence(tracker, tmp_path, cv2.imread(str(seq.target)), seq.homographies[:frames])
    assert r["frames"] == frames and r["tracked_share"] == 1.0
    assert r["corner_rms_px"] < 2 and r["precision_5px"] == 1.0
    assert r["fps"] > 0 and set(r["stage_ms"]) >= {"detect", "describe", "match", "estimate"}
    assert WARMUP_FRAMES < frames
    smoothing = r["smoothing"]
    assert smoothing["method"] == tracker.config.smoothing.method
    assert set(smoothing) >= {"raw", "shown", *SMOOTHERS}
    for name in ("raw", "shown", *SMOOTHERS):
        assert smoothing[name]["median_corner_rms_px"] < 5 and smoothing[name]["jitter_px"] > 0
    # the tracker's shown corners are its own smoother's: replayed on the same estimates, the same figures
    own = smoothing[tracker.config.smoothing.method]
    assert abs(own["median_corner_rms_px"] - smoothing["shown"]["median_corner_rms_px"]) < 1e-3


def test_the_still_sequence_holds_one_view_with_fresh_noise_in_each_frame(tmp_path):
    target = make_target()
    render_still(tmp_path, target, 3, noise=2.0)
    seq = load_sequence(tmp_path)
    expected = camera_path(0.0, (target.shape[1], target.shape[0]))
    assert len(seq.homographies) == 3 and all(np.allclose(h, expected) for h in seq.homographies)
    frames = [cv2.imread(str(p)).astype(np.float32) for p in sorted(seq.frames.iterdir())]
    difference = frames[1] - frames[0]
    assert len(frames) == 3 and abs(float(difference.std()) - 2.0 * np.sqrt(2)) < 0.3 and abs(difference.mean()) < 0.1


def test_jitter_and_corner_error_figures_against_hand_made_tracks():
    corners = np.zeros((5, 4, 2))
    corners[:, :, 0] = np.array([0.0, 1.0, 3.0, 6.0, 10.0])[:, None]  # moves 1, 2, 3, 4 px
    tracked = np.array([True, True, True, False, True])
    assert frame_jitter(corners, tracked) == 1.5  # only 0-1 and 1-2 are consecutive tracked frames
    assert frame_jitter(corners, np.array([True, False, True, False, True])) is None
    size = (40, 30)
    truth = np.repeat(np.eye(3)[None], 5, 0)
    shifted = np.stack([corners_of(*size) + [0.0, d] for d in (0.1, 0.2, 0.3, 9.0, 0.5)])
    assert abs(median_corner_rms(shifted, tracked, truth, size) - 0.25) < 1e-9
    assert abs(median_corner_rms(project(np.eye(3), corners_of(*size))[None].repeat(5, 0), tracked, truth, size)) < 1e-9


def test_the_replay_is_each_smoother_restarted_where_the_target_was_lost():
    rng = np.random.default_rng(0)
    raw = corners_of(40, 30)[None] + rng.normal(0, 0.5, (6, 4, 2))
    tracked = np.array([True, True, True, False, True, True])
    stamps, sigmas = np.arange(6) / 30.0, [0.2] * 6
    for method in SMOOTHERS:
        config = SmoothingConfig(method=method)
        shown = replay_smoother(config, raw, tracked, stamps, sigmas)
        smoother = make_smoother(config)
        expected = [smoother.update(raw[i], stamps[i], 0.2) for i in range(3)]
        smoother.reset()
        expected += [np.zeros((4, 2)), *(smoother.update(raw[i], stamps[i], 0.2) for i in (4, 5))]
        np.testing.assert_allclose(shown, np.array(expected), atol=1e-5)


def test_the_device_is_checked_before_any_work(capsys):
    with pytest.raises(SystemExit) as exited:
        tracking.main(["--device", "gpu", "--photos", "0", "--real-frames", "0", "--still-frames", "0"])
    assert exited.value.code == 2 and "device 'gpu': expected one of auto, cpu, cuda" in capsys.readouterr().err


def test_without_the_authors_weights_the_shipped_ones_are_benchmarked(tmp_path, monkeypatch):
    assert tracking.benchmark_weights(str(tmp_path / "given.pt")) == tmp_path / "given.pt"
    monkeypatch.setattr(tracking, "AUTHORS_WEIGHTS", tmp_path / "absent.pth")
    assert tracking.benchmark_weights(None) == default_weights("keynet")
