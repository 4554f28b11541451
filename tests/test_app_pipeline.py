"""The app's processing side without Qt: it imports no PyQt6, its settings' defaults are the tracker
configuration's, it tracks every target of the bundled demo with the shipped weights, exports the one frame
schema and reports the progress of describing a target."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from app.frames import Frame
from app.pipeline import DEMO_TARGET_NAME, SourceSpec, TrackingPipeline, default_view, descriptor_names
from app.settings import TRACKER_FIELDS, AppSettings
from keynet.config import TrackerConfig
from keynet.weights import default_weights

from .conftest import REPO


def test_the_processing_side_imports_no_qt():
    code = ("import sys; import app.pipeline, app.settings, app.frames, app.recording; "
            "print(sorted(m for m in sys.modules if m.startswith('PyQt')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_settings_defaults_are_the_tracker_configurations():
    flat = TrackerConfig().flat()
    defaults = AppSettings()
    for name in TRACKER_FIELDS:
        assert getattr(defaults, name) == flat[name], name
    assert defaults.tracker_config() == TrackerConfig()
    assert descriptor_names()[0] == flat["descriptor"]
    changed = AppSettings(num_keypoints=321, ratio=0.75, ransac_threshold=2.0, descriptor="sift")
    config = changed.tracker_config(keep_response=True, device="cpu")
    assert (config.detector.num_keypoints, config.matching.ratio, config.geometry.ransac_threshold,
            config.matching.descriptor, config.detector.device, config.keep_response) == \
        (321, 0.75, 2.0, "sift", "cpu", True)


def test_settings_from_stored_values_keep_defaults_for_what_is_unreadable():
    stored = {"num_keypoints": "800", "ratio": "0.8", "nms_size": "garbage", "unknown": "x"}
    settings = AppSettings.from_values(stored)
    assert (settings.num_keypoints, settings.ratio, settings.nms_size) == (800, 0.8, AppSettings().nms_size)
    assert AppSettings.from_values(settings.to_dict()) == settings
    assert {f.name for f in fields(AppSettings)} == set(settings.to_dict())


def test_the_demo_source_reports_its_rendering_progress(monkeypatch):
    calls = []
    monkeypatch.setattr("keynet.sources.open_source", lambda spec, progress=None: calls.append((spec, progress)))
    report = object()
    SourceSpec.demo().opener(report)()
    assert calls == [("demo", report)]


@pytest.fixture(scope="module")
def demo_frames():
    from keynet.demo import demo_sequence
    from keynet.image import read_image

    demo = demo_sequence()
    return demo, [read_image(p) for p in sorted(demo.frames.iterdir())[:40]]


@pytest.fixture
def pipeline():
    if default_weights("keynet") is None:
        pytest.skip("the shipped weights assets/weights/keynet.pt are absent")
    steps: list[tuple[str, int, int]] = []
    pipeline = TrackingPipeline(AppSettings(device="cpu"), default_view(),
                                on_progress=lambda task, done, total: steps.append((task, done, total)))
    assert pipeline.configure(pipeline.settings) == ""
    pipeline.steps = steps
    return pipeline


def test_every_target_is_tracked_reported_and_exported_in_the_frame_schema(pipeline, demo_frames):
    demo, frames = demo_frames
    message = pipeline.add_demo_target(str(demo.target))
    levels = len(TrackerConfig().targets.target_scales)
    assert "Tracking" in message
    assert pipeline.steps[-1] == (f"Describing {DEMO_TARGET_NAME}", levels, levels)
    assert [done for _, done, _ in pipeline.steps] == list(range(1, levels + 1))
    assert "tracked already" in pipeline.add_demo_target(str(demo.target))  # opened again: not added twice
    outputs = [pipeline.process(Frame(i, image, i / 30)) for i, image in enumerate(frames[:10])]
    assert outputs[-1].state == "tracking"
    box = (200, 150, 200, 150)
    pipeline.add_target_rect(box, outputs[-1].index)
    assert pipeline.num_targets == 2
    out = pipeline.process(Frame(10, frames[10], 10 / 30))
    names = [name for name, *_ in out.targets]
    assert names == [DEMO_TARGET_NAME, "region 2"]
    assert all(f"{name}: " in out.summary() for name in names)
    assert out.inliers == sum(t.num_inliers for t in out.result.targets)
    record = out.record()
    assert record == out.result.to_dict()
    assert [t["name"] for t in record["targets"]] == names
    assert record["camera"] == out.result.camera.to_dict()


def test_the_inspected_keypoint_is_found_and_described(pipeline, demo_frames):
    _, frames = demo_frames
    out = pipeline.process(Frame(0, frames[0], 0.0))
    x, y, scale, score = out.keypoints[3]
    row = out.keypoint_near(float(x) + 1, float(y) - 1)
    assert row is not None and np.allclose(out.keypoints[row], out.keypoints[3])
    info = out.keypoint_info(row)
    assert info["score"] == f"{score:.4f}" and info["match distance"] == "not matched"  # no target yet
    assert out.keypoint_near(-100, -100) is None


def test_a_device_that_is_absent_falls_back_to_the_cpu_with_a_message(pipeline):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    message = pipeline.configure(AppSettings(device="cuda"))
    assert "'cuda' is not available" in message
    assert pipeline.tracker.detector.device.type == "cpu"
