"""The repeatability protocol of the Key.Net paper (section 5.2), and matching and homography metrics.

Repeatability (Mikolajczyk & Schmid; Lenc & Vedaldi 2018, as the Key.Net benchmark computes it):

1. Each keypoint is a circle (x, y, radius). Only points inside the region both images see (15 px from either
   image's border, as the authors' masks) count, and of those the ``top_k`` (1,000) best of each image.
2. The second image's points are mapped into the first image by the ground-truth homography; a radius is scaled
   by the square root of the local area change of the homography at the point (|det J| of its Jacobian). A
   circle maps to an ellipse under the local affine approximation of the homography; like the Key.Net
   authors' benchmark (``HSequences_bench``), the ellipse is replaced by the circle of the same area, so the
   overlap of two regions is the closed-form overlap of two circles rather than a rasterised ellipse overlap.
3. For every pair, the overlap is the circles' intersection over union after scale normalisation: both radii are
   multiplied so that the larger is 30 px (the distance between centres is not). In ``L`` (location only) both
   radii are 30 px, as if the scales were right.
4. Pairs are taken greedily in decreasing overlap, each point at most once, while the overlap error
   ``1 - IoU`` is below 0.4. Repeatability = correspondences / min(points in either image).

Candidate pairs are the ones closer than 60 px (vectorised NumPy); the greedy one-to-one assignment
runs in numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np

from .geometry import corner_errors, homography_jacobians, project

NORMALISED_RADIUS = 30.0
MAX_OVERLAP_ERROR = 0.4
COMMON_REGION_BORDER = 15
TOP_K = 1000


def circle_intersection(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Area of intersection of circles of radii ``r1``, ``r2`` whose centres are ``d`` apart (broadcast arrays)."""
    r1, r2, d = np.broadcast_arrays(np.asarray(r1, float), np.asarray(r2, float), np.asarray(d, float))
    out = np.zeros(d.shape)
    inside = d <= np.abs(r1 - r2)
    out[inside] = np.pi * np.minimum(r1, r2)[inside] ** 2
    lens = ~inside & (d < r1 + r2)
    a, b, c = r1[lens], r2[lens], d[lens]
    alpha = np.arccos(np.clip((c**2 + a**2 - b**2) / (2 * c * a), -1, 1))
    beta = np.arccos(np.clip((c**2 + b**2 - a**2) / (2 * c * b), -1, 1))
    out[lens] = a**2 * alpha + b**2 * beta - 0.5 * (a**2 * np.sin(2 * alpha) + b**2 * np.sin(2 * beta))
    return out


def circle_iou(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Intersection over union of circles of radii ``r1``, ``r2`` whose centres are ``d`` apart."""
    inter = circle_intersection(r1, r2, d)
    return inter / (np.pi * np.asarray(r1, float) ** 2 + np.pi * np.asarray(r2, float) ** 2 - inter)


def warp_circles(h: np.ndarray, circles: np.ndarray) -> np.ndarray:
    """Map (N, 3) circles (x, y, radius) by ``h``: centres warped, radii scaled by sqrt(|det J|) at the centre."""
    if len(circles) == 0:
        return np.zeros((0, 3))
    scale = np.sqrt(np.abs(np.linalg.det(homography_jacobians(h, circles[:, :2]))))
    return np.concatenate([project(h, circles[:, :2]), (circles[:, 2] * scale)[:, None]], 1)


def common_region_masks(h: np.ndarray, shape1: tuple[int, int], shape2: tuple[int, int],
                        border: int = COMMON_REGION_BORDER) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks, in image 1 and image 2, of the pixels whose counterpart lies inside the other image.

    ``h`` maps image-1 pixels to image 2; each image loses a ``border``-pixel strip, before and after warping.
    """

    def inner(shape: tuple[int, int]) -> np.ndarray:
        m = np.zeros(shape[:2], np.float32)
        m[border : shape[0] - border, border : shape[1] - border] = 1
        return m

    mask1 = cv2.warpPerspective(inner(shape2), np.linalg.inv(h), (shape1[1], shape1[0])) >= 0.75
    mask2 = cv2.warpPerspective(inner(shape1), h, (shape2[1], shape2[0])) >= 0.75
    return mask1 & (inner(shape1) > 0), mask2 & (inner(shape2) > 0)


def select_in_mask(points: np.ndarray, mask: np.ndarray, top_k: int | None) -> np.ndarray:
    """Indices of the points (sorted by score, best first) whose rounded pixel lies in ``mask``, the first top_k."""
    if len(points) == 0:
        return np.zeros(0, int)
    xi = np.clip(np.round(points[:, 0]).astype(int), 0, mask.shape[1] - 1)
    yi = np.clip(np.round(points[:, 1]).astype(int), 0, mask.shape[0] - 1)
    inside = mask[yi, xi] & (points[:, 0] >= -0.5) & (points[:, 1] >= -0.5)
    inside &= (points[:, 0] < mask.shape[1] - 0.5) & (points[:, 1] < mask.shape[0] - 0.5)
    idx = np.flatnonzero(inside)
    return idx if top_k is None else idx[:top_k]


@numba.njit(cache=True)
def greedy_one_to_one(rows: np.ndarray, cols: np.ndarray, overlap: np.ndarray, min_overlap: float) -> np.ndarray:
    """Pairs taken in decreasing ``overlap``, each row and column index once, while overlap >= min_overlap.

    Args:
        rows, cols: (K,) int64 indices of candidate pairs; overlap: (K,) their overlaps.

    Returns:
        (P,) int64 positions of the chosen pairs in the candidate arrays.
    """
    order = np.argsort(-overlap, kind="mergesort")
    n = rows.max() + 1 if len(rows) else 0
    m = cols.max() + 1 if len(cols) else 0
    used_rows = np.zeros(n, np.bool_)
    used_cols = np.zeros(m, np.bool_)
    chosen = np.empty(min(n, m), np.int64)
    count = 0
    for k in order:
        if overlap[k] < min_overlap:
            break
        i, j = rows[k], cols[k]
        if used_rows[i] or used_cols[j]:
            continue
        used_rows[i] = True
        used_cols[j] = True
        chosen[count] = k
        count += 1
    return chosen[:count]


@dataclass
class Repeatability:
    """Repeatability of one image pair (percentages; errors are mean 1 - IoU over the correspondences)."""

    repeatability_sl: float
    repeatability_l: float
    overlap_error_sl: float
    overlap_error_l: float
    correspondences_sl: int
    correspondences_l: int
    num_points: int  # min of the two images' counts after the common-region and top-k selection


def candidate_overlaps(c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs close enough to overlap, with their scale-normalised IoU (SL) and fixed-radius IoU (L).

    Normalised radii are at most 30 px, so circles whose centres are 60 px or more apart never overlap.

    Returns:
        rows, cols (K,) int64, iou_sl (K,), iou_l (K,).
    """
    d = np.sqrt(((c1[:, None, :2] - c2[None, :, :2]) ** 2).sum(2))
    rows, cols = np.nonzero(d < 2 * NORMALISED_RADIUS)
    dist = d[rows, cols]
    r1, r2 = c1[rows, 2], c2[cols, 2]
    factor = NORMALISED_RADIUS / np.maximum(np.maximum(r1, r2), np.finfo(float).eps)
    iou_sl = circle_iou(r1 * factor, r2 * factor, dist)
    iou_l = circle_iou(NORMALISED_RADIUS, NORMALISED_RADIUS, dist)
    return rows.astype(np.int64), cols.astype(np.int64), iou_sl, iou_l


def repeatability(circles1: np.ndarray, circles2: np.ndarray, h: np.ndarray) -> Repeatability:
    """Repeatability of two images' keypoints already restricted to their common region and top-k.

    Args:
        circles1: (N1, 3) x, y, radius in image 1.
        circles2: (N2, 3) x, y, radius in image 2.
        h: 3x3 homography mapping image-1 pixels to image 2.
    """
    n = min(len(circles1), len(circles2))
    if n == 0:
        return Repeatability(0.0, 0.0, 0.0, 0.0, 0, 0, 0)
    rows, cols, iou_sl, iou_l = candidate_overlaps(circles1, warp_circles(np.linalg.inv(h), circles2))
    found = []
    for iou in (iou_sl, iou_l):
        chosen = greedy_one_to_one(rows, cols, iou, 1 - MAX_OVERLAP_ERROR)
        found.append((len(chosen), float(np.mean(1 - iou[chosen])) if len(chosen) else 0.0))
    (count_sl, error_sl), (count_l, error_l) = found
    return Repeatability(100.0 * count_sl / n, 100.0 * count_l / n, error_sl, error_l, count_sl, count_l, n)


def mutual_nearest_neighbours(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """(K, 2) index pairs that are each other's nearest neighbour in L2 distance."""
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), int)
    a, b = desc1.astype(np.float32), desc2.astype(np.float32)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    nn12, nn21 = d2.argmin(1), d2.argmin(0)
    i = np.flatnonzero(nn21[nn12] == np.arange(len(a)))
    return np.stack([i, nn12[i]], 1)


def match_errors(xy1: np.ndarray, xy2: np.ndarray, matches: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Reprojection error (px, in image 1) of each match when image-2 points are mapped back by ``h``."""
    if len(matches) == 0:
        return np.zeros(0)
    back = project(np.linalg.inv(h), xy2[matches[:, 1]])
    return np.linalg.norm(xy1[matches[:, 0]] - back, axis=1)


def corner_error(h_est: np.ndarray | None, h_true: np.ndarray, shape1: tuple[int, int]) -> float:
    """Mean of ``geometry.corner_errors`` (px) at image 1's corners, ``shape1`` = (H, W[, C]); inf without an
    estimate."""
    if h_est is None:
        return float("inf")
    return float(corner_errors(h_est, h_true, (shape1[1], shape1[0])).mean())
