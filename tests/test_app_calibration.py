"""The calibration dialog (``app/calibration_dialog.py``) against a chessboard sequence rendered through a known
camera (``tests/test_calibration.py``'s renderer): live frames captured as views, or a folder of them, give back the
intrinsics they were rendered with; the saved file reads back as the tracker's camera; the board files open; every
failure is a line in the dialog."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("PyQt6")

from app.calibration_dialog import CalibrationDialog  # noqa: E402
from keynet.calibration import find_corners  # noqa: E402
from keynet.chessboard import chessboard_image  # noqa: E402
from keynet.geometry import Camera  # noqa: E402
from tests.test_calibration import BOARD_PX, SPEC, TRUE_K, distortion_map, random_poses, render_view  # noqa: E402

VIEWS = 14
TASK_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """``VIEWS`` (480, 640, 3) uint8 views of the 9x6 board through ``TRUE_K`` (with radial distortion)."""
    board = chessboard_image(SPEC, BOARD_PX)
    maps, rng = distortion_map(), np.random.default_rng(7)
    return [render_view(board, r, t, maps, rng) for r, t in random_poses(VIEWS, seed=3)]


@pytest.fixture
def dialog(qtbot) -> CalibrationDialog:
    dialog = CalibrationDialog(spec=SPEC)
    qtbot.addWidget(dialog)
    dialog.resize(1000, 600)
    dialog.show()
    return dialog


def settle(qtbot, dialog: CalibrationDialog) -> None:
    """Wait until the dialog's worker has nothing to do."""
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TASK_TIMEOUT_MS)


def assert_rendered_intrinsics(matrix: np.ndarray) -> None:
    for got, want, name in ((matrix[0, 0], TRUE_K[0, 0], "fx"), (matrix[1, 1], TRUE_K[1, 1], "fy"),
                            (matrix[0, 2], TRUE_K[0, 2], "cx"), (matrix[1, 2], TRUE_K[1, 2], "cy")):
        assert abs(got - want) / want < 0.02, f"{name} {got:.2f} against {want}"


def test_live_frames_captured_as_views_give_the_rendered_intrinsics(qtbot, dialog, frames, tmp_path):
    for i, frame in enumerate(frames):
        dialog.add_frame(frame)
        settle(qtbot, dialog)
        shown = dialog.view.frame.astype(int)
        assert np.abs(shown[..., 0] - shown[..., 1]).max() > 50, "the corners found are drawn in colour"
        dialog.capture_button.click()
        settle(qtbot, dialog)
        assert dialog.status_label.text() == f"View {i + 1} taken."
        if i == 2:
            dialog.calibrate()
            settle(qtbot, dialog)
            assert "at least 5 different views" in dialog.status_label.text(), "too few views: one line"
            assert dialog.result is None and not dialog.save_button.isEnabled()
    dialog.capture_button.click()  # the same frame again
    settle(qtbot, dialog)
    assert f"like view {VIEWS}" in dialog.status_label.text()
    assert len(dialog.calibrator.views) == VIEWS
    assert dialog.coverage_label.text().startswith(f"{VIEWS} views")
    assert dialog.views_label.text().startswith(f"Board found in {VIEWS + 1} of {VIEWS + 1} frames tried")

    dialog.calibrate_button.click()
    settle(qtbot, dialog)
    assert dialog.result is not None, dialog.status_label.text()
    assert_rendered_intrinsics(dialog.result.camera_matrix)
    text = dialog.result_label.text()
    assert all(word in text for word in ("fx", "fy", "Principal point", "Field of view", "RMS"))
    assert dialog.save_button.isEnabled()

    with qtbot.waitSignal(dialog.calibrated, timeout=1000) as signal:
        written = dialog.save_result(tmp_path / "calibration")  # no suffix: YAML
    assert written == tmp_path / "calibration.yaml" and signal.args == [str(written)]
    camera = Camera.from_file(written)
    np.testing.assert_allclose(camera.matrix, dialog.result.camera_matrix, rtol=1e-6)
    np.testing.assert_allclose(camera.dist, dialog.result.dist_coeffs, rtol=1e-6, atol=1e-12)

    (tmp_path / "folder.yaml").mkdir()
    with qtbot.assertNotEmitted(dialog.calibrated):
        assert dialog.save_result(tmp_path / "folder.yaml") is None
    message = dialog.status_label.text()
    assert message.startswith("Saving the calibration:") and "folder" in message and "\n" not in message


def test_a_folder_of_views_and_automatic_capture(qtbot, dialog, frames, tmp_path):
    folder = tmp_path / "views"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    cv2.imwrite(str(folder / "999.png"), np.full((480, 640, 3), 128, np.uint8))  # no board
    progress: list[tuple[int, int]] = []
    dialog._task_progress.connect(lambda done, total: progress.append((done, total)))
    dialog.add_views_from(folder)
    assert dialog.progress.isVisible() and not dialog.calibrate_button.isEnabled(), "locked while reading"
    settle(qtbot, dialog)
    assert dialog.status_label.text() == f"views: board found in {VIEWS} of {VIEWS + 1} frames, {VIEWS} new views."
    assert progress[-1] == (VIEWS + 1, VIEWS + 1) and not dialog.progress.isVisible()
    dialog.calibrate()
    settle(qtbot, dialog)
    assert_rendered_intrinsics(dialog.result.camera_matrix)

    dialog.clear_views()
    dialog.auto_box.setChecked(True)
    for frame in (frames[0], frames[0], frames[1]):  # a still board is one view
        dialog.add_frame(frame)
        settle(qtbot, dialog)
    assert len(dialog.calibrator.views) == 2 and dialog.status_label.text() == "View 2 taken."

    dialog.add_views_from(tmp_path / "missing.mp4")
    settle(qtbot, dialog)
    message = dialog.status_label.text()
    assert message.startswith("Reading missing.mp4:") and "\n" not in message
    assert dialog.calibrate_button.isEnabled(), "unlocked after a failure"


def test_the_board_files_and_a_new_board(qtbot, dialog, tmp_path):
    png = dialog.save_board(tmp_path / "board.png")
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert image is not None and find_corners(image, SPEC) is not None
    pdf = dialog.save_board(tmp_path / "board.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and "100 %" in dialog.status_label.text()

    assert dialog.save_board(tmp_path / "board.svg") is None
    assert dialog.status_label.text().startswith("Saving the board:") and ".pdf" in dialog.status_label.text()
    (tmp_path / "taken.png").mkdir()
    assert dialog.save_board(tmp_path / "taken.png") is None and "folder" in dialog.status_label.text()

    dialog.rows_box.setValue(5)
    assert dialog.spec.pattern_size == (9, 5) and dialog.calibrator.spec == dialog.spec
    assert "a board of 10 x 6 squares" == dialog.board_label.text()
    dialog.capture()
    assert dialog.status_label.text().startswith("No frame yet")
    dialog.hide()
    dialog.add_frame(np.zeros((480, 640, 3), np.uint8))
    assert not dialog.busy and dialog.view.frame is None, "a hidden dialog ignores the frames forwarded to it"
