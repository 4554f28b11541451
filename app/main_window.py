"""The main window: the video view, the settings side panel, the latency chart, menus, shortcuts and status bar;
the target-quality preview (``quality_view``), the camera calibration and the comparison window open from it.

The UI thread only shows what the processing thread computed: it wraps each output frame in a QImage (no copy),
scales it to the view once and repaints; the chart and the status numbers refresh a few times a second. Everything the user does that changes the pipeline (settings, targets, views, overlays) is posted to
the processing thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
from PyQt6.QtCore import QEvent, QObject, QPointF, QRect, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from keynet.demo import demo_sequence
from keynet.errors import KeyNetError
from keynet.files import check_output_path
from keynet.image import VIDEO_CODECS

from .calibration_dialog import CalibrationDialog
from .charts import LatencyChart
from .comparison_window import ComparisonWindow
from .dialogs import CALIBRATION_FILES, IMAGE_FILES, VIDEO_FILES, ask_file, ask_folder, ask_save_path
from .pipeline import (
    FrameOutput,
    SourceSpec,
    TargetPreview,
    TrackingPipeline,
    available_sources,
    default_view,
    descriptor_names,
    load_camera,
)
from .quality_view import QualityView
from .recording import PoseLog, VideoRecorder, save_snapshot
from .settings import AppSettings
from .settings_panel import SettingsPanel, load_settings, save_settings, settings_store
from .threads import PipelineWindow
from .views import VideoView

FPS_WINDOW_FRAMES, FPS_WINDOW_S = 30, 5.0  # frames per second over the last 30 frames shown, at most 5 s
STATUS_REFRESH_MS = 200
DEFAULT_RECORDING_FPS = 30.0  # recordings of cameras (files record at their own rate)

# (action name, shortcut, description) for the Help menu and the actions themselves.
SHORTCUTS = [
    ("pause", "Space", "Pause / resume (at the end of a file: play it again)"),
    ("step", "Right", "Step one frame (while paused)"),
    ("keypoints", "K", "Keypoints: off / by score / by scale"),
    ("matches", "M", "Show matches"),
    ("inliers", "I", "Inliers only"),
    ("tracks", "T", "Keypoint tracks"),
    ("heatmap", "H", "Key.Net response heatmap"),
    ("overlay", "O", "AR overlay: none / cube / axes in turn"),
    ("clear", "C", "Clear the targets"),
    ("record", "R", "Start / stop recording to MP4"),
    ("snapshot", "S", "Save a snapshot (PNG)"),
    ("export", "E", "Export homographies and poses (JSON)"),
    ("open_video", "Ctrl+O", "Open a video file"),
    ("open_folder", "Ctrl+Shift+O", "Open an image folder"),
    ("open_demo", "D", "Open the bundled demo"),
    ("loop", "L", "Loop files (the demo, videos, image folders)"),
    ("target_image", "Ctrl+T", "Load a target image"),
    ("help", "F1", "Keyboard shortcuts"),
    ("quit", "Ctrl+Q", "Quit"),
]
CHECKABLE = {"pause", "matches", "inliers", "tracks", "heatmap", "record", "loop"}  # actions that stay on or off


class MainWindow(PipelineWindow):
    """The keynet-live app.

    Args:
        source: what to open first (``SourceSpec``); default: the first camera found, else the bundled demo.
        settings: the settings to start with; default: those remembered from the last run.
        remember: save settings changes in QSettings (tests turn it off).
        ask: show modal dialogs for errors (tests turn it off; errors then go to the status bar only).

    Signals:
        frame_shown(FrameOutput): a newly processed frame was shown.
        preview_ready(TargetPreview): a candidate target was rated (emitted in the processing thread).
    """

    frame_shown = pyqtSignal(object)
    preview_ready = pyqtSignal(object)

    def __init__(self, source: SourceSpec | None = None, settings: AppSettings | None = None,
                 remember: bool = True, ask: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("keynet-live")
        self.resize(1280, 800)
        self.remember, self.ask = remember, ask
        self.store = settings_store()
        settings = settings or load_settings(self.store)
        descriptors = descriptor_names()
        if settings.descriptor not in descriptors:
            settings = replace(settings, descriptor=descriptors[0])
        self.view_options = default_view()
        self.calibration_file = settings.calibration_file  # the Tools menu's; the side panel has the other settings
        self.overlay_path = ""
        self.output: FrameOutput | None = None
        self.source: SourceSpec | None = None
        self.ended = False  # the file source played to its end
        self.replaying = False  # playing the file that ended again
        self.recorder: VideoRecorder | None = None
        self.pose_log = PoseLog()
        self.frame_times: list[float] = []
        self.fps = 0.0
        self.inspected: tuple[int, int] | None = None  # (frame index, keypoint row) of the inspected keypoint
        self.inspected_track = -1  # its track id (followed from frame to frame while >= 0)
        self.calibration_dialog: CalibrationDialog | None = None  # made when first opened, kept (with its views)
        self.comparison: ComparisonWindow | None = None  # while it is open

        self.view = VideoView()
        self.setCentralWidget(self.view)
        self.panel = SettingsPanel(settings, descriptors)
        self.chart = LatencyChart()
        self.quality_view = QualityView(self)
        self._build_docks()
        self._build_status_bar()
        self.actions: dict[str, QAction] = {}
        self._build_menus()

        self.pipeline = TrackingPipeline(settings, self.view_options, on_record=self._record,
                                         on_progress=self.signals.progress.emit)
        self.signals.recording_failed.connect(self._recording_failed)
        self.signals.model_status.connect(self._model_status)
        self.preview_ready.connect(self.quality_view.show_preview)
        self.quality_view.kept.connect(self.keep_target)
        self.quality_view.discarded.connect(self._target_discarded)
        self.view.rect_selected.connect(self.set_target_rect)
        self.view.point_clicked.connect(self.inspect_point)
        self.panel.changed.connect(self.apply_settings)
        self.panel.keypoints_changed.connect(self.set_keypoints)
        self.start_threads(self.pipeline)
        self.post_configure(settings)
        QTimer.singleShot(0, lambda: self.open_source(source or self.default_source()))

    # ----------------------------------------------------------------- layout
    def _build_docks(self) -> None:
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addWidget(self.panel)
        self.notice_label = QLabel("")
        self.notice_label.setStyleSheet("color: #b35900; font-weight: bold")
        self.notice_label.setWordWrap(True)
        self.notice_label.setVisible(False)
        layout.addWidget(self.notice_label)
        self.target_label = QLabel("Target: drag a rectangle on the video, or Target ▸ Load image")
        self.target_label.setWordWrap(True)
        self.point_label = QLabel("Click a keypoint to inspect it")
        self.point_label.setWordWrap(True)
        self.point_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.target_label)
        layout.addWidget(self.point_label)
        layout.addStretch(1)
        dock = QDockWidget("Settings", self)
        dock.setObjectName("settings")
        dock.setWidget(side)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        chart_dock = QDockWidget("Latency per stage, frames per second and inliers per target", self)
        chart_dock.setObjectName("chart")
        chart_dock.setWidget(self.chart)
        chart_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, chart_dock)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QLabel("state: -")
        self.fps_label = QLabel("fps: -")
        self.inlier_label = QLabel("inliers: -")
        self.rec_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setVisible(False)
        bar.addPermanentWidget(self.progress_bar)
        for w in (self.rec_label, self.state_label, self.inlier_label, self.fps_label):
            w.setMinimumWidth(90)
            bar.addPermanentWidget(w)
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_REFRESH_MS)
        self.status_timer.timeout.connect(self._refresh_status)
        self.status_timer.start()

    def _action(self, name: str, menu: QMenu, slot: Callable) -> QAction:
        """The action ``name`` of ``SHORTCUTS`` (checkable if in ``CHECKABLE``) in ``menu``, calling ``slot``."""
        shortcut, text = next((k, t) for n, k, t in SHORTCUTS if n == name)
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setCheckable(name in CHECKABLE)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.actions[name] = action
        return action

    def _actions(self, menu: QMenu, *entries: tuple[str, Callable] | None) -> QMenu:
        """``menu`` with the actions ``entries`` ((name, slot) as ``_action`` takes them; None: a separator)."""
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            else:
                name, slot = entry
                self._action(name, menu, slot)
        return menu

    def _menu_action(self, name: str, text: str, menu: QMenu, slot: Callable[[], object]) -> QAction:
        """A menu entry without a shortcut, in ``self.actions`` as ``name``."""
        action = menu.addAction(text)
        action.triggered.connect(lambda _=False: slot())
        self.actions[name] = action
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        source = bar.addMenu("&Source")
        self.camera_menu = source.addMenu("Camera")
        self._cameras: list[SourceSpec] | None = None
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self._actions(source, ("open_video", self._ask_video), ("open_folder", self._ask_folder),
                      ("open_demo", lambda: self.open_source(SourceSpec.demo())), ("loop", self.set_loop), None,
                      ("quit", self.close))

        view = self._actions(bar.addMenu("&View"), ("pause", self.toggle_pause), ("step", self.step), None,
                             ("keypoints", self.cycle_keypoints))
        for name, attr in (("matches", "matches"), ("inliers", "inliers_only"), ("tracks", "tracks"),
                           ("heatmap", "heatmap")):
            a = self._action(name, view, lambda checked, attr=attr: self.set_view(**{attr: checked}))
            a.setChecked(getattr(self.view_options, attr))
        view.addSeparator()
        self._menu_action("compare", "Compare pipelines…", view, self.open_comparison)

        target = self._actions(bar.addMenu("&Target"), ("target_image", self._ask_target_image),
                               ("clear", self.clear_targets))
        overlay = self._actions(target.addMenu("AR overlay"), ("overlay", self.cycle_overlay))
        group = QActionGroup(self)
        self.overlay_actions: dict[str, QAction] = {}
        for kind, label in (("none", "None"), ("cube", "3D cube"), ("axes", "Axes"), ("image", "Image…"),
                            ("video", "Video…")):
            a = QAction(label, self, checkable=True)
            a.setChecked(kind == self.view_options.overlay)
            a.triggered.connect(lambda _=False, kind=kind: self.choose_overlay(kind))
            group.addAction(a)
            overlay.addAction(a)
            self.overlay_actions[kind] = a

        tools = bar.addMenu("T&ools")
        self._menu_action("calibrate", "Calibrate camera…", tools, self.open_calibration)
        self._menu_action("calibration_file", "Use calibration file…", tools, self._ask_calibration_file)
        self._menu_action("no_calibration", "Use the field of view (no calibration)", tools,
                          lambda: self.use_calibration(""))

        self._actions(bar.addMenu("&Record"), ("record", self.toggle_recording), ("snapshot", self.snapshot),
                      ("export", self.export_poses))
        self._actions(bar.addMenu("&Help"), ("help", self.show_shortcuts))

    # ----------------------------------------------------------------- sources
    def default_source(self) -> SourceSpec:
        cameras = self.cameras()
        return cameras[0] if cameras else SourceSpec.demo()

    def cameras(self, refresh: bool = False) -> list[SourceSpec]:
        """The cameras found (probed once; ``refresh`` probes again, e.g. after plugging one in)."""
        if refresh or self._cameras is None:
            self._cameras = [s for s in available_sources() if s.kind == "camera"]
        return self._cameras

    def _fill_camera_menu(self, refresh: bool = False) -> None:
        self.camera_menu.clear()
        cameras = self.cameras(refresh)
        if not cameras:
            a = self.camera_menu.addAction("No camera found")
            a.setEnabled(False)
        for spec in cameras:
            self.camera_menu.addAction(spec.label, lambda spec=spec: self.open_source(spec))
        self.camera_menu.addSeparator()
        self.camera_menu.addAction("Look for cameras again", lambda: self._fill_camera_menu(refresh=True))

    def _ask_video(self) -> None:
        ask_file(self, "Open a video", VIDEO_FILES, lambda path: self.open_source(SourceSpec.video(path)))

    def _ask_folder(self) -> None:
        ask_folder(self, "Open an image folder", lambda path: self.open_source(SourceSpec.folder(path)))

    def open_source(self, spec: SourceSpec) -> None:
        """Stop the current source and start reading ``spec``; its errors go to the status bar (or a dialog)."""
        self.stop_capture()
        self.source = spec
        self.ended = self.replaying = False
        self.view.set_banner("")
        self.actions["loop"].setChecked(spec.loop)
        self.actions["loop"].setEnabled(spec.is_file)
        self.pose_log = PoseLog()
        self.chart.clear()
        self.frame_times.clear()
        self._show_inspected(None)  # track ids start again with the source
        self.slot.clear()
        self.processing.post(lambda p: p.new_source())
        self.view.set_message(f"Opening {spec.label} …")
        self.show_message(f"Opening {spec.label} …")
        self._start_capture(spec)

    def _start_capture(self, spec: SourceSpec) -> None:
        self.start_capture(spec, self.actions["loop"].isChecked(), paused=self.actions["pause"].isChecked())

    def _source_opened(self, source) -> None:
        if self.capture is None:
            return
        if self.source.kind == "demo" and not self.replaying:  # track the demo's poster at once: a new user sees it
            self.processing.post(lambda p: p.add_demo_target(str(demo_sequence().target)))
            self.target_label.setText("Target: the demo's poster (drag a rectangle to add another)")
        self.replaying = False
        self.show_message(f"Playing {self.source.label}" + (f" ({source.describe()})" if hasattr(source, "describe") else ""))

    def _source_failed(self, message: str) -> None:
        label = self.source.label if self.source else "the source"
        self.report_error(f"{label} failed: {message}")
        self.view.set_message(f"{label} failed:\n{message}\n\nOpen another source from the Source menu.")

    def _source_ended(self, message: str) -> None:
        label = self.source.label if self.source else "the source"
        if self.source is not None and self.source.kind == "camera":
            self.report_error(f"{label} stopped sending frames (unplugged?). Open a source from the Source menu.")
            return
        if self.capture is None or not self.capture.ended:
            return  # from a capture thread stopped since (another source is opening)
        self.stop_capture()
        self.ended = True
        self.view.set_banner("End of video: press Space to play it again (L: loop)")
        self.state_label.setText("state: end of video")
        self.statusBar().showMessage(f"{label}: end of video. Press Space to play it again, L to loop it.")

    def play_again(self) -> None:
        """Play the file source that ended from its start (targets set on its last frame are searched for)."""
        if self.source is None:
            return
        self.ended, self.replaying = False, True
        self.view.set_banner("")
        self._show_inspected(None)
        self.slot.clear()
        self.processing.post(lambda p: p.new_source())
        self.show_message(f"Playing {self.source.label} again")
        self._start_capture(self.source)

    def set_loop(self, loop: bool) -> None:
        """Loop the file source (from its end back to its start) or let it end."""
        if self.capture is not None:
            self.capture.loop = loop
        self.show_message("Files loop" if loop else "Files play once and stop at the end")

    # ----------------------------------------------------------------- settings and views
    def post_configure(self, settings: AppSettings) -> None:
        self.processing.post(lambda p: self.signals.model_status.emit(p.configure(settings)))

    @property
    def settings(self) -> AppSettings:
        """The settings in use: the side panel's, with the calibration the Tools menu chose."""
        return replace(self.panel.settings, calibration_file=self.calibration_file)

    def apply_settings(self, settings: AppSettings) -> None:
        """Use ``settings`` (the side panel's edits; the calibration stays the Tools menu's) and remember them."""
        settings = replace(settings, calibration_file=self.calibration_file)
        if self.remember:
            save_settings(settings, self.store)
        self.post_configure(settings)

    def set_view(self, **changes) -> None:
        """Change the render options (``keynet.render.RenderOptions`` fields); the frame on screen is drawn again."""
        self.view_options = replace(self.view_options, **changes)
        options, path = self.view_options, self.overlay_path
        self.processing.post(lambda p: p.set_view(options, path))

    def set_keypoints(self, mode: str) -> None:
        """Draw the keypoints coloured by ``mode`` (``"off"``: not drawn); the side panel shows it."""
        self.panel.set_keypoints(mode)
        self.set_view(keypoints=mode)
        self.show_message(f"Keypoints: {mode}")

    def cycle_keypoints(self) -> None:
        order = ["off", "score", "scale"]
        self.set_keypoints(order[(order.index(self.view_options.keypoints) + 1) % len(order)])

    def cycle_overlay(self) -> None:
        order = ["none", "cube", "axes"]
        kind = self.view_options.overlay
        self.choose_overlay(order[(order.index(kind) + 1) % len(order)] if kind in order else "none")

    def choose_overlay(self, kind: str, path: str | None = None) -> None:
        if kind in ("image", "video") and path is None:
            ask_file(self, f"AR overlay {kind}", IMAGE_FILES if kind == "image" else VIDEO_FILES,
                     lambda chosen: self.choose_overlay(kind, chosen))
            self.overlay_actions[self.view_options.overlay].setChecked(True)  # the one chosen, or as before if cancelled
            return
        self.overlay_actions[kind].setChecked(True)
        self.overlay_path = path or ""
        self.set_view(overlay=kind)

    def toggle_pause(self, paused: bool) -> None:
        if self.ended:
            self.actions["pause"].setChecked(False)
            self.play_again()
            return
        if self.capture is not None:
            self.capture.set_paused(paused)
        self.show_message("Paused: Right arrow steps one frame" if paused else "Playing")

    def step(self) -> None:
        if not self.actions["pause"].isChecked():
            self.actions["pause"].setChecked(True)
            self.toggle_pause(True)
        if self.capture is not None:
            self.capture.step()

    # ----------------------------------------------------------------- targets
    def set_target_rect(self, rect: QRect) -> None:
        """Rate the region ``rect`` (frame pixels) of the frame on screen in the quality view, which tracks it if
        the user keeps it (without a model it is kept at once, and tracked once one is loaded)."""
        frame_index = self.output.index if self.output is not None else -1
        box = (rect.x(), rect.y(), rect.width(), rect.height())
        self._propose(lambda p: p.preview_target_rect(box, frame_index), lambda p: p.add_target_rect(box, frame_index),
                      f"rectangle {box} of frame {frame_index}")

    def _propose(self, preview: Callable[[TrackingPipeline], TargetPreview], add: Callable[[TrackingPipeline], str],
                 what: str) -> None:
        """In the processing thread: ``preview(pipeline)`` to the quality view, or ``add(pipeline)`` without a model."""
        def command(pipeline: TrackingPipeline) -> str | None:
            if pipeline.tracker is None:
                return add(pipeline)
            self.preview_ready.emit(preview(pipeline))
            return None

        self.processing.post(command)
        self.target_label.setText(f"Target: rating the {what} …")

    def keep_target(self, preview: TargetPreview) -> None:
        """Track the candidate the quality view showed."""
        self.processing.post(lambda p: p.keep_preview(preview))
        self.target_label.setText(f"Target: {preview.name}, {preview.quality.stars}/5 stars")

    def _target_discarded(self, preview: TargetPreview) -> None:
        self.target_label.setText(f"Target: {preview.name} discarded (drag a rectangle for another)")
        self.show_message(f"Discarded {preview.name}: it is not tracked")

    def load_target_image(self, path: str) -> None:
        """Rate the planar image at ``path`` in the quality view, as a dragged rectangle is."""
        self._propose(lambda p: p.preview_target_image(path), lambda p: p.add_target_image(path), Path(path).name)

    def clear_targets(self) -> None:
        self.processing.post(lambda p: p.clear_targets())
        self.target_label.setText("Target: none (drag a rectangle on the video)")

    def inspect_point(self, point: QPointF) -> None:
        """Show the score, scale, track length and match distance of the keypoint nearest the click, and mark it
        on the video; it is followed along its track while the track goes on."""
        if self.output is None:
            return
        row = self.output.keypoint_near(point.x(), point.y())
        if row is None:
            self._show_inspected(None, "No keypoint near the click")
            return
        result = self.output.result
        self.inspected_track = int(result.track_ids[row]) if result is not None else -1
        self._show_inspected(row)

    def _show_inspected(self, row: int | None, text: str = "Click a keypoint to inspect it") -> None:
        """Mark keypoint ``row`` of the frame on screen and list its details; None clears both (showing ``text``)."""
        output = self.output
        if row is None or output is None:
            self.inspected, self.inspected_track = None, -1
            self.view.set_marker(None)
            self.point_label.setText(text)
            return
        self.inspected = (output.index, row)
        x, y = (float(v) for v in output.keypoints[row, :2])
        self.view.set_marker(QPointF(x, y))
        self.point_label.setText("\n".join(f"{k}: {v}" for k, v in output.keypoint_info(row).items()))

    def _follow_inspected(self, output: FrameOutput) -> None:
        """On a new frame: the inspected keypoint where its track went on, else the panel and the mark cleared."""
        if self.inspected is None or self.inspected[0] == output.index:
            return
        result = output.result
        rows = [] if result is None or self.inspected_track < 0 else \
            [int(r) for r in (result.track_ids == self.inspected_track).nonzero()[0]]
        if rows:
            self._show_inspected(rows[0])
        else:
            self._show_inspected(None, "The inspected keypoint is gone (its track ended); click another")

    # ----------------------------------------------------------------- calibration and comparison
    def open_calibration(self) -> None:
        """Open the calibration dialog (the views taken before stay); it gets the live frames while it is shown,
        and the calibration it saves is used at once."""
        if self.calibration_dialog is None:
            self.calibration_dialog = CalibrationDialog(self)
            self.calibration_dialog.calibrated.connect(self.use_calibration)
        self.calibration_dialog.show()
        self.calibration_dialog.raise_()

    def _ask_calibration_file(self) -> None:
        ask_file(self, "Camera calibration", CALIBRATION_FILES, self.use_calibration)

    def use_calibration(self, path: str) -> None:
        """Take the pose and the cube from the calibration file at ``path`` ("": from the field of view); a file
        that cannot be used is reported in one line and changes nothing."""
        camera, message = load_camera(path)
        if message:
            self.report_error(message)
            return
        self.calibration_file = str(path)
        self.apply_settings(self.panel.settings)
        if camera is None:
            self.show_message("The pose and the cube use the field of view (no calibration)")
        else:
            fx, fy = camera.matrix[0, 0], camera.matrix[1, 1]
            self.show_message(f"The pose and the cube use the calibration {Path(path).name} "
                              f"(focal length {fx:.0f} x {fy:.0f} px)")

    def open_comparison(self) -> None:
        """Compare two pipelines on this window's source and settings in a window of their own; this window's
        source stops while it is open and plays again when it closes."""
        if self.comparison is not None:
            self.comparison.raise_()
            return
        if self.source is None:
            self.show_message("Open a source first")
            return
        self.stop_capture()
        self.view.set_banner("Comparing pipelines in the other window: this one plays again when it closes")
        self.comparison = ComparisonWindow(self.source, self.settings)
        self.comparison.installEventFilter(self)
        self.comparison.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """The comparison window closing: stop it, and play this window's source again."""
        if watched is self.comparison and event.type() == QEvent.Type.Close:
            self._close_comparison()
            if self.source is not None:
                self.open_source(self.source)
        return super().eventFilter(watched, event)

    def _close_comparison(self, close_window: bool = False) -> None:
        """Stop the comparison window's pipelines (and close it when ``close_window``)."""
        comparison, self.comparison = self.comparison, None
        if comparison is None:
            return
        comparison.removeEventFilter(self)
        comparison.shutdown()
        if close_window:
            comparison.close()

    # ----------------------------------------------------------------- output
    def show_output(self, output: FrameOutput) -> None:
        """Show ``output``, the newest the processing thread made."""
        self.view.set_frame(output.bgr)
        if self.progress_bar.isVisible() and output.fresh:
            self.progress_bar.setVisible(False)
        now = time.perf_counter()
        if output.fresh:
            self.frame_times = [t for t in self.frame_times[-FPS_WINDOW_FRAMES:] if now - t < FPS_WINDOW_S] + [now]
            span = now - self.frame_times[0]
            self.fps = (len(self.frame_times) - 1) / span if span > 0 else 0.0
            self.chart.add(output.timings_ms, self.fps, output.targets)
            record = output.record()
            if record is not None:
                self.pose_log.add(record)
            self._follow_inspected(output)
            if self.calibration_dialog is not None and self.calibration_dialog.isVisible():
                self.calibration_dialog.add_frame(output.captured)
            self.frame_shown.emit(output)
        for event in output.events:
            self.show_message(event)

    def _refresh_status(self) -> None:
        """The status bar's state, inliers and fps (a few times a second: relaying out the bar on every frame
        costs the UI thread more than the numbers are worth)."""
        output = self.output
        if output is None or self.ended:
            return
        for label, text in ((self.state_label, output.summary()),
                            (self.inlier_label, f"inliers: {output.inliers} ({output.inlier_ratio:.0%})"),
                            (self.fps_label, f"fps: {self.fps:.1f}")):
            if label.text() != text:
                label.setText(text)

    def _record(self, output: FrameOutput) -> None:
        """Called in the processing thread with each new annotated frame."""
        recorder = self.recorder
        if recorder is not None:
            try:
                recorder.write(output.bgr, output.time)
            except (KeyNetError, OSError) as exc:
                self.signals.recording_failed.emit(str(exc))

    # ----------------------------------------------------------------- recording
    def start_recording(self, path: str | Path) -> None:
        """Record the annotated video to ``path`` in real time (at the source's rate, frames held while shown)."""
        try:
            check_output_path(path, "recording", VIDEO_CODECS, "video")
        except KeyNetError as exc:
            self.actions["record"].setChecked(False)
            self.report_error(str(exc))
            return
        fps = self.source.pace_fps if self.source and self.source.pace_fps else DEFAULT_RECORDING_FPS
        self.recorder = VideoRecorder(path, fps)
        self.rec_label.setText("● REC")
        self.rec_label.setStyleSheet("color: red")
        self.actions["record"].setChecked(True)
        self.show_message(f"Recording to {path}")

    def stop_recording(self) -> int:
        recorder, self.recorder = self.recorder, None
        self.rec_label.setText("")
        self.actions["record"].setChecked(False)
        if recorder is None:
            return 0
        try:
            frames = recorder.close()
        except (KeyNetError, OSError) as exc:
            self.report_error(f"The recording is lost: {exc}")
            return 0
        self.show_message(f"Recorded {recorder.seconds:.1f} s ({recorder.shown} frames shown) to {recorder.path}")
        return frames

    def _recording_failed(self, message: str) -> None:
        self.stop_recording()
        self.report_error(f"Recording stopped: {message}")

    def toggle_recording(self, on: bool) -> None:
        if not on:
            self.stop_recording()
            return
        path = ask_save_path(self, "Record to", "recording.mp4", "MP4 video (*.mp4)")
        if path:
            self.start_recording(path if path.endswith(".mp4") else path + ".mp4")
        else:
            self.actions["record"].setChecked(False)

    def snapshot(self, path: str | Path | None = None) -> None:
        output = self.output_on_screen("Nothing to save yet")
        if output is not None:
            self._write(path, ("Snapshot", "snapshot.png", "PNG image (*.png)"),
                        lambda chosen: f"Saved {save_snapshot(output.bgr, chosen)}")

    def export_poses(self, path: str | Path | None = None) -> None:
        def export(chosen: str | Path) -> str:
            self.pose_log.save(chosen, self.source.label if self.source else "")
            return f"Exported {len(self.pose_log)} frames to {chosen}"

        self._write(path, ("Export poses", "poses.json", "JSON (*.json)"), export)

    def _write(self, path: str | Path | None, dialog: tuple[str, str, str], write: Callable[[str | Path], str]) -> None:
        """``write(path)`` and show the message it returns; without ``path``, ask for one (``dialog``: the title,
        the name proposed and the filters). A bad name or folder is said in one line, and the app goes on."""
        path = path or ask_save_path(self, *dialog)
        if not path:
            return
        try:
            message = write(path)
        except (KeyNetError, OSError, cv2.error) as exc:
            self.report_error(first_line(exc))
            return
        self.show_message(message)

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def report_error(self, text: str) -> None:
        """An error for the user: the status bar, and a dialog when ``ask``."""
        self.statusBar().showMessage(text)
        if self.ask:
            QMessageBox.warning(self, "keynet-live", text)

    def show_progress(self, task: str, done: int, total: int) -> None:
        """A long task's progress in the status bar (and on the video while there is no frame yet)."""
        if total <= 0 or done >= total:
            self.progress_bar.setVisible(False)
            return
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{task}: %v/%m")
        self.progress_bar.setVisible(True)
        if self.output is None:
            self.view.set_message(f"{task} …\n{done} of {total}")

    def _model_status(self, text: str) -> None:
        """A lasting notice (no weights, a model that failed to load, ...) beside the status bar; "" clears it."""
        self.notice_label.setText(text)
        self.notice_label.setToolTip(text)
        self.notice_label.setVisible(bool(text))
        if text:
            self.statusBar().showMessage(text, 8000)

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{t}</td></tr>" for _, k, t in SHORTCUTS)
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table><p>Drag on the video to set a "
                                "target; click a keypoint to inspect it.</p>")

    # ----------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Stop both threads (join with a timeout), release the source, finish a recording; close the comparison
        window and the dialogs."""
        self._close_comparison(close_window=True)
        self.quality_view.close()
        if self.calibration_dialog is not None:
            self.calibration_dialog.close()
        super().shutdown()
        self.stop_recording()


def first_line(exc: BaseException) -> str:
    """An error's message as one line (OpenCV's errors span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if isinstance(exc, cv2.error) and lines else (lines[0] if lines else type(exc).__name__)

