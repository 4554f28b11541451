"""Camera calibration from a printed chessboard: the board, its corners in frames, and OpenCV's calibration.

A ``ChessboardSpec`` names the board by its inner corners (``cols`` x ``rows``, OpenCV's pattern size) and its
square size in millimetres. ``keynet.chessboard`` draws it and writes it for printing (PNG at a given dpi, or a PDF whose squares
are exactly ``square_mm`` on paper at 100 % scale). A ``Calibrator`` takes frames (a video, an image folder, a
live camera), keeps the views where the whole board is found and that differ from the ones it holds, measures how
well they cover the image, and ``calibrate`` turns them into a ``CalibrationResult`` (``cv2.calibrateCamera``).
``save_calibration`` writes it in the format ``keynet.geometry.Camera.from_file`` reads (``track --calibration``):
JSON with ``camera_matrix`` and ``dist_coeffs`` (plus the image size, the RMS error and the board), or OpenCV
YAML/XML by the file's suffix.

The intrinsics hold for the image size they were measured at (``image_size``); frames of another size need a
matrix scaled to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .chessboard import ChessboardSpec
from .errors import InputError, OutputError
from .files import atomic_path, check_output_path
from .geometry import Camera
from .progress import Progress, report

MIN_VIEWS = 5
CALIBRATION_SUFFIXES = (".json", ".yaml", ".yml", ".xml")


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint8 of a (H, W) or (H, W, 3|4) BGR(A) uint8 frame."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) \
            or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)) or min(frame.shape[:2]) < 8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise InputError(f"calibration frame: expected an (H, W) or (H, W, 3) uint8 image; got shape {shape}, "
                         f"{dtype}")
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def find_corners(frame: np.ndarray, spec: ChessboardSpec, thorough: bool = True) -> np.ndarray | None:
    """(cols * rows, 2) float32 the board's inner corners in ``frame`` (pixel centres at whole coordinates, in
    ``spec.object_points()``'s order), or None when the whole board is not seen.

    OpenCV's ``findChessboardCorners`` (fast) refined by ``cornerSubPix``; when it fails and ``thorough``, the
    slower, more robust ``findChessboardCornersSB`` (blur, low contrast).

    Raises:
        InputError: ``frame`` is not an image.
    """
    grey = _grey(frame)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(grey, spec.pattern_size, flags=flags)
    if found:
        grid = corners.reshape(spec.rows, spec.cols, 2)
        spacing = min(np.linalg.norm(np.diff(grid, axis=0), axis=2).min(),
                      np.linalg.norm(np.diff(grid, axis=1), axis=2).min())
        half = int(np.clip(spacing / 3, 2, 11))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.001)
        corners = cv2.cornerSubPix(grey, corners, (half, half), (-1, -1), criteria)
    elif thorough:
        found, corners = cv2.findChessboardCornersSB(grey, spec.pattern_size, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    return corners.reshape(-1, 2).astype(np.float32) if found else None


@dataclass(frozen=True)
class Coverage:
    """How well the kept views constrain a calibration (what the app shows while views are collected).

    Attributes:
        views: views kept.
        area: fraction (0..1) of the image's cells (a ``grid`` of cells) that a board corner fell in.
        max_tilt_deg: the largest angle between a board and the image plane, estimated with a guessed focal length
            (the image width); tilted views are what fix the focal length.
        scale_range: the largest board's image area over the smallest's (1: all at one distance).
        ready: enough views (the calibrator's ``ready_views``), a third of the image covered and a board tilted by 20 degrees or more.
    """

    views: int
    area: float
    max_tilt_deg: float
    scale_range: float
    ready: bool

    def describe(self) -> str:
        """One line: ``12 views, 64 % of the image covered, tilt up to 38 deg``."""
        return (f"{self.views} views, {self.area:.0%} of the image covered, tilt up to {self.max_tilt_deg:.0f} deg"
                + ("" if self.ready else " (move the board to the edges and tilt it)"))


@dataclass(frozen=True)
class ViewOutcome:
    """What ``Calibrator.add`` did with a frame: ``corners`` (N, 2) or None when no board was found; ``kept``
    when it became a view; ``reason`` says why not (``"no board"``, ``"like view 3"``)."""

    corners: np.ndarray | None
    kept: bool
    reason: str = ""


@dataclass
class CalibrationResult:
    """A calibration: ``camera_matrix`` (3, 3), ``dist_coeffs`` (5,) (k1, k2, p1, p2, k3), ``rms_px`` the RMS
    reprojection error over all corners, ``view_errors_px`` (V,) each view's RMS, ``image_size`` (w, h) the
    intrinsics hold for, ``views`` used, and the board."""

    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    rms_px: float
    view_errors_px: np.ndarray
    image_size: tuple[int, int]
    views: int
    board: ChessboardSpec

    @property
    def camera(self) -> Camera:
        """The intrinsics as the tracker's ``Camera``."""
        return Camera(self.camera_matrix.copy(), self.dist_coeffs.copy())

    @property
    def fov_deg(self) -> float:
        """The horizontal field of view the focal length gives at ``image_size``."""
        return math.degrees(2 * math.atan(0.5 * self.image_size[0] / self.camera_matrix[0, 0]))

    def to_dict(self) -> dict[str, Any]:
        """``Camera.to_dict()`` (``camera_matrix``, ``dist_coeffs``) plus ``image_size``, ``rms_px``,
        ``view_errors_px``, ``views`` and ``board``."""
        return {**self.camera.to_dict(), "image_size": list(self.image_size), "rms_px": self.rms_px,
                "view_errors_px": self.view_errors_px.tolist(), "views": self.views, "board": self.board.to_dict()}

    def describe(self) -> str:
        """One line: focal lengths, principal point, field of view, RMS error and views."""
        k = self.camera_matrix
        return (f"fx {k[0, 0]:.1f} fy {k[1, 1]:.1f} cx {k[0, 2]:.1f} cy {k[1, 2]:.1f} px at "
                f"{self.image_size[0]}x{self.image_size[1]} (horizontal field of view {self.fov_deg:.1f} deg), "
                f"RMS reprojection error {self.rms_px:.3f} px over {self.views} views")


@dataclass
class Calibrator:
    """Collects chessboard views from frames of one size and calibrates from them.

    A view is kept when the whole board is found and its corners lie, on average, at least ``min_change`` of the
    image diagonal away from those of every kept view (so a still board gives one view, not hundreds).
    ``calibrate`` uses at most ``max_views`` of them, spread over the order they came in; ``coverage().ready``
    asks for ``ready_views``. ``thorough`` is ``find_corners``'s (False: faster on frames without the board).
    """

    spec: ChessboardSpec
    min_change: float = 0.03
    ready_views: int = 10
    max_views: int = 40
    thorough: bool = True
    grid: tuple[int, int] = (8, 6)
    image_size: tuple[int, int] | None = None
    views: list[np.ndarray] = field(default_factory=list)
    frames_seen: int = 0
    boards_found: int = 0

    def add(self, frame: np.ndarray) -> ViewOutcome:
        """Look for the board in ``frame`` and keep it as a view when it is new.

        Raises:
            InputError: ``frame`` is not an image, or its size differs from the first frame's.
        """
        grey = _grey(frame)
        size = (grey.shape[1], grey.shape[0])
        if self.image_size is None:
            self.image_size = size
        elif size != self.image_size:
            raise InputError(f"calibration frame of {size[0]}x{size[1]} pixels among frames of "
                             f"{self.image_size[0]}x{self.image_size[1]}: calibrate one camera at one resolution")
        self.frames_seen += 1
        corners = find_corners(grey, self.spec, self.thorough)
        if corners is None:
            return ViewOutcome(None, False, "no board")
        self.boards_found += 1
        return self.add_corners(corners)

    def add_corners(self, corners: np.ndarray) -> ViewOutcome:
        """Keep ``corners`` (cols * rows, 2) of a frame of ``image_size`` as a view unless a kept view is like it."""
        corners = np.asarray(corners, np.float32).reshape(-1, 2)
        if len(corners) != self.spec.corner_count:
            raise InputError(f"a view of the {self.spec} needs {self.spec.corner_count} corners; got {len(corners)}")
        if self.image_size is None:
            raise InputError("the image size is unknown: add a frame first, or give Calibrator(image_size=...)")
        threshold = self.min_change * math.hypot(*self.image_size)
        for i, view in enumerate(self.views):
            change = min(np.linalg.norm(view - corners, axis=1).mean(),
                         np.linalg.norm(view[::-1] - corners, axis=1).mean())  # the board turned by 180 degrees
            if change < threshold:
                return ViewOutcome(corners, False, f"like view {i + 1}")
        self.views.append(corners)
        return ViewOutcome(corners, True)

    def add_frames(self, frames: Iterable[np.ndarray], total: int = 0, progress: Progress | None = None) -> int:
        """``add`` each of ``frames``, reporting ``progress(done, total)`` (``total``: the frame count when known,
        else 0); returns the views kept."""
        kept = 0
        for done, frame in enumerate(frames, 1):
            kept += self.add(frame).kept
            report(progress, done, max(total, done))
        return kept

    def coverage(self) -> Coverage:
        """How the kept views cover the image, how tilted and how far apart in scale they are."""
        if not self.views or self.image_size is None:
            return Coverage(0, 0.0, 0.0, 1.0, False)
        w, h = self.image_size
        cols, rows = self.grid
        points = np.concatenate(self.views)
        cells = {(int(x * cols / w), int(y * rows / h)) for x, y in np.clip(points, 0, [w - 1, h - 1])}
        guess = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
        plane = self.spec.object_points()[:, :2]
        tilts, areas = [], []
        for view in self.views:
            homography, _ = cv2.findHomography(plane, view)
            if homography is None:
                continue
            r1, r2 = (np.linalg.solve(guess, homography)[:, k] for k in (0, 1))
            normal = np.cross(r1 / np.linalg.norm(r1), r2 / np.linalg.norm(r2))
            tilts.append(math.degrees(math.acos(min(1.0, abs(normal[2]) / np.linalg.norm(normal)))))
            areas.append(cv2.contourArea(cv2.convexHull(view)))
        area = len(cells) / (cols * rows)
        max_tilt = max(tilts, default=0.0)
        scale_range = max(areas) / max(min(areas), 1e-9) if areas else 1.0
        ready = len(self.views) >= self.ready_views and area >= 1 / 3 and max_tilt >= 20
        return Coverage(len(self.views), area, max_tilt, scale_range, ready)

    def calibrate(self, flags: int = 0, progress: Progress | None = None) -> CalibrationResult:
        """``calibrate`` on the kept views (at most ``max_views``, evenly spread)."""
        if self.image_size is None:
            raise InputError(f"calibration: no frame was given; show the {self.spec} to the camera")
        chosen = self.views
        if len(chosen) > self.max_views:
            picks = np.linspace(0, len(chosen) - 1, self.max_views).round().astype(int)
            chosen = [chosen[i] for i in picks]
        if len(chosen) < MIN_VIEWS:
            raise InputError(f"calibration needs at least {MIN_VIEWS} different views of the {self.spec}; "
                             f"got {len(chosen)} (the board was found in {self.boards_found} of "
                             f"{self.frames_seen} frames): show the whole board, at several places and tilts")
        return calibrate(chosen, self.spec, self.image_size, flags, progress)


def calibrate(views: list[np.ndarray], spec: ChessboardSpec, image_size: tuple[int, int], flags: int = 0,
              progress: Progress | None = None) -> CalibrationResult:
    """Intrinsics and distortion (k1, k2, p1, p2, k3) from ``views`` (each (cols * rows, 2) image corners of the
    board in ``spec.object_points()``'s order) in images of ``image_size`` (w, h): ``cv2.calibrateCamera`` with
    ``flags`` (``cv2.CALIB_*``). Reports ``progress(done, len(views) + 1)``: the solve, then each view's error.

    Raises:
        InputError: fewer than ``MIN_VIEWS`` views, a view with the wrong number of corners, or a solve that
            fails or gives no finite positive focal length.
    """
    if len(views) < MIN_VIEWS:
        raise InputError(f"calibration needs at least {MIN_VIEWS} views of the {spec}; got {len(views)}")
    image_points = [np.asarray(v, np.float32).reshape(-1, 1, 2) for v in views]
    bad = [i for i, v in enumerate(image_points) if len(v) != spec.corner_count]
    if bad:
        raise InputError(f"calibration views {bad} do not have the {spec.corner_count} corners of the {spec}")
    objects = [spec.object_points()] * len(views)
    total = len(views) + 1
    report(progress, 0, total)
    try:
        rms, matrix, dist, rvecs, tvecs = cv2.calibrateCamera(objects, image_points, tuple(image_size), None, None,
                                                              flags=flags)
    except cv2.error as exc:
        raise InputError(f"calibration of {len(views)} views failed in OpenCV: {exc.err}") from None
    report(progress, 1, total)
    if not (np.all(np.isfinite(matrix)) and matrix[0, 0] > 0 and matrix[1, 1] > 0):
        raise InputError(f"calibration of {len(views)} views gave no usable camera matrix: show the board at "
                         "several tilts")
    errors = []
    for i, (points, rvec, tvec) in enumerate(zip(image_points, rvecs, tvecs)):
        projected, _ = cv2.projectPoints(objects[i], rvec, tvec, matrix, dist)
        errors.append(float(np.sqrt(np.mean(np.sum((projected - points) ** 2, axis=2)))))
        report(progress, i + 2, total)
    return CalibrationResult(matrix.astype(np.float64), dist.ravel().astype(np.float64), float(rms),
                             np.array(errors), (int(image_size[0]), int(image_size[1])), len(views), spec)


def _verify_calibration(path: Path) -> None:
    try:
        Camera.from_file(path)
    except (InputError, OSError) as exc:
        raise OutputError(f"the calibration written to {path} does not read back: {exc}") from None


def check_calibration_path(path: str | Path) -> Path:
    """``path`` as a calibration file to write: a ``CALIBRATION_SUFFIXES`` name where a file may be written.

    Raises:
        InputError: another suffix. OutputError: see ``keynet.files.check_output_path``.
    """
    return check_output_path(path, "calibration file", CALIBRATION_SUFFIXES)


def save_calibration(result: CalibrationResult, path: str | Path) -> Path:
    """Write ``result`` atomically where ``Camera.from_file`` (``track --calibration``) reads it: ``.json``
    (``result.to_dict()``), or OpenCV YAML/XML (``.yaml``, ``.yml``, ``.xml``) with ``camera_matrix``,
    ``dist_coeffs``, ``image_width``, ``image_height`` and ``rms_px``. The file is read back before it replaces
    ``path``. Returns the path.

    Raises:
        InputError: another suffix. OutputError: the file cannot be written.
    """
    path = check_calibration_path(path)
    if path.suffix.lower() == ".json":
        with atomic_path(path, verify=_verify_calibration) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path
    with atomic_path(path, verify=_verify_calibration) as tmp:
        storage = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
        if not storage.isOpened():
            raise OutputError(f"cannot write {path}: OpenCV does not open it for writing")
        storage.write("image_width", result.image_size[0])
        storage.write("image_height", result.image_size[1])
        storage.write("camera_matrix", result.camera_matrix)
        storage.write("dist_coeffs", result.dist_coeffs.reshape(1, -1))
        storage.write("rms_px", result.rms_px)
        storage.write("views", result.views)
        storage.release()
    return path
