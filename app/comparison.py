"""Two pipelines side by side on the same frames (no Qt): what the comparison window's processing thread runs.

``ComparisonPipeline`` feeds every frame to two trackers of ``keynet.baselines.PIPELINES`` (Key.Net, Tiny-Key.Net,
ORB, SIFT), one after the other so that neither side's stage times include the other's work, and draws each
with its own ``Renderer``. Every target is added to both, described by each pipeline's own detector. Per side it
reports the state, inliers and matches, the stage times and the shown corners' jitter (``CornerJitter``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from keynet.baselines import pipeline_label, pipeline_tracker
from keynet.config import TrackerConfig
from keynet.errors import InputError
from keynet.image import read_image
from keynet.progress import Progress
from keynet.render import Renderer, RenderOptions
from keynet.results import FrameResult
from keynet.tracker import TRACKING, PlanarTracker

from .frames import Frame
from .pipeline import DEMO_TARGET_NAME, FrameOutput, RecentFrames, TaskProgress, default_view

JITTER_FRAMES = 30  # the shown corners' jitter is the median over this many recent frames
SIDE_NAMES = ("left", "right")


class CornerJitter:
    """The shown corners' jitter (px): the median, over the last ``frames`` processed frames, of the corners' mean
    distance from where constant motion puts them: the motion between the two frames processed before, scaled by
    the source frames between (frames passed by while processing do not inflate it; the mean over the targets
    tracked in all three frames). A still target's figure is its jitter; a smoothly moving one reads near 0 too,
    so the figure separates the pipelines while the target moves.
    """

    def __init__(self, frames: int = JITTER_FRAMES) -> None:
        self.deviations: deque[float] = deque(maxlen=frames)
        self.history: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=2)  # (index, name -> (4, 2) corners)

    def update(self, result: FrameResult) -> float | None:
        """Add ``result``'s shown corners; returns the jitter (px), None before three tracked frames."""
        shown = {t.name: t.corners for t in result.targets if t.state == TRACKING and t.corners is not None}
        if len(self.history) == 2:
            (i0, first), (i1, second) = self.history
            step = (result.index - i1) / max(1, i1 - i0)
            deviations = [float(np.linalg.norm(c - (second[n] + step * (second[n] - first[n])), axis=1).mean())
                          for n, c in shown.items() if n in first and n in second]
            if deviations:
                self.deviations.append(float(np.mean(deviations)))
        self.history.append((result.index, shown))
        return self.value

    @property
    def value(self) -> float | None:
        return float(np.median(self.deviations)) if self.deviations else None

    def reset(self) -> None:
        self.deviations.clear()
        self.history.clear()


@dataclass
class SideOutput:
    """One side of a compared frame: its pipeline ``kind`` and ``label``, the ``frame`` as the main window's
    pipeline gives it (annotated ``bgr``, ``result``, ``state``, ``inliers``, ``matches``, ``timings_ms``) and the
    shown corners' ``jitter_px`` (px, ``CornerJitter``; None until measured)."""

    kind: str
    label: str
    frame: FrameOutput
    jitter_px: float | None

    @property
    def total_ms(self) -> float:
        """The tracker's time on this frame: its stages together."""
        return float(sum(self.frame.timings_ms.values()))

    def stats(self) -> str:
        """One line: state, inliers of matches, jitter, the total and each stage's time."""
        jitter = "-" if self.jitter_px is None else f"{self.jitter_px:.2f}"
        stages = " ".join(f"{k} {v:.1f}" for k, v in self.frame.timings_ms.items())
        return (f"{self.frame.state} · inliers {self.frame.inliers}/{self.frame.matches} · jitter {jitter} px · "
                f"{self.total_ms:.0f} ms ({stages})")


@dataclass
class ComparisonOutput:
    """One frame through both pipelines: its ``index`` and capture ``time`` (``time.perf_counter`` s), the
    ``left`` and ``right`` sides (each an (H, W, 3) uint8 annotated frame with its figures)."""

    index: int
    time: float
    left: SideOutput
    right: SideOutput

    @property
    def sides(self) -> tuple[SideOutput, SideOutput]:
        return self.left, self.right


class _Side:
    """One pipeline: its tracker, renderer and jitter meter."""

    def __init__(self, kind: str, config: TrackerConfig, view: RenderOptions) -> None:
        self.kind = kind
        self.label = pipeline_label(kind, config)
        self.tracker: PlanarTracker = pipeline_tracker(kind, config)
        self.renderer = Renderer(None, **asdict(view))
        self.view = view
        self.jitter = CornerJitter()

    def process(self, frame: Frame) -> SideOutput:
        result = self.tracker.process(frame.image, frame.index, frame.time)
        output = FrameOutput(frame.index, self.renderer.draw(frame.image, result), True, result, self.view, frame.time)
        return SideOutput(self.kind, self.label, output, self.jitter.update(result))


class ComparisonPipeline:
    """Runs the same frames through two pipelines (fits ``app.workers.Pipeline``: ``process(frame)``).

    Args:
        left, right: the pipelines' kinds (``keynet.baselines.PIPELINES``).
        config: the trackers' settings (default ``TrackerConfig()``).
        view: what each side draws (default: the app's first view, ``app.pipeline.default_view``).
        on_progress: called with (task, done, total) while a target is described.

    Raises:
        OptionError, WeightsError: a kind that is unknown or whose weights are absent.
    """

    def __init__(self, left: str = "keynet", right: str = "orb", config: TrackerConfig | None = None,
                 view: RenderOptions | None = None, on_progress: TaskProgress | None = None) -> None:
        self.config = config or TrackerConfig()
        self.view = view or default_view()
        self.on_progress = on_progress
        self.targets: list[tuple[np.ndarray, str]] = []  # every target's image and name, in the trackers' order
        self.frames = RecentFrames()
        self.sides = [_Side(left, self.config, self.view), _Side(right, self.config, self.view)]

    @property
    def kinds(self) -> tuple[str, str]:
        return self.sides[0].kind, self.sides[1].kind

    def set_pipeline(self, side: int, kind: str) -> str:
        """Run ``kind`` on ``side`` (0: left, 1: right) with the same targets; returns a message for the user.

        Raises:
            OptionError, WeightsError: as the constructor; InputError: a target the new pipeline cannot track.
        """
        new = _Side(kind, self.config, self.view)
        for image, name in self.targets:
            new.tracker.add_target(image, name, progress=self._progress(f"Describing {name} for {new.label}"))
        self.sides[side] = new
        return f"{SIDE_NAMES[side].capitalize()}: {new.label}"

    # -- targets (each on both sides)
    def _progress(self, task: str) -> Progress | None:
        report = self.on_progress
        return None if report is None else (lambda done, total: report(task, done, total))

    def _add(self, image: np.ndarray, name: str, frame: np.ndarray | None = None,
             box: tuple[int, int, int, int] | None = None) -> str:
        """Add the target ``image`` (cut from ``frame`` at ``box`` when given: it starts found there) to both
        trackers, or to neither; returns a message naming each side's keypoints on it.

        Raises:
            InputError: a side cannot track it (the message names the side's pipeline).
        """
        added: list[_Side] = []
        try:
            for side in self.sides:
                progress = self._progress(f"Describing {name} for {side.label}")
                if box is None:
                    side.tracker.add_target(image, name, progress=progress)
                else:
                    side.tracker.add_target_roi(frame, box, name, progress=progress)
                added.append(side)
        except InputError as exc:
            for side in added:
                side.tracker.remove_target(len(side.tracker.targets) - 1)
            raise InputError(f"{side.label} cannot track {name}: {exc}") from exc
        self.targets.append((image, name))
        counts = ", ".join(f"{s.label} {len(s.tracker.targets[-1].xy)}" for s in self.sides)
        return f"Tracking {name} on both sides (keypoints: {counts})"

    def add_target_rect(self, box: tuple[int, int, int, int], frame_index: int) -> str:
        """Track the region ``box`` (x, y, w, h) of the shown frame ``frame_index`` on both sides.

        Raises:
            InputError: the frame is no longer in memory, or a side cannot track the region.
        """
        frame = self.frames.image(frame_index)
        x, y, w, h = box
        return self._add(frame[y:y + h, x:x + w].copy(), f"region {len(self.targets) + 1}", frame, box)

    def add_target_image(self, path: str | Path, name: str | None = None) -> str:
        """Track the planar image at ``path`` on both sides.

        Raises:
            InputError: an image that cannot be read, or one a side cannot track.
        """
        return self._add(read_image(path), name or Path(path).stem)

    def add_demo_target(self, path: str | Path) -> str:
        """Track the demo's poster at ``path`` on both sides (once)."""
        if any(name == DEMO_TARGET_NAME for _, name in self.targets):
            return "The demo's poster is tracked already."
        return self.add_target_image(path, DEMO_TARGET_NAME)

    def clear_targets(self) -> None:
        self.targets.clear()
        self._forget(targets=True)

    def new_source(self) -> None:
        """A new source (or a file played again): forget its frames and the motion; targets are searched again."""
        self.frames.clear()
        self._forget(targets=False)

    def _forget(self, targets: bool) -> None:
        """Both sides forget the motion (the jitter's frames, the trackers' state) and, if ``targets``, the targets."""
        for side in self.sides:
            if targets:
                side.tracker.clear_targets()
            else:
                side.tracker.reset()
            side.jitter.reset()

    # -- per frame
    def process(self, frame: Frame) -> ComparisonOutput:
        """Both pipelines on ``frame``, the left one first."""
        self.frames.add(frame)
        left, right = (side.process(frame) for side in self.sides)
        return ComparisonOutput(frame.index, frame.time, left, right)
