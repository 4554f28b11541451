"""Drawing a tracker's results on a frame with OpenCV: response heatmap, AR content, outlines, keypoints, matches,
tracks and a status line; a target's feature heat map (where its keypoints fall).

``Renderer(**options).draw(frame, result)`` draws what the options ask for; every layer is also a function.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .colour_scales import WHITE, colour_map, draw_colour_bar, draw_heatmap
from .config import MatchingConfig, TrackerConfig
from .errors import OptionError, check_options
from .geometry import Camera, Pose, project
from .match import coherent_motion
from .targets import FULL_COUNT, Target
from .tracker import TRACKING, FrameResult, TargetResult

GREEN, RED, YELLOW = (60, 220, 60), (40, 40, 230), (0, 220, 255)
STATE_COLOURS = {"tracking": GREEN, "searching": YELLOW, "lost": RED}


def draw_status(canvas: np.ndarray, text: str, origin: tuple[int, int] = (6, 6), scale: float = 0.5) -> int:
    """White ``text`` on a filled dark box whose top-left corner is at ``origin``; returns the box's bottom row."""
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    pad = 4
    bottom = y + h + baseline + 2 * pad
    cv2.rectangle(canvas, (x, y), (x + w + 2 * pad, bottom), (32, 32, 32), cv2.FILLED)
    cv2.putText(canvas, text, (x + pad, y + pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)
    return bottom


KEYPOINT_COLOURS = ("score", "scale", "rank")


def draw_keypoints(canvas: np.ndarray, keypoints: np.ndarray, by: str = "score", size_multiplier: float = 22.0) -> None:
    """Circles of each keypoint's region size for (N, 4) x, y, scale, score ``keypoints``, coloured by ``by``:
    ``"score"`` (turbo over the scores), ``"scale"`` (over log2 scale) or ``"rank"`` (over the score order: the
    best red, the last blue, whatever the scores' spread)."""
    if by not in KEYPOINT_COLOURS:
        raise OptionError(f"keypoints are coloured by one of {list(KEYPOINT_COLOURS)}; got {by!r}")
    if by == "rank":
        values = np.empty(len(keypoints))
        values[np.argsort(-keypoints[:, 3], kind="stable")] = -np.arange(len(keypoints))
    else:
        values = keypoints[:, 3] if by == "score" else np.log2(keypoints[:, 2])
    colours = colour_map(values).tolist()
    centres = np.round(keypoints[:, :2]).astype(np.int32).tolist()
    radii = np.maximum(2, np.round(size_multiplier * keypoints[:, 2] / 4)).astype(np.int32).tolist()
    for centre, radius, colour in zip(centres, radii, colours):
        cv2.circle(canvas, centre, radius, colour, 1, cv2.LINE_AA)


ONE_SCALE_NOTE = "one scale in single-scale mode"  # what "by scale" shows when every keypoint has one scale


def draw_keypoint_legend(canvas: np.ndarray, keypoints: np.ndarray, by: str, origin: tuple[int, int]) -> int:
    """What ``draw_keypoints(canvas, keypoints, by)``'s colours mean, in a dark box at ``origin``: the turbo strip
    between its ends' values (the lowest and highest score or scale; the last and the best by rank), or
    "by scale (one scale in single-scale mode)" when every keypoint has the same scale (one colour). Returns the
    box's bottom row."""
    if len(keypoints) == 0:
        return draw_status(canvas, f"keypoints by {by}: none", origin)
    if by == "rank":
        low, high = "last", "best"
    else:
        values = keypoints[:, 3] if by == "score" else keypoints[:, 2]
        if by == "scale" and values.min() == values.max():
            return draw_status(canvas, f"keypoints by scale ({ONE_SCALE_NOTE})", origin)
        low, high = f"{values.min():.3g}", f"{values.max():.3g}"
    bottom = draw_status(canvas, f"keypoints by {by}: {low}", origin)
    text_w = cv2.getTextSize(f"keypoints by {by}: {low}", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
    x0, x1 = origin[0] + text_w + 8, origin[0] + text_w + 8 + 48
    cv2.rectangle(canvas, (x0, origin[1]), (x1, bottom), (32, 32, 32), cv2.FILLED)
    canvas[origin[1] + 5:bottom - 4, x0:x1] = colour_map(np.arange(x1 - x0))[None]
    return draw_status(canvas, high, (x1, origin[1]))


# The target-quality preview's feature heat map: where a target's keypoints fall.
DENSITY_SIGMA = 0.04  # the heat map's Gaussian, as a share of the target's shorter side
PER_AREA = 1000.0  # densities are keypoints per this many square pixels
RED_AT = 2.0  # the colour scale reaches red at least at this many times the even density of FULL_COUNT keypoints
TOP_PERCENTILE = 99.0  # ... and at least at this percentile of the target's density (a rich target shows its spread)
HEAT_ALPHA = 0.6  # opacity of the densest places (opacity grows with the square root of the density)
KEYPOINT_SIZE = 8.0  # draw_keypoints' size multiplier for the target's keypoints


def keypoint_density(xy: np.ndarray, size: tuple[int, int], sigma_px: float) -> np.ndarray:
    """(H, W) float32 keypoints per ``PER_AREA`` px² around each pixel of a ``size`` = (W, H) target: the (N, 2)
    keypoints ``xy`` counted at their pixels and blurred with a Gaussian of ``sigma_px``."""
    w, h = size
    counts = np.zeros((h, w), np.float32)
    if len(xy):
        cells = np.clip(np.round(xy).astype(np.int64), 0, [w - 1, h - 1])
        np.add.at(counts, (cells[:, 1], cells[:, 0]), 1.0)
    return cv2.GaussianBlur(counts, (0, 0), sigma_px) * PER_AREA


def even_density(size: tuple[int, int]) -> float:
    """Keypoints per ``PER_AREA`` px² of ``FULL_COUNT`` keypoints (the star score's full count) spread evenly over
    a ``size`` = (W, H) target: the middle (green) of the heat map's colour scale."""
    return FULL_COUNT / (size[0] * size[1]) * PER_AREA


def colour_scale_top(density: np.ndarray, size: tuple[int, int]) -> float:
    """The density shown red: ``RED_AT`` times ``even_density``, or the density's ``TOP_PERCENTILE`` if higher."""
    return max(RED_AT * even_density(size), float(np.percentile(density, TOP_PERCENTILE)))


def feature_heat_map(target: Target, keypoints: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The target's image (H, W, 3) uint8 BGR with its keypoint density over it in turbo colours (clear where
    there are none, red from ``colour_scale_top``), and the density (H, W) float32 (per ``PER_AREA`` px²); with
    ``keypoints`` the keypoints are drawn too, coloured by the pyramid level they came from."""
    density = keypoint_density(target.xy, target.size, DENSITY_SIGMA * min(target.size))
    level = np.clip(density / colour_scale_top(density, target.size) * 255, 0, 255).astype(np.uint8)
    opacity = (HEAT_ALPHA * np.sqrt(level / 255.0))[..., None]
    image = target.image if target.image.ndim == 3 else cv2.cvtColor(target.image, cv2.COLOR_GRAY2BGR)
    canvas = (image * (1 - opacity) + cv2.applyColorMap(level, cv2.COLORMAP_TURBO) * opacity).astype(np.uint8)
    if keypoints and len(target.xy):
        draw_keypoints(canvas, np.column_stack([target.xy, target.scales, target.scores]), "scale", KEYPOINT_SIZE)
    return canvas, density


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


def draw_matches(canvas: np.ndarray, result: FrameResult, target: TargetResult, inliers_only: bool = False) -> None:
    """Lines from each matched frame keypoint to its target point (``target.target_points``) projected into the
    frame by the estimate (``target.raw_homography``); inliers green, outliers red. Without an estimate only the
    matched keypoints are marked."""
    homography, target_xy = target.raw_homography, target.target_points
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
    """Recent positions of each track id, for drawing trails that read at any frame rate.

    Trails span the last ``max_len`` frames given to ``update`` (not frame indices: a slow processing thread that
    drops frames still shows trails); ids unseen for that long are dropped. A trail holds only steps that move
    with the tracks around them: a step that ``keynet.match.coherent_motion`` (with ``coherence``'s limits,
    default the tracker's own, ``TrackerConfig().matching``) finds jumpy, or an id seen again after a frame
    without it, starts the trail afresh at its new position.
    """

    PALETTE = [tuple(int(v) for v in c) for c in colour_map(np.arange(17))]  # a track's colour: its id modulo 17

    def __init__(self, max_len: int = 15, coherence: MatchingConfig | None = None) -> None:
        self.max_len = max_len
        self.coherence = coherence or TrackerConfig().matching
        self.frames = 0
        self.trails: dict[int, deque[tuple[int, list[float]]]] = {}  # id -> its last max_len (frame, [x, y])

    def update(self, result: FrameResult) -> None:
        self.frames += 1
        seen = result.track_ids >= 0
        ids, points = result.track_ids[seen].tolist(), result.keypoints[seen, :2].tolist()
        going_on = [i for i, tid in enumerate(ids)
                    if tid in self.trails and self.trails[tid][-1][0] == self.frames - 1]
        before = np.array([self.trails[ids[i]][-1][1] for i in going_on], np.float32).reshape(-1, 2)
        after = np.array([points[i] for i in going_on], np.float32).reshape(-1, 2)
        coherent = dict(zip(going_on, coherent_motion(before, after, self.coherence).tolist()))
        for i, (tid, xy) in enumerate(zip(ids, points)):
            trail = self.trails.get(tid)
            if trail is None or not coherent.get(i, False):
                trail = self.trails[tid] = deque(maxlen=self.max_len)
            trail.append((self.frames, xy))
        if self.frames % self.max_len == 0:  # forget the ids unseen for max_len frames (every max_len frames)
            old = self.frames - self.max_len
            self.trails = {k: v for k, v in self.trails.items() if v[-1][0] > old}

    def draw(self, canvas: np.ndarray, min_frames: int = 2) -> None:
        """The trails with at least ``min_frames`` positions within the last ``max_len`` frames, one polyline call
        per colour (not one per id: there are thousands, most of them seen once)."""
        old = self.frames - self.max_len
        by_colour: dict[int, list[np.ndarray]] = {}
        for tid, trail in self.trails.items():
            if len(trail) >= min_frames and trail[-1][0] > old:
                points = [xy for frame, xy in trail if frame > old]
                if len(points) >= min_frames:
                    by_colour.setdefault(tid % len(self.PALETTE), []).append(np.round(points).astype(np.int32))
        for index, lines in by_colour.items():
            cv2.polylines(canvas, lines, False, self.PALETTE[index], 1, cv2.LINE_AA)


@dataclass
class RenderOptions:
    """What ``Renderer.draw`` shows.

    Attributes:
        overlay: ``"none"``, ``"cube"``, ``"axes"``, ``"image"`` or ``"video"`` (frames from ``overlay_frames``);
            alpha: the opacity of an image or video overlay.
        keypoints: ``"off"`` or a ``draw_keypoints`` colouring (``"score"``, ``"scale"``, ``"rank"``), with its
            legend under the status line. outline, status: layers.
        heatmap: the Key.Net response under every other layer, with its colour bar (needs
            ``FrameResult.response``: the tracker's ``keep_response`` option); heatmap_alpha: the opacity of the
            strongest responses.
        tracks: the keypoints' trails (``TrailBook``), each drawn from ``trail_min_frames`` coherent positions in
            a row on.
        matches, inliers_only: the target matches' lines, all or the inliers only.
    """

    overlay: str = "cube"
    alpha: float = 0.8
    keypoints: str = "off"
    outline: bool = True
    status: bool = True
    heatmap: bool = False
    heatmap_alpha: float = 0.85
    tracks: bool = False
    trail_min_frames: int = 4
    matches: bool = False
    inliers_only: bool = False


class Renderer:
    """Draws ``FrameResult``s; keeps the trails and the overlay video's position between frames.

    Per-frame state advances once per new frame (a ``result.index`` not drawn just before): drawing the same result
    again, e.g. paused with other options, gives the same picture. Trails are kept while the tracks layer is on;
    an index lower than the last one (a new source) starts them afresh.

    Args:
        overlay_frames: an image (H, W, 3|4) or an iterator of frames for ``overlay="image"``/``"video"``.
        **options: ``RenderOptions`` fields; ``set`` changes them live.
    """

    def __init__(self, overlay_frames: Any = None, **options: Any) -> None:
        check_options(options, vars(RenderOptions()), "render")
        self.options = RenderOptions(**options)
        self.trails = TrailBook()
        self.index: int | None = None  # the last frame drawn
        self.set_overlay(overlay_frames)

    def set(self, **options: Any) -> None:
        for key, value in options.items():
            if not hasattr(self.options, key):
                raise OptionError(f"unknown render option {key!r}; known: {sorted(vars(self.options))}")
            setattr(self.options, key, value)

    def set_overlay(self, overlay_frames: Any) -> None:
        """A new image, or iterator of video frames, for the ``"image"``/``"video"`` overlay (the trails stay)."""
        self.overlay_frames = overlay_frames
        self.overlay_image: np.ndarray | None = overlay_frames if isinstance(overlay_frames, np.ndarray) else None

    def _overlay(self, advance: bool) -> np.ndarray | None:
        """The overlay image, or the video's frame (the next one when ``advance``; the last stays when it ends)."""
        if self.options.overlay not in ("image", "video"):
            return None
        video = self.overlay_frames is not None and not isinstance(self.overlay_frames, np.ndarray)
        if video and (advance or self.overlay_image is None):
            frame = next(self.overlay_frames, None)
            if frame is not None:
                self.overlay_image = frame
        return self.overlay_image

    def _advance(self, result: FrameResult) -> bool:
        """Update the trails once per new frame while the tracks layer is on (they start afresh when it is
        off: no steps are judged for trails not drawn); True when ``result`` is a new frame."""
        if result.index == self.index:
            return False
        if not self.options.tracks or (self.index is not None and result.index < self.index):
            self.trails = TrailBook(self.trails.max_len, self.trails.coherence)
        if self.options.tracks:
            self.trails.update(result)
        self.index = result.index
        return True

    def draw(self, frame: np.ndarray, result: FrameResult) -> np.ndarray:
        """A BGR copy of ``frame`` with the layers drawn for ``result``: AR content placed by each target's
        ``size`` and shown homography, cubes and axes projected with ``result.camera`` (the intrinsics of the
        poses), match lines ending at the targets' points; the status line, the keypoints' legend under it and
        the heatmap's colour bar on top."""
        o = self.options
        canvas = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        overlay = self._overlay(self._advance(result))
        scale = None
        if o.heatmap and result.response is not None:
            scale = draw_heatmap(canvas, result.response, o.heatmap_alpha)
        for t in result.targets:
            if t.state == TRACKING and t.homography is not None:
                if overlay is not None:
                    warp_overlay(canvas, overlay, t.homography, t.size, o.alpha)
                elif o.overlay == "cube" and t.pose is not None:
                    draw_cube(canvas, t.pose, result.camera, t.size)
                elif o.overlay == "axes" and t.pose is not None:
                    draw_axes(canvas, t.pose, result.camera, t.size)
            if o.outline and t.corners is not None:
                draw_outline(canvas, t.corners, STATE_COLOURS.get(t.state, WHITE), t.name)
            if o.matches:
                draw_matches(canvas, result, t, o.inliers_only)
        if o.tracks:
            self.trails.draw(canvas, o.trail_min_frames)
        if o.keypoints != "off":
            draw_keypoints(canvas, result.keypoints, o.keypoints)
        line = 6
        if o.status:
            text = "  ".join(f"{t.name}: {t.state} ({t.num_inliers} inliers)" for t in result.targets) or "no target"
            line = draw_status(canvas, text) + 4
        if o.keypoints != "off":
            draw_keypoint_legend(canvas, result.keypoints, o.keypoints, (6, line))
        if scale is not None:
            draw_colour_bar(canvas, scale)
        return canvas
