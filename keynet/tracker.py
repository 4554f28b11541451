"""Planar target tracking: detect, describe, match to each target (guided by the last pose), estimate, correct.

Typical use (the app, the ``track`` command and the benchmark all do this)::

    tracker = PlanarTracker(tracking_detector(model), Describer(descriptor="orb"))
    tracker.add_target(target_image)                       # or tracker.add_target_roi(frame, (x, y, w, h))
    for index, frame, stamp in open_source("demo"):
        result = tracker.process(frame, index, stamp)     # FrameResult: states, homographies, timings, events
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from .align import align_homography
from .describe import Describer, Descriptors
from .detect import KeyNetDetector, Keypoints
from .geometry import (
    Camera,
    Pose,
    corners_of,
    estimate_homography,
    implausible,
    local_scale,
    pose_from_homography,
    project,
)
from .match import TrackBook, distance_matrix, guided_matches, mutual_nn_ratio
from .timing import StageTimer

SEARCHING, TRACKING, LOST = "searching", "tracking", "lost"
TRACKING_DETECTOR_CONF: dict[str, Any] = {
    "mode": "fast", "multi_scale": False, "subpixel": True, "nms_size": 9, "num_keypoints": 500}


def tracking_detector(model: torch.nn.Module, **conf: Any) -> KeyNetDetector:
    """The detector real-time tracking uses: fast mode, one scale, sub-pixel maxima, 500 keypoints with a 9 px NMS
    (dense enough for the photometric alignment); ``conf`` overrides."""
    return KeyNetDetector(model, **{**TRACKING_DETECTOR_CONF, **conf})


class OneEuroFilter:
    """One-Euro filter (Casiez et al., CHI 2012) on a vector: little jitter when still, little lag when moving.

    Args:
        min_cutoff: cutoff frequency (Hz) at rest; beta: how fast the cutoff grows with speed; d_cutoff: for the speed.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()


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
            raise ValueError(f"target {self.name!r}: {n} points but {len(self.scales)} scales and "
                             f"{len(self.scores)} scores")
        by_score = np.argsort(-self.scores, kind="stable")
        self.level_rows = {float(s): by_score[self.scales[by_score] == s] for s in np.unique(self.scales)}

    @property
    def corners(self) -> np.ndarray:
        return corners_of(*self.size)


@dataclass
class TargetResult:
    """One target in one frame.

    Attributes:
        name, state: ``searching``, ``tracking`` or ``lost``.
        homography: 3x3 target -> frame after smoothing (None unless tracking); raw_homography: before smoothing.
        corners: (4, 2) target corners in the frame (smoothed) or None; pose: from the homography or None.
        matches: (K, 2) frame keypoint index, target point index; inliers: (K,) bool; rejected: why an estimate
        was refused ("" if none).
    """

    name: str
    state: str
    homography: np.ndarray | None = None
    raw_homography: np.ndarray | None = None
    corners: np.ndarray | None = None
    pose: Pose | None = None
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    rejected: str = ""

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "matches": len(self.matches), "inliers": self.num_inliers,
                "homography": None if self.homography is None else self.homography.tolist(),
                "corners": None if self.corners is None else self.corners.tolist(),
                "pose": None if self.pose is None else self.pose.to_dict(), "rejected": self.rejected}


@dataclass
class FrameResult:
    """Everything the tracker computed on one frame.

    Attributes:
        index, timestamp: of the frame. keypoints: (N, 4) x, y, scale, score.
        track_ids, track_lengths: (N,) per keypoint (-1 / 0 for points without a descriptor);
        track_prev: (N, 2) the point's position in the previous frame (NaN: new track).
        match_distances: (N,) descriptor distance of the keypoint's match to a target (inf: unmatched).
        targets: one ``TargetResult`` per target. timings_ms: per stage. events: e.g. "found poster", "lost poster".
        response: (H, W) float32 Key.Net response of the frame when the tracker's ``keep_response`` is on, else None.
    """

    index: int
    timestamp: float
    keypoints: np.ndarray
    track_ids: np.ndarray
    track_lengths: np.ndarray
    track_prev: np.ndarray
    match_distances: np.ndarray
    targets: list[TargetResult]
    timings_ms: dict[str, float]
    events: list[str]
    response: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.index, "time": self.timestamp, "keypoints": len(self.keypoints),
                "targets": [t.to_dict() for t in self.targets], "timings_ms": self.timings_ms, "events": self.events}


def alignment_points(target: Target, h: np.ndarray, frame_shape: tuple[int, ...], inlier_rows: np.ndarray,
                     count: int, margin: float = 8.0) -> np.ndarray:
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


class _TargetTrack:
    """Per-target state between frames."""

    def __init__(self, target: Target, smoothing: dict[str, float]) -> None:
        self.target = target
        self.state = SEARCHING
        self.misses = 0
        self.last_h: np.ndarray | None = None
        self.filter = OneEuroFilter(**smoothing)


class PlanarTracker:
    """Tracks planar targets through a sequence of frames.

    Args:
        detector: a Key.Net detector (single-scale ``mode="fast"`` for real time).
        describer: the descriptor (default: ORB on our keypoints).
        camera: intrinsics for the pose (default: a 60 degree field of view at each frame's size).
        **conf: overrides of ``default_conf``; ``configure`` changes them between frames.
    """

    default_conf: dict[str, Any] = {
        "ratio": 0.9,  # ratio test threshold
        "ransac_threshold": 3.0,  # MAGSAC threshold in pixels
        "guide_radius": 40.0,  # guided matching: largest distance of a match from its prediction (px)
        "track_radius": 40.0,  # frame-to-frame tracks: largest motion between frames (px)
        "min_inliers": 12,  # fewer inliers = a miss
        "lost_after": 3,  # misses in a row before ``tracking`` becomes ``lost``
        "min_target_keypoints": 30,  # fewer keypoints on a target = refused
        "target_keypoints": 1000,  # keypoints per target pyramid level
        "target_scales": (1.4142, 1.0, 0.7071, 0.5),  # the target is described at these scales (closer, farther)
        "smoothing": {"min_cutoff": 2.0, "beta": 0.2, "d_cutoff": 1.0},  # One-Euro filter of the corners
        "fov_deg": 60.0,  # default camera when no calibration is given
        "align": True,  # refine each homography by aligning the warped target to the frame (align_homography)
        "align_points": 200,  # besides the inliers, align at this many keypoints of the target's nearest level
        "keep_response": False,  # return each frame's Key.Net response in ``FrameResult.response`` (heatmap views)
    }

    def __init__(self, detector: KeyNetDetector, describer: Describer | None = None, camera: Camera | None = None,
                 **conf: Any) -> None:
        self.conf: dict[str, Any] = dict(self.default_conf)
        self.detector = detector
        self.describer = describer or Describer(descriptor="orb", device=str(detector.device))
        self.camera = camera
        self.tracks: list[_TargetTrack] = []
        self.book = TrackBook()
        self.configure(**conf)

    # -- settings
    def configure(self, detector: KeyNetDetector | None = None, describer: Describer | None = None,
                  **conf: Any) -> None:
        """Change settings live: a new detector or describer (targets are described again), or ``conf`` values."""
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown tracker option(s) {sorted(unknown)}; known: {sorted(self.default_conf)}")
        self.conf.update(conf)
        self.book.ratio, self.book.radius = self.conf["ratio"], self.conf["track_radius"]
        redescribe = detector is not None or describer is not None
        self.detector = detector or self.detector
        self.describer = describer or self.describer
        if redescribe:
            self.book.reset()
            for track in self.tracks:
                track.target = self.make_target(track.target.image, track.target.name)

    # -- targets
    def make_target(self, image: np.ndarray, name: str = "target") -> Target:
        """Detect and describe ``image`` as a target (not added).

        Raises:
            ValueError: fewer than ``min_target_keypoints`` keypoints on it.
        """
        if image is None or image.size == 0:
            raise ValueError(f"target {name!r} is an empty image")
        h, w = image.shape[:2]
        xys, descs, scales, scores = [], [], [], []
        for s in self.conf["target_scales"]:
            scaled = image if s == 1 else cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            if min(scaled.shape[:2]) < self.detector.min_image_side:
                continue
            kps = self.detector.detect(scaled, self.conf["target_keypoints"])[0]
            d = self.describer(scaled, kps)
            xys.append(kps.xy.cpu().numpy()[d.index] / s)
            scores.append(kps.score.cpu().numpy()[d.index])
            scales.append(np.full(len(d.index), s, np.float32))
            descs.append(d)
        n = sum(len(x) for x in xys)
        minimum = self.conf["min_target_keypoints"]
        if n < minimum:
            raise ValueError(f"target {name!r} ({w}x{h}) has {n} usable keypoints; tracking needs at least {minimum} "
                             "(choose a larger or more textured region)")
        desc = Descriptors(np.concatenate([d.index for d in descs]), torch.cat([d.data for d in descs]),
                           descs[0].binary)
        return Target(name, image, (w, h), np.concatenate(xys).astype(np.float32), desc, None,
                      np.concatenate(scales), np.concatenate(scores))

    def add_target(self, image: np.ndarray, name: str | None = None, assess: bool = False) -> Target:
        """Track the planar ``image`` ((H, W[, 3]) uint8); with ``assess`` its ``quality`` is filled in."""
        target = self.make_target(image, name or f"target {len(self.tracks) + 1}")
        if assess:
            target.quality = self.assess(target)
        self.tracks.append(_TargetTrack(target, self.conf["smoothing"]))
        return target

    def add_target_roi(self, frame: np.ndarray, roi: tuple[int, int, int, int], name: str | None = None,
                       assess: bool = False) -> Target:
        """Track the rectangle ``roi`` = (x, y, w, h) of ``frame``; it starts as found where it was cut."""
        x, y, w, h = (int(v) for v in roi)
        fh, fw = frame.shape[:2]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > fw or y + h > fh:
            raise ValueError(f"region {x},{y},{w},{h} (x,y,w,h) is not inside the {fw}x{fh} frame")
        target = self.add_target(frame[y:y + h, x:x + w].copy(), name, assess)
        self.tracks[-1].last_h = np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)
        return target

    @property
    def targets(self) -> list[Target]:
        """The targets, in the order of ``FrameResult.targets``."""
        return [track.target for track in self.tracks]

    def remove_target(self, index: int) -> None:
        del self.tracks[index]

    def clear_targets(self) -> None:
        self.tracks.clear()

    def reset(self) -> None:
        """Forget motion and tracks (a new source); targets are kept and searched again."""
        self.book.reset()
        for track in self.tracks:
            track.state, track.misses, track.last_h = SEARCHING, 0, None
            track.filter.reset()

    def assess(self, target: Target, warps: int = 3, seed: int = 0) -> TargetQuality:
        """Quality of a target: keypoint count, spread over a 4x4 grid, stability under synthetic warps of itself."""
        w, h = target.size
        cells = np.unique(np.floor(target.xy / [w / 4, h / 4]).clip(0, 3) @ [1, 4])
        spread = len(cells) / 16
        rng = np.random.default_rng(seed)
        shares = []
        for _ in range(warps):
            quad = target.corners + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * [w, h]
            hw = cv2.getPerspectiveTransform(target.corners, quad.astype(np.float32))
            warped = cv2.warpPerspective(target.image, hw, (w, h), borderMode=cv2.BORDER_REFLECT)
            kps = self.detector.detect(warped)[0]
            d = self.describer(warped, kps)
            xy = kps.xy.cpu().numpy()[d.index]
            m, _ = mutual_nn_ratio(distance_matrix(target.descriptors, d), self.conf["ratio"])
            good = np.linalg.norm(project(hw, target.xy[m[:, 0]]) - xy[m[:, 1]], axis=1) < 3 if len(m) else []
            shares.append(float(np.sum(good)) / max(1, min(len(xy), len(target.xy))))
        stability = float(np.clip(np.mean(shares) * 2, 0, 1))
        count = min(1.0, len(target.xy) / 300)
        stars = int(round(5 * (0.3 * count + 0.3 * spread + 0.4 * stability)))
        return TargetQuality(len(target.xy), spread, stability, stars)

    # -- per frame
    def process(self, frame: np.ndarray, index: int = 0, timestamp: float | None = None) -> FrameResult:
        """Track every target in ``frame`` ((H, W, 3) BGR or (H, W) grey uint8)."""
        timer = StageTimer()
        stamp = float(index) / 30 if timestamp is None else float(timestamp)
        with timer("detect"):
            if self.conf["keep_response"]:
                found, response = self.detector.detect_with_response(frame)
                heatmap = response[0, 0].cpu().numpy()
            else:
                found, heatmap = self.detector.detect(frame), None
            kps: Keypoints = found[0]
            arr = kps.numpy()
        with timer("describe"):
            desc = self.describer(frame, kps)
            xy = arr[desc.index, :2]
        n = len(arr)
        with timer("tracks"):
            ids, lengths, prev = self.book.update(desc, xy)
        track_ids = np.full(n, -1, np.int64)
        track_lengths = np.zeros(n, np.int64)
        track_prev = np.full((n, 2), np.nan, np.float32)
        track_ids[desc.index], track_lengths[desc.index], track_prev[desc.index] = ids, lengths, prev
        match_distances = np.full(n, np.inf, np.float32)
        events: list[str] = []
        results = []
        camera = self.camera or Camera.from_fov(frame.shape[1], frame.shape[0], self.conf["fov_deg"])
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for track in self.tracks:
            before = track.state
            result = self._track_target(track, desc, xy, timer, camera, stamp, match_distances, grey)
            results.append(result)
            track.state = result.state
            if before != TRACKING and result.state == TRACKING:
                events.append(f"found {track.target.name}")
            elif before == TRACKING and result.state == LOST:
                events.append(f"lost {track.target.name}")
        return FrameResult(index, stamp, arr, track_ids, track_lengths, track_prev, match_distances, results,
                           timer.ms, events, heatmap)

    def _match(self, track: _TargetTrack, desc: Descriptors, xy: np.ndarray, guided: bool) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
        target = track.target
        if guided:
            return guided_matches(target.descriptors, desc, project(track.last_h, target.xy), xy,
                                  self.conf["guide_radius"], self.conf["ratio"])
        return mutual_nn_ratio(distance_matrix(target.descriptors, desc), self.conf["ratio"])

    def _track_target(self, track: _TargetTrack, desc: Descriptors, xy: np.ndarray, timer: StageTimer,
                      camera: Camera, stamp: float, match_distances: np.ndarray, grey: np.ndarray) -> TargetResult:
        target = track.target
        h = None
        inliers = np.zeros(0, bool)
        m = np.zeros((0, 2), np.int64)
        rejected = ""
        for guided in ([True, False] if track.last_h is not None else [False]):
            with timer("match"):
                m, dists = self._match(track, desc, xy, guided)
            with timer("estimate"):
                h, inliers = estimate_homography(target.xy[m[:, 0]], xy[m[:, 1]], self.conf["ransac_threshold"])
                rejected = implausible(h, target.corners)
                if not rejected and inliers.sum() < self.conf["min_inliers"]:
                    rejected = f"{int(inliers.sum())} inliers (< {self.conf['min_inliers']})"
            if not rejected:
                break
        frame_matches = np.stack([desc.index[m[:, 1]], m[:, 0]], 1) if len(m) else m
        if rejected:
            track.misses += 1
            state = LOST if track.state != SEARCHING and track.misses >= self.conf["lost_after"] else (
                track.state if track.state != TRACKING else TRACKING)
            if state == LOST:
                track.last_h = None
                track.filter.reset()
            if state == TRACKING and track.last_h is not None:
                # a short miss: keep showing the last pose (coasting) until ``lost_after`` misses
                return self._result(track, track.last_h, None, camera, stamp, frame_matches, inliers, rejected)
            return TargetResult(target.name, state, matches=frame_matches, inliers=inliers, rejected=rejected)
        match_distances[desc.index[m[:, 1]]] = dists
        if self.conf["align"]:
            with timer("align"):
                points = alignment_points(target, h, grey.shape, m[inliers, 0], self.conf["align_points"])
                aligned = align_homography(target.grey, grey, h, points)
                h = h if implausible(aligned, target.corners) else aligned
        track.misses = 0
        track.last_h = h
        track.state = TRACKING
        return self._result(track, h, h, camera, stamp, frame_matches, inliers, "")

    def _result(self, track: _TargetTrack, h: np.ndarray, raw: np.ndarray | None, camera: Camera, stamp: float,
                matches: np.ndarray, inliers: np.ndarray, rejected: str) -> TargetResult:
        target = track.target
        corners = project(h, target.corners)
        smooth = track.filter(corners.ravel(), stamp).reshape(4, 2).astype(np.float32)
        hs = cv2.getPerspectiveTransform(target.corners, smooth)
        pose = pose_from_homography(hs, target.size, camera)
        return TargetResult(target.name, TRACKING, hs, raw, smooth, pose, matches, inliers, rejected)
