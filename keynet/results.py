"""A frame's result: what the tracker computed on one frame, enough to draw and export it without the tracker.

``FrameResult.to_dict`` is the one JSON schema of a frame (the command line's log, the app's export and the
benchmarks write it; the README documents it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import Camera, Pose


@dataclass
class TargetResult:
    """One target in one frame.

    Attributes:
        name, state: ``searching``, ``tracking`` or ``lost``. size: the target's (w, h) in its pixels.
        target_points: (M, 2) the target's keypoints (target xy; ``matches`` index them).
        homography: 3x3 target -> frame as shown (smoothed; None unless tracking); raw_homography: the estimate
        (None while coasting on a short miss). corners, raw_corners: (4, 2) the target's corners in the frame by
        each. pose: from ``homography`` with ``FrameResult.camera``, or None.
        matches: (K, 2) frame keypoint index, target point index; inliers: (K,) bool; rejected: why an estimate
        was refused ("" if none). uncertainty_px: the estimate's corner standard deviation (px; None unless
        estimated this frame), what the smoother weighs by.
    """

    name: str
    state: str
    size: tuple[int, int]
    target_points: np.ndarray
    homography: np.ndarray | None = None
    raw_homography: np.ndarray | None = None
    corners: np.ndarray | None = None
    raw_corners: np.ndarray | None = None
    pose: Pose | None = None
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    rejected: str = ""
    uncertainty_px: float | None = None

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    def to_dict(self) -> dict[str, Any]:
        """The target's part of ``FrameResult.to_dict`` (plain values; None where not tracking)."""

        def listed(a: np.ndarray | None) -> list | None:
            return None if a is None else np.asarray(a, np.float64).tolist()

        return {"name": self.name, "state": self.state, "size": [int(v) for v in self.size],
                "matches": len(self.matches), "inliers": self.num_inliers, "rejected": self.rejected,
                "homography": listed(self.homography), "corners": listed(self.corners),
                "raw_homography": listed(self.raw_homography), "raw_corners": listed(self.raw_corners),
                "pose": None if self.pose is None else self.pose.to_dict(),
                "uncertainty_px": None if self.uncertainty_px is None else float(self.uncertainty_px)}


@dataclass
class FrameResult:
    """Everything the tracker computed on one frame: what drawing and export need, nothing else required.

    Attributes:
        index, timestamp: of the frame. keypoints: (N, 4) x, y, scale, score.
        track_ids, track_lengths: (N,) per keypoint (-1 / 0 for points without a descriptor);
        track_prev: (N, 2) the point's position in the previous frame (NaN: new track).
        match_distances: (N,) descriptor distance of the keypoint's match to a target (inf: unmatched).
        targets: one ``TargetResult`` per target. timings_ms: per stage. events: e.g. "found poster", "lost poster".
        camera: the intrinsics the poses were computed with (the renderer projects with the same).
        response: (H, W) float32 Key.Net response of the frame when the tracker's ``keep_response`` is on, else None.
        regions: the (x0, y0, x1, y1) boxes keypoints were detected in ([]: the whole frame).
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
    camera: Camera
    response: np.ndarray | None = None
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The one JSON schema of a frame (command line, app export, benchmarks): ``frame``, ``time``,
        ``keypoints`` (count), ``regions`` (the boxes detected in; [] for the full frame), ``camera``
        (``Camera.to_dict``), ``timings_ms``, ``events`` and ``targets`` (``TargetResult.to_dict`` each)."""
        return {"frame": int(self.index), "time": float(self.timestamp), "keypoints": len(self.keypoints),
                "regions": [[int(v) for v in box] for box in self.regions], "camera": self.camera.to_dict(),
                "timings_ms": {k: float(v) for k, v in self.timings_ms.items()},
                "events": list(self.events), "targets": [t.to_dict() for t in self.targets]}
