"""Planar target tracking, frame by frame: detect, describe, match to each target (guided by the last pose),
estimate, check, align, smooth, and the per-target state machine (searching -> tracking -> lost).

Typical use (the app, the ``track`` command and the benchmark all do this)::

    tracker = PlanarTracker(tracking_detector(model), Describer(descriptor="orb"))
    tracker.add_target(target_image)                       # or tracker.add_target_roi(frame, (x, y, w, h))
    for index, frame, stamp in open_source("demo"):
        result = tracker.process(frame, index, stamp)     # FrameResult: states, homographies, timings, events

Targets (building, quality) live in ``keynet.targets``, the display smoothing in ``keynet.smoothing`` and every
setting in ``keynet.config.TrackerConfig``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from .align import align
from .config import DetectorConfig, TrackerConfig
from .describe import Describer, Descriptors
from .detect import KeyNetDetector, Keypoints
from .errors import InputError
from .geometry import Camera, estimate_homography, implausible, pose_from_homography, project
from .match import TrackBook, distance_matrix, guided_matches, mutual_nn_ratio
from .progress import Progress
from .results import FrameResult, TargetResult
from .smoothing import CornerSmoother, make_smoother
from .targets import Target, TargetQuality, alignment_points, make_target, predicted_box
from .targets import assess as assess_target
from .timing import StageTimer

SEARCHING, TRACKING, LOST = "searching", "tracking", "lost"
HOMOGRAPHY_PARAMETERS = 8


def tracking_detector(model: torch.nn.Module, config: DetectorConfig | None = None, **overrides: Any) -> KeyNetDetector:
    """The detector real-time tracking uses: ``config`` (default ``DetectorConfig()``: fast mode, one scale,
    sub-pixel maxima, 500 keypoints with a 9 px NMS), ``overrides`` any ``KeyNetDetector`` option on top."""
    return KeyNetDetector(model, **{**(config or DetectorConfig()).detector_options(), **overrides})


def roi_homography(roi: tuple[int, int, int, int]) -> np.ndarray:
    """The (3, 3) homography from a target cut at ``roi`` = (x, y, w, h) to the frame it was cut from."""
    x, y = roi[:2]
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def corner_sigma(residual_px: float, points: int) -> float:
    """The standard deviation (px) of a homography's corners fitted to ``points`` points whose residuals have the
    RMS ``residual_px``: the residual's standard error for ``HOMOGRAPHY_PARAMETERS`` parameters fitted to 2 x
    ``points`` coordinates, doubled in variance at the corners, which lie at the edge of the points' spread."""
    return float(residual_px * math.sqrt(HOMOGRAPHY_PARAMETERS / max(points, 1)))


@dataclass
class _Estimate:
    """One target's estimate in one frame: ``matches`` (K, 2) target row, described frame point row, their
    descriptor ``distances`` (K,), the ``homography`` (None: none found), ``inliers`` (K,) and why it is refused
    ("" if it is not)."""

    matches: np.ndarray
    distances: np.ndarray
    homography: np.ndarray | None
    inliers: np.ndarray
    rejected: str


@dataclass
class _Frame:
    """What every target's step of one frame shares: the described points ``desc`` at ``xy`` (D, 2), the grey
    frame, the camera, the time stamp and the stage timer."""

    desc: Descriptors
    xy: np.ndarray
    grey: np.ndarray
    camera: Camera
    stamp: float
    timer: StageTimer


class _TargetTrack:
    """Per-target state between frames."""

    def __init__(self, target: Target, smoother: CornerSmoother) -> None:
        self.target = target
        self.state = SEARCHING
        self.misses = 0
        self.last_h: np.ndarray | None = None
        self.last_inliers = 0  # of the last accepted estimate
        self.smoother = smoother


class PlanarTracker:
    """Tracks planar targets through a sequence of frames.

    Args:
        detector: a Key.Net detector (``tracking_detector(model)`` for real time).
        describer: the descriptor (default: ``config.matching.descriptor`` on our keypoints).
        camera: intrinsics for the pose (default: ``config.geometry.fov_deg`` at each frame's size).
        config: every setting (default ``TrackerConfig()``); ``overrides``: ``TrackerConfig.replace`` names on top.
            ``configure`` changes them between frames.
    """

    def __init__(self, detector: KeyNetDetector, describer: Describer | None = None, camera: Camera | None = None,
                 config: TrackerConfig | None = None, **overrides: Any) -> None:
        self.config = (config or TrackerConfig()).replace(**overrides)
        self.detector = detector
        self.describer = describer or Describer(descriptor=self.config.matching.descriptor,
                                                device=str(detector.device))
        self.camera = camera
        self.tracks: list[_TargetTrack] = []
        self.book = TrackBook(self.config.matching)
        self.region_frames = 0  # frames detected in regions only since the last full-frame pass

    # -- settings
    def configure(self, detector: KeyNetDetector | None = None, describer: Describer | None = None,
                  config: TrackerConfig | None = None, **overrides: Any) -> None:
        """Change settings live: a new detector or describer or target settings (the targets are described
        again), a new ``config`` and/or ``overrides`` of it (``TrackerConfig.replace`` names)."""
        before = self.config
        self.config = (config or self.config).replace(**overrides)
        self.book.config = self.config.matching
        redescribe = detector is not None or describer is not None or self.config.targets != before.targets
        self.detector = detector or self.detector
        self.describer = describer or self.describer
        if redescribe:
            self.book.reset()
            for track in self.tracks:
                track.target = self._make_target(track.target.image, track.target.name)
        if self.config.smoothing != before.smoothing:
            for track in self.tracks:
                track.smoother = make_smoother(self.config.smoothing)

    # -- targets
    def _make_target(self, image: np.ndarray, name: str, progress: Progress | None = None) -> Target:
        return make_target(image, name, self.detector, self.describer, self.config.targets, progress)

    def add_target(self, image: np.ndarray, name: str | None = None, assess: bool = False,
                   progress: Progress | None = None) -> Target:
        """Track the planar ``image`` ((H, W[, 3]) uint8); with ``assess`` its ``quality`` is filled in.
        ``progress(done, total)`` follows the target's pyramid levels.

        Raises:
            InputError: too few keypoints on it (``keynet.targets.make_target``).
        """
        target = self._make_target(image, name or f"target {len(self.tracks) + 1}", progress)
        if assess:
            target.quality = self.assess(target)
        return self.add_described_target(target)

    def add_described_target(self, target: Target, start: np.ndarray | None = None) -> Target:
        """Track ``target`` as it was made (``keynet.targets.make_target`` with this tracker's detector, describer
        and settings: nothing is described again); ``start`` (3x3, target to frame): where it starts as found."""
        track = _TargetTrack(target, make_smoother(self.config.smoothing))
        if start is not None:
            track.last_h = np.asarray(start, np.float64)
        self.tracks.append(track)
        return target

    def assess(self, target: Target) -> TargetQuality:
        """``keynet.targets.assess`` with this tracker's detector, describer and settings."""
        return assess_target(target, self.detector, self.describer, self.config)

    def add_target_roi(self, frame: np.ndarray, roi: tuple[int, int, int, int], name: str | None = None,
                       assess: bool = False, progress: Progress | None = None) -> Target:
        """Track the rectangle ``roi`` = (x, y, w, h) of ``frame``; it starts as found where it was cut."""
        x, y, w, h = (int(v) for v in roi)
        fh, fw = frame.shape[:2]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > fw or y + h > fh:
            raise InputError(f"region {x},{y},{w},{h} (x,y,w,h) is not inside the {fw}x{fh} frame")
        target = self._make_target(frame[y:y + h, x:x + w].copy(), name or f"target {len(self.tracks) + 1}", progress)
        if assess:
            target.quality = self.assess(target)
        return self.add_described_target(target, roi_homography(roi))

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
        self.region_frames = 0
        for track in self.tracks:
            track.state, track.misses, track.last_h = SEARCHING, 0, None
            track.smoother.reset()

    # -- per frame
    def process(self, frame: np.ndarray, index: int = 0, timestamp: float | None = None) -> FrameResult:
        """Track every target in ``frame`` ((H, W, 3) BGR or (H, W) grey uint8); without a ``timestamp`` (s) the
        frame is at ``index / config.default_fps``."""
        timer = StageTimer()
        stamp = float(index) / self.config.default_fps if timestamp is None else float(timestamp)
        regions = self.detection_regions(frame.shape)
        with timer("detect"):
            heatmap = None
            if regions:
                kps: Keypoints = self.detector.detect_in_regions(frame, regions)
            elif self.config.keep_response:
                found, response = self.detector.detect_with_response(frame)
                kps, heatmap = found[0], response[0, 0].cpu().numpy()
            else:
                kps = self.detector.detect(frame)[0]
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
        camera = self.camera or Camera.from_fov(frame.shape[1], frame.shape[0], self.config.geometry.fov_deg)
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        shared = _Frame(desc, xy, grey, camera, stamp, timer)
        events: list[str] = []
        results = []
        for track in self.tracks:
            before = track.state
            result, distances = self._track_target(track, shared)
            results.append(result)
            if len(distances):
                match_distances[result.matches[:, 0]] = distances
            if before != TRACKING and result.state == TRACKING:
                events.append(f"found {track.target.name}")
            elif before == TRACKING and result.state == LOST:
                events.append(f"lost {track.target.name}")
        return FrameResult(index, stamp, arr, track_ids, track_lengths, track_prev, match_distances, results,
                           timer.ms, events, camera, heatmap, regions)

    def detection_regions(self, frame_shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """The (x0, y0, x1, y1) boxes to detect in this frame, or [] for the full frame: boxes only while every
        target is tracked, the detector can (``detect_in_regions``), no response map is kept, and the last
        full-frame pass is fewer than ``full_frame_every`` frames ago (``DetectorConfig``)."""
        c = self.config.detector
        able = (c.regions and not self.config.keep_response and hasattr(self.detector, "detect_in_regions")
                and not getattr(self.detector, "conf", {}).get("multi_scale", False))
        tracked = bool(self.tracks) and all(t.state == TRACKING and t.last_h is not None for t in self.tracks)
        if not (able and tracked and self.region_frames < c.full_frame_every - 1):
            self.region_frames = 0
            return []
        h, w = frame_shape[:2]
        boxes = [predicted_box(t.target, t.last_h, (w, h), c.region_margin, self.config.matching.guide_radius)
                 for t in self.tracks]
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
        if area > c.max_region_share * w * h or any(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in boxes):
            self.region_frames = 0
            return []
        self.region_frames += 1
        return boxes

    def _track_target(self, track: _TargetTrack, frame: _Frame) -> tuple[TargetResult, np.ndarray]:
        """This frame's result for ``track`` (its state updated), and the descriptor distances of its matches
        (empty unless the estimate is accepted)."""
        estimate = self._estimate(track, frame)
        matches = (np.stack([frame.desc.index[estimate.matches[:, 1]], estimate.matches[:, 0]], 1)
                   if len(estimate.matches) else estimate.matches)
        if estimate.rejected:
            return self._missed(track, frame, matches, estimate), np.zeros(0, np.float32)
        h, sigma = self._refine(track.target, estimate, frame)
        track.misses, track.last_h, track.state = 0, h, TRACKING
        track.last_inliers = int(estimate.inliers.sum())
        result = self._result(track, frame, h, h, matches, estimate.inliers, "", sigma)
        return result, estimate.distances

    def _estimate(self, track: _TargetTrack, frame: _Frame) -> _Estimate:
        """Match and estimate: guided by the last pose first (when there is one), then over the whole frame when
        the guided estimate is refused or weak (``MatchingConfig.guided_keep_share``); the accepted estimate with
        the most inliers wins."""
        target, geometry = track.target, self.config.geometry
        weak = self.config.matching.guided_keep_share * track.last_inliers
        best = _Estimate(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), None, np.zeros(0, bool), "")
        for guided in ([True, False] if track.last_h is not None else [False]):
            with frame.timer("match"):
                m, distances = self._match(track, frame, guided)
            with frame.timer("estimate"):
                h, inliers = estimate_homography(target.xy[m[:, 0]], frame.xy[m[:, 1]], geometry.ransac_threshold)
                rejected = implausible(h, target.corners, geometry)
                if not rejected and inliers.sum() < geometry.min_inliers:
                    rejected = f"{int(inliers.sum())} inliers (< {geometry.min_inliers})"
            estimate = _Estimate(m, distances, h, inliers, rejected)
            if best.homography is None or best.rejected or (not rejected and inliers.sum() > best.inliers.sum()):
                best = estimate
            if not best.rejected and not (guided and inliers.sum() < weak):
                break
        return best

    def _match(self, track: _TargetTrack, frame: _Frame, guided: bool) -> tuple[np.ndarray, np.ndarray]:
        target, matching = track.target, self.config.matching
        if guided:
            return guided_matches(target.descriptors, frame.desc, project(track.last_h, target.xy), frame.xy,
                                  matching.guide_radius, matching.ratio)
        return mutual_nn_ratio(distance_matrix(target.descriptors, frame.desc), matching.ratio)

    def _refine(self, target: Target, estimate: _Estimate, frame: _Frame) -> tuple[np.ndarray, float]:
        """The accepted homography, aligned photometrically when the alignment is on and its result plausible,
        and its corner standard deviation (``corner_sigma`` of the alignment's or else the inliers' residuals)."""
        h = estimate.homography
        rows = estimate.matches[estimate.inliers]
        residuals = np.linalg.norm(project(h, target.xy[rows[:, 0]]) - frame.xy[rows[:, 1]], axis=1)
        sigma = corner_sigma(float(np.sqrt(np.mean(residuals**2))), len(rows))
        settings = self.config.alignment
        if not settings.align:
            return h, sigma
        with frame.timer("align"):
            points = alignment_points(target, h, frame.grey.shape, rows[:, 0], settings.align_points,
                                      settings.align_margin)
            aligned = align(target.grey, frame.grey, h, points, settings)
        if aligned.residual_px is None or implausible(aligned.homography, target.corners, self.config.geometry):
            return h, sigma
        return aligned.homography, corner_sigma(aligned.residual_px, aligned.inliers)

    def _missed(self, track: _TargetTrack, frame: _Frame, matches: np.ndarray, estimate: _Estimate) -> TargetResult:
        """A refused estimate: ``lost`` after ``lost_after`` misses in a row; before that a tracked target coasts on
        its last pose."""
        target = track.target
        track.misses += 1
        if track.state != SEARCHING and track.misses >= self.config.geometry.lost_after:
            track.state, track.last_h = LOST, None
            track.smoother.reset()
        if track.state == TRACKING and track.last_h is not None:
            return self._result(track, frame, track.last_h, None, matches, estimate.inliers, estimate.rejected, None)
        return TargetResult(target.name, track.state, target.size, target.xy, matches=matches,
                            inliers=estimate.inliers, rejected=estimate.rejected)

    def _result(self, track: _TargetTrack, frame: _Frame, h: np.ndarray, raw: np.ndarray | None,
                matches: np.ndarray, inliers: np.ndarray, rejected: str, sigma: float | None) -> TargetResult:
        """A tracking result: ``h``'s corners smoothed for display, the shown homography and its pose."""
        target = track.target
        corners = project(h, target.corners)
        shown = track.smoother.update(corners, frame.stamp, sigma)
        hs = cv2.getPerspectiveTransform(target.corners, np.asarray(shown, np.float32))
        pose = pose_from_homography(hs, target.size, frame.camera)
        raw_corners = None if raw is None else corners.astype(np.float32)
        return TargetResult(target.name, TRACKING, target.size, target.xy, hs, raw, np.asarray(shown, np.float32),
                            raw_corners, pose, matches, inliers, rejected, sigma)
