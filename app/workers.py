"""Capture and processing threads with a latest-frame-wins hand-off.

The capture thread reads frames from a source and puts each one in a one-slot ``LatestFrame``: a frame the
processing thread has not taken yet is replaced (dropped), so processing always works on the newest frame and a
slow model never builds up a queue. A file source is not even decoded for a frame that would only replace one
still waiting in the slot: it passes that frame by (``skip``; decoding a 640x480 PNG takes 10 ms, a third of a core
at 30 fps on the 2-core CPU the model needs). The processing thread hands its output to the UI the same way: it emits
``frame_ready`` only when the UI has taken the previous output, so the event loop is never flooded. Both threads
stop on a flag and are joined with a timeout; the capture thread releases its source itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from .frames import Frame

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """What the capture thread needs from a source (``keynet.sources``)."""

    def read(self) -> np.ndarray | None: ...

    def skip(self) -> bool: ...

    def close(self) -> None: ...


class LatestFrame:
    """A one-slot hand-off: ``put`` replaces what is there (counted as dropped), ``take`` waits for something."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    @property
    def waiting(self) -> bool:
        """Whether an item put is still waiting to be taken."""
        return self._item is not None

    def count_dropped(self) -> None:
        """Count a frame passed by without being put (``FrameSource.skip``)."""
        with self._cond:
            self.dropped += 1

    def take(self, timeout: float) -> Any:
        """The newest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None


CAPTURE_NICENESS = 19  # the lowest; on the 2-core CPU the demo showed about 4% more frames than at 0


def lower_priority_of_this_thread() -> None:
    """Give the calling thread a lower CPU priority (Linux: a thread's own nice value; elsewhere nothing).

    Key.Net runs on every core and waits for its slowest thread, so a frame decoded while it runs costs the
    processing thread the whole decode; at a lower priority, decoding takes the cores when the processing thread
    leaves one idle (description, matching and geometry run on one core).
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CAPTURE_NICENESS)
        except OSError:  # not permitted: run at the normal priority
            pass


class WorkerSignals(QObject):
    """Signals the threads emit; they are delivered in the UI thread (queued connections)."""

    source_opened = pyqtSignal(object)  # the opened source
    source_failed = pyqtSignal(str)  # a message for the user
    source_ended = pyqtSignal(str)  # a file source played to its end (and does not loop)
    frame_ready = pyqtSignal()  # take the output with ProcessingThread.take_output()
    processing_failed = pyqtSignal(str)
    notice = pyqtSignal(str)  # a message for the status bar
    model_status = pyqtSignal(str)  # what is wrong with the model (no weights, a file that failed), "" when fine
    recording_failed = pyqtSignal(str)  # the recorder could not write a frame
    progress = pyqtSignal(str, int, int)  # a long task (rendering the demo, describing a target): done, total


class SlotThread(threading.Thread):
    """A daemon thread on one side of ``slot`` (the newest frame), reporting through ``signals``."""

    def __init__(self, name: str, slot: LatestFrame, signals: WorkerSignals) -> None:
        super().__init__(name=name, daemon=True)
        self.slot = slot
        self.signals = signals


class CaptureThread(SlotThread):
    """Reads a source into ``slot`` until stopped, the source ends, or it fails.

    Args:
        open_source: opens the source (called in this thread: opening a camera can take a while).
        slot: where frames go.
        signals: ``source_opened``, ``source_failed`` and ``source_ended`` are emitted here.
        fps: pace reading to this rate (files and folders play in real time); None or 0 reads as fast as the
            source delivers (cameras pace themselves).
        loop: reopen the source when it ends (the demo, short clips); ``loop`` may change while it runs.
    """

    def __init__(self, open_source: Callable[[], FrameSource], slot: LatestFrame, signals: WorkerSignals,
                 fps: float | None = None, loop: bool = False) -> None:
        super().__init__("capture", slot, signals)
        self.open_source = open_source
        self.fps = fps
        self.loop = loop
        self.frames_read = 0  # frames read or passed by (``skip``): the index of the next one
        self.last_put = -1  # the index of the last frame put in the slot
        self.ended = False  # the source played to its end (``source_ended`` was emitted)
        self._cond = threading.Condition()
        self._stopped = False
        self._paused = False
        self._steps = 0

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused, self._steps = paused, 0
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def step(self) -> None:
        """While paused, read one more frame."""
        with self._cond:
            self._steps += 1
            self._cond.notify_all()

    def _may_read(self) -> bool:
        """Wait while paused (unless a step was asked for); False once stopped."""
        with self._cond:
            while not self._stopped and self._paused and not self._steps:
                self._cond.wait(0.1)
            if self._stopped:
                return False
            if self._paused:
                self._steps -= 1
            return True

    def _wait(self, seconds: float) -> None:
        with self._cond:
            if not self._stopped and seconds > 0:
                self._cond.wait(seconds)

    def _pace(self, next_time: float, period: float) -> float:
        """Wait until the next frame is due (a source behind its schedule catches up one period at most)."""
        next_time = max(next_time + period, time.perf_counter() - period)
        self._wait(next_time - time.perf_counter())
        return next_time

    def run(self) -> None:
        lower_priority_of_this_thread()
        source: FrameSource | None = None
        try:
            source = self.open_source()
            self.signals.source_opened.emit(source)
            period = 1.0 / self.fps if self.fps else 0.0
            next_time = time.perf_counter()
            while self._may_read():
                if period and not self._paused and self.slot.waiting and source.skip():
                    self.slot.count_dropped()
                    self.frames_read += 1
                    next_time = self._pace(next_time, period)
                    continue
                image = source.read()
                if image is None:
                    if self.loop and self.frames_read and not self._stopped:
                        source.close()
                        source = self.open_source()
                        continue
                    self.ended = True
                    self.signals.source_ended.emit("the source has no more frames")
                    return
                self.slot.put(Frame(self.frames_read, image, time.perf_counter()))
                self.last_put = self.frames_read
                self.frames_read += 1
                if period:
                    next_time = self._pace(next_time, period)
        except Exception as exc:  # any failure of a source (unplugged camera, corrupt file) is reported, not raised
            self.signals.source_failed.emit(f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError | ValueError)
                                            else str(exc))
            log.debug("details", exc_info=True)
        finally:
            if source is not None:
                source.close()


class Pipeline(Protocol):
    """What the processing thread runs (``app.pipeline.TrackingPipeline``)."""

    def process(self, frame: Frame) -> Any: ...


class ProcessingThread(SlotThread):
    """Takes the newest frame from ``slot``, runs ``pipeline.process`` on it and hands the output to the UI.

    Changes to the pipeline (settings, target, view options) are posted as callables with ``post`` and run in
    this thread between two frames, so the pipeline is only ever touched by one thread. A failure while
    processing one frame is reported (``processing_failed``) and the thread goes on with the next.
    """

    def __init__(self, pipeline: Pipeline, slot: LatestFrame, signals: WorkerSignals) -> None:
        super().__init__("processing", slot, signals)
        self.pipeline = pipeline
        self.frames_processed = 0
        self._stopped = threading.Event()
        self._commands: list[Callable[[Pipeline], Any]] = []
        self._lock = threading.Lock()
        self._output: Any = None
        self._output_taken = True

    def stop(self) -> None:
        self._stopped.set()

    def post(self, command: Callable[[Pipeline], Any]) -> None:
        """Run ``command(pipeline)`` in this thread before the next frame.

        What it returns is shown: an output replaces the one on screen, a string is a notice for the user.
        """
        with self._lock:
            self._commands.append(command)

    def take_output(self) -> Any:
        """The newest output (None if it was taken already); lets the thread emit ``frame_ready`` again."""
        with self._lock:
            output, self._output, self._output_taken = self._output, None, True
            return output

    def _publish(self, output: Any) -> None:
        with self._lock:
            self._output = output
            emit, self._output_taken = self._output_taken, False
        if emit:
            self.signals.frame_ready.emit()

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for command in commands:
            try:
                output = command(self.pipeline)
            except Exception as exc:  # a bad setting or target must not end the thread
                self.signals.processing_failed.emit(str(exc))
                log.debug("details", exc_info=True)
                continue
            if isinstance(output, str):
                self.signals.notice.emit(output)
            elif output is not None:
                self._publish(output)

    def run(self) -> None:
        while not self._stopped.is_set():
            self._run_commands()
            frame = self.slot.take(0.05)
            if frame is None or self._stopped.is_set():
                continue
            self._run_commands()  # those posted while waiting apply to this frame
            try:
                output = self.pipeline.process(frame)
            except Exception as exc:
                self.signals.processing_failed.emit(f"frame {frame.index}: {exc}")
                log.debug("details", exc_info=True)
                continue
            self.frames_processed += 1
            self._publish(output)
