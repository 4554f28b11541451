"""Frame sources: a camera (``camera:N``), a video file, an image folder or the bundled demo sequence.

``open_source(spec)`` gives a ``FrameSource``: ``read() -> (H, W, 3) uint8 BGR | None`` (None at the end),
``skip() -> bool`` (pass one frame by without decoding it, where the source can), ``close()``, and iteration over
``(index, bgr, timestamp)``. A failure (a camera unplugged, a corrupt file, an unreadable image in a folder)
raises ``SourceError`` (an ``OSError``) with a message naming the source, so a caller closes its outputs and stops
cleanly; a malformed spec (``camera:x``) raises ``InputError``.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, SourceError
from .image import IMAGE_SUFFIXES, as_bgr, read_image
from .progress import Progress

MAX_CAMERAS = 8


@dataclass(frozen=True)
class CameraInfo:
    index: int
    width: int
    height: int
    fps: float


class FrameSource:
    """Base of all sources: ``read``/``close`` plus iteration over ``(index, bgr, timestamp_s)``.

    Attributes:
        name: how messages name the source.
        live: a camera (frames are not repeatable; timestamps are capture times).
        fps: the nominal frame rate (files: their own, or 30).
    """

    name: str = "source"
    live: bool = False
    fps: float = 30.0

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def skip(self) -> bool:
        """Pass the next frame by without decoding it: True if one was, False if this source cannot (or the next
        frame is the last: the end of a file is always read, so its last frame is never passed by)."""
        return False

    def close(self) -> None:
        """Release the device or file (safe to call twice)."""

    def __len__(self) -> int:
        """The number of frames when known, else 0."""
        return 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, float]]:
        index, start = 0, time.perf_counter()
        while (frame := self.read()) is not None:
            stamp = time.perf_counter() - start if self.live else index / self.fps
            yield index, frame, stamp
            index += 1

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A camera (an int index) or a video file through OpenCV."""

    def __init__(self, target: int | str, name: str) -> None:
        self.name = name
        self.live = isinstance(target, int)
        if not self.live and not Path(target).is_file():
            raise SourceError(f"{name} does not exist")
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise SourceError(f"cannot open {name}: " + ("no such camera, or it is in use" if self.live
                                                     else "not a video OpenCV can read"))
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        self.frames = 0
        self.length = 0 if self.live else max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)))

    def __len__(self) -> int:
        return self.length

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok:
            if self.live:
                raise SourceError(f"{self.name} stopped delivering frames (unplugged?)")
            if self.frames == 0:
                raise SourceError(f"{self.name} has no frame OpenCV can decode (empty or corrupt)")
            if self.length - self.frames > max(2, self.length // 100):  # containers may round their count
                raise SourceError(f"{self.name} declares {self.length} frames but ends after {self.frames}: the "
                                  "file is truncated or damaged")
            return None
        self.frames += 1
        return as_bgr(frame)

    def skip(self) -> bool:
        # The first frame is always decoded (an empty or corrupt file fails at once), as is a file's last one.
        if self.frames == 0 or (not self.live and self.frames >= self.length - 1):
            return False
        grabbed = self.cap.grab()  # reads (for most codecs decodes) the frame, but does not convert it to BGR
        self.frames += grabbed
        return grabbed

    def close(self) -> None:
        self.cap.release()


class FolderSource(FrameSource):
    """The images of a folder in name order."""

    def __init__(self, folder: str | Path, fps: float = 30.0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        self.name = f"image folder {folder}"
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"image folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self.fps = fps
        self.i = 0

    def __len__(self) -> int:
        return len(self.paths)

    def read(self) -> np.ndarray | None:
        if self.i >= len(self.paths):
            return None
        path = self.paths[self.i]
        self.i += 1
        try:
            image = read_image(path)
        except InputError as exc:
            raise SourceError(f"cannot read {path}: {exc}") from None
        return as_bgr(image)

    def skip(self) -> bool:
        passable = self.i < len(self.paths) - 1  # the last image is always read
        self.i += passable
        return passable


def open_source(spec: str | Path, progress: Progress | None = None) -> FrameSource:
    """``camera:N``, ``demo`` (rendered into a cache folder on first use, reporting to ``progress`` meanwhile), an
    image folder or a video file.

    Raises:
        InputError: a malformed ``camera:`` spec. SourceError: a source that does not exist or does not open.
    """
    spec = str(spec)
    if spec.startswith("camera:"):
        index = spec.split(":", 1)[1]
        if not index.isdigit():
            raise InputError(f"camera source {spec!r}: expected camera:N with N a camera index (camera:0)")
        return CaptureSource(int(index), f"camera {index}")
    if spec == "demo":
        from .demo import demo_sequence

        return FolderSource(demo_sequence(progress=progress).frames)
    if Path(spec).is_dir():
        return FolderSource(spec)
    return CaptureSource(spec, f"video {spec}")


def looping_video(path: str | Path) -> Iterator[np.ndarray]:
    """The (H, W, 3) uint8 BGR frames of a video file, forever (an overlay video repeats).

    Raises:
        SourceError: the file does not open or has no frame.
    """
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


def list_cameras() -> list[CameraInfo]:
    """The cameras that open, with their resolution and frame rate (Linux: /dev/video*)."""
    found = []
    for dev in sorted(glob.glob("/dev/video*"))[:MAX_CAMERAS]:
        suffix = dev.removeprefix("/dev/video")
        if not suffix.isdigit():
            continue
        cap = cv2.VideoCapture(int(suffix))
        if cap.isOpened():
            found.append(CameraInfo(int(suffix), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                    int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), float(cap.get(cv2.CAP_PROP_FPS) or 30)))
        cap.release()
    return found


def file_fps(path: str | Path, default: float = 30.0) -> float:
    """The frame rate a video file declares (``default`` when it declares none or nonsense)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    cap.release()
    return float(fps) if fps and 1 <= fps <= 240 else default
