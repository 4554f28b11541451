"""The comparison mode without Qt: two pipelines on the same frames, with the shipped weights only: both track the
demo's poster within 30 frames, a rectangle dragged on one side is a target of both, the figures are the frames' own
(its window: tests/test_app_window.py; that it imports no Qt: tests/test_app_pipeline.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.comparison import ComparisonPipeline, CornerJitter
from app.frames import Frame
from keynet.baselines import OpenCVDetector, available_pipelines, pipeline_tracker
from keynet.errors import InputError, OptionError
from keynet.weights import default_weights

WITHIN_FRAMES = 30


def test_opencv_keypoints_are_opencvs_strongest():
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (240, 320), np.uint8), (0, 0), 1.2)
    kps = OpenCVDetector("orb", 100).detect(image)[0]
    reference = sorted(cv2.ORB_create(100).detect(image, None), key=lambda k: -k.response)[:100]
    assert np.allclose(kps.xy.numpy(), [k.pt for k in reference])
    assert np.allclose(kps.scale.numpy(), [k.size / 22 for k in reference])
    assert len(OpenCVDetector("sift", 50).detect(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), 20)[0]) == 20
    with pytest.raises(InputError, match="surf"):
        OpenCVDetector("surf")
    with pytest.raises(OptionError, match="harris"):
        pipeline_tracker("harris")
    assert {"orb", "sift"} <= set(available_pipelines())


def make_result(index: int, corners: np.ndarray):
    from keynet.results import FrameResult, TargetResult

    target = TargetResult("t", "tracking", (10, 10), np.zeros((0, 2)), corners=corners)
    return FrameResult(int(index), index / 30, np.zeros((0, 4)), *(np.zeros(0),) * 3, np.zeros(0), [target], {}, [],
                       None)


def test_jitter_is_the_median_deviation_from_constant_motion_per_source_frame():
    rng = np.random.default_rng(1)
    indices = np.array([0, 1, 2, 4, 5, 8])  # frames 3, 6 and 7 were passed by while processing
    velocity = np.array([3.0, -2.0])  # px per source frame
    smooth = 100 + indices[:, None, None] * velocity + np.zeros((1, 4, 2))
    meter = CornerJitter(frames=3)
    assert all(meter.update(make_result(i, c)) in (None, pytest.approx(0.0, abs=1e-9))
               for i, c in zip(indices, smooth))  # a target moving at constant speed does not jitter
    noisy = smooth + rng.normal(0, 0.5, smooth.shape)
    meter = CornerJitter(frames=3)
    for i, c in zip(indices, noisy):
        value = meter.update(make_result(i, c))
    deviations = [np.linalg.norm(noisy[k] - (noisy[k - 1] + (noisy[k - 1] - noisy[k - 2]) * (indices[k] - indices[k - 1])
                                             / (indices[k - 1] - indices[k - 2])), axis=1).mean() for k in range(2, 6)]
    assert value == pytest.approx(np.median(deviations[-3:]))


@pytest.fixture(scope="module")
def demo_frames():
    from keynet.demo import demo_sequence
    from keynet.image import read_image

    demo = demo_sequence()
    return demo, [read_image(p) for p in sorted(demo.frames.iterdir())[:WITHIN_FRAMES]]


def shipped_weights() -> None:
    if default_weights("keynet") is None:
        pytest.skip("the shipped weights assets/weights/keynet.pt are absent")


def test_two_pipelines_track_the_demo_within_30_frames(demo_frames):
    shipped_weights()
    demo, frames = demo_frames
    pipeline = ComparisonPipeline("keynet", "orb")
    assert pipeline.add_demo_target(demo.target).startswith("Tracking demo poster on both sides")
    tracked_at = None
    for i, image in enumerate(frames):
        out = pipeline.process(Frame(i, image, i / 30))
        if all(side.frame.state == "tracking" for side in out.sides):
            tracked_at = tracked_at if tracked_at is not None else i
            if i >= tracked_at + 2:
                break
    assert tracked_at is not None and tracked_at < WITHIN_FRAMES
    assert [side.kind for side in out.sides] == ["keynet", "orb"]
    size = cv2.imread(str(demo.target)).shape[1::-1]
    truth = cv2.perspectiveTransform(np.float32([[0, 0], [size[0], 0], [size[0], size[1]], [0, size[1]]])[None],
                                     demo.homographies[out.index])[0]
    for side in out.sides:
        target = side.frame.result.targets[0]
        assert np.abs(target.corners - truth).max() < 5.0  # against the demo's ground truth
        assert side.frame.bgr.shape == image.shape and not np.array_equal(side.frame.bgr, image)  # the overlay
        assert side.jitter_px is not None and side.jitter_px > 0
        assert f"inliers {target.num_inliers}/{len(target.matches)}" in side.stats()
        assert set(side.frame.timings_ms) >= {"detect", "describe", "match"}
    # a rectangle of the frame on screen becomes a target of both sides, found where it was cut
    message = pipeline.add_target_rect((220, 170, 200, 150), out.index)
    assert "both" in message
    out = pipeline.process(Frame(out.index + 1, frames[out.index + 1], (out.index + 1) / 30))
    assert [len(side.frame.result.targets) for side in out.sides] == [2, 2]
    with pytest.raises(InputError, match="no longer in memory"):
        pipeline.add_target_rect((0, 0, 50, 50), 10_000)
    pipeline.set_pipeline(1, "sift")
    assert pipeline.kinds == ("keynet", "sift") and len(pipeline.sides[1].tracker.targets) == 2


def test_a_target_one_side_cannot_track_is_added_to_neither(demo_frames):
    _, frames = demo_frames
    pipeline = ComparisonPipeline("orb", "sift")
    flat = np.full((120, 160, 3), 128, np.uint8)
    frame = frames[0].copy()
    frame[:120, :160] = flat
    pipeline.process(Frame(0, frame, 0.0))
    with pytest.raises(InputError, match="cannot track region 1"):
        pipeline.add_target_rect((0, 0, 160, 120), 0)
    assert [len(side.tracker.targets) for side in pipeline.sides] == [0, 0] and pipeline.targets == []
