"""Planar geometry: robust homographies, plausibility checks, camera intrinsics and pose."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import GeometryConfig
from .errors import InputError

MIN_MATCHES = 8


def corners_of(width: int, height: int) -> np.ndarray:
    """(4, 2) float32 corners of a width x height image: top-left, top-right, bottom-right, bottom-left."""
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def project(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by the 3x3 homography ``h``."""
    if len(points) == 0:
        return np.zeros((0, 2), np.float32)
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), h).reshape(-1, 2)


def estimate_homography(src: np.ndarray, dst: np.ndarray, threshold: float = 3.0,
                        confidence: float = 0.999, max_iters: int = 2000) -> tuple[np.ndarray | None, np.ndarray]:
    """USAC MAGSAC homography from ``src`` (N, 2) to ``dst`` (N, 2), refined by least squares on its inliers.

    Returns:
        H: 3x3 float64 or None (too few matches or no model); inliers: (N,) bool.
    """
    n = len(src)
    if n < MIN_MATCHES:
        return None, np.zeros(n, bool)
    h, mask = cv2.findHomography(np.float32(src), np.float32(dst), cv2.USAC_MAGSAC, threshold,
                                 maxIters=max_iters, confidence=confidence)
    if h is None or mask is None:
        return None, np.zeros(n, bool)
    inliers = mask.ravel().astype(bool)
    if inliers.sum() >= MIN_MATCHES:
        refined, _ = cv2.findHomography(np.float32(src[inliers]), np.float32(dst[inliers]), 0)
        if refined is not None:
            err = np.linalg.norm(project(refined, src) - dst, axis=1)
            if (err[inliers] < threshold * 1.5).mean() >= 0.9:
                h, inliers = refined, err < threshold
    return h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h, inliers


def corner_errors(h_est: np.ndarray, h_true: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4,) distances (px) between the corners ``corners_of(w, h)`` of a ``size`` = (w, h) image mapped by the
    estimated and by the true homography: the project's one corner error (its corners at 0 and w, h, the
    image's outer edges)."""
    corners = corners_of(*size)
    return np.linalg.norm(project(h_est, corners) - project(h_true, corners), axis=1)


def homography_jacobians(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2, 2) the Jacobian d(project(h, p)) / dp of the homography ``h`` at each of ``points`` (N, 2)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jac = np.empty((len(points), 2, 2))
    jac[:, 0, 0] = (h[0, 0] - u * h[2, 0]) / w
    jac[:, 0, 1] = (h[0, 1] - u * h[2, 1]) / w
    jac[:, 1, 0] = (h[1, 0] - v * h[2, 0]) / w
    jac[:, 1, 1] = (h[1, 1] - v * h[2, 1]) / w
    return jac


def local_scale(h: np.ndarray, point: np.ndarray) -> float:
    """How much ``h`` magnifies around ``point`` (2,): the square root of its Jacobian's determinant there."""
    return float(np.sqrt(abs(np.linalg.det(homography_jacobians(h, point)[0]))))


def implausible(h: np.ndarray | None, corners: np.ndarray, limits: GeometryConfig | None = None) -> str:
    """Why ``h`` cannot be a view of a planar target with ``corners`` (4, 2), or "" when it can.

    Rejected: no or non-finite matrix, near-singular (singular values' ratio below ``limits.min_singular_ratio``),
    a mirror image (flipped), a non-convex quad (the plane crosses the horizon), a collapsed quad (area below
    ``limits.min_area`` px² or a side below ``limits.min_side`` px) or an area changed by more than
    ``limits.max_area_ratio`` either way. ``limits`` default: ``GeometryConfig()``.
    """
    limits = limits or GeometryConfig()
    if h is None or not np.all(np.isfinite(h)):
        return "no homography"
    s = np.linalg.svd(h[:2, :2] / max(abs(h[2, 2]), 1e-12), compute_uv=False)
    if s[-1] < limits.min_singular_ratio * s[0] or s[-1] < 1e-4:
        return "near-singular"
    w = h[2, 0] * corners[:, 0] + h[2, 1] * corners[:, 1] + h[2, 2]
    if np.any(w <= 0):
        return "target behind the camera"
    quad = project(h, corners)
    edges = np.roll(quad, -1, 0) - quad
    cross = edges[:, 0] * np.roll(edges, -1, 0)[:, 1] - edges[:, 1] * np.roll(edges, -1, 0)[:, 0]
    src_edges = np.roll(corners, -1, 0) - corners
    src_sign = np.sign(src_edges[0, 0] * src_edges[1, 1] - src_edges[0, 1] * src_edges[1, 0])
    if np.all(np.sign(cross) == -src_sign):
        return "flipped"
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return "non-convex"
    area = abs(cv2.contourArea(quad.astype(np.float32)))
    src_area = abs(cv2.contourArea(corners.astype(np.float32)))
    if area < limits.min_area or np.linalg.norm(edges, axis=1).min() < limits.min_side:
        return "collapsed"
    if not (1 / limits.max_area_ratio < area / src_area < limits.max_area_ratio):
        return "implausible scale"
    return ""


@dataclass
class Camera:
    """Pinhole intrinsics: ``matrix`` (3, 3) and ``dist`` (N,) OpenCV distortion coefficients."""

    matrix: np.ndarray
    dist: np.ndarray

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = GeometryConfig.fov_deg) -> Camera:
        """A camera with the horizontal field of view ``fov_deg`` and the principal point at the centre."""
        if not 1 < fov_deg < 179:
            raise InputError(f"field of view must be between 1 and 179 degrees; got {fov_deg}")
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]), np.zeros(5))

    @classmethod
    def from_file(cls, path: str | Path) -> Camera:
        """Read ``camera_matrix`` and ``dist_coeffs`` from an OpenCV YAML/XML file or a JSON file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file {path} does not exist")
        expected = "camera_matrix (3x3) and dist_coeffs"
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text())
                matrix, dist = data["camera_matrix"], data.get("dist_coeffs", [0, 0, 0, 0, 0])
            else:
                fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
                if not fs.isOpened():
                    raise ValueError("OpenCV cannot open it")
                matrix, dist = fs.getNode("camera_matrix").mat(), fs.getNode("dist_coeffs").mat()
                fs.release()
                if dist is None:
                    dist = np.zeros(5)
            matrix = np.asarray(matrix, np.float64).reshape(3, 3)
            dist = np.asarray(dist, np.float64).ravel()
        except (ValueError, KeyError, TypeError, AttributeError, cv2.error, SystemError) as exc:
            raise InputError(f"calibration file {path} does not parse: expected {expected} "
                             f"(OpenCV YAML/XML or JSON); {_reason(exc)}") from None
        if not np.all(np.isfinite(matrix)) or matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
            raise InputError(f"calibration file {path}: camera_matrix needs positive focal lengths; got "
                             f"{matrix.tolist()}")
        return cls(matrix, dist)

    def to_dict(self) -> dict[str, list]:
        """``{"camera_matrix": 3x3 nested list, "dist_coeffs": list}`` (the JSON calibration format ``from_file``
        reads)."""
        return {"camera_matrix": self.matrix.tolist(), "dist_coeffs": np.asarray(self.dist).ravel().tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> Camera:
        """The inverse of ``to_dict``."""
        return cls(np.asarray(data["camera_matrix"], np.float64).reshape(3, 3),
                   np.asarray(data.get("dist_coeffs", np.zeros(5)), np.float64).ravel())


def _reason(exc: BaseException) -> str:
    """Why reading a file failed, in one line: an OpenCV error without its source location (cv2.FileStorage's
    parser raises it wrapped in a ``SystemError``), another error by its type and message."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, SystemError) and isinstance(cause, cv2.error):
        exc = cause
    text = re.sub(r"^OpenCV\([^)]*\) \S+: error: ", "", str(exc)) if isinstance(exc, cv2.error) else \
        f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


@dataclass
class Pose:
    """Target-to-camera pose: ``rvec`` (3,) Rodrigues rotation, ``tvec`` (3,) translation in target-width units."""

    rvec: np.ndarray
    tvec: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """``{"rvec": [3], "tvec": [3]}``."""
        return {"rvec": self.rvec.ravel().tolist(), "tvec": self.tvec.ravel().tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Pose:
        """The inverse of ``to_dict``."""
        return cls(np.asarray(data["rvec"], np.float64), np.asarray(data["tvec"], np.float64))


def target_points(width: int, height: int) -> np.ndarray:
    """(4, 3) the target's corners on the z = 0 plane, the width scaled to 1."""
    return np.array([[0, 0, 0], [1, 0, 0], [1, height / width, 0], [0, height / width, 0]], np.float64)


def pose_from_homography(h: np.ndarray, target_size: tuple[int, int], camera: Camera) -> Pose | None:
    """The pose of a ``target_size`` (width, height) plane seen through ``h`` (IPPE on its four corners)."""
    w, hgt = target_size
    image_corners = project(h, corners_of(w, hgt))
    ok, rvec, tvec = cv2.solvePnP(target_points(w, hgt), image_corners, camera.matrix, camera.dist,
                                  flags=cv2.SOLVEPNP_IPPE)
    return Pose(rvec.ravel(), tvec.ravel()) if ok else None
