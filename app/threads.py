"""What the main window and the comparison window share: a pipeline run by a processing thread on the frames a
capture thread reads (``app.workers``), started, wired and stopped the same way, and the target image asked for.
"""

from __future__ import annotations

import gc
from typing import Any

from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import QMainWindow, QWidget

from .dialogs import IMAGE_FILES, ask_file
from .pipeline import SourceSpec
from .workers import CaptureThread, LatestFrame, Pipeline, ProcessingThread, WorkerSignals

JOIN_TIMEOUT_S = 3.0


class PipelineWindow(QMainWindow):
    """A window showing what its pipeline makes of a source's frames.

    A subclass calls ``start_threads(pipeline)`` once its widgets are built, and defines the slots the threads'
    signals go to: ``show_output(output)``, ``_source_opened``, ``_source_failed``, ``_source_ended``,
    ``show_message``, ``show_progress`` and ``load_target_image(path)``.

    Attributes:
        signals: what the threads emit (delivered in the UI thread).
        slot: the newest frame, from the capture thread to the processing thread.
        processing: the processing thread (from ``start_threads`` on).
        capture: the capture thread of the source playing; None while none is.
        output: the pipeline's output on screen (None before the first).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.signals = WorkerSignals()
        self.slot = LatestFrame()
        self.capture: CaptureThread | None = None
        self.output: Any = None

    def start_threads(self, pipeline: Pipeline) -> None:
        """Connect the threads' signals to this window's slots and start processing with ``pipeline``."""
        self.processing = ProcessingThread(pipeline, self.slot, self.signals)
        signals = self.signals
        for signal, slot in ((signals.frame_ready, self._take_output), (signals.source_opened, self._source_opened),
                             (signals.source_failed, self._source_failed), (signals.source_ended, self._source_ended),
                             (signals.processing_failed, lambda msg: self.show_message(f"Processing error: {msg}")),
                             (signals.notice, self.show_message), (signals.progress, self.show_progress)):
            signal.connect(slot)
        # Python's full garbage collection scans every object it tracks while holding the GIL: with torch, kornia,
        # OpenCV and Qt loaded, about 90 ms on the 2-core CPU, a visible freeze. The objects alive now (modules,
        # classes, the widgets) live as long as the app: freezing them leaves later collections only the new ones.
        gc.freeze()
        self.processing.start()

    def start_capture(self, spec: SourceSpec, loop: bool, paused: bool = False) -> None:
        """Start reading ``spec`` (``loop``: from its end back to its start); ``paused``: one frame, then wait."""
        def rendering(done: int, total: int) -> None:  # the demo's first rendering, in the capture thread
            self.signals.progress.emit("Rendering the demo (first start only)", done, total)

        self.capture = CaptureThread(spec.opener(rendering), self.slot, self.signals, fps=spec.pace_fps, loop=loop)
        self.capture.set_paused(paused)
        if paused:
            self.capture.step()
        self.capture.start()

    def _take_output(self) -> None:
        """Show the processing thread's newest output (``show_output``), if it was not taken already."""
        output = self.processing.take_output()
        if output is not None:
            self.output = output
            self.show_output(output)

    def output_on_screen(self, missing: str) -> Any:
        """The output on screen; None, saying ``missing`` in the status bar, before the first."""
        if self.output is None:
            self.show_message(missing)
        return self.output

    def stop_capture(self) -> None:
        """Stop the capture thread (joined with a timeout; it releases the source)."""
        if self.capture is not None:
            self.capture.stop()
            self.capture.join(JOIN_TIMEOUT_S)
            self.capture = None

    def _ask_target_image(self) -> None:
        ask_file(self, "Target image", IMAGE_FILES, self.load_target_image)

    def shutdown(self) -> None:
        """Stop both threads (joined with a timeout); the capture thread releases the source."""
        self.stop_capture()
        self.processing.stop()
        self.processing.join(JOIN_TIMEOUT_S)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)
