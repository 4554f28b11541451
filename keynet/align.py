"""Photometric refinement of a target -> frame homography: relight, Lucas-Kanade, weighted robust refit.

``align_homography`` warps the target by the current homography, relights it to the frame's local brightness
(``local_brightness_transfer``), moves each alignment point to where the frame shows it (pyramidal Lucas-Kanade)
and refits the homography by ``fit_homography_weighted``, each point weighted by its window's structure tensor
(``structure_tensors``): a point on an edge is certain only across the edge, one on a corner in every direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import AlignmentConfig
from .geometry import MIN_MATCHES, corners_of, project

DEFAULTS = AlignmentConfig()


def local_brightness_transfer(image: np.ndarray, reference: np.ndarray, inside: np.ndarray,
                              cell: int = DEFAULTS.align_cell,
                              sigma: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Gain and offset that give ``image`` the local mean and contrast of ``reference``, both measured over ``inside``.

    The statistics are taken on a grid of ``cell``-pixel cells (from the images at half size), smoothed over
    ``sigma`` cells and interpolated back, so a lighting change that varies slowly across the view (a lamp to one
    side, the exposure) is removed while texture is kept: ``gain * image + offset`` (``relight``) is the image in
    the reference's lighting.

    Args:
        image, reference: (H, W) uint8; inside: (H, W) bool, where both show the same surface.

    Returns:
        gain, offset: (H, W) float32.
    """
    h, w = reference.shape
    half = (max(1, w // 2), max(1, h // 2))
    small = (max(1, w // cell), max(1, h // cell))
    even = (slice(0, max(1, h - h % 2)), slice(0, max(1, w - w % 2)))  # exact halving: OpenCV's fast path, 40x

    def halved(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a[even], half, interpolation=cv2.INTER_AREA).astype(np.float32)

    mask = halved(inside.view(np.uint8) * np.uint8(255)) / 255
    x, ref = halved(image), halved(reference)

    def local_mean(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(cv2.resize(a, small, interpolation=cv2.INTER_AREA), (0, 0), sigma)

    weight = local_mean(mask) + 1e-4
    x_in, ref_in = x * mask, ref * mask
    mean_x, mean_ref = local_mean(x_in) / weight, local_mean(ref_in) / weight
    var_x = local_mean(x * x_in) / weight - mean_x**2
    var_ref = local_mean(ref * ref_in) / weight - mean_ref**2
    gain = np.sqrt(np.maximum(var_ref, 1.0) / np.maximum(var_x, 1.0))
    offset = mean_ref - gain * mean_x
    gain, offset = (cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in (gain, offset))
    return gain, offset


def relight(image: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(H, W) uint8 ``gain * image + offset``, clipped to 0..255."""
    out = image.astype(np.float32)
    out *= gain
    out += offset
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def structure_tensors(image: np.ndarray, points: np.ndarray, window: int) -> np.ndarray:
    """The structure tensor of ``image`` summed over the ``window`` x ``window`` box around each point.

    Args:
        image: (H, W) uint8 or float32; points: (N, 2) x, y (rounded to the nearest pixel); window: odd box side.

    Returns:
        (N, 2, 2) float64 [[sum gx^2, sum gx gy], [sum gx gy, sum gy^2]], Scharr gradients in grey levels per pixel
        (the box is cut at the image border).
    """
    if len(points) == 0:
        return np.zeros((0, 2, 2))
    r = window // 2
    h, w = image.shape
    xi = np.clip(np.rint(points[:, 0]), 0, w - 1).astype(np.int64)
    yi = np.clip(np.rint(points[:, 1]), 0, h - 1).astype(np.int64)
    # integral images over the points' bounding box only, with one pixel more for the gradients
    xa, ya = max(0, int(xi.min()) - r - 1), max(0, int(yi.min()) - r - 1)
    xb, yb = min(w, int(xi.max()) + r + 2), min(h, int(yi.max()) + r + 2)
    crop = image[ya:yb, xa:xb].astype(np.float32)
    gx = cv2.Scharr(crop, cv2.CV_32F, 1, 0, scale=1 / 32)
    gy = cv2.Scharr(crop, cv2.CV_32F, 0, 1, scale=1 / 32)
    cw, ch = xb - xa, yb - ya
    left, right = np.clip(xi - r - xa, 0, cw), np.clip(xi + r + 1 - xa, 0, cw)
    top, bottom = np.clip(yi - r - ya, 0, ch), np.clip(yi + r + 1 - ya, 0, ch)
    sums = []
    for product in (gx * gx, gx * gy, gy * gy):
        s = cv2.integral(product, sdepth=cv2.CV_64F)
        sums.append(s[bottom, right] - s[top, right] - s[bottom, left] + s[top, left])
    xx, xy, yy = sums
    return np.stack([np.stack([xx, xy], 1), np.stack([xy, yy], 1)], 1)


def window_weights(image: np.ndarray, points: np.ndarray, window: int, step: int = DEFAULTS.align_weight_step) -> \
        np.ndarray:
    """(N, 2, 2) ``structure_tensors`` of the ``window`` boxes around ``points`` (N, 2), measured on ``image``
    reduced ``step`` times (area average; boxes of ``window // step`` px, odd): the same directions and relative
    strengths for a ``step``² share of the work. ``step`` 1: ``structure_tensors`` itself."""
    if step <= 1 or len(points) == 0:
        return structure_tensors(image, points, window)
    h, w = image.shape
    x0, y0 = (max(0, int(v) - window) for v in np.floor(points.min(0)))
    x1, y1 = (int(min(side, v + window + 1)) for side, v in zip((w, h), np.ceil(points.max(0))))
    crop = image[y0:y1, x0:x1]
    size = (max(1, crop.shape[1] // step), max(1, crop.shape[0] // step))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return structure_tensors(small, (points - [x0, y0]) / step, max(3, window // step | 1))


def _normaliser(points: np.ndarray) -> np.ndarray:
    """3x3 similarity moving ``points`` to zero mean and an RMS distance of sqrt(2) from it."""
    centre = points.mean(0)
    spread = max(float(np.sqrt(((points - centre) ** 2).sum(1).mean() / 2)), 1e-9)
    return np.array([[1 / spread, 0, -centre[0] / spread], [0, 1 / spread, -centre[1] / spread], [0, 0, 1]])


def fit_homography_weighted(src: np.ndarray, dst: np.ndarray, weights: np.ndarray, h: np.ndarray,
                            iterations: int = DEFAULTS.align_fit_iterations,
                            cutoff: float = DEFAULTS.align_cutoff) -> tuple[np.ndarray, np.ndarray]:
    """The homography that minimises sum_i r_i^T W_i r_i, r_i = project(H, src_i) - dst_i, over the inliers.

    Gauss-Newton from ``h`` in normalised coordinates. Each iteration keeps the points whose whitened residual
    sqrt(r^T W r), in pixels for a point of median weight, is within ``cutoff`` robust standard deviations
    (1.4826 x the median); points outside do not pull the fit.

    Args:
        src, dst: (N, 2) corresponding points; weights: (N, 2, 2) symmetric positive semi-definite, the inverse
        covariance of each ``dst`` up to a common factor (e.g. ``structure_tensors``); h: 3x3 starting homography.

    Returns:
        H: 3x3 float64 (h[2, 2] = 1), or ``h`` when fewer than ``MIN_MATCHES`` points are usable; inliers: (N,) bool.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = len(src)
    weights = np.asarray(weights, np.float64)
    scale = np.median(np.trace(weights, axis1=1, axis2=2)) / 2 if n else 0.0
    inliers = np.zeros(n, bool)
    if n < MIN_MATCHES or not scale > 0:
        return h, inliers
    weights = weights / scale + 1e-6 * np.eye(2)
    t_src, t_dst = _normaliser(src), _normaliser(dst)
    ps = project(t_src, src)
    pd = project(t_dst, dst)
    k = t_dst[0, 0]  # dst pixels -> normalised units
    hn = t_dst @ h @ np.linalg.inv(t_src)
    params = (hn / hn[2, 2]).ravel()[:8]
    # whitening: W = L L^T (2x2 Cholesky), r^T W r = |L^T r|^2; weights are per dst pixel, residuals normalised
    a = np.sqrt(weights[:, 0, 0])
    b = weights[:, 0, 1] / a
    c = np.sqrt(np.maximum(weights[:, 1, 1] - b**2, 0.0))
    x, y = ps[:, 0], ps[:, 1]
    for _ in range(iterations):
        m = np.append(params, 1.0).reshape(3, 3)
        u, v, s = (m[i, 0] * x + m[i, 1] * y + m[i, 2] for i in range(3))
        px, py = u / s, v / s
        rx, ry = px - pd[:, 0], py - pd[:, 1]
        wx, wy = (a * rx + b * ry) / k, (c * ry) / k  # L^T r in pixels
        err = np.hypot(wx, wy)
        sigma = max(1.4826 * float(np.median(err)), 0.02)
        inliers = err < cutoff * sigma
        if inliers.sum() < MIN_MATCHES:
            return h, np.zeros(n, bool)
        zero = np.zeros_like(x)
        jx = np.stack([x / s, y / s, 1 / s, zero, zero, zero, -px * x / s, -px * y / s], 1)
        jy = np.stack([zero, zero, zero, x / s, y / s, 1 / s, -py * x / s, -py * y / s], 1)
        jwx, jwy = (a[:, None] * jx + b[:, None] * jy) / k, (c[:, None] * jy) / k
        jac = np.concatenate([jwx[inliers], jwy[inliers]])
        res = np.concatenate([wx[inliers], wy[inliers]])
        try:  # the normal equations: 8 x 8, in normalised coordinates well conditioned
            step = np.linalg.solve(jac.T @ jac, -(jac.T @ res))
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(jac, -res, rcond=None)[0]
        params = params + step
        if np.abs(step).max() < 1e-7:
            break
    m = np.linalg.inv(t_dst) @ np.append(params, 1.0).reshape(3, 3) @ t_src
    if not np.isfinite(m).all() or abs(m[2, 2]) < 1e-12:
        return h, np.zeros(n, bool)
    return m / m[2, 2], inliers


@dataclass
class Alignment:
    """What ``align`` found: ``homography`` (3x3 float64), ``residual_px`` (RMS distance, px, of the last refit's
    inliers from their aligned positions; None when the alignment kept the start) and ``inliers`` (their count)."""

    homography: np.ndarray
    residual_px: float | None = None
    inliers: int = 0


def align_homography(target: np.ndarray, frame: np.ndarray, h: np.ndarray, points: np.ndarray,
                     config: AlignmentConfig | None = None) -> np.ndarray:
    """``align(target, frame, h, points, config).homography``: ``h`` refined photometrically."""
    return align(target, frame, h, points, config).homography


def align(target: np.ndarray, frame: np.ndarray, h: np.ndarray, points: np.ndarray,
          config: AlignmentConfig | None = None) -> Alignment:
    """Refine ``h`` (target -> frame) photometrically, ``config.align_passes`` times: the target warped by ``h``,
    in the frame's local lighting, is laid over the frame and aligned to it around ``points`` by pyramidal
    Lucas-Kanade (``align_window`` px windows, ``align_levels`` levels, ``align_iterations`` / ``align_epsilon``);
    the homography is refitted to the aligned positions by ``fit_homography_weighted`` (structure-tensor weights
    by ``window_weights`` at ``align_weight_step``, outliers out). The next pass starts from the refit, so points
    beyond ``align_max_shift`` px at first come back; when a pass moved no corner by ``align_converged_px`` or more,
    it converged (the next would move them by hundredths of a pixel) and no other pass is made.

    Keypoint positions carry the detector's localisation noise; the aligned positions do not, so the corners
    settle to a fraction of a pixel. With fewer than ``MIN_MATCHES`` usable points, ``h`` is returned unchanged.

    Args:
        target: (h, w) uint8 grey target image; frame: (H, W) uint8 grey frame; h: 3x3 homography.
        points: (N, 2) target points to align at (textured places: keypoints of the target).
        config: the alignment's settings (default ``AlignmentConfig()``).
    """
    c = config or DEFAULTS
    kept = Alignment(h)
    if len(points) < MIN_MATCHES:
        return kept
    corners = corners_of(target.shape[1], target.shape[0])
    quad = project(h, corners)
    x0, y0 = np.floor(np.maximum(quad.min(0), 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(quad.max(0) + 1, [frame.shape[1], frame.shape[0]])).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return kept
    size = (int(x1 - x0), int(y1 - y0))
    to_box = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    weights = None
    opaque = np.full(target.shape[:2], 255, np.uint8)
    window = (c.align_window, c.align_window)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, c.align_iterations, c.align_epsilon)
    result = kept
    for _ in range(c.align_passes):
        # The target, in the frame's lighting, over the frame itself: windows reaching past its edge see the scene
        # there, not black, and a brightness difference does not pull Lucas-Kanade. Only the target's bounding box
        # is warped; its mask and lighting follow h (measured with a stale mask, the edge cells are off), the
        # weights of the first pass serve the next.
        in_box = to_box @ h
        box = cv2.warpPerspective(target, in_box, size, flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(opaque, in_box, size, flags=cv2.INTER_NEAREST) > 0
        gain, offset = local_brightness_transfer(box, frame[y0:y1, x0:x1], inside, c.align_cell)
        warped = frame.copy()
        np.copyto(warped[y0:y1, x0:x1], relight(box, gain, offset), where=inside)
        predicted = project(h, points).astype(np.float32).reshape(-1, 1, 2)
        if weights is None:
            weights = window_weights(warped, predicted.reshape(-1, 2), c.align_window, c.align_weight_step)
        aligned, status, _ = cv2.calcOpticalFlowPyrLK(
            warped, frame, predicted, predicted.copy(), winSize=window, maxLevel=c.align_levels,
            flags=cv2.OPTFLOW_USE_INITIAL_FLOW, criteria=criteria)
        shift = np.linalg.norm(aligned - predicted, axis=2).ravel()
        ok = status.ravel().astype(bool) & (shift < c.align_max_shift) & np.isfinite(aligned.reshape(-1, 2)).all(1)
        if ok.sum() < MIN_MATCHES:
            return result
        src, dst = np.float32(points[ok]), aligned.reshape(-1, 2)[ok]
        start, _ = cv2.findHomography(src, dst, 0)  # least squares: the robust fit's scale starts from its residuals
        if start is None:
            return result
        refined, inliers = fit_homography_weighted(src, dst, weights[ok], start, c.align_fit_iterations,
                                                   c.align_cutoff)
        if not inliers.any():
            return result
        moved = float(np.abs(project(refined, corners) - project(h, corners)).max())
        h = refined
        residual = np.linalg.norm(project(h, src[inliers]) - dst[inliers], axis=1)
        result = Alignment(h, float(np.sqrt(np.mean(residual**2))), int(inliers.sum()))
        if moved < c.align_converged_px:
            break
    return result
