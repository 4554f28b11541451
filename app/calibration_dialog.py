"""The camera calibration dialog: print the project's chessboard, collect views of it (live frames, a video or an
image folder), calibrate, and save the file ``track --calibration`` reads.

The dialog only shows and drives the library: ``keynet.chessboard`` draws and writes the board,
``keynet.calibration`` finds its corners, keeps the views that differ (``Calibrator``), measures their coverage,
calibrates (OpenCV) and writes the file. Board searches, reading a file and the calibration run on a worker thread,
one task at a time; live frames that arrive meanwhile replace one another, so the preview shows the newest frame
searched. Views are taken with "Capture view" (the frame shown) or automatically: every live frame whose whole board
is found and whose corners moved, on average, at least ``Calibrator.min_change`` of the image diagonal away from
each kept view's.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from keynet.calibration import (
    CALIBRATION_SUFFIXES,
    CalibrationResult,
    Calibrator,
    ViewOutcome,
    find_corners,
    save_calibration,
)
from keynet.chessboard import MIN_CORNERS, ChessboardSpec, save_chessboard
from keynet.errors import KeyNetError
from keynet.image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, bgr_canvas
from keynet.sources import open_source

from .dialogs import ask_file, ask_folder
from .layout import button, laid_out
from .views import VideoView

ROUGH_RMS_PX = 1.0  # a reprojection error above this points at a wrong board size or blurred views
MAX_INNER_CORNERS = 40
DEFAULT_CALIBRATION_SUFFIX = ".yaml"
DISTORTION_NAMES = ("k1", "k2", "p1", "p2", "k3")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (OpenCV's own messages span several)."""
    text = exc.err if isinstance(exc, cv2.error) and getattr(exc, "err", "") else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def describe_result(result: CalibrationResult) -> str:
    """Several lines: focal lengths, principal point, fields of view, distortion, RMS reprojection error."""
    k, d = result.camera_matrix, result.dist_coeffs
    width, height = result.image_size
    vertical_fov = math.degrees(2 * math.atan(0.5 * height / k[1, 1]))
    lines = [
        f"Focal length     fx {k[0, 0]:.1f} px, fy {k[1, 1]:.1f} px",
        f"Principal point  ({k[0, 2]:.1f}, {k[1, 2]:.1f}) px in {width}x{height} frames",
        f"Field of view    {result.fov_deg:.1f} deg horizontal, {vertical_fov:.1f} deg vertical",
        "Distortion       " + ", ".join(f"{name} {value:+.4f}" for name, value in zip(DISTORTION_NAMES, d)),
        f"RMS error        {result.rms_px:.3f} px over {result.views} views "
        f"(worst view {float(np.max(result.view_errors_px)):.3f} px)",
    ]
    if result.rms_px > ROUGH_RMS_PX:
        lines.append(f"Over {ROUGH_RMS_PX:g} px: check the inner corners and the square size, keep the board flat "
                     "and avoid blurred views.")
    return "\n".join(lines)


@dataclass
class _Task:
    """Work for the worker thread: ``work()`` there, then ``on_done(value)`` on the UI thread (or its error shown
    as ``what: message``). ``long`` tasks show the progress bar and lock the controls; ``stoppable`` ones show Stop;
    ``updates_views`` ones refresh the view count and coverage when they end."""

    what: str
    work: Callable[[], Any]
    on_done: Callable[[Any], None]
    long: bool = False
    stoppable: bool = False
    updates_views: bool = True


class CalibrationDialog(QDialog):
    """Calibrate the camera from a printed chessboard.

    ``add_frame`` takes the live frames (the main window forwards them while the dialog is shown). The views, the
    result and the saved file are ``calibrator``, ``result`` and ``saved_path``; every failure is one line in
    ``status_label``.

    Signals:
        calibrated(str): a calibration was saved to this path (for ``keynet.geometry.Camera.from_file``).
    """

    calibrated = pyqtSignal(str)
    _task_finished = pyqtSignal(object)  # (_Task, value, error message)
    _task_progress = pyqtSignal(int, int)

    def __init__(self, parent: QWidget | None = None, spec: ChessboardSpec | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Camera calibration")
        self.spec = spec or ChessboardSpec()
        self.calibrator = Calibrator(self.spec)
        self.result: CalibrationResult | None = None
        self.saved_path: Path | None = None
        self._latest: np.ndarray | None = None  # the newest live frame
        self._waiting: np.ndarray | None = None  # a live frame that arrived while a task ran, not yet searched
        self._running: _Task | None = None
        self._queued: Callable[[], _Task] | None = None  # a user's task waiting for the running board search
        self._stop = threading.Event()
        self._build()
        self._task_finished.connect(self._finish)
        self._task_progress.connect(self._show_progress)
        self._refresh_views()
        self._show_result()

    # -- layout
    def _build(self) -> None:
        self.view = VideoView(self)
        self.view.set_message("Show the printed board to the camera: the main window's frames appear here.")

        self.cols_box, self.rows_box = QSpinBox(), QSpinBox()
        for box, value in ((self.cols_box, self.spec.cols), (self.rows_box, self.spec.rows)):
            box.setRange(MIN_CORNERS, MAX_INNER_CORNERS)
            box.setValue(value)
            box.valueChanged.connect(self._board_changed)
        self.square_box = QDoubleSpinBox()
        self.square_box.setRange(0.1, 1000.0)
        self.square_box.setDecimals(1)
        self.square_box.setSuffix(" mm")
        self.square_box.setValue(self.spec.square_mm)
        self.square_box.valueChanged.connect(self._board_changed)
        self.board_label = QLabel()
        self.save_board_button = button("Save board…", self.save_board)
        board = QGroupBox("Printed board")
        form = QFormLayout(board)
        form.addRow("Inner corners across", self.cols_box)
        form.addRow("Inner corners down", self.rows_box)
        form.addRow("Square size", self.square_box)
        form.addRow(self.board_label)
        form.addRow(self.save_board_button)

        self.capture_button = button("Capture view", self.capture)
        self.auto_box = QCheckBox("Take views automatically")
        self.auto_box.setToolTip("Keep every live frame where the whole board is found and has moved away from the "
                                 "views already kept")
        self.add_views_button = QPushButton("Add views from a video or folder…")
        menu = QMenu(self.add_views_button)
        menu.addAction("Video file…", self._ask_video)
        menu.addAction("Image folder…", self._ask_folder)
        self.add_views_button.setMenu(menu)
        self.clear_button = button("Clear views", self.clear_views)
        self.views_label, self.coverage_label = QLabel(), QLabel()
        self.views_label.setWordWrap(True)
        self.coverage_label.setWordWrap(True)
        views = QGroupBox("Views")
        laid_out(QVBoxLayout(views), laid_out(QHBoxLayout(), self.capture_button, self.clear_button), self.auto_box,
                 self.add_views_button, self.coverage_label, self.views_label)

        self.calibrate_button = button("Calibrate", self.calibrate)
        self.result_label = QLabel()
        self.result_label.setFont(QFont("monospace"))
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.save_button = button("Save…", self.save_result)
        calibration = QGroupBox("Calibration")
        laid_out(QVBoxLayout(calibration), self.calibrate_button, self.result_label, self.save_button)
        side = laid_out(QVBoxLayout(), board, views, calibration)
        side.addStretch(1)

        self.progress = QProgressBar()
        self.stop_button = button("Stop", self._stop.set)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        laid_out(QVBoxLayout(self), (laid_out(QHBoxLayout(), (self.view, 1), side), 1), self.status_label,
                 laid_out(QHBoxLayout(), (self.progress, 1), self.stop_button, close))
        self.progress.hide()
        self.stop_button.hide()
        for push in self.findChildren(QPushButton):
            push.setAutoDefault(False)  # Enter in a number box must not press a button
        self._describe_board()

    # -- state shown
    def _say(self, text: str) -> None:
        self.status_label.setText(text)

    def _describe_board(self) -> None:
        self.board_label.setText(f"a board of {self.spec.cols + 1} x {self.spec.rows + 1} squares")

    def _refresh_views(self) -> None:
        self.coverage_label.setText(self.calibrator.coverage().describe())
        self.views_label.setText(f"Board found in {self.calibrator.boards_found} of {self.calibrator.frames_seen} "
                                 f"frames tried as views; calibrates from up to {self.calibrator.max_views} views.")

    def _show_result(self) -> None:
        self.result_label.setText(describe_result(self.result) if self.result else "Not calibrated yet.")
        self.save_button.setEnabled(self.result is not None and not self._locked())

    def _show_search(self, frame: np.ndarray, spec: ChessboardSpec, corners: np.ndarray | None) -> None:
        """Show ``frame`` with the board's ``corners`` (N, 2) drawn (OpenCV's drawing), or say it is not found."""
        shown = bgr_canvas(frame)
        if corners is not None:
            cv2.drawChessboardCorners(shown, spec.pattern_size, corners.reshape(-1, 1, 2), True)
        self.view.set_frame(shown)
        self.view.set_banner(f"{spec.cols}x{spec.rows} board found" if corners is not None
                             else f"no whole {spec.cols}x{spec.rows} board in view")

    def _show_progress(self, done: int, total: int) -> None:
        """``done`` of ``total``; a busy bar while nothing is done yet (the calibration's solve) or the total is
        unknown."""
        self.progress.setRange(0, total if done else 0)
        self.progress.setValue(done)

    def _locked(self) -> bool:
        return self._running is not None and self._running.long

    def _lock(self, locked: bool, stoppable: bool = False) -> None:
        for widget in (self.cols_box, self.rows_box, self.square_box, self.capture_button, self.clear_button,
                       self.add_views_button, self.calibrate_button):
            widget.setEnabled(not locked)
        self.save_button.setEnabled(not locked and self.result is not None)
        self.progress.setVisible(locked)
        self.stop_button.setVisible(locked and stoppable)
        if locked:
            self.progress.setRange(0, 0)

    @property
    def busy(self) -> bool:
        """A task runs on the worker thread or waits for it."""
        return self._running is not None or self._queued is not None

    # -- tasks
    def _submit(self, make: Callable[[], _Task]) -> None:
        """Start the task ``make()`` builds now, or after the board search that runs."""
        if self._running is None:
            self._start(make())
        else:
            self._queued = make

    def _start(self, task: _Task) -> None:
        self._running = task
        if task.long:
            self._stop.clear()
            self._lock(True, task.stoppable)
            self._say(f"{task.what}…")

        def run() -> None:
            try:
                value, error = task.work(), ""
            except Exception as exc:  # the thread's boundary: whatever failed becomes the dialog's line
                value, error = None, one_line(exc)
            with contextlib.suppress(RuntimeError):  # the dialog was deleted meanwhile
                self._task_finished.emit((task, value, error))

        threading.Thread(target=run, name=f"calibration: {task.what}", daemon=True).start()

    def _finish(self, outcome: tuple[_Task, Any, str]) -> None:
        task, value, error = outcome
        self._running = None
        if task.long:
            self._lock(False)
        if error:
            self._say(f"{task.what}: {error}")
        else:
            task.on_done(value)
        if task.updates_views:
            self._refresh_views()
        if self._queued is not None:
            make, self._queued = self._queued, None
            self._start(make())
        elif self._waiting is not None:
            frame, self._waiting = self._waiting, None
            self._start(self._search_task(frame))

    def _search_task(self, frame: np.ndarray) -> _Task:
        """Find the board in a live frame (the fast search); automatic mode also keeps the frame when it is new."""
        calibrator, spec = self.calibrator, self.calibrator.spec
        if self.auto_box.isChecked():
            return _Task("Taking a view", lambda: _add(calibrator, frame, thorough=False),
                         lambda outcome: self._show_outcome(frame, calibrator, spec, outcome))
        return _Task("Looking for the board", lambda: find_corners(frame, spec, thorough=False),
                     lambda corners: self._show_search(frame, spec, corners), updates_views=False)

    def _show_outcome(self, frame: np.ndarray, calibrator: Calibrator, spec: ChessboardSpec,
                      outcome: ViewOutcome) -> bool:
        """Show ``frame`` with the board's corners ``outcome`` found; say so when it was kept as a view of
        ``calibrator``'s. Returns whether it was."""
        self._show_search(frame, spec, outcome.corners)
        if outcome.kept:
            self._say(f"View {len(calibrator.views)} taken.")
        return outcome.kept

    # -- live frames and views
    def add_frame(self, frame: np.ndarray) -> None:
        """Take a live (H, W, 3) uint8 BGR frame: shown with the board's corners when found (and, in automatic
        mode, kept as a view when new). Frames that come while the dialog is hidden are ignored; while a task
        runs only the newest waits."""
        if not self.isVisible():
            return
        self._latest = frame
        if self._running is None:
            self._start(self._search_task(frame))
        else:
            self._waiting = frame

    def capture(self) -> None:
        """Keep the newest live frame as a view when the whole board is in it and it differs from the views kept."""
        if self._latest is None:
            self._say("No frame yet: open a camera (or a video) in the main window and show it the board.")
            return
        frame = self._latest

        def make() -> _Task:
            calibrator, spec = self.calibrator, self.calibrator.spec

            def taken(outcome: ViewOutcome) -> None:
                if self._show_outcome(frame, calibrator, spec, outcome):
                    return
                if outcome.corners is None:
                    self._say(f"Not taken: no whole {spec} in the frame; show all of it, with white around it.")
                else:
                    self._say(f"Not taken: {outcome.reason}; move or tilt the board for a new view.")

            return _Task("Capturing a view", lambda: _add(calibrator, frame, thorough=True), taken)

        self._submit(make)

    def add_views_from(self, path: str | Path) -> None:
        """Add the views of a video file or an image folder (the library's ``add_frames``, with progress; Stop
        ends it early, keeping the views so far)."""
        path = Path(path)

        def make() -> _Task:
            calibrator = self.calibrator

            def work() -> tuple[int, int, int, bool]:
                seen, found = calibrator.frames_seen, calibrator.boards_found
                calibrator.thorough = True
                with open_source(path) as source:
                    frames = itertools.takewhile(lambda _: not self._stop.is_set(), (f for _, f, _ in source))
                    kept = calibrator.add_frames(frames, len(source), self._progress)
                return kept, calibrator.frames_seen - seen, calibrator.boards_found - found, self._stop.is_set()

            def added(counts: tuple[int, int, int, bool]) -> None:
                kept, seen, found, stopped = counts
                self._say(f"{path.name}: board found in {found} of {seen} frames, {kept} new views"
                          + (" (stopped)." if stopped else "."))

            return _Task(f"Reading {path.name}", work, added, long=True, stoppable=True)

        self._submit(make)

    def _progress(self, done: int, total: int) -> None:
        """``keynet.progress.Progress`` for the worker thread."""
        with contextlib.suppress(RuntimeError):  # the dialog was deleted meanwhile
            self._task_progress.emit(done, total)

    def clear_views(self) -> None:
        """Forget the views collected (the board stays)."""
        self.calibrator = Calibrator(self.spec)
        self._refresh_views()
        self._say("Views cleared.")

    def _ask_video(self) -> None:
        patterns = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        ask_file(self, "Views from a video", f"Videos ({patterns})", self.add_views_from)

    def _ask_folder(self) -> None:
        ask_folder(self, f"Views from an image folder ({', '.join(IMAGE_SUFFIXES)})", self.add_views_from)

    # -- the board
    def _board_changed(self) -> None:
        spec = ChessboardSpec(self.cols_box.value(), self.rows_box.value(), self.square_box.value())  # in range
        if spec == self.spec:
            return
        same_grid = spec.pattern_size == self.spec.pattern_size
        self.spec = spec
        self.result = None
        self._show_result()
        self._describe_board()
        if same_grid:  # the corners found stay valid; only the board's size in millimetres changed
            self.calibrator.spec = spec
            self._say(f"Board: {spec}; calibrate again to record it.")
        else:
            self.calibrator = Calibrator(spec)
            self._refresh_views()
            self._say(f"Board: {spec}; the views of the previous board were cleared.")

    def save_board(self, path: str | Path | None = None) -> Path | None:
        """Write the board to print (``.pdf``: squares to scale at 100 %; ``.png``: 300 dpi); asks for the file
        when ``path`` is None. Returns the file written, or None."""
        if path is None:
            name = f"chessboard-{self.spec.cols}x{self.spec.rows}-{self.spec.square_mm:g}mm.pdf"
            chosen, kind = QFileDialog.getSaveFileName(self, "Save the board to print", name,
                                                       "PDF, squares to scale (*.pdf);;PNG image, 300 dpi (*.png)")
            if not chosen:
                return None
            path = Path(chosen)
            if not path.suffix:
                path = path.with_suffix(".png" if "png" in kind.lower() else ".pdf")
        try:
            written = save_chessboard(self.spec, path)
        except (KeyNetError, OSError, ValueError) as exc:
            self._say(f"Saving the board: {one_line(exc)}")
            return None
        self._say(f"Board written to {written}" + (": print it at 100 % (no fit to page)." if written.suffix.lower()
                                                     == ".pdf" else " at 300 dpi."))
        return written

    # -- calibration
    def calibrate(self) -> None:
        """Calibrate from the views kept (on the worker thread, with progress); the result is shown."""
        def make() -> _Task:
            calibrator = self.calibrator

            def calibrated(result: CalibrationResult) -> None:
                self.result = result
                self._show_result()
                self._say("Calibrated: save it to use it for the pose and the cube.")

            return _Task("Calibrating", lambda: calibrator.calibrate(progress=self._progress), calibrated,
                         long=True)

        self._submit(make)

    def save_result(self, path: str | Path | None = None) -> Path | None:
        """Write the calibration (``.yaml`` when the name has no suffix; also ``.yml``, ``.json``, ``.xml``) and
        emit ``calibrated``; asks for the file when ``path`` is None. Returns the file written, or None."""
        if self.result is None:
            self._say("Nothing to save yet: collect views and calibrate first.")
            return None
        if path is None:
            width, height = self.result.image_size
            patterns = " ".join(f"*{s}" for s in CALIBRATION_SUFFIXES)
            chosen, _ = QFileDialog.getSaveFileName(self, "Save the calibration",
                                                    f"calibration-{width}x{height}{DEFAULT_CALIBRATION_SUFFIX}",
                                                    f"Calibration ({patterns})")
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(DEFAULT_CALIBRATION_SUFFIX)
        try:
            written = save_calibration(self.result, path)
        except (KeyNetError, OSError) as exc:
            self._say(f"Saving the calibration: {one_line(exc)}")
            return None
        self.saved_path = written
        self._say(f"Calibration saved to {written}.")
        self.calibrated.emit(str(written))
        return written

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Closing the dialog stops reading a file (the views so far stay) and forgets the live frame."""
        self._stop.set()
        self._latest = self._waiting = None
        super().hideEvent(event)


def _add(calibrator: Calibrator, frame: np.ndarray, thorough: bool) -> ViewOutcome:
    """``calibrator.add(frame)`` with the board search ``thorough`` (True: the slower, more robust search where the
    fast one fails; live frames use the fast one only)."""
    calibrator.thorough = thorough
    return calibrator.add(frame)
