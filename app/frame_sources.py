"""Frame sources for the app: cameras, video files, image folders and the demo sequence.

Each source has ``read() -> (H, W, 3) uint8 BGR | None`` (None at the end) and ``close()``; a failure (a camera
unplugged, a corrupt file) raises ``OSError`` with a message naming the source.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from keynet.image import read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
MAX_CAMERAS = 8
REPO = Path(__file__).resolve().parent.parent
DEMO_DIRS = [REPO / "assets" / "demo" / "frames", REPO / "assets" / "demo"]


@dataclass(frozen=True)
class CameraInfo:
    index: int
    width: int
    height: int
    fps: float


def as_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR from a grey, BGR or BGRA uint8 image."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class CaptureSource:
    """A camera (``camera:N``) or a video file through OpenCV."""

    def __init__(self, target: int | str, name: str) -> None:
        self.name = name
        self.live = isinstance(target, int)
        if not self.live and not Path(target).is_file():
            raise FileNotFoundError(f"{name} does not exist")
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise OSError(f"cannot open {name}: " + ("no such camera, or it is in use" if self.live
                                                     else "not a video OpenCV can read"))
        self.frames = 0

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok:
            if self.live:
                raise OSError(f"{self.name} stopped delivering frames (unplugged?)")
            if self.frames == 0:
                raise OSError(f"{self.name} has no frame OpenCV can decode (empty or corrupt)")
            return None
        self.frames += 1
        return as_bgr(frame)

    def close(self) -> None:
        self.cap.release()


class FolderSource:
    """The images of a folder in name order."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist")
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise OSError(f"image folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.i = 0

    def read(self) -> np.ndarray | None:
        if self.i >= len(self.paths):
            return None
        path = self.paths[self.i]
        self.i += 1
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read {path}: {exc}") from None
        if image.dtype != np.uint8:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        return as_bgr(image)

    def close(self) -> None:
        pass


def demo_folder() -> Path | None:
    for d in DEMO_DIRS:
        if d.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir()):
            return d
    return None


def open_source(spec: str):
    """``camera:N``, ``demo``, an image folder or a video file."""
    if spec.startswith("camera:"):
        index = int(spec.split(":", 1)[1])
        return CaptureSource(index, f"camera {index}")
    if spec == "demo":
        folder = demo_folder()
        if folder is None:
            raise FileNotFoundError("the demo sequence is missing from assets/demo")
        return FolderSource(folder)
    if Path(spec).is_dir():
        return FolderSource(spec)
    return CaptureSource(spec, f"video {spec}")


def list_cameras() -> list[CameraInfo]:
    """The cameras that open, with their resolution and frame rate (Linux: /dev/video*)."""
    found = []
    for dev in sorted(glob.glob("/dev/video*"))[:MAX_CAMERAS]:
        index = int(dev.removeprefix("/dev/video")) if dev.removeprefix("/dev/video").isdigit() else None
        if index is None:
            continue
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            found.append(CameraInfo(index, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                    int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), float(cap.get(cv2.CAP_PROP_FPS) or 30)))
        cap.release()
    return found


def file_fps(path: str | Path, default: float = 30.0) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    cap.release()
    return float(fps) if fps and 1 <= fps <= 240 else default
