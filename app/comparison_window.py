"""The comparison window: the same frames through two pipelines side by side, each with its overlay and figures.

Each side shows its pipeline's annotated frame and, under it, a line of that frame's state, inliers of matches,
the shown corners' jitter and the stage times (``app.comparison``). A rectangle dragged on either side becomes a
target of both. The threads are the main window's (``app.threads``): capture into a one-slot hand-off, one
processing thread running ``ComparisonPipeline``. Errors are one line in the status bar.
"""

from __future__ import annotations

from PyQt6.QtCore import QRect, Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from keynet.baselines import PIPELINES, available_pipelines, pipeline_label
from keynet.config import TrackerConfig
from keynet.demo import demo_sequence
from keynet.devices import resolve_device
from keynet.errors import DeviceError, KeyNetError

from .comparison import SIDE_NAMES, ComparisonOutput, ComparisonPipeline
from .pipeline import SourceSpec
from .settings import AppSettings
from .threads import PipelineWindow
from .views import VideoView

FALLBACK = ("orb", "sift")  # what the window compares when the pipelines asked for cannot be built


def one_line(text: str) -> str:
    """The first non-empty line of ``text`` (OpenCV's and torch's messages span several)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


class ComparisonWindow(PipelineWindow):
    """Two pipelines side by side on one source.

    Args:
        source: what to open (default: the bundled demo, its poster the first target).
        settings: the trackers' settings (``AppSettings.tracker_config``); its model choice is not used, the
            sides' pipelines are ``left`` and ``right``.
        left, right: ``keynet.baselines.PIPELINES`` kinds; one that is unknown or unavailable here is replaced
            (the status bar says so).

    Signals:
        frame_shown(ComparisonOutput): a newly processed frame was shown.
    """

    frame_shown = pyqtSignal(object)

    def __init__(self, source: SourceSpec | None = None, settings: AppSettings | None = None, left: str = "keynet",
                 right: str = "orb", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("keynet-live: compare pipelines")
        self.resize(1400, 640)
        self.source = source or SourceSpec.demo()
        self.output: ComparisonOutput | None = None
        self.available = available_pipelines()
        self.notes: list[str] = []  # what was not as asked (an unavailable pipeline or device), said with the source
        self.config = self._tracker_config(settings or AppSettings(), self.notes)
        self.pipeline = self._build_pipeline(left, right, self.notes)
        self._build_layout()
        self.pipeline.on_progress = self.signals.progress.emit
        self.start_threads(self.pipeline)
        self.start_capture(self.source, self.source.loop)
        self.show_message("; ".join([f"Opening {self.source.label} …", *self.notes]))

    # ----------------------------------------------------------------- set-up
    def _tracker_config(self, settings: AppSettings, notes: list[str]) -> TrackerConfig:
        """The trackers' settings, on the CPU when the device asked for is not available here."""
        try:
            device = str(resolve_device(settings.device))
        except DeviceError:
            device = "cpu"
            notes.append(f"device {settings.device!r} is not available here: running on the CPU")
        return settings.tracker_config(device=device)

    def _build_pipeline(self, left: str, right: str, notes: list[str]) -> ComparisonPipeline:
        """``left`` against ``right``, each replaced by a default when unavailable; ``FALLBACK`` when they fail."""
        kinds = []
        for side, kind, default in zip(SIDE_NAMES, (left, right), (self.available[0], "orb")):
            if kind not in self.available:
                notes.append(f"pipeline {kind!r} is not available here (choose among {', '.join(self.available)}): "
                             f"the {side} side shows {PIPELINES[default]}")
                kind = default
            kinds.append(kind)
        try:
            return ComparisonPipeline(*kinds, config=self.config)
        except KeyNetError as exc:
            notes.append(f"cannot build {' and '.join(kinds)}: {one_line(str(exc))}; comparing ORB and SIFT")
            return ComparisonPipeline(*FALLBACK, config=self.config)

    def _build_layout(self) -> None:
        central = QWidget()
        row = QHBoxLayout(central)
        self.views: list[VideoView] = []
        self.titles: list[QLabel] = []
        self.stats: list[QLabel] = []
        self.choosers: list[QComboBox] = []
        for index, kind in enumerate(self.pipeline.kinds):
            column = QVBoxLayout()
            header = QHBoxLayout()
            title = QLabel(self._title(index, kind))
            title.setStyleSheet("font-weight: bold; font-size: 14px")
            chooser = QComboBox()
            for available in self.available:
                chooser.addItem(pipeline_label(available, self.config), available)
            chooser.setCurrentIndex(self.available.index(kind))
            chooser.setToolTip(f"The {SIDE_NAMES[index]} side's pipeline")
            chooser.currentIndexChanged.connect(lambda _, side=index: self.choose_pipeline(side))
            header.addWidget(title)
            header.addStretch(1)
            header.addWidget(QLabel("Pipeline:"))
            header.addWidget(chooser)
            view = VideoView()
            view.set_message(f"Opening {self.source.label} …")
            view.rect_selected.connect(self.set_target_rect)
            stats = QLabel("waiting for the first frame")
            stats.setStyleSheet("font-family: monospace")
            stats.setWordWrap(True)
            stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            column.addLayout(header)
            column.addWidget(view, 1)
            column.addWidget(stats)
            row.addLayout(column, 1)
            self.views.append(view)
            self.titles.append(title)
            self.stats.append(stats)
            self.choosers.append(chooser)
        self.setCentralWidget(central)
        target = self.menuBar().addMenu("&Target")
        target.addAction("Load a target image…", self._ask_target_image)
        target.addAction("Clear the targets", self.clear_targets)
        self.statusBar().addPermanentWidget(QLabel("Drag a rectangle on either side to track it on both"))

    def _title(self, side: int, kind: str) -> str:
        return f"{SIDE_NAMES[side].capitalize()}: {pipeline_label(kind, self.config)}"

    # ----------------------------------------------------------------- source
    def _source_opened(self, _source) -> None:
        if self.source.kind == "demo":  # both sides track the demo's poster at once
            self.processing.post(lambda p: p.add_demo_target(str(demo_sequence().target)))
        self.show_message("; ".join([f"Playing {self.source.label}", *self.notes]))

    def _source_failed(self, message: str) -> None:
        text = f"{self.source.label} failed: {one_line(message)}"
        self.statusBar().showMessage(text)
        for view in self.views:
            view.set_message(text)

    def _source_ended(self, _message: str) -> None:
        if self.capture is None or not self.capture.ended:
            return
        self.stop_capture()
        for view in self.views:
            view.set_banner("End of video")
        self.statusBar().showMessage(f"{self.source.label}: end of video")

    # ----------------------------------------------------------------- pipelines and targets
    def choose_pipeline(self, side: int) -> None:
        """Run the pipeline chosen in ``side``'s box there (built in the processing thread, same targets)."""
        kind = self.choosers[side].currentData()
        self.processing.post(lambda p: p.set_pipeline(side, kind))
        self.show_message(f"Switching the {SIDE_NAMES[side]} side to {pipeline_label(kind, self.config)} …")

    def set_target_rect(self, rect: QRect) -> None:
        """Track the region ``rect`` (frame pixels) of the frame on screen on both sides."""
        output = self.output_on_screen("No frame yet to cut a target from")
        if output is None:
            return
        index = output.index
        box = (rect.x(), rect.y(), rect.width(), rect.height())
        self.processing.post(lambda p: p.add_target_rect(box, index))
        self.show_message(f"Describing the rectangle {box} for both pipelines …")

    def load_target_image(self, path: str) -> None:
        """Track the planar image at ``path`` on both sides (described in the processing thread)."""
        self.processing.post(lambda p: p.add_target_image(path))
        self.show_message(f"Describing {path} for both pipelines …")

    def clear_targets(self) -> None:
        self.processing.post(lambda p: p.clear_targets())
        self.show_message("Targets cleared: drag a rectangle on either side")

    # ----------------------------------------------------------------- output
    def show_output(self, output: ComparisonOutput) -> None:
        """Show ``output``, the newest the processing thread made."""
        for index, (view, side) in enumerate(zip(self.views, output.sides)):
            view.set_frame(side.frame.bgr)
            for label, text in ((self.titles[index], self._title(index, side.kind)), (self.stats[index], side.stats())):
                if label.text() != text:  # in step with the frame (two labels: cheap at the frame rates compared)
                    label.setText(text)
        self.frame_shown.emit(output)
        for side in output.sides:
            for event in side.frame.events:
                self.show_message(f"{side.label}: {event}")

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(one_line(text), 8000)

    def show_progress(self, task: str, done: int, total: int) -> None:
        """A long task's progress in the status bar (and on the views while there is no frame yet)."""
        if total <= 0 or done >= total:
            return
        self.statusBar().showMessage(f"{task}: {done}/{total}")
        if self.output is None:
            for view in self.views:
                view.set_message(f"{task} …\n{done} of {total}")
