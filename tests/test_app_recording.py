"""Recording: an MP4 that reads back with every frame and plays in real time, atomic snapshots (a bad name is an
OutputError), per-frame JSON."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from app.recording import PoseLog, VideoRecorder, save_snapshot, to_jsonable
from keynet.errors import OutputError


def read_back(path) -> tuple[list[np.ndarray], float]:
    """Every frame OpenCV decodes from the video at ``path``, and the frame rate the file declares."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def test_recording_reads_back_with_every_frame(tmp_path):
    path = tmp_path / "rec.mp4"
    recorder = VideoRecorder(path, fps=25)
    frames = [np.full((120, 160, 3), 10 * i, np.uint8) for i in range(12)]
    for i, f in enumerate(frames):
        recorder.write(f, i / 25)
    assert not path.exists()  # appears only once complete
    assert recorder.close(12 / 25) == 12
    read, _ = read_back(path)
    assert len(read) == 12
    assert read[0].shape == (120, 160, 3)
    means = [float(f.mean()) for f in read]
    assert means == sorted(means) and means[-1] - means[0] > 80  # the frames, in order (lossy codec)
    assert not list(tmp_path.glob(".rec*"))  # no temporary left behind


def test_recorder_resizes_later_frames_and_ignores_writes_after_close(tmp_path):
    recorder = VideoRecorder(tmp_path / "r.mp4")
    recorder.write(np.zeros((64, 80, 3), np.uint8), 0.0)
    recorder.write(np.zeros((128, 160, 3), np.uint8), 1 / 30)
    assert recorder.close(2 / 30) == 2
    recorder.write(np.zeros((64, 80, 3), np.uint8), 3 / 30)
    assert recorder.frames == 2
    cap = cv2.VideoCapture(str(tmp_path / "r.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (80, 64)


def test_concurrent_writes_and_close_are_safe(tmp_path):
    recorder = VideoRecorder(tmp_path / "c.mp4")
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            recorder.write(np.zeros((48, 64, 3), np.uint8))

    t = threading.Thread(target=writer)
    t.start()
    while recorder.frames < 5:
        pass
    n = recorder.close()
    stop.set()
    t.join()
    cap = cv2.VideoCapture(str(tmp_path / "c.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == n


def test_snapshot_is_a_png(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)
    save_snapshot(img, tmp_path / "snap")
    back = cv2.imread(str(tmp_path / "snap.png"))
    np.testing.assert_array_equal(back, img)


def test_pose_log_is_plain_json(tmp_path):
    log = PoseLog()
    log.add(to_jsonable({"frame": 0, "homography": np.eye(3), "pose": None, "err": np.float32(np.nan)}))
    log.save(tmp_path / "poses.json", "demo")
    data = json.loads((tmp_path / "poses.json").read_text())
    assert data["source"] == "demo"
    assert data["frames"][0]["homography"] == np.eye(3).tolist()
    assert data["frames"][0]["err"] is None


def test_a_recording_lasts_as_long_as_its_frames_were_shown(tmp_path):
    recorder = VideoRecorder(tmp_path / "real.mp4", fps=10)
    shown_at = [100.0, 100.3, 100.35, 101.0]  # processed at an uneven 3 to 20 fps
    for i, t in enumerate(shown_at):
        recorder.write(np.full((64, 80, 3), 60 * i, np.uint8), t)
    frames = recorder.close(101.5)  # the last frame stays on screen half a second
    read, fps = read_back(tmp_path / "real.mp4")
    means = [round(float(f.mean()) / 60) for f in read]
    assert fps == pytest.approx(10) and frames == len(means) == 15  # 1.5 s at 10 fps
    assert recorder.shown == 4 and recorder.seconds == pytest.approx(1.5)
    # each frame fills the slots until the next was shown (the one at 100.35 falls in the slot of 100.3)
    assert means == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3]


def test_a_snapshot_name_opencv_cannot_write_raises_output_error_and_leaves_nothing(tmp_path):
    image = np.zeros((30, 40, 3), np.uint8)
    with pytest.raises(OutputError, match=r"snap\.xyz.*no image writer"):
        save_snapshot(image, tmp_path / "snap.xyz")
    with pytest.raises(OutputError, match="is a folder"):
        save_snapshot(image, tmp_path)
    assert list(tmp_path.iterdir()) == []
