"""The app's processing side without Qt: it imports no PyQt6, its settings' defaults are the tracker
configuration's, it tracks every target of the bundled demo with the shipped weights, exports the one frame
schema, reports the progress of describing a target, rates a target before it is tracked and takes the pose's
camera from a calibration file."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from app.frames import Frame
from app.pipeline import DEMO_TARGET_NAME, SourceSpec, TrackingPipeline, default_view, descriptor_names
from app.settings import TRACKER_FIELDS, AppSettings
from keynet.config import TrackerConfig
from keynet.errors import InputError
from keynet.weights import default_weights

from .conftest import REPO


def test_the_processing_side_imports_no_qt():
    code = ("import sys; import app.pipeline, app.settings, app.frames, app.recording, app.comparison, "
            "keynet.baselines; print(sorted(m for m in sys.modules if m.startswith('PyQt')))")
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


def test_a_calibration_file_gives_the_camera_of_the_pose_and_a_bad_one_is_said_in_one_line(pipeline, demo_frames,
                                                                                             tmp_path):
    from keynet.geometry import Camera

    demo, frames = demo_frames
    pipeline.add_demo_target(str(demo.target))
    matrix = np.array([[650.0, 0, 330], [0, 655, 235], [0, 0, 1]])
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(Camera(matrix, np.array([0.01, 0, 0, 0, 0])).to_dict()))
    assert pipeline.configure(AppSettings(device="cpu", calibration_file=str(path))) == ""
    outputs = [pipeline.process(Frame(i, image, i / 30)) for i, image in enumerate(frames[:6])]
    assert outputs[-1].state == "tracking"
    assert np.array_equal(outputs[-1].result.camera.matrix, matrix)
    assert outputs[-1].result.camera.dist[0] == 0.01
    assert np.array_equal(outputs[-1].captured, frames[5])  # the frame as captured, beside the drawn one
    message = pipeline.configure(AppSettings(device="cpu", calibration_file=str(tmp_path / "missing.yaml")))
    assert "missing.yaml" in message and "field of view" in message and "\n" not in message
    out = pipeline.process(Frame(6, frames[6], 6 / 30))
    assert out.result.camera.matrix[0, 0] == pytest.approx(0.5 * 640 / np.tan(np.radians(60) / 2))


def test_a_preview_is_not_tracked_until_kept(pipeline, demo_frames):
    demo, frames = demo_frames
    out = pipeline.process(Frame(0, frames[0], 0.0))
    preview = pipeline.preview_target_image(str(demo.target))
    assert pipeline.num_targets == 0 and preview.trackable and preview.quality.stars >= 3
    assert "Tracking" in pipeline.keep_preview(preview)
    assert [t.name for t in pipeline.tracker.targets] == [preview.name]
    assert pipeline.tracker.targets[0].quality == preview.quality
    with pytest.raises(InputError, match="drag the rectangle again"):
        pipeline.preview_target_rect((0, 0, 50, 50), out.index + 100)
    with pytest.raises(InputError, match="not inside"):
        pipeline.preview_target_rect((600, 400, 100, 100), out.index)


def test_short_clips_loop_by_default_and_longer_ones_play_once(tmp_path, monkeypatch):
    import cv2

    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(30):  # one second
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    assert SourceSpec.video(path).loop and SourceSpec.demo().loop
    assert not SourceSpec.folder(tmp_path).loop
    monkeypatch.setattr("app.pipeline.SHORT_CLIP_S", 0.5)  # now the clip is longer than a short one
    assert not SourceSpec.video(path).loop
