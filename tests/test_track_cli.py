"""The ``track`` command (``cli/track.py``) with the shipped weights: outputs on the demo, bad input, faults that
must keep what a user had (a failing source, a signal, a bad output path)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from keynet.config import TrackerConfig
from keynet.demo import demo_sequence
from keynet.files import read_json_lines
from keynet.geometry import Camera
from keynet.sources import open_source
from main import main

from .conftest import REPO


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory):
    """The first 12 frames of the demo sequence, and its target."""
    seq = demo_sequence()
    folder = tmp_path_factory.mktemp("demo")
    for p in sorted(seq.frames.iterdir())[:12]:
        shutil.copy(p, folder / p.name)
    return folder, seq.target


def read_frames(path) -> int:
    """The number of frames a video file holds."""
    with open_source(path) as video:
        return sum(1 for _ in video)


def log_parts(path):
    """A JSON Lines log's run record, frame records and summary (None when the run did not end)."""
    records = read_json_lines(path)
    frames = [r for r in records if r["kind"] == "frame"]
    summary = records[-1] if records[-1]["kind"] == "summary" else None
    assert records[0]["kind"] == "run"
    return records[0], frames, summary


def test_track_writes_video_and_a_json_lines_log_of_raw_and_shown_estimates(short_demo, tmp_path):
    frames, target = short_demo
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    rc = main(["track", "--source", str(frames), "--target", str(target), "--out", str(out), "--json", str(js),
               "--overlay", "axes", "--matches", "--keypoints", "scale"])
    assert rc == 0
    assert read_frames(out) == 12
    run, per_frame, summary = log_parts(js)
    assert summary["frames"] == 12 == len(per_frame) and summary["tracked"] >= 11
    assert summary["error"] == "" and summary["interrupted"] == ""
    assert run["target_quality"]["stars"] >= 1 and run["config"]["detector"]["num_keypoints"] == 500
    tracked = per_frame[5]["targets"][0]
    assert np.array(tracked["homography"]).shape == (3, 3) == np.array(tracked["raw_homography"]).shape
    assert np.array(tracked["corners"]).shape == (4, 2) == np.array(tracked["raw_corners"]).shape
    height, width = cv2.imread(str(sorted(frames.iterdir())[0])).shape[:2]
    assert per_frame[5]["camera"] == Camera.from_fov(width, height, TrackerConfig().geometry.fov_deg).to_dict()


def test_source_failing_mid_stream_keeps_every_frame_before_it(short_demo, tmp_path):
    frames, target = short_demo
    broken = tmp_path / "broken"
    shutil.copytree(frames, broken)
    seventh = sorted(broken.iterdir())[6]
    seventh.write_bytes(b"not an image")
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    rc = main(["track", "--source", str(broken), "--target", str(target), "--out", str(out), "--json", str(js)])
    assert rc == 1
    assert read_frames(out) == 6
    _, per_frame, summary = log_parts(js)
    assert len(per_frame) == 6 == summary["frames"] and seventh.name in summary["error"]


def test_roi_target(short_demo, tmp_path):
    frames, _ = short_demo
    js = tmp_path / "roi.jsonl"
    assert main(["track", "--source", str(frames), "--roi", "220,160,200,150", "--json", str(js),
                 "--max-frames", "4"]) == 0
    run, _, summary = log_parts(js)
    assert summary["frames"] == 4 and summary["tracked"] == 4 and run["target_quality"] is not None


def test_the_demo_source_tracks_its_own_poster_by_default(tmp_path):
    js = tmp_path / "demo.jsonl"
    assert main(["track", "--source", "demo", "--json", str(js), "--max-frames", "3",
                 "--architecture", "tiny_keynet"]) == 0
    run, _, summary = log_parts(js)
    assert summary["frames"] == 3 and run["target"].endswith(demo_sequence().target.name)


def previous_outputs(tmp_path):
    """An existing video and log a failed run must leave byte for byte as they were."""
    out, js = tmp_path / "old.mp4", tmp_path / "old.jsonl"
    out.write_bytes(b"a video the user had")
    js.write_text('{"kind": "run"}\n')
    return out, js


@pytest.mark.parametrize("content", [b"", b"garbage that is not a video"])
def test_unreadable_or_empty_video_leaves_existing_outputs_untouched(short_demo, tmp_path, capsys, content):
    video = tmp_path / "bad.mp4"
    video.write_bytes(content)
    out, js = previous_outputs(tmp_path)
    rc = main(["track", "--source", str(video), "--target", str(short_demo[1]), "--out", str(out), "--json", str(js)])
    assert rc == 2
    assert "bad.mp4" in capsys.readouterr().err
    assert out.read_bytes() == b"a video the user had" and js.read_text() == '{"kind": "run"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "old.jsonl", "old.mp4"]  # no temporary file


def test_failures_before_the_first_frame_leave_existing_outputs_untouched(short_demo, tmp_path, capsys):
    out, js = previous_outputs(tmp_path)
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((200, 200, 3), 128, np.uint8))
    common = ["--source", str(short_demo[0]), "--out", str(out), "--json", str(js)]
    assert main(["track", *common, "--target", str(flat)]) == 2
    assert "at least 30" in capsys.readouterr().err
    assert main(["track", *common, "--roi", "600,400,200,200"]) == 2
    assert "not inside" in capsys.readouterr().err
    assert out.read_bytes() == b"a video the user had" and js.read_text() == '{"kind": "run"}\n'


def test_bad_output_paths_are_refused_before_any_work(short_demo, tmp_path, capsys):
    frames, target = short_demo
    other = tmp_path / "old.xyz"
    other.write_bytes(b"precious")
    cases = {str(other): "expected a video file name", str(tmp_path): "expected a video file name",
             str(tmp_path / "folder.mp4"): "is a folder"}
    (tmp_path / "folder.mp4").mkdir()
    for path, message in cases.items():
        assert main(["track", "--source", str(frames), "--target", str(target), "--out", path]) == 2
        assert message in capsys.readouterr().err, path
    assert main(["track", "--source", str(frames), "--target", str(target), "--json", "/dev/null"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert other.read_bytes() == b"precious"


def test_bad_roi_missing_target_and_bad_numbers(short_demo, capsys):
    assert main(["track", "--source", str(short_demo[0]), "--roi", "1,2,3"]) == 2
    assert "x,y,w,h" in capsys.readouterr().err
    assert main(["track", "--source", str(short_demo[0])]) == 2
    assert "--target" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["track", "--source", str(short_demo[0]), "--num", "-5"])
    assert exit_.value.code == 2 and "--num" in capsys.readouterr().err


def test_outputs_follow_the_umask(short_demo, tmp_path):
    previous = os.umask(0o027)
    try:
        js = tmp_path / "m.jsonl"
        assert main(["track", "--source", str(short_demo[0]), "--target", str(short_demo[1]), "--json", str(js),
                     "--max-frames", "1", "--architecture", "tiny_keynet"]) == 0
    finally:
        os.umask(previous)
    assert js.stat().st_mode & 0o777 == 0o640


def test_sigterm_and_sigint_keep_every_frame_processed_and_leave_no_temporary_file(short_demo, tmp_path):
    frames, target = short_demo
    looped = tmp_path / "long"
    looped.mkdir()
    for i in range(400):  # long enough that the signal arrives mid-run
        os.link(sorted(frames.iterdir())[i % 12], looped / f"{i:04d}.png")
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        out, js = tmp_path / f"{sig.name}.mp4", tmp_path / f"{sig.name}.jsonl"
        proc = subprocess.Popen([sys.executable, "main.py", "track", "--source", str(looped), "--target", str(target),
                                 "--out", str(out), "--json", str(js), "--architecture", "tiny_keynet"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (js.exists() and len(js.read_text().splitlines()) >= 4):
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err
        assert f"stopped by {sig.name}" in err
        _, per_frame, summary = log_parts(js)
        assert summary["interrupted"] == sig.name and summary["frames"] == len(per_frame) >= 3
        assert read_frames(out) == summary["frames"]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_stale_temporary_file_of_a_killed_run_is_removed_by_the_next_one(short_demo, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.{int(dead.stdout)}.abc123.tmp.mp4"
    stale.write_bytes(b"half a video")
    assert main(["track", "--source", str(short_demo[0]), "--target", str(short_demo[1]),
                 "--out", str(tmp_path / "out.mp4"), "--max-frames", "1", "--architecture", "tiny_keynet"]) == 0
    assert not stale.exists()
    assert read_frames(tmp_path / "out.mp4") == 1


def test_a_video_the_encoder_could_not_finish_never_replaces_the_old_one(short_demo, tmp_path, monkeypatch, capsys):
    real = cv2.VideoWriter

    class FullDisk:
        """An encoder that stops storing frames after the third, as on a full disk."""

        def __init__(self, *args):
            self.writer, self.count = real(*args), 0

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return self.writer.isOpened()

        def write(self, frame):
            self.count += 1
            if self.count <= 3:
                self.writer.write(frame)

        def release(self):
            self.writer.release()

    monkeypatch.setattr("cli.video.cv2.VideoWriter", FullDisk)
    out, js = previous_outputs(tmp_path)
    rc = main(["track", "--source", str(short_demo[0]), "--target", str(short_demo[1]), "--out", str(out),
               "--json", str(js), "--architecture", "tiny_keynet"])
    assert rc == 1
    assert "holds 3 of the 12 frames" in capsys.readouterr().err
    assert out.read_bytes() == b"a video the user had"
    _, per_frame, summary = log_parts(js)
    assert len(per_frame) == 12 and "holds 3 of the 12 frames" in summary["error"]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
