"""The annotated video output of ``track``: written under a temporary name, checked, and moved into place on close.

A video replaces the final path only when it is complete: ``close`` reads the temporary file back and requires
every written frame in it (a full disk or a failing encoder leaves the old file untouched and says so).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from keynet.errors import OutputError
from keynet.files import atomic_path, check_output_path
from keynet.image import VIDEO_CODECS


def check_video_path(path: str | Path) -> Path:
    """``path`` as a video output: a suffix in ``VIDEO_CODECS``, and a place a file may be written.

    Raises:
        InputError: another suffix. OutputError: see ``keynet.files.check_output_path``.
    """
    return check_output_path(path, "--out", VIDEO_CODECS, "video")


def frames_in(path: Path) -> int:
    """How many frames OpenCV decodes from the video at ``path``."""
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.isOpened() and cap.grab():
        count += 1
    cap.release()
    return count


class VideoOut:
    """A video at ``path`` (None: nothing is written), opened on the first frame at its size.

    Frames of another size are resized to the first one's. ``close`` finishes the file, checks it holds every
    frame written and moves it into place, so the video is complete up to a failure.

    Attributes:
        frames: how many frames were written; resized: how many of them had to be resized.
    """

    def __init__(self, path: str | Path | None, fps: float) -> None:
        self.path = None if path is None else check_video_path(path)
        self.fps = fps
        self.frames = self.resized = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._files = ExitStack()

    def _verify(self, tmp: Path) -> None:
        found = frames_in(tmp)
        if found != self.frames:
            raise OutputError(f"cannot write {self.path}: the encoded video holds {found} of the {self.frames} "
                              "frames written (disk full, or the encoder failed); the previous file is kept")

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame.

        Raises:
            OutputError: OpenCV cannot encode this format there.
        """
        if self.path is None:
            return
        if self._writer is None:
            with ExitStack() as opening:  # a writer that does not open leaves no temporary file behind
                tmp = opening.enter_context(atomic_path(self.path, verify=self._verify))
                codec = VIDEO_CODECS[self.path.suffix.lower()]
                self._size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), self.fps, self._size)
                if not writer.isOpened():
                    raise OutputError(f"cannot write {self.path}: OpenCV has no {codec} encoder for it")
                self._files = opening.pop_all()
            self._writer = writer
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
            self.resized += 1
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file, check it and move it into place (safe to call twice).

        Raises:
            OutputError: the file does not hold every frame written (the final path keeps what it had).
        """
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        files, self._files = self._files, ExitStack()
        files.close()
