"""``python main.py track``: track a planar target through a video, an image folder or a camera, headless.

Writes an annotated MP4 (``--out``) and per-frame JSON (``--json``: ``FrameResult.to_dict`` of every frame, with
the state, homography, pose, inliers and timings); both are complete even when the source fails mid-stream (the
video is finalised and the JSON written, atomically, with what was processed and the error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from keynet.config import TrackerConfig
from keynet.describe import DESCRIPTORS, Describer
from keynet.errors import InputError, SourceError
from keynet.files import atomic_write_json
from keynet.geometry import Camera
from keynet.image import VIDEO_SUFFIXES, as_bgr, read_image
from keynet.render import Renderer, RenderOptions
from keynet.sources import FrameSource, looping_video, open_source
from keynet.tracker import TRACKING, PlanarTracker, tracking_detector
from keynet.weights import load_model, resolve_weights

from .errors import reporting_errors
from .options import add_device_option, add_weights_option
from .progress import progress_bar
from .video import VideoOut


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


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """The defaults of ``TrackerConfig`` with the command's options."""
    return TrackerConfig().replace(num_keypoints=args.num, nms_size=args.nms, multi_scale=args.multi_scale,
                                   device=args.device, descriptor=args.descriptor, ratio=args.ratio,
                                   ransac_threshold=args.ransac)


def make_tracker(args: argparse.Namespace) -> PlanarTracker:
    """The tracker the options describe, without targets."""
    config = tracker_config(args)
    model = load_model(resolve_weights(args.weights, args.architecture), args.architecture)
    detector = tracking_detector(model, config.detector)
    describer = Describer(descriptor=config.matching.descriptor, weights=args.descriptor_weights,
                          device=str(detector.device))
    camera = Camera.from_file(args.calibration) if args.calibration else None
    return PlanarTracker(detector, describer, camera, config=config)


def track_frames(tracker: PlanarTracker, source: FrameSource, renderer: Renderer, video: VideoOut,
                 roi: tuple[int, int, int, int] | None, max_frames: int, records: list[dict]) -> None:
    """Track every frame of ``source`` (up to ``max_frames``, 0: all), appending each frame's record to
    ``records`` and its drawing to ``video``; with ``roi`` the first frame's rectangle becomes the target."""
    bar = tqdm(source, total=len(source) or None, desc="tracking", unit="frame")
    for index, frame, stamp in bar:
        if roi is not None and not tracker.targets:
            with progress_bar("describing the target") as progress:
                tracker.add_target_roi(frame, roi, "roi", assess=True, progress=progress)
        result = tracker.process(frame, index, stamp)
        records.append(result.to_dict())
        video.write(renderer.draw(frame, result))
        bar.set_postfix_str(result.targets[0].state if result.targets else "")
        if max_frames and index + 1 >= max_frames:
            break


def tracked_frames(records: list[dict]) -> int:
    """How many frames the first target was tracked in."""
    return sum(1 for r in records if r["targets"] and r["targets"][0]["state"] == TRACKING)


@reporting_errors
def run_track(args: argparse.Namespace) -> int:
    if (args.target is None) == (args.roi is None):
        raise InputError("give exactly one of --target IMAGE or --roi x,y,w,h")
    roi = parse_roi(args.roi) if args.roi else None
    tracker = make_tracker(args)
    renderer = make_renderer(args.overlay, keypoints=args.keypoints, matches=args.matches, tracks=args.tracks)
    with progress_bar("rendering the demo", "frame") as progress:
        source = open_source(args.source, progress=progress)
    records: list[dict] = []
    error = ""
    video = VideoOut(args.out, source.fps)
    try:
        if args.target:
            with progress_bar("describing the target") as progress:
                tracker.add_target(as_bgr(read_image(args.target)), Path(args.target).stem, assess=True,
                                   progress=progress)
        track_frames(tracker, source, renderer, video, roi, args.max_frames, records)
    except SourceError as exc:
        error = str(exc)
    finally:
        video.close()
        source.close()
        quality = tracker.targets[0].quality if tracker.targets else None
        if args.json:
            atomic_write_json({"source": str(args.source), "frames": len(records), "tracked": tracked_frames(records),
                               "error": error, "target_quality": vars(quality) if quality else None,
                               "per_frame": records}, args.json)
    print(f"{len(records)} frames, {tracked_frames(records)} tracked"
          + (f", target {quality.stars}/5 stars" if quality else "")
          + (f"; video {args.out}" if args.out else "") + (f"; json {args.json}" if args.json else ""))
    if error:
        print(f"error: the source failed after {len(records)} frames: {error}; outputs are complete up to there",
              file=sys.stderr)
        return 1
    return 0


def add_track_command(commands: argparse._SubParsersAction) -> None:
    """The ``track`` command; its defaults are ``TrackerConfig()``'s and ``RenderOptions()``'s."""
    defaults, drawn = TrackerConfig(), RenderOptions()
    detector, matching, geometry = defaults.detector, defaults.matching, defaults.geometry
    p = commands.add_parser("track", help="track a planar target and draw AR content on it (headless)")
    p.add_argument("--source", required=True, help="video file, image folder, camera:N or demo")
    p.add_argument("--target", help="image of the planar target")
    p.add_argument("--roi", help="x,y,w,h: the target is this rectangle of the first frame")
    p.add_argument("--overlay", default=drawn.overlay,
                   help=f"cube, axes, none, or an image or video file (default {drawn.overlay})")
    p.add_argument("--out", help="annotated video (MP4)")
    p.add_argument("--json", help="per-frame homography, pose, state, inliers and timings (JSON)")
    add_weights_option(p)
    p.add_argument("--tiny", dest="architecture", action="store_const", const="tiny_keynet", default="keynet",
                   help="Tiny-Key.Net instead of Key.Net")
    p.add_argument("--num", type=int, default=detector.num_keypoints,
                   help=f"keypoints per frame (default {detector.num_keypoints})")
    p.add_argument("--nms", type=int, default=detector.nms_size,
                   help=f"NMS window size (default {detector.nms_size})")
    p.add_argument("--multi-scale", action="store_true", default=detector.multi_scale,
                   help="detect on a pyramid (slower)")
    p.add_argument("--descriptor", default=matching.descriptor, choices=DESCRIPTORS,
                   help=f"descriptor (default {matching.descriptor})")
    p.add_argument("--descriptor-weights", help="HardNet weights file for --descriptor hardnet")
    p.add_argument("--ratio", type=float, default=matching.ratio,
                   help=f"ratio test threshold (default {matching.ratio})")
    p.add_argument("--ransac", type=float, default=geometry.ransac_threshold,
                   help=f"MAGSAC threshold in pixels (default {geometry.ransac_threshold:g})")
    p.add_argument("--calibration", help="camera calibration (OpenCV YAML/XML or JSON: camera_matrix, dist_coeffs)")
    p.add_argument("--keypoints", default=drawn.keypoints, choices=["off", "score", "scale"],
                   help=f"draw keypoints coloured by score or scale (default {drawn.keypoints})")
    p.add_argument("--matches", action="store_true", help="draw matches (inliers green, outliers red)")
    p.add_argument("--tracks", action="store_true", help="draw keypoint tracks as trails")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    add_device_option(p)
    p.set_defaults(run=run_track)
