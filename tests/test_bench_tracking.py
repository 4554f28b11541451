"""bench.tracking's per-sequence figures on the first frames of the demo, against its ground truth."""

from __future__ import annotations

import shutil

import cv2

from bench.tracking import WARMUP_FRAMES, OpenCVDetector, run_sequence
from keynet.demo import demo_sequence
from keynet.describe import Describer
from keynet.tracker import PlanarTracker


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
