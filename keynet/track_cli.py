"""``python main.py track``: track a planar target through a video, an image folder or a camera, headless.

Writes an annotated MP4 (``--out``) and per-frame JSON (``--json``: state, homography, pose, inliers, timings);
both are complete even when the source ends early or fails mid-stream (the video is finalised in ``finally``,
the JSON written atomically with what was processed and the error).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .cli import reporting_errors, resolve_weights
from .describe import DESCRIPTORS, Describer
from .files import atomic_path, atomic_write_json
from .geometry import Camera
from .image import read_image
from .render import Renderer
from .sources import FrameSource, as_bgr, open_source
from .tracker import TRACKING_DETECTOR_CONF, PlanarTracker, tracking_detector
from .weights import load_model

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``x,y,w,h`` -> four ints (a clear error otherwise)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--roi {text!r}: expected x,y,w,h (four integers, pixels)") from None
    return x, y, w, h


def looping_video(path: str) -> Iterator[np.ndarray]:
    """The frames of a video file, forever (an overlay video repeats)."""
    source = open_source(path)
    try:
        while True:
            frame = source.read()
            if frame is None:
                source.close()
                source = open_source(path)
                continue
            yield frame
    finally:
        source.close()


def make_renderer(overlay: str | None, **options: Any) -> Renderer:
    """A renderer for ``--overlay``: ``cube``, ``axes``, ``none``, an image file or a video file."""
    if overlay in (None, "none", "cube", "axes"):
        return Renderer(overlay=overlay or "cube", **options)
    if not Path(overlay).is_file():
        raise FileNotFoundError(f"--overlay {overlay} is neither cube/axes/none nor an existing image or video file")
    if Path(overlay).suffix.lower() in VIDEO_SUFFIXES:
        return Renderer(looping_video(overlay), overlay="video", **options)
    return Renderer(as_bgr(read_image(overlay)), overlay="image", **options)


class VideoOut:
    """An MP4 (mp4v) opened on the first frame, written to a temporary name and moved into place on ``close``."""

    def __init__(self, path: str | None, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None
        self._atomic: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.path is None:
            return
        if self.writer is None:
            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
            self.writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise ValueError(f"cannot write {self.path}: OpenCV has no mp4v encoder for it")
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            self._atomic.__exit__(None, None, None)


def run_track(args: argparse.Namespace) -> int:
    if (args.target is None) == (args.roi is None):
        raise ValueError("give exactly one of --target IMAGE or --roi x,y,w,h")
    model = load_model(resolve_weights(args.weights, args.architecture), args.architecture)
    detector = tracking_detector(model, num_keypoints=args.num, nms_size=args.nms, multi_scale=args.multi_scale,
                                 device=args.device)
    describer = Describer(descriptor=args.descriptor, weights=args.descriptor_weights, device=str(detector.device))
    camera = Camera.from_file(args.calibration) if args.calibration else None
    tracker = PlanarTracker(detector, describer, camera, ratio=args.ratio, ransac_threshold=args.ransac)
    renderer = make_renderer(args.overlay, keypoints=args.keypoints, matches=args.matches, tracks=args.tracks)
    try:
        source: FrameSource = open_source(args.source)
    except OSError as exc:
        raise ValueError(f"--source: {exc}") from None
    records: list[dict] = []
    error = ""
    video = VideoOut(args.out, source.fps)
    try:
        if args.target:
            tracker.add_target(as_bgr(read_image(args.target)), Path(args.target).stem, assess=True)
        bar = tqdm(source, total=len(source) or None, desc="tracking", unit="frame")
        for index, frame, stamp in bar:
            if args.roi and not tracker.targets:
                tracker.add_target_roi(frame, parse_roi(args.roi), "roi", assess=True)
            result = tracker.process(frame, index, stamp)
            records.append(result.to_dict())
            video.write(renderer.draw(frame, result, tracker.targets, camera))
            bar.set_postfix_str(result.targets[0].state if result.targets else "")
            if args.max_frames and index + 1 >= args.max_frames:
                break
    except OSError as exc:
        error = str(exc)
    finally:
        video.close()
        source.close()
        if args.json:
            tracked = sum(1 for r in records if r["targets"] and r["targets"][0]["state"] == "tracking")
            quality = None
            if tracker.targets and tracker.targets[0].quality is not None:
                quality = vars(tracker.targets[0].quality)
            atomic_write_json({"source": str(args.source), "frames": len(records), "tracked": tracked,
                               "error": error, "target_quality": quality, "per_frame": records}, args.json)
    tracked = sum(1 for r in records if r["targets"] and r["targets"][0]["state"] == "tracking")
    quality = tracker.targets[0].quality if tracker.targets else None
    print(f"{len(records)} frames, {tracked} tracked" + (f", target {quality.stars}/5 stars" if quality else "")
          + (f"; video {args.out}" if args.out else "") + (f"; json {args.json}" if args.json else ""))
    if error:
        print(f"error: the source failed after {len(records)} frames: {error}; outputs are complete up to there")
        return 1
    return 0


def add_track_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("track", help="track a planar target and draw AR content on it (headless)")
    p.add_argument("--source", required=True, help="video file, image folder, camera:N or demo")
    p.add_argument("--target", help="image of the planar target")
    p.add_argument("--roi", help="x,y,w,h: the target is this rectangle of the first frame")
    p.add_argument("--overlay", default="cube", help="cube, axes, none, or an image or video file (default cube)")
    p.add_argument("--out", help="annotated video (MP4)")
    p.add_argument("--json", help="per-frame homography, pose, state, inliers and timings (JSON)")
    p.add_argument("--weights", help="Key.Net weights file (default: shipped)")
    p.add_argument("--tiny", dest="architecture", action="store_const", const="tiny_keynet", default="keynet",
                   help="Tiny-Key.Net instead of Key.Net")
    p.add_argument("--num", type=int, default=TRACKING_DETECTOR_CONF["num_keypoints"],
                   help=f"keypoints per frame (default {TRACKING_DETECTOR_CONF['num_keypoints']})")
    p.add_argument("--nms", type=int, default=TRACKING_DETECTOR_CONF["nms_size"],
                   help=f"NMS window size (default {TRACKING_DETECTOR_CONF['nms_size']})")
    p.add_argument("--multi-scale", action="store_true", help="detect on a pyramid (slower)")
    p.add_argument("--descriptor", default="orb", choices=DESCRIPTORS, help="descriptor (default orb)")
    p.add_argument("--descriptor-weights", help="HardNet weights file for --descriptor hardnet")
    p.add_argument("--ratio", type=float, default=0.9, help="ratio test threshold (default 0.9)")
    p.add_argument("--ransac", type=float, default=3.0, help="MAGSAC threshold in pixels (default 3)")
    p.add_argument("--calibration", help="camera calibration (OpenCV YAML/XML or JSON: camera_matrix, dist_coeffs)")
    p.add_argument("--keypoints", default="off", choices=["off", "score", "scale"], help="draw keypoints")
    p.add_argument("--matches", action="store_true", help="draw matches (inliers green, outliers red)")
    p.add_argument("--tracks", action="store_true", help="draw keypoint tracks as trails")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(run=reporting_errors(run_track))
