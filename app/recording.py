"""Recording the annotated view to MP4, snapshots to PNG and per-frame homographies and poses to JSON.

Every file is written atomically (``keynet.files``): a recording appears under its name only when it is closed,
complete; a crash leaves no half-written file behind.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keynet.files import atomic_path, atomic_write_json


class VideoRecorder:
    """Writes BGR frames to an MP4 file (``mp4v``); the first frame fixes the size, later ones are resized to it.

    Thread-safe: the processing worker writes, the UI thread stops it.

    Args:
        path: the ``.mp4`` file to create.
        fps: the frame rate stored in the file.
    """

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frames = 0
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._closed = False

    def write(self, bgr: np.ndarray) -> None:
        with self._lock:
            if self._closed:
                return
            if self._writer is None:
                self._open(bgr.shape[1], bgr.shape[0])
            if (bgr.shape[1], bgr.shape[0]) != self._size:
                bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
            self._writer.write(np.ascontiguousarray(bgr))
            self.frames += 1

    def _open(self, width: int, height: int) -> None:
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not self._writer.isOpened():
            self._stack.close()
            self._closed = True
            raise OSError(f"cannot write video {self.path}: OpenCV has no MP4 writer here or the folder is not writable")
        self._size = (width, height)

    def close(self) -> int:
        """Finish the file (it appears under its name now); returns the number of frames written."""
        with self._lock:
            if self._closed:
                return self.frames
            self._closed = True
            if self._writer is not None:
                self._writer.release()
            self._stack.close()  # renames the temporary file over the target
            return self.frames


class PoseLog:
    """Per-frame records (frame index, state, homography, pose, inliers, timings) saved as one JSON file."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def save(self, path: str | Path, source: str) -> None:
        with self._lock:
            atomic_write_json({"source": source, "frames": list(self.records)}, path)


def save_snapshot(bgr: np.ndarray, path: str | Path) -> None:
    """Write a BGR frame as an image (PNG by default; the extension picks the format), atomically."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise OSError(f"cannot write {path}: OpenCV does not know the image format of its extension")


def to_jsonable(value: Any) -> Any:
    """NumPy arrays and scalars (also inside dicts, lists, tuples) as plain JSON values; NaN and inf as None."""
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
