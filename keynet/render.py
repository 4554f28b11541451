"""Drawing a tracker's results on a frame with OpenCV: AR content, outlines, keypoints, matches and tracks.

``Renderer(**options).draw(frame, result)`` draws what the options ask for; every layer is also a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .geometry import Camera, Pose, project
from .tracker import TRACKING, FrameResult, Target, TargetResult

GREEN, RED, YELLOW, WHITE = (60, 220, 60), (40, 40, 230), (0, 220, 255), (255, 255, 255)
STATE_COLOURS = {"tracking": GREEN, "searching": YELLOW, "lost": RED}


def colour_map(values: np.ndarray) -> np.ndarray:
    """(N,) values -> (N, 3) uint8 BGR turbo colours, the smallest blue and the largest red."""
    if len(values) == 0:
        return np.zeros((0, 3), np.uint8)
    v = np.asarray(values, np.float64)
    span = v.max() - v.min()
    norm = (v - v.min()) / span if span > 0 else np.full_like(v, 0.5)
    return cv2.applyColorMap((norm * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]


def draw_keypoints(canvas: np.ndarray, keypoints: np.ndarray, by: str = "score", size_multiplier: float = 22.0) -> None:
    """Circles of each keypoint's region size; ``by`` = ``"score"`` or ``"scale"`` chooses the colour code."""
    if by not in ("score", "scale"):
        raise ValueError(f"keypoints are coloured by 'score' or 'scale'; got {by!r}")
    colours = colour_map(keypoints[:, 3] if by == "score" else np.log2(keypoints[:, 2]))
    for (x, y, s, _), c in zip(keypoints, colours):
        radius = max(2, int(round(size_multiplier * s / 4)))
        cv2.circle(canvas, (int(round(x)), int(round(y))), radius, tuple(int(v) for v in c), 1, cv2.LINE_AA)


def draw_outline(canvas: np.ndarray, corners: np.ndarray, colour: tuple[int, int, int] = GREEN,
                 label: str = "") -> None:
    """The target's quad, its first corner marked, and ``label`` beside it."""
    pts = np.round(corners).astype(np.int32)
    cv2.polylines(canvas, [pts], True, colour, 2, cv2.LINE_AA)
    cv2.circle(canvas, tuple(int(v) for v in pts[0]), 5, colour, -1, cv2.LINE_AA)
    if label:
        cv2.putText(canvas, label, (int(pts[0, 0]), int(pts[0, 1]) - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)


def warp_overlay(canvas: np.ndarray, overlay: np.ndarray, homography: np.ndarray, target_size: tuple[int, int],
                 alpha: float = 0.8) -> None:
    """Blend ``overlay`` (any size, BGR or BGRA) onto the target plane seen through ``homography``."""
    w, h = target_size
    oh, ow = overlay.shape[:2]
    fit = np.diag([w / ow, h / oh, 1.0])
    hm = homography @ fit
    size = (canvas.shape[1], canvas.shape[0])
    colour = overlay[..., :3]
    weight = overlay[..., 3].astype(np.float32) / 255 if overlay.shape[2] == 4 else np.ones((oh, ow), np.float32)
    warped = cv2.warpPerspective(colour, hm, size)
    mask = cv2.warpPerspective(weight * alpha, hm, size)[..., None]
    canvas[:] = (canvas * (1 - mask) + warped * mask).astype(np.uint8)


def _project_3d(points: np.ndarray, pose: Pose, camera: Camera) -> np.ndarray:
    pts, _ = cv2.projectPoints(points, pose.rvec, pose.tvec, camera.matrix, camera.dist)
    return pts.reshape(-1, 2)


def draw_cube(canvas: np.ndarray, pose: Pose, camera: Camera, target_size: tuple[int, int]) -> None:
    """A cube standing on the target (its base = the target's central square, height towards the camera)."""
    w, h = target_size
    side = min(1.0, h / w) * 0.6
    x0, y0 = 0.5 - side / 2, h / w / 2 - side / 2
    base = np.array([[x0, y0, 0], [x0 + side, y0, 0], [x0 + side, y0 + side, 0], [x0, y0 + side, 0]])
    top = base - [0, 0, side]
    pts = np.round(_project_3d(np.vstack([base, top]), pose, camera)).astype(np.int32)
    cv2.fillConvexPoly(canvas, pts[4:], (90, 160, 90), cv2.LINE_AA)
    for i in range(4):
        cv2.line(canvas, tuple(pts[i]), tuple(pts[(i + 1) % 4]), (0, 120, 255), 2, cv2.LINE_AA)
        cv2.line(canvas, tuple(pts[i]), tuple(pts[i + 4]), (255, 160, 0), 2, cv2.LINE_AA)
        cv2.line(canvas, tuple(pts[i + 4]), tuple(pts[(i + 1) % 4 + 4]), WHITE, 2, cv2.LINE_AA)


def draw_axes(canvas: np.ndarray, pose: Pose, camera: Camera, target_size: tuple[int, int]) -> None:
    """x (red), y (green) and z (blue, out of the plane) axes at the target's centre."""
    w, h = target_size
    c = np.array([0.5, h / w / 2, 0])
    length = 0.4 * min(1.0, h / w)
    pts = _project_3d(np.array([c, c + [length, 0, 0], c + [0, length, 0], c - [0, 0, length]]), pose, camera)
    pts = np.round(pts).astype(np.int32)
    for end, colour in zip(pts[1:], [(0, 0, 255), (0, 255, 0), (255, 0, 0)]):
        cv2.arrowedLine(canvas, tuple(pts[0]), tuple(end), colour, 3, cv2.LINE_AA, tipLength=0.15)


def draw_matches(canvas: np.ndarray, result: FrameResult, target: TargetResult, target_xy: np.ndarray,
                 homography: np.ndarray | None, inliers_only: bool = False) -> None:
    """Lines from each matched frame keypoint to its target point projected into the frame; inliers green,
    outliers red. Without a homography only the matched keypoints are marked."""
    for (fi, ti), ok in zip(target.matches, target.inliers if len(target.inliers) else [False] * len(target.matches)):
        if inliers_only and not ok:
            continue
        p = tuple(int(round(v)) for v in result.keypoints[fi, :2])
        colour = GREEN if ok else RED
        if homography is not None:
            q = tuple(int(round(v)) for v in project(homography, target_xy[ti:ti + 1])[0])
            cv2.line(canvas, p, q, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, p, 2, colour, -1, cv2.LINE_AA)


class TrailBook:
    """Recent positions of each track id, for drawing trails (ids unseen for ``max_len`` frames are dropped)."""

    def __init__(self, max_len: int = 15) -> None:
        self.max_len = max_len
        self.trails: dict[int, list[tuple[int, np.ndarray]]] = {}

    def update(self, result: FrameResult) -> None:
        for tid, xy in zip(result.track_ids, result.keypoints[:, :2]):
            if tid >= 0:
                self.trails.setdefault(int(tid), []).append((result.index, xy.copy()))
        old = result.index - self.max_len
        self.trails = {k: [p for p in v if p[0] > old][-self.max_len:] for k, v in self.trails.items()
                       if v[-1][0] > old}

    def draw(self, canvas: np.ndarray, min_length: int = 2) -> None:
        for tid, points in self.trails.items():
            if len(points) < min_length:
                continue
            pts = np.round(np.array([p for _, p in points])).astype(np.int32)
            colour = tuple(int(v) for v in colour_map(np.array([tid % 17, 0, 16]))[0])
            cv2.polylines(canvas, [pts], False, colour, 1, cv2.LINE_AA)


@dataclass
class RenderOptions:
    """What ``Renderer.draw`` shows.

    Attributes:
        overlay: ``"none"``, ``"cube"``, ``"axes"``, ``"image"`` or ``"video"`` (frames from ``overlay_frames``).
        keypoints: ``"off"``, ``"score"`` or ``"scale"``. matches, inliers_only, tracks, outline, status: layers.
        alpha: opacity of an image or video overlay.
    """

    overlay: str = "cube"
    keypoints: str = "off"
    matches: bool = False
    inliers_only: bool = False
    tracks: bool = False
    outline: bool = True
    status: bool = True
    alpha: float = 0.8


class Renderer:
    """Draws ``FrameResult``s; keeps the trails and the overlay video's position between frames.

    Args:
        overlay_frames: an image (H, W, 3|4) or an iterator of frames for ``overlay="image"``/``"video"``.
        **options: ``RenderOptions`` fields; ``set`` changes them live.
    """

    def __init__(self, overlay_frames: Any = None, **options: Any) -> None:
        self.options = RenderOptions(**options)
        self.overlay_frames = overlay_frames
        self.overlay_image: np.ndarray | None = overlay_frames if isinstance(overlay_frames, np.ndarray) else None
        self.trails = TrailBook()

    def set(self, **options: Any) -> None:
        for key, value in options.items():
            if not hasattr(self.options, key):
                raise ValueError(f"unknown render option {key!r}; known: {sorted(vars(self.options))}")
            setattr(self.options, key, value)

    def _next_overlay(self) -> np.ndarray | None:
        """The overlay image, or the video's next frame (the last one stays when the video ends)."""
        if self.overlay_frames is not None and not isinstance(self.overlay_frames, np.ndarray):
            frame = next(self.overlay_frames, None)
            if frame is not None:
                self.overlay_image = frame
        return self.overlay_image

    def draw(self, frame: np.ndarray, result: FrameResult, targets: list[Target] | None = None,
             camera: Camera | None = None) -> np.ndarray:
        """A BGR copy of ``frame`` with the layers drawn for ``result``.

        Args:
            targets: ``PlanarTracker.targets`` (their sizes place AR content, their points end match lines;
                without them only outlines, keypoints and tracks are drawn).
            camera: for cubes and axes (default: a 60 degree field of view).
        """
        o = self.options
        canvas = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        camera = camera or Camera.from_fov(canvas.shape[1], canvas.shape[0])
        self.trails.update(result)
        overlay = self._next_overlay() if o.overlay in ("image", "video") else None
        for i, t in enumerate(result.targets):
            size = targets[i].size if targets else None
            if t.state == TRACKING and t.homography is not None and size is not None:
                if overlay is not None:
                    warp_overlay(canvas, overlay, t.homography, size, o.alpha)
                elif o.overlay == "cube" and t.pose is not None:
                    draw_cube(canvas, t.pose, camera, size)
                elif o.overlay == "axes" and t.pose is not None:
                    draw_axes(canvas, t.pose, camera, size)
            if o.outline and t.corners is not None:
                draw_outline(canvas, t.corners, STATE_COLOURS.get(t.state, WHITE), t.name)
            if o.matches and targets:
                draw_matches(canvas, result, t, targets[i].xy, t.raw_homography, o.inliers_only)
        if o.tracks:
            self.trails.draw(canvas)
        if o.keypoints != "off":
            draw_keypoints(canvas, result.keypoints, o.keypoints)
        if o.status:
            text = "  ".join(f"{t.name}: {t.state} ({t.num_inliers} inliers)" for t in result.targets) or "no target"
            cv2.putText(canvas, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
        return canvas
