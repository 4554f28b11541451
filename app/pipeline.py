"""What the processing thread runs: ``keynet``'s tracker and renderer, configured from the app's settings.

Nothing here detects, matches, estimates or draws, and nothing imports Qt (the processing side is testable
without a display): ``TrackingPipeline`` builds a ``keynet`` tracker from ``AppSettings`` (with the camera of its
calibration file), feeds it frames and targets (rated by ``keynet.targets`` before they are tracked), and asks
``keynet.render`` for the annotated frame the view shows. Without Key.Net weights it shows the
video as it is and says how to choose a weights file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keynet import sources
from keynet.config import TrackerConfig
from keynet.describe import DESCRIPTORS, Describer
from keynet.devices import resolve_device
from keynet.errors import DeviceError, InputError, KeyNetError
from keynet.geometry import Camera
from keynet.image import read_image
from keynet.progress import Progress
from keynet.render import Renderer, RenderOptions
from keynet.results import FrameResult
from keynet.sources import looping_video
from keynet.targets import Target, TargetQuality, make_target
from keynet.tracker import TRACKING, PlanarTracker, roi_homography, tracking_detector
from keynet.weights import default_weights, load_model

from .frames import Frame
from .settings import MODELS, TRACKER_DEFAULTS, AppSettings

log = logging.getLogger(__name__)

NO_WEIGHTS_MESSAGE = (
    "No Key.Net weights for {model}: choose one in Settings → Model → Weights file (a .pt or .pth file). "
    "Showing the video without tracking."
)
DEFAULT_DESCRIPTOR: str = TRACKER_DEFAULTS["descriptor"]
CLICK_RADIUS_PX = 12.0
DEFAULT_FILE_FPS = 30.0  # image folders (and the demo) play at this rate
SHORT_CLIP_S = 30.0  # video files up to this long loop by default
FRAME_HISTORY = 16  # recent frames kept so that a rectangle dragged on a shown frame cuts that frame
DEMO_TARGET_NAME = "demo poster"
GOOD_STARS = 3  # a previewed target with at least these stars is called good to track

# Called with a task's description, the steps done and the steps in all (rendering the demo, describing a target).
TaskProgress = Callable[[str, int, int], None]


def default_view() -> RenderOptions:
    """What the app shows first: keypoints coloured by score and the cube on each tracked target."""
    return replace(RenderOptions(), keypoints="score", overlay="cube")


@dataclass(frozen=True)
class SourceSpec:
    """A source the user can open: a camera, a video file, an image folder or the bundled demo.

    Attributes:
        kind: ``"camera"``, ``"video"``, ``"folder"`` or ``"demo"``.
        spec: what ``keynet.sources.open_source`` takes (``camera:N``, a path, ``demo``).
        label: how menus and messages name it (cameras: with resolution and frame rate).
        pace_fps: files play at this rate (0: as fast as the source delivers, as cameras do).
        loop: start again at the end (on for the demo and short clips; the View menu changes it).
    """

    kind: str
    spec: str
    label: str
    pace_fps: float = 0.0
    loop: bool = False

    @classmethod
    def video(cls, path: str | Path) -> SourceSpec:
        fps = sources.file_fps(path)
        return cls("video", str(path), Path(path).name, pace_fps=fps, loop=is_short_clip(path, fps))

    @classmethod
    def folder(cls, path: str | Path) -> SourceSpec:
        return cls("folder", str(path), f"{Path(path).name}/", pace_fps=DEFAULT_FILE_FPS)

    @classmethod
    def demo(cls) -> SourceSpec:
        return cls("demo", "demo", "the bundled demo", pace_fps=DEFAULT_FILE_FPS, loop=True)

    @property
    def is_file(self) -> bool:
        """A source that ends (a video file, an image folder, the demo), unlike a camera."""
        return self.kind != "camera"

    def opener(self, progress: Progress | None = None) -> Callable[[], Any]:
        """Opens the source (called in the capture thread); the demo's first rendering reports to ``progress``."""
        return lambda: sources.open_source(self.spec, progress=progress)


def is_short_clip(path: str | Path, fps: float) -> bool:
    """Whether the video at ``path`` lasts at most ``SHORT_CLIP_S`` (by the frame count it declares)."""
    cap = cv2.VideoCapture(str(path))
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0.0
    cap.release()
    return 0 < count <= SHORT_CLIP_S * fps


def available_sources() -> list[SourceSpec]:
    """Every camera found (labelled with its resolution and frame rate), then the bundled demo."""
    cams = [SourceSpec("camera", f"camera:{c.index}", f"Camera {c.index} ({c.width}x{c.height}, {c.fps:.0f} fps)")
            for c in sources.list_cameras()]
    return [*cams, SourceSpec.demo()]


@dataclass
class FrameOutput:
    """One processed frame as the UI needs it.

    Attributes:
        index: the frame's index in its source; time: when it was captured (``time.perf_counter`` s).
        bgr: (H, W, 3) uint8 annotated frame (shown, recorded, saved as snapshots).
        fresh: a newly processed frame (False when the same frame was drawn again for new view options).
        result: the tracker's ``FrameResult`` (None without a model).
        view: the render options it was drawn with.
        captured: (H, W, 3) uint8 BGR frame as the source gave it, nothing drawn (what a calibration reads).
    """

    index: int
    bgr: np.ndarray
    fresh: bool = True
    result: FrameResult | None = None
    view: RenderOptions | None = None
    time: float = 0.0
    captured: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        """The annotated frame as RGB (a new array)."""
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)

    @property
    def state(self) -> str:
        """``no model``, ``no target``, ``tracking`` when any target is tracked, else the first target's state."""
        if self.result is None:
            return "no model"
        states = [t.state for t in self.result.targets]
        if not states:
            return "no target"
        return TRACKING if TRACKING in states else states[0]

    @property
    def targets(self) -> list[tuple[str, str, int, int]]:
        """(name, state, inliers, matches) of every target, in the tracker's order."""
        if self.result is None:
            return []
        return [(t.name, t.state, t.num_inliers, len(t.matches)) for t in self.result.targets]

    @property
    def inliers(self) -> int:
        """Inliers of every target together."""
        return sum(t[2] for t in self.targets)

    @property
    def matches(self) -> int:
        return sum(t[3] for t in self.targets)

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    @property
    def timings_ms(self) -> dict[str, float]:
        return self.result.timings_ms if self.result is not None else {}

    @property
    def events(self) -> list[str]:
        return self.result.events if self.result is not None else []

    @property
    def keypoints(self) -> np.ndarray:
        """(N, 4) x, y, scale, score."""
        return self.result.keypoints if self.result is not None else np.zeros((0, 4), np.float32)

    def summary(self) -> str:
        """Every target's state and inliers, as the status line on the video reads."""
        if self.result is None or not self.result.targets:
            return self.state
        return "  ".join(f"{name}: {state} ({inliers} inliers)" for name, state, inliers, _ in self.targets)

    def keypoint_near(self, x: float, y: float, radius: float = CLICK_RADIUS_PX) -> int | None:
        """The row of the keypoint nearest (x, y), within ``radius`` px; None when there is none."""
        keypoints = self.keypoints
        if not len(keypoints):
            return None
        d = np.hypot(keypoints[:, 0] - x, keypoints[:, 1] - y)
        i = int(np.argmin(d))
        return i if d[i] <= radius else None

    def keypoint_info(self, row: int) -> dict[str, Any]:
        """Position, score, scale, track length and match distance of keypoint ``row``."""
        kx, ky, scale, score = (float(v) for v in self.keypoints[row])
        info: dict[str, Any] = {"keypoint": f"#{row} at ({kx:.1f}, {ky:.1f})", "score": f"{score:.4f}",
                                "scale": f"{scale:.2f}"}
        if self.result is not None:
            info["track length"] = int(self.result.track_lengths[row])
            dist = float(self.result.match_distances[row])
            info["match distance"] = f"{dist:.3f}" if np.isfinite(dist) else "not matched"
        return info

    def record(self) -> dict[str, Any] | None:
        """This frame's entry in the exported JSON: ``FrameResult.to_dict`` (None without a model)."""
        return self.result.to_dict() if self.result is not None else None


@dataclass
class TargetPreview:
    """A candidate target, described with the tracker's settings and rated, that is not tracked yet.

    Attributes:
        target: the described target (``xy`` (N, 2) in its pixels, possibly too few to track) with its ``quality``.
        minimum: the keypoints tracking needs (``TargetConfig.min_target_keypoints``).
        frame, box: the (H, W, 3) frame a dragged rectangle cut it from and that (x, y, w, h) rectangle; None for
            a target image.
        described_by: the tracker that described it and its settings then (kept as it is while they hold).
    """

    target: Target
    minimum: int
    frame: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None
    described_by: tuple[PlanarTracker, TrackerConfig] | None = None

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def quality(self) -> TargetQuality:
        return self.target.quality

    @property
    def trackable(self) -> bool:
        """Whether it has the keypoints tracking needs."""
        return len(self.target.xy) >= self.minimum

    def verdict(self) -> str:
        """One sentence for the user: whether and how well it will track."""
        if not self.trackable:
            return (f"Too plain to track: {len(self.target.xy)} usable keypoints, tracking needs at least "
                    f"{self.minimum}. Choose a larger or more textured region.")
        if self.quality.stars >= GOOD_STARS:
            return "Good to track."
        return "It will track poorly: few keypoints, or keypoints in few places. A more textured region is better."


def load_camera(path: str) -> tuple[Camera | None, str]:
    """The camera of the calibration file at ``path`` (OpenCV YAML/XML or JSON) and "", or None and "" for no
    file (the field of view's camera), or None and a one-line message when the file cannot be used."""
    if not path:
        return None, ""
    try:
        return Camera.from_file(path), ""
    except (KeyNetError, OSError) as exc:
        return None, " ".join(f"The calibration is not used: {exc}. The pose and the cube use the field of view."
                              .split())


def resolve_model(settings: AppSettings) -> tuple[Path | None, str | None]:
    """The weights file the settings ask for (None when there is none) and the architecture to build."""
    if settings.model == "file":
        return (Path(settings.weights_file) if settings.weights_file else None), None
    return default_weights(settings.model), settings.model


def load_settings_model(settings: AppSettings) -> tuple[Any, str]:
    """The model the settings ask for, or None with the message to show when no weights are available.

    Raises:
        WeightsError: a weights file that does not exist or cannot be used.
    """
    path, architecture = resolve_model(settings)
    if path is None:
        return None, NO_WEIGHTS_MESSAGE.format(model=MODELS[settings.model])
    return load_model(path, architecture), ""


class RecentFrames(dict[int, np.ndarray]):
    """The images of the last ``FRAME_HISTORY`` frames processed, by frame index (a rectangle dragged on a shown
    frame cuts that frame)."""

    def add(self, frame: Frame) -> None:
        self[frame.index] = frame.image
        while len(self) > FRAME_HISTORY:
            self.pop(next(iter(self)))

    def image(self, index: int) -> np.ndarray:
        """Frame ``index``'s (H, W, 3) BGR image.

        Raises:
            InputError: the frame is no longer kept.
        """
        image = self.get(index)
        if image is None:
            raise InputError(f"frame {index} is no longer in memory; drag the rectangle again")
        return image


class TrackingPipeline:
    """Runs in the processing thread: ``keynet``'s tracker on each frame, and the annotated frame for the view.

    Args:
        settings: model, device, tracker settings and calibration file (``configure`` applies new ones).
        view: what to draw (``set_view`` changes it).
        on_record: called with each new ``FrameOutput`` (the recorder), in this thread.
        on_progress: called with (task, done, total) while a target is described.
    """

    def __init__(self, settings: AppSettings, view: RenderOptions | None = None,
                 on_record: Callable[[FrameOutput], None] | None = None,
                 on_progress: TaskProgress | None = None) -> None:
        self.settings = settings
        self.view = view or default_view()
        self.overlay_path = ""
        self.on_record = on_record
        self.on_progress = on_progress
        self.tracker: PlanarTracker | None = None
        self.camera: Camera | None = None  # from the calibration file; None: the field of view's
        self.pending_targets: list[tuple[np.ndarray, str]] = []  # added while there is no model yet
        self.frames = RecentFrames()
        self.last: list | None = None  # [Frame, FrameResult | None] of the frame on screen
        self.renderer = Renderer(None, **asdict(self.view))

    def _progress(self, task: str) -> Progress | None:
        if self.on_progress is None:
            return None
        report = self.on_progress
        return lambda done, total: report(task, done, total)

    # -- changes posted by the UI
    def configure(self, settings: AppSettings) -> str:
        """Build (or reconfigure, keeping the targets) the tracker with the camera of ``settings.calibration_file``
        (the field of view's without one); returns a message for the user ("" if all is well)."""
        self.settings = settings
        self.camera, camera_message = load_camera(settings.calibration_file)
        return " ".join(m for m in (self._build_tracker(settings), camera_message) if m)

    def _build_tracker(self, settings: AppSettings) -> str:
        try:
            model, message = load_settings_model(settings)
        except (KeyNetError, OSError) as exc:
            self._drop_tracker()
            return f"Cannot load the weights: {exc}. Choose another file in Settings → Model → Weights file."
        if model is None:
            self._drop_tracker()
            return message
        try:
            device = resolve_device(settings.device)
        except DeviceError as exc:
            log.debug("device %s: %s", settings.device, exc)
            device, message = resolve_device("cpu"), f"Device {settings.device!r} is not available here: running on the CPU."
        config = settings.tracker_config(keep_response=self.view.heatmap, device=str(device))
        detector = tracking_detector(model, config.detector)
        describer = Describer(descriptor=config.matching.descriptor, device=str(detector.device))
        if self.tracker is None:
            self.tracker = PlanarTracker(detector, describer, config=config)
        else:
            self.tracker.configure(detector, describer, config=config)
        self.tracker.camera = self.camera
        pending, self.pending_targets = self.pending_targets, []
        for image, name in pending:
            self.tracker.add_target(image, name, progress=self._progress(f"Describing {name}"))
        return message

    def _drop_tracker(self) -> None:
        if self.tracker is not None:
            self.pending_targets += [(t.image, t.name) for t in self.tracker.targets]
        self.tracker = None

    def add_target_rect(self, box: tuple[int, int, int, int], frame_index: int) -> str:
        """Track the region ``box`` (x, y, w, h) of the shown frame ``frame_index``; returns a message for the user.

        Raises:
            InputError: the frame is no longer in memory, or the region is too small or too plain to track.
        """
        image = self.frames.image(frame_index)
        name = f"region {len(self._names()) + 1}"
        if self.tracker is None:
            x, y, w, h = box
            self.pending_targets.append((image[y: y + h, x: x + w].copy(), name))
            return "Target kept: it is tracked once a model is loaded."
        target = self.tracker.add_target_roi(image, box, name, assess=True, progress=self._progress(f"Describing {name}"))
        return f"Tracking {target.name}: {target.quality.keypoints} keypoints, {target.quality.stars}/5 stars"

    def add_target_image(self, path: str, name: str | None = None) -> str:
        """Track the planar image at ``path``; returns a message for the user.

        Raises:
            InputError: an image that cannot be read, or one too plain to track.
        """
        image = read_image(path)
        name = name or Path(path).stem
        if self.tracker is None:
            self.pending_targets.append((image, name))
            return "Target kept: it is tracked once a model is loaded."
        target = self.tracker.add_target(image, name, progress=self._progress(f"Describing {name}"))
        return f"Tracking {target.name} ({len(target.xy)} keypoints)"

    def preview_target_rect(self, box: tuple[int, int, int, int], frame_index: int) -> TargetPreview:
        """The region ``box`` (x, y, w, h) of the shown frame ``frame_index``, described and rated, not tracked.

        Raises:
            InputError: no model to rate it with, the frame is no longer in memory, or the region is not inside it.
        """
        image = self.frames.image(frame_index)
        x, y, w, h = box
        fh, fw = image.shape[:2]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > fw or y + h > fh:
            raise InputError(f"region {x},{y},{w},{h} (x,y,w,h) is not inside the {fw}x{fh} frame")
        name = f"region {len(self._names()) + 1}"
        return self._preview(image[y: y + h, x: x + w].copy(), name, image, box)

    def preview_target_image(self, path: str) -> TargetPreview:
        """The planar image at ``path``, described and rated, not tracked.

        Raises:
            InputError: no model to rate it with, or an image that cannot be read.
        """
        return self._preview(read_image(path), Path(path).stem)

    def _preview(self, image: np.ndarray, name: str, frame: np.ndarray | None = None,
                 box: tuple[int, int, int, int] | None = None) -> TargetPreview:
        tracker = self.tracker
        if tracker is None:
            raise InputError("no model to rate the target with: choose Key.Net weights in Settings → Model")
        every_keypoint = replace(tracker.config.targets, min_target_keypoints=0)  # too plain ones are shown too
        target = make_target(image, name, tracker.detector, tracker.describer, every_keypoint,
                             self._progress(f"Rating {name}"))
        target.quality = tracker.assess(target)
        return TargetPreview(target, tracker.config.targets.min_target_keypoints, frame, box, (tracker, tracker.config))

    def keep_preview(self, preview: TargetPreview) -> str:
        """Track the previewed target (described again with the settings of now; a dragged rectangle starts as
        found where it was cut); returns a message for the user.

        Raises:
            InputError: a target too plain to track.
        """
        if not preview.trackable:
            raise InputError(preview.verdict())
        image, name = preview.target.image, preview.name
        if self.tracker is None:
            self.pending_targets.append((image, name))
            return "Target kept: it is tracked once a model is loaded."
        start = None if preview.box is None else roi_homography(preview.box)
        tracker, config = preview.described_by or (None, None)
        if tracker is self.tracker and config == self.tracker.config:
            target = self.tracker.add_described_target(preview.target, start)  # as previewed: not described again
        elif preview.box is None:  # the settings changed since the preview: described again
            target = self.tracker.add_target(image, name, progress=self._progress(f"Describing {name}"))
        else:
            target = self.tracker.add_target_roi(preview.frame, preview.box, name,
                                                 progress=self._progress(f"Describing {name}"))
        target.quality = preview.quality
        return f"Tracking {name}: {len(target.xy)} keypoints, {target.quality.stars}/5 stars"

    def add_demo_target(self, path: str) -> str:
        """Track the demo's poster beside the targets already set (once); returns what was done, for the user."""
        names = self._names()
        if DEMO_TARGET_NAME in names:
            return f"The demo's poster is tracked already ({len(names)} target(s))."
        others = len(names)
        message = self.add_target_image(path, DEMO_TARGET_NAME)
        return message + (f", beside your {others} other target(s)" if others else "")

    def _names(self) -> list[str]:
        tracked = [t.name for t in self.tracker.targets] if self.tracker is not None else []
        return tracked + [name for _, name in self.pending_targets]

    def clear_targets(self) -> None:
        self.pending_targets.clear()
        if self.tracker is not None:
            self.tracker.clear_targets()

    @property
    def num_targets(self) -> int:
        return len(self._names())

    def new_source(self) -> None:
        """A new source (or a file played again): forget its frames and the motion; targets are searched again."""
        self.frames.clear()
        self.last = None
        if self.tracker is not None:
            self.tracker.reset()

    def set_view(self, view: RenderOptions, overlay_path: str = "") -> FrameOutput | None:
        """New render options (and the file of an ``"image"`` or ``"video"`` overlay); returns the last frame drawn
        again with them (shown at once while paused).

        The tracker keeps each frame's Key.Net response only while the heatmap is shown; turning it on computes
        the response of the frame on screen.

        Raises:
            InputError, SourceError: an overlay file that cannot be read (the overlay is then left out).
        """
        failure: KeyNetError | None = None
        if (view.overlay, overlay_path) != (self.view.overlay, self.overlay_path):
            self.overlay_path = overlay_path
            try:
                frames = overlay_frames(view.overlay, overlay_path)
            except KeyNetError as exc:  # the other options still apply
                frames, failure = None, exc
            self.renderer.set_overlay(frames)
        self.renderer.set(**asdict(view))
        self.view = view
        if self.tracker is not None:
            self.tracker.configure(keep_response=view.heatmap)
        if failure is not None:
            raise failure
        if self.last is None:
            return None
        frame, result = self.last
        if view.heatmap and result is not None and result.response is None:
            response = self.tracker.detector.detect_with_response(frame.image)[1]
            result = self.last[1] = replace(result, response=response[0, 0].cpu().numpy())
        return self._output(frame, result, fresh=False)

    # -- per frame
    def process(self, frame: Frame) -> FrameOutput:
        self.frames.add(frame)
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
        bgr = frame.image if result is None else self.renderer.draw(frame.image, result)
        return FrameOutput(frame.index, bgr, fresh, result, self.view, frame.time, frame.image)


def overlay_frames(kind: str, path: str) -> Any:
    """The image, or the (repeating) frames of the video, of an ``"image"`` or ``"video"`` AR overlay at ``path``;
    None for the other overlays.

    Raises:
        InputError, SourceError: an overlay file that cannot be read.
    """
    if kind == "image" and path:
        return read_image(path)
    if kind == "video" and path:
        sources.open_source(path).close()  # a missing or unreadable file fails here, not later
        return looping_video(path)
    return None


def descriptor_names() -> list[str]:
    """The descriptors the settings offer, the tracker's default first (HardNet needs a weights file of its own:
    not offered here)."""
    return [DEFAULT_DESCRIPTOR, *(d for d in DESCRIPTORS if d not in (DEFAULT_DESCRIPTOR, "hardnet"))]
