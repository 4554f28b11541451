"""The ``track`` command (``cli/track.py``): outputs on the demo, bad input, a source that fails mid-stream."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from keynet.demo import demo_sequence
from keynet.sources import open_source
from main import main


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


def test_track_writes_video_and_json(authors_weights, short_demo, tmp_path):
    frames, target = short_demo
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    rc = main(["track", "--source", str(frames), "--target", str(target), "--out", str(out), "--json", str(js),
               "--weights", str(authors_weights), "--overlay", "axes", "--matches", "--keypoints", "scale"])
    assert rc == 0
    assert read_frames(out) == 12
    data = json.loads(js.read_text())
    assert data["frames"] == 12 and data["tracked"] >= 11
    h = np.array(data["per_frame"][5]["targets"][0]["homography"])
    assert h.shape == (3, 3)


def test_source_failing_mid_stream_leaves_complete_outputs(authors_weights, short_demo, tmp_path):
    frames, target = short_demo
    broken = tmp_path / "broken"
    shutil.copytree(frames, broken)
    seventh = sorted(broken.iterdir())[6]
    seventh.write_bytes(b"not an image")
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    rc = main(["track", "--source", str(broken), "--target", str(target), "--out", str(out), "--json", str(js),
               "--weights", str(authors_weights)])
    assert rc == 1
    assert read_frames(out) == 6
    data = json.loads(js.read_text())
    assert data["frames"] == 6 and seventh.name in data["error"]


def test_roi_target(authors_weights, short_demo, tmp_path, capsys):
    frames, _ = short_demo
    js = tmp_path / "roi.json"
    assert main(["track", "--source", str(frames), "--roi", "220,160,200,150", "--json", str(js),
                 "--weights", str(authors_weights), "--max-frames", "4"]) == 0
    data = json.loads(js.read_text())
    assert data["frames"] == 4 and data["tracked"] == 4


@pytest.mark.parametrize("content", [b"", b"garbage that is not a video"])
def test_unreadable_or_empty_video(authors_weights, short_demo, tmp_path, capsys, content):
    video = tmp_path / "bad.mp4"
    video.write_bytes(content)
    rc = main(["track", "--source", str(video), "--target", str(short_demo[1]), "--weights", str(authors_weights)])
    assert rc != 0
    assert "bad.mp4" in capsys.readouterr().err


def test_target_with_too_few_keypoints(authors_weights, short_demo, tmp_path, capsys):
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((200, 200, 3), 128, np.uint8))
    rc = main(["track", "--source", str(short_demo[0]), "--target", str(flat), "--weights", str(authors_weights)])
    assert rc == 2
    assert "at least 30" in capsys.readouterr().err


def test_bad_roi_and_missing_target(authors_weights, short_demo, capsys):
    assert main(["track", "--source", str(short_demo[0]), "--roi", "1,2,3", "--weights", str(authors_weights)]) == 2
    assert "x,y,w,h" in capsys.readouterr().err
    assert main(["track", "--source", str(short_demo[0]), "--weights", str(authors_weights)]) == 2
