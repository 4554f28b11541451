"""Planar targets: building one over a small pyramid of its image, rating how well it will track, and choosing the
points the photometric alignment works at.

    target = make_target(image, "poster", detector, describer, TargetConfig())
    target.quality = assess(target, detector, describer, TrackerConfig())
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .config import AlignmentConfig, TargetConfig, TrackerConfig
from .describe import Describer, Descriptors
from .detect import KeyNetDetector
from .errors import InputError
from .geometry import corners_of, local_scale, project
from .match import distance_matrix, mutual_nn_ratio
from .progress import Progress, report

# The star rating (``assess``): stars = round(5 * (COUNT_WEIGHT * count + SPREAD_WEIGHT * spread
# + STABILITY_WEIGHT * stability)), each term in 0..1. ``count`` is the keypoints over FULL_COUNT; ``spread`` the
# share of the SPREAD_GRID x SPREAD_GRID cells holding keypoints; ``stability`` twice the mean share of keypoints
# found again within MATCH_PX of where a synthetic warp moved them (each corner of the warp moved by up to
# WARP_AMOUNT of the target's side), capped at 1.
COUNT_WEIGHT, SPREAD_WEIGHT, STABILITY_WEIGHT = 0.3, 0.3, 0.4
FULL_COUNT = 300
SPREAD_GRID = 4
WARP_AMOUNT = 0.12
MATCH_PX = 3.0
STABILITY_GAIN = 2.0


@dataclass
class TargetQuality:
    """How well a candidate target will track (like Vuforia's star rating).

    Attributes:
        keypoints: keypoints found on it; spread: share of the 4x4 grid cells holding keypoints (0..1);
        stability: mean inlier share when matching it to synthetic warps of itself (0..1); stars: 0..5.
    """

    keypoints: int
    spread: float
    stability: float
    stars: int


@dataclass
class Target:
    """A planar target: its image, size, described keypoints (over a small pyramid of itself) and quality.

    ``xy`` (N, 2) are in the target's pixels; ``scales`` (N,) the pyramid level (target scale) each was found at
    and ``scores`` (N,) its detector score (without them: one level, equal scores).
    """

    name: str
    image: np.ndarray
    size: tuple[int, int]
    xy: np.ndarray
    descriptors: Descriptors
    quality: TargetQuality | None = None
    scales: np.ndarray | None = None
    scores: np.ndarray | None = None
    grey: np.ndarray = field(init=False, repr=False)
    level_rows: dict[float, np.ndarray] = field(init=False, repr=False)  # level -> its rows, best score first

    def __post_init__(self) -> None:
        self.grey = self.image if self.image.ndim == 2 else cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY)
        n = len(self.xy)
        self.scales = np.ones(n, np.float32) if self.scales is None else np.asarray(self.scales, np.float32)
        self.scores = np.zeros(n, np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        if len(self.scales) != n or len(self.scores) != n:
            raise InputError(f"target {self.name!r}: {n} points but {len(self.scales)} scales and "
                             f"{len(self.scores)} scores")
        by_score = np.argsort(-self.scores, kind="stable")
        self.level_rows = {float(s): by_score[self.scales[by_score] == s] for s in np.unique(self.scales)}

    @property
    def corners(self) -> np.ndarray:
        """(4, 2) float32 ``corners_of(*size)``."""
        return corners_of(*self.size)


def make_target(image: np.ndarray, name: str, detector: KeyNetDetector, describer: Describer,
                config: TargetConfig | None = None, progress: Progress | None = None) -> Target:
    """Detect and describe ``image`` ((H, W[, 3]) uint8) at each of ``config.target_scales`` as one target.

    ``progress(done, levels)`` is called after each pyramid level.

    Raises:
        InputError: an empty image, or fewer than ``config.min_target_keypoints`` keypoints on it.
    """
    config = config or TargetConfig()
    if image is None or image.size == 0:
        raise InputError(f"target {name!r} is an empty image")
    h, w = image.shape[:2]
    xys, descs, scales, scores = [], [], [], []
    for done, s in enumerate(config.target_scales, 1):
        scaled = image if s == 1 else cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        if min(scaled.shape[:2]) >= detector.min_image_side:
            kps = detector.detect(scaled, config.target_keypoints)[0]
            d = describer(scaled, kps)
            xys.append(kps.xy.cpu().numpy()[d.index] / s)
            scores.append(kps.score.cpu().numpy()[d.index])
            scales.append(np.full(len(d.index), s, np.float32))
            descs.append(d)
        report(progress, done, len(config.target_scales))
    n = sum(len(x) for x in xys)
    minimum = config.min_target_keypoints
    if n < minimum:
        raise InputError(f"target {name!r} ({w}x{h}) has {n} usable keypoints; tracking needs at least {minimum} "
                         "(choose a larger or more textured region)")
    desc = Descriptors(np.concatenate([d.index for d in descs]), torch.cat([d.data for d in descs]), descs[0].binary)
    return Target(name, image, (w, h), np.concatenate(xys).astype(np.float32), desc, None,
                  np.concatenate(scales), np.concatenate(scores))


def assess(target: Target, detector: KeyNetDetector, describer: Describer, config: TrackerConfig | None = None,
           seed: int = 0) -> TargetQuality:
    """The star rating of ``target``: keypoint count, spread over a grid, stability under ``config.targets.
    quality_warps`` synthetic warps of itself (matched with ``config.matching.ratio``); constants above."""
    config = config or TrackerConfig()
    w, h = target.size
    cells = np.unique(np.floor(target.xy / [w / SPREAD_GRID, h / SPREAD_GRID]).clip(0, SPREAD_GRID - 1)
                      @ [1, SPREAD_GRID])
    spread = len(cells) / SPREAD_GRID**2
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(config.targets.quality_warps):
        quad = target.corners + rng.uniform(-WARP_AMOUNT, WARP_AMOUNT, (4, 2)).astype(np.float32) * [w, h]
        hw = cv2.getPerspectiveTransform(target.corners, quad.astype(np.float32))
        warped = cv2.warpPerspective(target.image, hw, (w, h), borderMode=cv2.BORDER_REFLECT)
        kps = detector.detect(warped)[0]
        d = describer(warped, kps)
        xy = kps.xy.cpu().numpy()[d.index]
        m, _ = mutual_nn_ratio(distance_matrix(target.descriptors, d), config.matching.ratio)
        good = np.linalg.norm(project(hw, target.xy[m[:, 0]]) - xy[m[:, 1]], axis=1) < MATCH_PX if len(m) else []
        shares.append(float(np.sum(good)) / max(1, min(len(xy), len(target.xy))))
    stability = float(np.clip(np.mean(shares) * STABILITY_GAIN, 0, 1)) if shares else 0.0
    count = min(1.0, len(target.xy) / FULL_COUNT)
    stars = int(round(5 * (COUNT_WEIGHT * count + SPREAD_WEIGHT * spread + STABILITY_WEIGHT * stability)))
    return TargetQuality(len(target.xy), spread, stability, stars)


def alignment_points(target: Target, h: np.ndarray, frame_shape: tuple[int, ...], inlier_rows: np.ndarray,
                     count: int, margin: float = AlignmentConfig.align_margin) -> np.ndarray:
    """(K, 2) target points to align at: the inliers' (``inlier_rows`` of ``target.xy``) and the ``count``
    best-scoring keypoints of the target level closest to the scale ``h`` shows the target at (its detector's
    choice of textured places for this view) that ``h`` maps inside the frame, ``margin`` px from its border.

    More points than the inliers alone steady the fit when few match (blur, a fast turn); the robust fit of
    ``align_homography`` drops those that are hidden.
    """
    if count <= 0:
        return target.xy[inlier_rows]
    w, hgt = target.size
    scale = local_scale(h, np.array([w / 2, hgt / 2]))
    level = min(target.level_rows, key=lambda s: abs(math.log(s / max(scale, 1e-6))))
    rows = target.level_rows[level]
    seen = project(h, target.xy[rows])
    inside = ((seen[:, 0] >= margin) & (seen[:, 1] >= margin) & (seen[:, 0] < frame_shape[1] - margin)
              & (seen[:, 1] < frame_shape[0] - margin))
    return target.xy[np.union1d(inlier_rows, rows[inside][:count])]


__all__ = ["Target", "TargetQuality", "make_target", "assess", "alignment_points"]


def predicted_box(target: Target, h: np.ndarray, frame_size: tuple[int, int], margin: float,
                  pad: float) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) box of ``frame_size`` = (w, h) where ``target`` is expected: its corners under ``h``,
    grown by ``margin`` of the box's size and ``pad`` pixels, clipped to the frame."""
    corners = project(h, target.corners)
    lo, hi = corners.min(0), corners.max(0)
    grow = margin * (hi - lo) + pad
    x0, y0 = np.clip(lo - grow, 0, frame_size)
    x1, y1 = np.clip(hi + grow, 0, frame_size)
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
