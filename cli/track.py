"""``python main.py track``: track a planar target through a video, an image folder or a camera, headless.

Writes an annotated video (``--out``) and a JSON Lines log (``--json``): a ``run`` record (source, target, its
quality, the tracker's configuration), one ``frame`` record per frame (``FrameResult.to_dict``: each target's state,
raw and shown homography and corners, pose, inliers, timings) written as it is tracked, and a ``summary`` record
(frames, tracked, error, interrupted). A run that fails, is interrupted (SIGINT, SIGTERM) or loses its source
mid-stream keeps every frame processed so far in both outputs; one that fails before its first frame leaves
existing outputs untouched. Output paths are checked before any work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from keynet.config import TrackerConfig
from keynet.demo import demo_sequence
from keynet.describe import DESCRIPTORS, Describer
from keynet.errors import InputError, KeyNetError, OutputError
from keynet.files import JsonLinesLog
from keynet.geometry import Camera
from keynet.image import VIDEO_SUFFIXES, as_bgr, read_image
from keynet.render import Renderer, RenderOptions
from keynet.sources import FrameSource, looping_video, open_source
from keynet.tracker import TRACKING, PlanarTracker, tracking_detector
from keynet.weights import load_model, resolve_weights

from .errors import Interrupted, interruptible
from .options import add_architecture_option, add_device_option, add_weights_option, count, positive_number
from .progress import progress_bar
from .video import VIDEO_CODECS, VideoOut, check_video_path


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``x,y,w,h`` -> four ints.

    Raises:
        InputError: anything else.
    """
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--roi {text!r}: expected x,y,w,h (four integers, pixels)") from None
    return x, y, w, h


def make_renderer(overlay: str, **options: Any) -> Renderer:
    """A renderer for ``--overlay``: ``cube``, ``axes``, ``none``, an image file or a video file."""
    if overlay in ("none", "cube", "axes"):
        return Renderer(overlay=overlay, **options)
    if not Path(overlay).is_file():
        raise InputError(f"--overlay {overlay} is neither cube/axes/none nor an existing image or video file")
    if Path(overlay).suffix.lower() in VIDEO_SUFFIXES:
        return Renderer(looping_video(overlay), overlay="video", **options)
    return Renderer(as_bgr(read_image(overlay)), overlay="image", **options)


#: The command's number options: flag name -> (the ``TrackerConfig`` field it sets, its argparse type, help).
NUMBER_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "num": ("num_keypoints", count, "keypoints per frame"),
    "nms": ("nms_size", count, "NMS window size"),
    "ratio": ("ratio", positive_number, "ratio test threshold"),
    "ransac": ("ransac_threshold", positive_number, "MAGSAC threshold in pixels"),
}


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """The defaults of ``TrackerConfig`` with the command's options."""
    numbers = {field: getattr(args, flag) for flag, (field, _, _) in NUMBER_OPTIONS.items()}
    return TrackerConfig().replace(**numbers, multi_scale=args.multi_scale, device=args.device,
                                   descriptor=args.descriptor)


def make_tracker(args: argparse.Namespace) -> PlanarTracker:
    """The tracker the options describe, without targets."""
    config = tracker_config(args)
    camera = Camera.from_file(args.calibration) if args.calibration else None  # a bad file before the model loads
    model = load_model(resolve_weights(args.weights, args.architecture), args.architecture)
    detector = tracking_detector(model, config.detector)
    describer = Describer(descriptor=config.matching.descriptor, weights=args.descriptor_weights,
                          device=str(detector.device))
    return PlanarTracker(detector, describer, camera, config=config)


class Run:
    """What a ``track`` run produced so far: frames processed and tracked, and how it ended."""

    def __init__(self) -> None:
        self.frames = self.tracked = 0
        self.error = self.interrupted = ""

    def summary(self) -> dict[str, Any]:
        """The JSON Lines log's last record."""
        return {"kind": "summary", "frames": self.frames, "tracked": self.tracked, "error": self.error,
                "interrupted": self.interrupted}


def track_frames(tracker: PlanarTracker, source: FrameSource, renderer: Renderer, video: VideoOut,
                 log: JsonLinesLog | None, roi: tuple[int, int, int, int] | None, max_frames: int, run: Run) -> None:
    """Track every frame of ``source`` (up to ``max_frames``, 0: all), logging each frame's record to ``log`` and
    its drawing to ``video`` as it goes; with ``roi`` the first frame's rectangle becomes the target."""
    bar = tqdm(source, total=len(source) or None, desc="tracking", unit="frame")
    for index, frame, stamp in bar:
        if roi is not None and not tracker.targets:
            with progress_bar("describing the target") as progress:
                tracker.add_target_roi(frame, roi, "roi", assess=True, progress=progress)
            if log is not None:
                log.header["target_quality"] = vars(tracker.targets[0].quality)
        result = tracker.process(frame, index, stamp)
        video.write(renderer.draw(frame, result))
        if log is not None:
            log.write({"kind": "frame", **result.to_dict()})
        run.frames += 1
        run.tracked += bool(result.targets) and result.targets[0].state == TRACKING
        bar.set_postfix_str(result.targets[0].state if result.targets else "")
        if max_frames and index + 1 >= max_frames:
            break


def default_target(args: argparse.Namespace) -> str | None:
    """``--target``, or the demo's own poster when the source is the demo and no ``--roi`` is given."""
    if args.target is None and args.roi is None and str(args.source) == "demo":
        with progress_bar("rendering the demo", "frame") as progress:
            return str(demo_sequence(progress=progress).target)
    return args.target


@interruptible
def track(args: argparse.Namespace) -> int:
    """The ``track`` command (signals turned into ``Interrupted``)."""
    target = default_target(args)
    if (target is None) == (args.roi is None):
        raise InputError("give exactly one of --target IMAGE or --roi x,y,w,h (with --source demo the demo's "
                         "poster is the default target)")
    roi = parse_roi(args.roi) if args.roi else None
    if args.out:
        check_video_path(args.out)
    header = {"kind": "run", "source": str(args.source), "target": target or f"roi {args.roi}"}
    log = JsonLinesLog(args.json, header) if args.json else None
    tracker = make_tracker(args)
    header["config"] = tracker.config.to_dict()
    renderer = make_renderer(args.overlay, keypoints=args.keypoints, matches=args.matches, tracks=args.tracks)
    if target is not None:
        with progress_bar("describing the target") as progress:
            tracker.add_target(as_bgr(read_image(target)), Path(target).stem, assess=True, progress=progress)
        header["target_quality"] = vars(tracker.targets[0].quality)
    with progress_bar("rendering the demo", "frame") as progress:
        source = open_source(args.source, progress=progress)
    run = Run()
    video = VideoOut(args.out, source.fps)
    try:
        track_frames(tracker, source, renderer, video, log, roi, args.max_frames, run)
    except Interrupted as exc:
        run.interrupted = exc.signal_name
    except (KeyNetError, OSError) as exc:
        if run.frames == 0:  # nothing was produced: the outputs keep what they had
            raise
        run.error = str(exc)
    finally:
        source.close()
        try:
            video.close()
        except OutputError as exc:
            run.error = run.error or str(exc)
        if log is not None:
            log.close(run.summary())
    print(f"{run.frames} frames, {run.tracked} tracked" + (f"; video {args.out}" if args.out and video.frames else "")
          + (f"; json {args.json}" if args.json and run.frames else ""))
    if video.resized:
        print(f"note: {video.resized} frames of another size were resized to the video's first frame size",
              file=sys.stderr)
    if run.interrupted:
        print(f"stopped by {run.interrupted} after {run.frames} frames; outputs are complete up to there",
              file=sys.stderr)
        return Interrupted(run.interrupted).exit_code
    if run.error:
        print(f"error: stopped after {run.frames} frames: {run.error}; outputs are complete up to there",
              file=sys.stderr)
        return 1
    return 0


def add_track_command(commands: argparse._SubParsersAction) -> None:
    """The ``track`` command; its defaults are ``TrackerConfig()``'s and ``RenderOptions()``'s."""
    defaults, drawn = TrackerConfig(), RenderOptions()
    p = commands.add_parser("track", help="track a planar target and draw AR content on it (headless)")
    p.add_argument("--source", required=True, help="video file, image folder, camera:N or demo")
    p.add_argument("--target", help="image of the planar target (default with --source demo: the demo's poster)")
    p.add_argument("--roi", help="x,y,w,h: the target is this rectangle of the first frame")
    p.add_argument("--overlay", default=drawn.overlay,
                   help=f"cube, axes, none, or an image or video file (default {drawn.overlay})")
    p.add_argument("--out", help="annotated video (" + ", ".join(VIDEO_CODECS) + ")")
    p.add_argument("--json", help="per-frame record of every target (JSON Lines, written as the run goes: "
                   "see the README's schema)")
    add_weights_option(p)
    add_architecture_option(p)
    flat = defaults.flat()
    for flag, (field, kind, text) in NUMBER_OPTIONS.items():
        p.add_argument(f"--{flag}", type=kind, default=flat[field], help=f"{text} (default {flat[field]:g})")
    p.add_argument("--multi-scale", action="store_true", default=defaults.detector.multi_scale,
                   help="detect on a pyramid (slower)")
    p.add_argument("--descriptor", default=defaults.matching.descriptor, choices=DESCRIPTORS,
                   help=f"descriptor (default {defaults.matching.descriptor})")
    p.add_argument("--descriptor-weights", help="HardNet weights file for --descriptor hardnet")
    p.add_argument("--calibration", help="camera calibration (OpenCV YAML/XML or JSON: camera_matrix, dist_coeffs)")
    p.add_argument("--keypoints", default=drawn.keypoints, choices=["off", "score", "scale", "rank"],
                   help=f"draw keypoints coloured by score or scale (default {drawn.keypoints})")
    p.add_argument("--matches", action="store_true", help="draw matches (inliers green, outliers red)")
    p.add_argument("--tracks", action="store_true", help="draw keypoint tracks as trails")
    p.add_argument("--max-frames", type=count, default=0, help="stop after this many frames (0: all)")
    add_device_option(p)
    p.set_defaults(run=track)
