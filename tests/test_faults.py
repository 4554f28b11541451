"""Fault injection across the command line: each bad input or fault gives exit code 2 and one line naming what was
wrong, and leaves every file that was there as it was (the shipped weights and the bundled demo only)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from keynet.files import read_json_lines
from main import main

from .conftest import REPO

SHIPPED = REPO / "assets" / "weights" / "keynet.pt"


def write_files(folder: Path) -> None:
    """The inputs the cases name: a textured image, broken images, weights, calibrations and old outputs."""
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "img.png"), cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (3, 3), 0))
    (folder / "empty.png").write_bytes(b"")
    (folder / "noise.png").write_bytes(rng.bytes(4000))
    (folder / "text.jpg").write_text("not a picture\n")
    (folder / "random.pt").write_bytes(rng.bytes(4000))
    (folder / "empty.pt").write_bytes(b"")
    (folder / "garbage.yaml").write_text("%YAML:1.0\n: : [\x00\x01 {{{\n")
    (folder / "noise.yaml").write_bytes(rng.bytes(500))
    (folder / "negative.json").write_text(json.dumps({"camera_matrix": [[-5, 0, 1], [0, 5, 1], [0, 0, 1]]}))
    (folder / "short.json").write_text(json.dumps({"camera_matrix": [1, 2, 3]}))
    (folder / "old.png").write_bytes(b"an old picture")
    (folder / "old.jsonl").write_text("an old log\n")
    (folder / "old.mp4").write_bytes(b"an old video")
    (folder / "a folder.png").mkdir()
    (folder / "a folder.jsonl").mkdir()


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for folders)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


DETECT = ["detect", "img.png"]
TRACK = ["track", "--source", "demo", "--max-frames", "2"]
CASES = {
    # devices
    "cuda absent": (DETECT + ["--device", "cuda"], "device 'cuda'"),
    "cuda:7 absent": (DETECT + ["--device", "cuda:7"], "device 'cuda:7'"),
    "bogus device": (DETECT + ["--device", "tpu"], "device 'tpu'"),
    "track on a bogus device": (TRACK + ["--device", "gpu0"], "device 'gpu0'"),
    # images
    "image missing": (["detect", "nothere.png"], "nothere.png"),
    "image is a folder": (["detect", "a folder.png"], "a folder.png is a folder"),
    "image empty": (["detect", "empty.png"], "empty.png"),
    "image of random bytes": (["detect", "noise.png"], "noise.png"),
    "image that is text": (["detect", "text.jpg"], "text.jpg"),
    # numbers
    "keypoints not a number": (DETECT + ["--num", "many"], "--num"),
    "keypoints fractional": (DETECT + ["--num", "2.5"], "--num"),
    "keypoints negative": (DETECT + ["--num", "-3"], "--num"),
    "nms even": (TRACK + ["--nms", "4"], "nms"),
    "ratio above one": (TRACK + ["--ratio", "1.5"], "ratio"),
    "ratio zero": (TRACK + ["--ratio", "0"], "ratio"),
    "ransac negative": (TRACK + ["--ransac", "-1"], "--ransac"),
    "ransac not finite": (TRACK + ["--ransac", "nan"], "--ransac"),
    "max frames negative": (TRACK + ["--max-frames", "-1"], "--max-frames"),
    # weights
    "weights missing": (DETECT + ["--weights", "nothere.pt"], "nothere.pt"),
    "weights of random bytes": (DETECT + ["--weights", "random.pt"], "random.pt"),
    "weights empty": (DETECT + ["--weights", "empty.pt"], "empty.pt"),
    "weights a folder": (DETECT + ["--weights", "a folder.png"], "a folder.png"),
    "weights of the other architecture": (DETECT + ["--architecture", "tiny_keynet", "--weights", str(SHIPPED)],
                                          "not tiny_keynet"),
    # calibration
    "calibration missing": (TRACK + ["--calibration", "nothere.yaml"], "nothere.yaml"),
    "calibration garbage YAML": (TRACK + ["--calibration", "garbage.yaml"], "garbage.yaml"),
    "calibration random bytes": (TRACK + ["--calibration", "noise.yaml"], "noise.yaml"),
    "calibration negative focal length": (TRACK + ["--calibration", "negative.json"], "negative.json"),
    "calibration matrix too short": (TRACK + ["--calibration", "short.json"], "short.json"),
    # sources and targets
    "source missing": (["track", "--source", "nothere.mp4", "--roi", "1,1,50,50"], "nothere.mp4"),
    "source of random bytes": (["track", "--source", "noise.png", "--roi", "1,1,50,50"], "noise.png"),
    "camera absent": (["track", "--source", "camera:9", "--roi", "1,1,50,50"], "camera 9"),
    "no target": (["track", "--source", "img.png"], "--target"),
    "target missing": (["track", "--source", "img.png", "--target", "nothere.png"], "nothere.png"),
    "target of random bytes": (["track", "--source", "img.png", "--target", "noise.png"], "noise.png"),
    "roi not four numbers": (["track", "--source", "img.png", "--roi", "1,2,3"], "--roi"),
    "roi outside the frame": (["track", "--source", "img.png", "--roi", "300,200,100,100"], "300,200,100,100"),
    "roi without texture": (["track", "--source", "img.png", "--roi", "1,1,12,12"], "roi"),
    "overlay missing": (TRACK + ["--overlay", "nothere.png"], "nothere.png"),
    # output paths
    "detect out is a device": (DETECT + ["--out", "/dev/null"], "/dev/null"),
    "detect out is a folder": (DETECT + ["--out", "a folder.png"], "a folder.png"),
    "detect out has no image format": (DETECT + ["--out", "keypoints.xyz"], "keypoints.xyz"),
    "track out has no extension": (TRACK + ["--out", "video"], "video"),
    "track out is an image name": (TRACK + ["--out", "old.png"], "old.png"),
    "track out is a device": (TRACK + ["--out", "/dev/null"], "/dev/null"),
    "track json is a folder": (TRACK + ["--json", "a folder.jsonl"], "a folder.jsonl"),
    "track json is a device": (TRACK + ["--json", "/dev/zero"], "/dev/zero"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    write_files(folder)
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_each_fault_is_one_line_naming_the_input_and_changes_no_file(case, inputs, capsys, monkeypatch):
    args, named = CASES[case]
    monkeypatch.chdir(inputs)
    before = snapshot(inputs)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    message = err[-1]
    assert message.startswith(("error:", "main.py")) and named in message, message
    assert "Traceback" not in "\n".join(err)
    assert snapshot(inputs) == before


def run_with_file_size_limit(limit_bytes: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python main.py ARGS`` where no file may grow past ``limit_bytes``: a full disk as the writer sees it."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd, preexec_fn=limit,
                          capture_output=True, text=True, timeout=600)


def error_line(result: subprocess.CompletedProcess) -> str:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")][-1]


def test_a_full_disk_keeps_the_old_image(inputs, tmp_path):
    write_files(tmp_path)
    result = run_with_file_size_limit(20_000, DETECT + ["--out", "old.png"], tmp_path)
    assert result.returncode == 2 and "old.png" in error_line(result) and "format" not in error_line(result)
    assert (tmp_path / "old.png").read_bytes() == b"an old picture"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_keeps_the_old_video_and_a_readable_log_of_every_frame_written(tmp_path):
    write_files(tmp_path)
    result = run_with_file_size_limit(12_000, TRACK[:-1] + ["12", "--out", "old.mp4", "--json", "new.jsonl"],
                                      tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "new.jsonl" in error_line(result) or "old.mp4" in error_line(result)
    assert (tmp_path / "old.mp4").read_bytes() == b"an old video"
    records = read_json_lines(tmp_path / "new.jsonl")
    lines = (tmp_path / "new.jsonl").read_text().splitlines()
    assert len(lines) == len(records), "the log ends with a whole record, not a torn one"
    frames = [r["frame"] for r in records if r["kind"] == "frame"]
    assert records[0]["kind"] == "run" and frames == list(range(len(frames))) and frames
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
