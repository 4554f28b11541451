"""Camera calibration (``keynet/calibration.py``, ``cli/calibrate.py``) against a chessboard sequence rendered
through a known pinhole camera with a known radial distortion: the intrinsics it was rendered with come back."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli.calibrate import add_calibrate_command
from keynet.calibration import MIN_VIEWS, Calibrator, calibrate, find_corners, save_calibration
from keynet.chessboard import ChessboardSpec, chessboard_image, save_chessboard
from keynet.errors import InputError, OutputError
from keynet.geometry import Camera

SIZE = (640, 480)
TRUE_K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
TRUE_DIST = np.array([-0.08, 0.0, 0.0, 0.0, 0.0])
SPEC = ChessboardSpec(9, 6, 25.0)
SUPERSAMPLE = 2
BOARD_PX = 48


def rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """(3, 3) rotation about x by ``pitch``, y by ``yaw`` and z by ``roll`` degrees."""
    rx, ry, rz = (cv2.Rodrigues(np.radians(a) * axis)[0] for a, axis in
                  ((pitch, np.array([1.0, 0, 0])), (yaw, np.array([0, 1.0, 0])), (roll, np.array([0, 0, 1.0]))))
    return rz @ ry @ rx


def random_poses(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` board poses (R, t in mm) whose whole board, white margin included, is in the 640x480 image."""
    rng = np.random.default_rng(seed)
    margin = SPEC.square_mm * 2  # the board's outer edge, white margin included, from the outer inner corners
    outline = np.array([[-margin, -margin, 0], [(SPEC.cols - 1) * SPEC.square_mm + margin, -margin, 0],
                        [(SPEC.cols - 1) * SPEC.square_mm + margin, (SPEC.rows - 1) * SPEC.square_mm + margin, 0],
                        [-margin, (SPEC.rows - 1) * SPEC.square_mm + margin, 0]])
    centre = np.array([(SPEC.cols - 1) / 2, (SPEC.rows - 1) / 2, 0]) * SPEC.square_mm
    poses = []
    while len(poses) < count:
        r = rotation(*rng.uniform([-40, -40, -30], [40, 40, 30]))
        depth = rng.uniform(450, 800)
        u, v = rng.uniform([120, 100], [520, 380])
        t = np.array([(u - 320) * depth / 600, (v - 240) * depth / 600, depth]) - r @ centre
        projected, _ = cv2.projectPoints(outline, cv2.Rodrigues(r)[0], t, TRUE_K, TRUE_DIST)
        if np.all((projected > 2) & (projected < np.array(SIZE) - 3)):
            poses.append((r, t))
    return poses


def distortion_map() -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the image distorted by ``TRUE_DIST`` (radial k1 only), where it lies in the ideal
    (distortion-free) image: x_d = x_u (1 + k1 r_u^2) in normalised coordinates, solved for x_u by fixed-point
    iteration."""
    xs, ys = np.meshgrid(np.arange(SIZE[0], dtype=np.float64), np.arange(SIZE[1], dtype=np.float64))
    xd, yd = (xs - TRUE_K[0, 2]) / TRUE_K[0, 0], (ys - TRUE_K[1, 2]) / TRUE_K[1, 1]
    xu, yu = xd.copy(), yd.copy()
    for _ in range(30):
        factor = 1 + TRUE_DIST[0] * (xu ** 2 + yu ** 2)
        xu, yu = xd / factor, yd / factor
    return ((xu * TRUE_K[0, 0] + TRUE_K[0, 2]).astype(np.float32),
            (yu * TRUE_K[1, 1] + TRUE_K[1, 2]).astype(np.float32))


def render_view(board: np.ndarray, r: np.ndarray, t: np.ndarray, maps: tuple[np.ndarray, np.ndarray],
                rng: np.random.Generator) -> np.ndarray:
    """(480, 640, 3) uint8 the board at pose (r, t) through the true camera: warped at twice the resolution,
    area-averaged down, distorted, blurred and noised, on a grey background."""
    s = SUPERSAMPLE
    k_fine = np.array([[s, 0, (s - 1) / 2], [0, s, (s - 1) / 2], [0, 0, 1]]) @ TRUE_K
    to_mm = np.array([[SPEC.square_mm / BOARD_PX, 0, -(2 * BOARD_PX - 0.5) * SPEC.square_mm / BOARD_PX],
                      [0, SPEC.square_mm / BOARD_PX, -(2 * BOARD_PX - 0.5) * SPEC.square_mm / BOARD_PX],
                      [0, 0, 1]])  # board pixel -> mm, the first inner corner at 0 (margin one square)
    homography = k_fine @ np.column_stack([r[:, 0], r[:, 1], t]) @ to_mm
    fine = cv2.warpPerspective(board, homography, (SIZE[0] * s, SIZE[1] * s), flags=cv2.INTER_LINEAR,
                               borderValue=150)
    ideal = cv2.resize(fine, SIZE, interpolation=cv2.INTER_AREA)
    image = cv2.remap(ideal, *maps, cv2.INTER_LINEAR, borderValue=150)
    image = cv2.GaussianBlur(image, (0, 0), 0.6).astype(np.float32) * 0.8 + 25  # contrast below full range
    image += rng.normal(0, 2.0, image.shape)
    return cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def board_views(count: int, noise_seed: int, pose_seed: int = 0) -> list[np.ndarray]:
    """``count`` (480, 640, 3) uint8 views of the 9x6 board through the true camera, at ``random_poses(count,
    pose_seed)``, with the sensor noise of ``noise_seed``."""
    board = chessboard_image(SPEC, BOARD_PX)
    maps, rng = distortion_map(), np.random.default_rng(noise_seed)
    return [render_view(board, r, t, maps, rng) for r, t in random_poses(count, pose_seed)]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """15 views of the 9x6 board through the true camera."""
    return board_views(15, noise_seed=1)


@pytest.fixture(scope="module")
def calibrated(frames):
    calibrator = Calibrator(SPEC, ready_views=10)
    outcomes = [calibrator.add(frame) for frame in frames]
    reports: list[tuple[int, int]] = []
    result = calibrator.calibrate(progress=lambda done, total: reports.append((done, total)))
    return calibrator, outcomes, result, reports


def test_the_board_has_the_asked_squares_and_a_white_margin():
    board = chessboard_image(SPEC, square_px=10, margin_px=7)
    assert board.shape == (7 * 10 + 14, 10 * 10 + 14) and board.dtype == np.uint8
    assert np.all(board[:7] == 255) and np.all(board[:, -7:] == 255)
    assert board[7, 7] == 0 and board[7, 17] == 255 and board[17, 17] == 0  # top-left black, alternating
    corners = find_corners(board, SPEC)
    assert corners is not None
    expected = SPEC.object_points()[:, :2] / SPEC.square_mm * 10 + 7 + 10 - 0.5
    assert min(np.abs(corners - expected).max(), np.abs(corners[::-1] - expected).max()) < 0.2  # either end first


def test_the_rendered_sequence_gives_the_intrinsics_it_was_rendered_with(calibrated):
    calibrator, outcomes, result, reports = calibrated
    assert all(o.corners is not None for o in outcomes), "the board is found in every rendered view"
    assert result.views == len(calibrator.views) >= 12
    k = result.camera_matrix
    for got, want, name in ((k[0, 0], 600, "fx"), (k[1, 1], 600, "fy"), (k[0, 2], 320, "cx"), (k[1, 2], 240, "cy")):
        assert abs(got - want) / want < 0.02, f"{name} {got:.2f} against {want}"
    assert result.rms_px < 0.5
    assert abs(result.dist_coeffs[0] - TRUE_DIST[0]) < 0.03, f"k1 {result.dist_coeffs[0]:.3f}"
    assert result.image_size == SIZE and len(result.view_errors_px) == result.views
    assert abs(result.fov_deg - math.degrees(2 * math.atan(320 / 600))) < 1.5
    assert reports[0] == (0, result.views + 1) and reports[-1] == (result.views + 1, result.views + 1)
    coverage = calibrator.coverage()
    assert coverage.views == result.views and coverage.ready and coverage.max_tilt_deg > 20
    assert 0.3 < coverage.area <= 1 and coverage.scale_range > 1
    assert "views" in coverage.describe() and "fx" in result.describe()


def test_a_still_board_gives_one_view(frames):
    calibrator = Calibrator(SPEC)
    first, again = calibrator.add(frames[0]), calibrator.add(frames[0].copy())
    assert first.kept and not again.kept and again.reason == "like view 1" and len(calibrator.views) == 1
    shifted = np.roll(frames[0], 1, axis=1)  # one pixel: the same view
    assert not calibrator.add(shifted).kept
    assert calibrator.add(frames[1]).kept
    assert not calibrator.coverage().ready


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".xml"])
def test_the_saved_calibration_reads_back_as_the_trackers_camera(calibrated, tmp_path, suffix):
    result = calibrated[2]
    path = save_calibration(result, tmp_path / f"calib{suffix}")
    camera = Camera.from_file(path)
    np.testing.assert_allclose(camera.matrix, result.camera_matrix, rtol=1e-6)
    np.testing.assert_allclose(camera.dist, result.dist_coeffs, rtol=1e-6, atol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == [f"calib{suffix}"], "no temporary file is left"
    if suffix == ".json":
        data = json.loads(path.read_text())
        assert data["image_size"] == list(SIZE) and data["board"] == SPEC.to_dict() and data["views"] == result.views


def test_saving_where_it_cannot_be_written_keeps_nothing_half_written(calibrated, tmp_path):
    with pytest.raises(InputError, match="expected a .json"):
        save_calibration(calibrated[2], tmp_path / "calib.txt")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(OutputError, match="folder"):
        save_calibration(calibrated[2], tmp_path / "folder.json")


def test_too_few_views_or_no_board_is_a_clear_error(frames):
    calibrator = Calibrator(SPEC)
    for frame in frames[:3]:
        calibrator.add(frame)
    with pytest.raises(InputError, match=f"at least {MIN_VIEWS} different views.*found in 3 of 3 frames"):
        calibrator.calibrate()
    blank = np.full((480, 640, 3), 128, np.uint8)
    outcome = Calibrator(SPEC).add(blank)
    assert outcome.corners is None and not outcome.kept and outcome.reason == "no board"
    assert find_corners(frames[0], ChessboardSpec(7, 5)) is None, "a board of another size is not found"
    with pytest.raises(InputError, match="640x480"):
        calibrator.add(cv2.resize(frames[0], (320, 240)))
    with pytest.raises(InputError, match="uint8 image"):
        calibrator.add(np.zeros((480, 640), np.float32))
    with pytest.raises(InputError, match="at least 5 views"):
        calibrate(calibrator.views, SPEC, SIZE)
    with pytest.raises(InputError, match="inner corners"):
        ChessboardSpec.parse("9")
    with pytest.raises(InputError, match="at least 3 inner corners"):
        ChessboardSpec(2, 6)
    with pytest.raises(InputError, match="positive"):
        ChessboardSpec(9, 6, -1.0)


def test_the_printable_board_is_found_and_the_pdf_is_sized_in_millimetres(tmp_path):
    png = save_chessboard(SPEC, tmp_path / "board.png", dpi=100)
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    square = round(25 / 25.4 * 100)
    assert image.shape == (9 * square, 12 * square) and find_corners(image, SPEC) is not None
    pdf = save_chessboard(SPEC, tmp_path / "board.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    box = [float(v) for v in pdf.split(b"/MediaBox [")[1].split(b"]")[0].split()]
    assert box[2:] == pytest.approx([12 * 25 / 25.4 * 72, 9 * 25 / 25.4 * 72], abs=0.5)  # points of 1/72 inch
    with pytest.raises(InputError, match="png or .pdf"):
        save_chessboard(SPEC, tmp_path / "board.svg")


def parser() -> argparse.ArgumentParser:
    """A parser with only the ``calibrate`` command, as ``cli.build_parser`` adds it."""
    p = argparse.ArgumentParser(prog="main.py")
    add_calibrate_command(p.add_subparsers(dest="command"))
    return p


def views_folder(frames: list[np.ndarray], folder: Path) -> Path:
    """``folder`` made to hold ``frames`` as 000.png, 001.png ... and last a grey frame without the board
    (999.png)."""
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    cv2.imwrite(str(folder / "999.png"), np.full((480, 640, 3), 128, np.uint8))
    return folder


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


def test_the_calibrate_command_writes_what_track_reads(frames, tmp_path, capsys):
    folder = views_folder(frames, tmp_path / "views")
    out = tmp_path / "calib.json"
    assert run(["calibrate", "--source", str(folder), "--board", "9x6", "--square-mm", "25", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"board in {len(frames)} of {len(frames) + 1} frames" in printed
    camera = Camera.from_file(out)
    assert abs(camera.matrix[0, 0] - 600) / 600 < 0.02 and abs(camera.matrix[0, 2] - 320) / 320 < 0.02


def test_the_calibrate_command_prints_the_board(tmp_path, capsys):
    assert run(["calibrate", "--print-board", str(tmp_path / "b.png"), "--board", "7x5", "--dpi", "50"]) == 0
    image = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_GRAYSCALE)
    assert find_corners(image, ChessboardSpec(7, 5)) is not None
    assert "7x5 chessboard" in capsys.readouterr().out


def test_the_calibrate_command_reports_bad_input_in_one_line(frames, tmp_path, capsys):
    folder = tmp_path / "blank"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((480, 640, 3), 128, np.uint8))
    cases = [
        (["--source", str(folder), "--out", str(tmp_path / "c.json")], "no 9x6 chessboard .* found in the 2 frames"),
        (["--source", str(folder)], "--source needs --out"),
        (["--source", str(folder), "--out", str(tmp_path / "c.txt")], "expected a .json"),
        (["--source", str(tmp_path / "missing"), "--out", str(tmp_path / "c.json")], "missing"),
        (["--print-board", str(tmp_path / "b.png"), "--board", "nine"], "expected COLSxROWS"),
    ]
    for argv, message in cases:
        assert run(["calibrate", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and re.search(message, err[-1]), (argv, err)
    assert not (tmp_path / "c.json").exists()
    single = tmp_path / "single"
    single.mkdir()
    cv2.imwrite(str(single / "0.png"), frames[0])
    assert run(["calibrate", "--source", str(single), "--out", str(tmp_path / "c.json")]) == 2
    assert "at least 5 different views" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["calibrate", "--board", "9x6"])  # neither --source nor --print-board
