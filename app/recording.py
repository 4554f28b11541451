"""Recording the annotated view to MP4, snapshots to PNG and per-frame homographies and poses to JSON.

Every file is written atomically (``keynet.files``): a recording appears under its name only when it is closed,
complete; a crash leaves no half-written file behind.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from keynet.errors import OutputError
from keynet.files import atomic_path, atomic_write_json
from keynet.image import VIDEO_CODECS


class VideoRecorder:
    """Writes BGR frames to an MP4 file (``mp4v``) at a fixed rate, in real time: each frame is stamped with when
    it was shown and written as often as the stamped rate needs to cover the time it stayed on screen, so the file
    plays as long as the recording lasted whatever rate the frames were processed at.

    The first frame fixes the size, later ones are resized to it. Thread-safe: the processing worker writes, the UI
    thread stops it.

    Args:
        path: the video file to create (a ``keynet.image.VIDEO_CODECS`` suffix).
        fps: the frame rate stored in the file.
    """

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frames = 0  # frames in the file
        self.shown = 0  # distinct frames given to ``write``
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.started: float | None = None  # when the first frame was shown
        self._last: np.ndarray | None = None
        self._closed = False

    def write(self, bgr: np.ndarray, t: float | None = None) -> None:
        """Add the (H, W, 3) uint8 frame shown from ``t`` (``time.perf_counter`` seconds; default: now) on.

        Raises:
            OutputError: the file cannot be written (no MP4 writer, a folder that is not writable).
        """
        t = time.perf_counter() if t is None else t
        with self._lock:
            if self._closed:
                return
            if self._writer is None:
                self._open(bgr.shape[1], bgr.shape[0])
                self.started = t
            if (bgr.shape[1], bgr.shape[0]) != self._size:
                bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
            self._fill_until(t)
            self._last = np.ascontiguousarray(bgr)
            self._put(self._last)
            self.shown += 1

    def _fill_until(self, t: float) -> None:
        """Repeat the last frame until the file reaches time ``t`` (the frame slots before it)."""
        due = int(round((t - self.started) * self.fps))
        while self._last is not None and self.frames < due:
            self._put(self._last)

    def _put(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()]), self.fps, (width, height))
        if not self._writer.isOpened():
            self._stack.close()
            self._closed = True
            raise OutputError(f"cannot write video {self.path}: OpenCV has no MP4 writer here")
        self._size = (width, height)

    @property
    def seconds(self) -> float:
        """The length of the file so far."""
        return self.frames / self.fps

    def close(self, t: float | None = None) -> int:
        """Finish the file, the last frame held until ``t`` (default: now); it appears under its name now.
        Returns the number of frames in the file."""
        t = time.perf_counter() if t is None else t
        with self._lock:
            if self._closed:
                return self.frames
            self._closed = True
            if self._writer is not None:
                self._fill_until(t)
                self._writer.release()
            self._stack.close()  # renames the temporary file over the target
            return self.frames


class PoseLog:
    """Per-frame records (``FrameResult.to_dict``: the one frame schema of the command line and the app) saved as
    one JSON file."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def save(self, path: str | Path, source: str) -> None:
        """``{"source": ..., "frames": [FrameResult.to_dict(), ...]}``, NaN and inf as null.

        Raises:
            OutputError: the file cannot be written.
        """
        with self._lock:
            atomic_write_json({"source": source, "frames": to_jsonable(self.records)}, path)


def save_snapshot(bgr: np.ndarray, path: str | Path) -> Path:
    """Write a BGR frame as an image (PNG without an extension; the extension picks the format), atomically;
    returns the path written.

    Raises:
        OutputError: an extension OpenCV has no image writer for, or a path that cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot save a snapshot as {path}: it is a folder; give a file name")
    if not path.suffix:
        path = path.with_suffix(".png")
    if not cv2.haveImageWriter(str(path)):
        raise OutputError(f"cannot save a snapshot as {path.name}: OpenCV has no image writer for "
                          f"{path.suffix!r}; use .png, .jpg, .bmp or .tif")
    with atomic_path(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), bgr)
        except cv2.error as exc:
            raise OutputError(f"cannot write {path}: {str(exc).strip().splitlines()[-1]}") from None
        if not written:
            raise OutputError(f"cannot write {path}: OpenCV could not encode the image")
    return path


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
