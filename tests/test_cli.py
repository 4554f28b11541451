"""The command line (``cli/``, run through ``main.py``): one-line errors, the detect command, and that the headless
commands import neither the app nor Qt."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from cli.errors import reporting_errors
from cli.progress import progress_bar
from keynet.errors import InputError, SourceError

from .conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, cwd=REPO)


def test_detect_cli_reports_a_missing_image_in_one_line(tmp_path):
    result = run_cli("detect", str(tmp_path / "missing.png"), "--weights", str(tmp_path / "w.pt"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: image file {tmp_path / 'missing.png'} does not exist"


def test_detect_cli_reports_a_corrupt_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    result = run_cli("detect", str(bad), "--weights", str(tmp_path / "w.pt"))
    assert result.returncode == 2 and "bad.png is not a readable image" in result.stderr


def test_detect_cli_prints_json_and_draws(test_image, authors_weights, tmp_path):
    out = tmp_path / "kps.png"
    result = run_cli("detect", str(test_image), "--weights", str(authors_weights), "--num", "200", "--json",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert 0 < doc["count"] <= 200 and set(doc["keypoints"][0]) == {"x", "y", "scale", "score"}
    assert cv2.imread(str(out)).shape[:2] == cv2.imread(str(test_image)).shape[:2]


def test_detect_checks_its_output_before_detecting(tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (120, 160), np.uint8))
    result = run_cli("detect", str(image), "--out", str(tmp_path / "kps.xyz"))
    assert result.returncode == 2 and "OpenCV writes no image format" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    result = run_cli("detect", str(image), "--num", "1.5")
    assert result.returncode == 2 and "--num" in result.stderr and "whole number" in result.stderr


def test_track_reports_a_garbage_calibration_in_one_line_before_any_work(tmp_path):
    calibration = tmp_path / "x.yaml"
    calibration.write_bytes(b"%YAML:1.0\n: : [")  # cv2.FileStorage raises SystemError on it
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.zeros((48, 64, 3), np.uint8))
    result = run_cli("track", "--source", str(frames), "--roi", "0,0,32,24", "--calibration", str(calibration),
                     "--json", str(tmp_path / "run.jsonl"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: calibration file {calibration} does not parse")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run.jsonl").exists()


def test_running_out_of_memory_is_one_line_too(capsys):
    def hungry(args: argparse.Namespace) -> int:
        raise MemoryError

    assert reporting_errors(hungry)(argparse.Namespace()) == 2
    assert capsys.readouterr().err.startswith("error: not enough memory for this input")


@pytest.mark.parametrize("error", [InputError("bad region"), SourceError("camera 3 is gone"), OSError("disk full")])
def test_every_command_turns_expected_failures_into_one_line_and_exit_code_2(error, capsys):
    def failing(args: argparse.Namespace) -> int:
        raise error

    assert reporting_errors(failing)(argparse.Namespace()) == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_a_programming_error_is_not_hidden():
    def broken(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        reporting_errors(broken)(argparse.Namespace())


def test_progress_bar_follows_the_reports_and_shows_nothing_without_them(capsys):
    with progress_bar("nothing to do"):
        pass
    assert capsys.readouterr().err == ""
    with progress_bar("rendering", "frame") as progress:
        for done in range(1, 4):
            progress(done, 3)
    shown = capsys.readouterr().err
    assert "rendering" in shown and "3/3" in shown


HEADLESS = """
import sys
import main
for argv in {runs}:
    try:
        main.main(argv)
    except SystemExit:
        pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("app", "PyQt6"))
print("LOADED", loaded, "POLICY", __import__("os").environ.get("OMP_WAIT_POLICY"))
"""


def test_headless_commands_import_neither_the_app_nor_qt(tmp_path):
    image = tmp_path / "noise.png"
    cv2.imwrite(str(image), cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (96, 128), np.uint8),
                                             (0, 0), 2))
    runs = [["detect", "--help"], ["track", "--help"], ["detect", str(image), "--out", str(tmp_path / "k.png")],
            ["track", "--source", str(tmp_path), "--roi", "1,2,3"]]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", HEADLESS.format(runs=runs)], capture_output=True, text=True,
                            cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "k.png").is_file(), result.stderr  # the detect run went all the way through
    assert result.stdout.splitlines()[-1] == "LOADED [] POLICY PASSIVE"
