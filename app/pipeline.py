"""What the processing thread runs: ``keynet``'s tracker and renderer, configured from the app's settings.

Nothing here detects, matches, estimates or draws: ``TrackingPipeline`` builds a ``keynet`` tracker from
``AppSettings``, feeds it frames and targets, and asks ``keynet.render`` for the annotated frame the view shows.
Without Key.Net weights it shows the video as it is and says how to choose a weights file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from keynet import sources
from keynet.describe import DESCRIPTORS, Describer
from keynet.image import read_image
from keynet.render import Renderer
from keynet.sources import looping_video
from keynet.tracker import FrameResult, PlanarTracker, tracking_detector
from keynet.weights import WeightsError, default_weights, load_model

from .recording import to_jsonable
from .settings_panel import MODELS, AppSettings
from .workers import Frame

NO_WEIGHTS_MESSAGE = (
    "No Key.Net weights for {model}: choose one in Settings → Model → Weights file (a .pt or .pth file). "
    "Showing the video without tracking."
)
DEFAULT_DESCRIPTOR = "orb"  # the tracker's default: fast on the CPU
CLICK_RADIUS_PX = 12.0
DEFAULT_FILE_FPS = 30.0
FRAME_HISTORY = 16  # recent frames kept so that a rectangle dragged on a shown frame cuts that frame


@dataclass(frozen=True)
class SourceSpec:
    """A source the user can open: a camera, a video file, an image folder or the bundled demo.

    Attributes:
        kind: ``"camera"``, ``"video"``, ``"folder"`` or ``"demo"``.
        spec: what ``keynet.sources.open_source`` takes (``camera:N``, a path, ``demo``).
        label: how menus and messages name it (cameras: with resolution and frame rate).
        pace_fps: files play at this rate (0: as fast as the source delivers, as cameras do).
        loop: start again at the end (the demo).
    """

    kind: str
    spec: str
    label: str
    pace_fps: float = 0.0
    loop: bool = False

    @classmethod
    def video(cls, path: str | Path) -> SourceSpec:
        return cls("video", str(path), Path(path).name, pace_fps=sources.file_fps(path))

    @classmethod
    def folder(cls, path: str | Path) -> SourceSpec:
        return cls("folder", str(path), f"{Path(path).name}/", pace_fps=DEFAULT_FILE_FPS)

    @classmethod
    def demo(cls) -> SourceSpec:
        return cls("demo", "demo", "the bundled demo", pace_fps=DEFAULT_FILE_FPS, loop=True)

    def opener(self) -> Callable[[], Any]:
        """Opens the source (called in the capture thread)."""
        return lambda: sources.open_source(self.spec)


def available_sources() -> list[SourceSpec]:
    """Every camera found (labelled with its resolution and frame rate), then the bundled demo."""
    cams = [SourceSpec("camera", f"camera:{c.index}", f"Camera {c.index} ({c.width}x{c.height}, {c.fps:.0f} fps)")
            for c in sources.list_cameras()]
    return [*cams, SourceSpec.demo()]


@dataclass(frozen=True)
class ViewOptions:
    """What the annotated frame shows.

    Attributes:
        keypoints: ``"off"``, ``"score"`` or ``"scale"`` (the colour code).
        matches, inliers_only, tracks, heatmap: the inspection layers.
        overlay: the AR content: ``"none"``, ``"cube"``, ``"axes"``, ``"image"`` or ``"video"``.
        overlay_path: the image or video file of an ``"image"`` or ``"video"`` overlay.
    """

    keypoints: str = "score"
    matches: bool = False
    inliers_only: bool = False
    tracks: bool = False
    heatmap: bool = False
    overlay: str = "cube"
    overlay_path: str = ""


@dataclass
class FrameOutput:
    """One processed frame as the UI needs it.

    Attributes:
        index: the frame's index in its source.
        bgr: (H, W, 3) uint8 annotated frame (shown, recorded, saved as snapshots).
        fresh: a newly processed frame (False when the same frame was drawn again for new view options).
        state: the tracking state of the first target (``searching``, ``tracking``, ``lost``) or ``no target``.
        inliers, matches: counts for the first target.
        timings_ms: per-stage time of this frame.
        homographies, poses: per target (None where not tracked).
        events: target found / lost messages.
        view: the view options it was drawn with.
        keypoints: (N, 4) x, y, scale, score; ``track_lengths`` and ``match_distances`` (N,) beside them.
    """

    index: int
    bgr: np.ndarray
    fresh: bool = True
    state: str = "no target"
    inliers: int = 0
    matches: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    homographies: list[Any] = field(default_factory=list)
    poses: list[Any] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    track_lengths: np.ndarray | None = None
    match_distances: np.ndarray | None = None
    view: ViewOptions | None = None

    @property
    def rgb(self) -> np.ndarray:
        """The annotated frame as RGB (a new array)."""
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def keypoint_near(self, x: float, y: float, radius: float = CLICK_RADIUS_PX) -> dict[str, Any] | None:
        """Score, scale, track length and match distance of the keypoint nearest (x, y), within ``radius`` px."""
        if not len(self.keypoints):
            return None
        d = np.hypot(self.keypoints[:, 0] - x, self.keypoints[:, 1] - y)
        i = int(np.argmin(d))
        if d[i] > radius:
            return None
        kx, ky, scale, score = (float(v) for v in self.keypoints[i])
        info: dict[str, Any] = {"keypoint": f"#{i} at ({kx:.1f}, {ky:.1f})", "score": f"{score:.4f}", "scale": f"{scale:.2f}"}
        if self.track_lengths is not None:
            info["track length"] = int(self.track_lengths[i])
        if self.match_distances is not None:
            dist = float(self.match_distances[i])
            info["match distance"] = f"{dist:.3f}" if np.isfinite(dist) else "not matched"
        return info

    def record(self) -> dict[str, Any]:
        """This frame's entry in the exported JSON."""
        return to_jsonable({
            "frame": self.index,
            "state": self.state,
            "states": self.states,
            "inliers": self.inliers,
            "matches": self.matches,
            "homographies": self.homographies,
            "poses": self.poses,
            "timings_ms": self.timings_ms,
        })


def resolve_model(settings: AppSettings) -> tuple[Path | None, str]:
    """The weights file the settings ask for (None when there is none) and the architecture to build."""
    if settings.model == "file":
        return (Path(settings.weights_file) if settings.weights_file else None), None
    return default_weights(settings.model), settings.model


def load_settings_model(settings: AppSettings):
    """The model the settings ask for, or None with the message to show when no weights are available.

    Raises:
        WeightsError, FileNotFoundError: a weights file that does not exist or cannot be used.
    """
    path, architecture = resolve_model(settings)
    if path is None:
        return None, NO_WEIGHTS_MESSAGE.format(model=MODELS[settings.model])
    return load_model(path, architecture), ""



class TrackingPipeline:
    """Runs in the processing thread: ``keynet``'s tracker on each frame, and the annotated frame for the view.

    Args:
        settings: model, device and tracker settings (``configure`` applies new ones).
        view: what to draw (``set_view`` changes it).
        on_record: called with each new ``FrameOutput`` (the recorder), in this thread.
    """

    def __init__(self, settings: AppSettings, view: ViewOptions,
                 on_record: Callable[[FrameOutput], None] | None = None) -> None:
        self.settings = settings
        self.view = view
        self.on_record = on_record
        self.tracker: PlanarTracker | None = None
        self.pending_targets: list[tuple[np.ndarray, str]] = []  # added while there is no model yet
        self.frames: dict[int, np.ndarray] = {}
        self.last: list | None = None  # [Frame, FrameResult | None] of the frame on screen
        self.renderer = Renderer(overlay_frames(view), **render_options(view))

    # -- changes posted by the UI
    def configure(self, settings: AppSettings) -> str:
        """Build (or reconfigure, keeping the targets) the tracker; returns a message for the user ("" if all is well)."""
        self.settings = settings
        try:
            model, message = load_settings_model(settings)
        except (FileNotFoundError, WeightsError) as exc:
            self._drop_tracker()
            return f"Cannot load the weights: {exc}. Choose another file in Settings → Model → Weights file."
        if model is None:
            self._drop_tracker()
            return message
        device = settings.device
        if device == "cuda" and not torch.cuda.is_available():
            device, message = "cpu", "CUDA is not available here: running on the CPU."
        detector = tracking_detector(model, num_keypoints=settings.num_keypoints, nms_size=settings.nms_size,
                                     device=device)
        describer = Describer(descriptor=settings.descriptor or DEFAULT_DESCRIPTOR, device=str(detector.device))
        conf = {"ratio": settings.ratio, "ransac_threshold": settings.ransac_px, "keep_response": self.view.heatmap}
        if self.tracker is None:
            self.tracker = PlanarTracker(detector, describer, **conf)
        else:
            self.tracker.configure(detector, describer, **conf)
        for image, name in self.pending_targets:
            self.tracker.add_target(image, name)
        self.pending_targets.clear()
        return message

    def _drop_tracker(self) -> None:
        if self.tracker is not None:
            self.pending_targets += [(t.image, t.name) for t in self.tracker.targets]
        self.tracker = None

    def add_target_rect(self, box: tuple[int, int, int, int], frame_index: int) -> str:
        """Track the region ``box`` (x, y, w, h) of the shown frame ``frame_index``; returns a message for the user."""
        image = self.frames.get(frame_index)
        if image is None:
            raise ValueError(f"frame {frame_index} is no longer in memory; drag the rectangle again")
        if self.tracker is None:
            x, y, w, h = box
            self.pending_targets.append((image[y: y + h, x: x + w].copy(), f"region {box}"))
            return "Target kept: it is tracked once a model is loaded."
        target = self.tracker.add_target_roi(image, box, assess=True)
        return f"Tracking {target.name}: {target.quality.keypoints} keypoints, {target.quality.stars}/5 stars"

    def add_target_image(self, path: str) -> str:
        """Track the planar image at ``path``; returns a message for the user."""
        image = read_image(path)
        if self.tracker is None:
            self.pending_targets.append((image, Path(path).stem))
            return "Target kept: it is tracked once a model is loaded."
        target = self.tracker.add_target(image, Path(path).stem)
        return f"Tracking {target.name} ({len(target.xy)} keypoints)"

    def clear_targets(self) -> None:
        self.pending_targets.clear()
        if self.tracker is not None:
            self.tracker.clear_targets()

    @property
    def num_targets(self) -> int:
        return len(self.pending_targets) + (len(self.tracker.targets) if self.tracker is not None else 0)

    def new_source(self, spec: SourceSpec) -> None:
        """A new source: forget its frames and the motion; the targets are searched for again."""
        self.frames.clear()
        self.last = None
        if self.tracker is not None:
            self.tracker.reset()

    def set_view(self, view: ViewOptions) -> FrameOutput | None:
        """New view options; returns the last frame drawn again with them (shown at once while paused).

        The tracker keeps each frame's Key.Net response only while the heatmap is shown; turning it on computes
        the response of the frame on screen.
        """
        if (view.overlay, view.overlay_path) != (self.view.overlay, self.view.overlay_path):
            self.renderer.set_overlay(overlay_frames(view))
        self.renderer.set(**render_options(view))
        self.view = view
        if self.tracker is not None:
            self.tracker.configure(keep_response=view.heatmap)
        if self.last is None:
            return None
        frame, result = self.last
        if view.heatmap and result is not None and result.response is None:
            response = self.tracker.detector.detect_with_response(frame.image)[1]
            result = self.last[1] = replace(result, response=response[0, 0].cpu().numpy())
        return self._output(frame, result, fresh=False)

    # -- per frame
    def process(self, frame: Frame) -> FrameOutput:
        self.frames[frame.index] = frame.image
        while len(self.frames) > FRAME_HISTORY:
            self.frames.pop(next(iter(self.frames)))
        result = None
        if self.tracker is not None:
            start = time.perf_counter()
            result = self.tracker.process(frame.image, frame.index, frame.time)
            # "wait": from capture to the start of processing: under one capture interval for a camera (newer frames
            # replace it); for a file, whose next frame is decoded once the slot is free, up to one frame's processing
            result.timings_ms = {"wait": (start - frame.time) * 1000, **result.timings_ms}
        self.last = [frame, result]
        output = self._output(frame, result, fresh=True)
        if self.on_record is not None:
            self.on_record(output)
        return output

    def _output(self, frame: Frame, result: FrameResult | None, fresh: bool) -> FrameOutput:
        if result is None:
            return FrameOutput(frame.index, frame.image, fresh, "no model", view=self.view)
        tracker = self.tracker
        bgr = self.renderer.draw(frame.image, result, tracker.targets if tracker else None)
        first = result.targets[0] if result.targets else None
        return FrameOutput(
            frame.index, bgr, fresh,
            state=first.state if first else "no target",
            inliers=first.num_inliers if first else 0,
            matches=len(first.matches) if first else 0,
            timings_ms=result.timings_ms,
            homographies=[t.homography for t in result.targets],
            poses=[t.pose.to_dict() if t.pose is not None else None for t in result.targets],
            states=[t.state for t in result.targets],
            events=result.events,
            keypoints=result.keypoints,
            track_lengths=result.track_lengths,
            match_distances=result.match_distances,
            view=self.view,
        )


def render_options(view: ViewOptions) -> dict[str, Any]:
    """The ``keynet.render.Renderer`` options for ``view``."""
    return {"overlay": view.overlay if view.overlay_path or view.overlay not in ("image", "video") else "none",
            "keypoints": view.keypoints, "matches": view.matches, "inliers_only": view.inliers_only,
            "tracks": view.tracks, "heatmap": view.heatmap}


def overlay_frames(view: ViewOptions) -> Any:
    """The image, or the (repeating) frames of the video, of ``view``'s AR overlay; None for the others.

    Raises:
        FileNotFoundError, ValueError, OSError: an overlay file that cannot be read.
    """
    if view.overlay == "image" and view.overlay_path:
        return read_image(view.overlay_path)
    if view.overlay == "video" and view.overlay_path:
        sources.open_source(view.overlay_path).close()  # a missing or unreadable file fails here, not later
        return looping_video(view.overlay_path)
    return None


def descriptor_names() -> list[str]:
    """The descriptors the settings offer (HardNet needs a weights file of its own: not offered here)."""
    return [DEFAULT_DESCRIPTOR, *(d for d in DESCRIPTORS if d not in (DEFAULT_DESCRIPTOR, "hardnet"))]
