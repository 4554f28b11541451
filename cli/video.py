"""The annotated video output of ``track``: an MP4 written under a temporary name and moved into place when closed."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from keynet.errors import OutputError
from keynet.files import atomic_path


class VideoOut:
    """An MP4 (mp4v) at ``path`` (None: nothing is written), opened on the first frame at its size; ``close``
    finalises what was written so far, so the video is complete up to a failure.

    Attributes:
        frames: how many frames were written.
    """

    def __init__(self, path: str | Path | None, fps: float) -> None:
        self.path, self.fps = path, fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._files = ExitStack()

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame (every frame of the video has the first one's size).

        Raises:
            OutputError: OpenCV cannot write an MP4 there.
        """
        if self.path is None:
            return
        if self._writer is None:
            with ExitStack() as opening:  # a writer that does not open leaves no temporary file behind
                tmp = opening.enter_context(atomic_path(self.path))
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                         (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OutputError(f"cannot write {self.path}: OpenCV has no mp4v encoder for it")
                self._files = opening.pop_all()
            self._writer = writer
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (safe to call twice)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._files.close()
