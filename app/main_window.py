"""The main window: the video view, the settings side panel, the latency chart, menus, shortcuts and status bar.

The UI thread only shows what the processing thread computed: it wraps each output frame in a QImage (no copy),
scales it to the view once and repaints; the chart and the status numbers refresh a few times a second. Everything the user does that changes the pipeline (settings, targets, views, overlays) is posted to
the processing thread.
"""

from __future__ import annotations

import gc
import time
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QPointF, QRect, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from keynet.demo import demo_sequence

from .charts import LatencyChart
from .pipeline import FrameOutput, SourceSpec, TrackingPipeline, ViewOptions, available_sources, descriptor_names
from .recording import PoseLog, VideoRecorder, save_snapshot
from .settings_panel import AppSettings, SettingsPanel, settings_store
from .views import VideoView
from .workers import CaptureThread, LatestFrame, ProcessingThread, WorkerSignals

JOIN_TIMEOUT_S = 3.0
FPS_WINDOW_FRAMES, FPS_WINDOW_S = 30, 5.0  # frames per second over the last 30 frames shown, at most 5 s
STATUS_REFRESH_MS = 200

# (action name, shortcut, description) for the Help menu and the actions themselves.
SHORTCUTS = [
    ("pause", "Space", "Pause / resume"),
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
    ("target_image", "Ctrl+T", "Load a target image"),
    ("help", "F1", "Keyboard shortcuts"),
    ("quit", "Ctrl+Q", "Quit"),
]


class MainWindow(QMainWindow):
    """The keynet-live app.

    Args:
        source: what to open first (``SourceSpec``); default: the first camera found, else the bundled demo.
        settings: the settings to start with; default: those remembered from the last run.
        remember: save settings changes in QSettings (tests turn it off).
        ask: show modal dialogs for errors (tests turn it off; errors then go to the status bar only).

    Signals:
        frame_shown(FrameOutput): a newly processed frame was shown.
    """

    frame_shown = pyqtSignal(object)

    def __init__(self, source: SourceSpec | None = None, settings: AppSettings | None = None,
                 remember: bool = True, ask: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("keynet-live")
        self.resize(1280, 800)
        self.remember, self.ask = remember, ask
        self.store = settings_store()
        settings = settings or AppSettings.load(self.store)
        descriptors = descriptor_names()
        if settings.descriptor not in descriptors:
            settings = replace(settings, descriptor=descriptors[0])
        self.view_options = ViewOptions()
        self.output: FrameOutput | None = None
        self.source: SourceSpec | None = None
        self.recorder: VideoRecorder | None = None
        self.pose_log = PoseLog()
        self.frame_times: list[float] = []
        self.fps = 0.0

        self.view = VideoView()
        self.setCentralWidget(self.view)
        self.panel = SettingsPanel(settings, descriptors)
        self.chart = LatencyChart()
        self._build_docks()
        self._build_status_bar()
        self.actions: dict[str, QAction] = {}
        self._build_menus()

        self.signals = WorkerSignals()
        self.slot = LatestFrame()
        self.pipeline = TrackingPipeline(settings, self.view_options, on_record=self._record)
        self.processing = ProcessingThread(self.pipeline, self.slot, self.signals)
        self.capture: CaptureThread | None = None
        self.signals.frame_ready.connect(self._show_output)
        self.signals.source_opened.connect(self._source_opened)
        self.signals.source_failed.connect(self._source_failed)
        self.signals.source_ended.connect(self._source_ended)
        self.signals.processing_failed.connect(lambda msg: self.show_message(f"Processing error: {msg}"))
        self.signals.notice.connect(self.show_message)
        self.signals.model_status.connect(self._model_status)
        self.view.rect_selected.connect(self.set_target_rect)
        self.view.point_clicked.connect(self.inspect_point)
        self.panel.changed.connect(self.apply_settings)
        # Python's full garbage collection scans every object it tracks while holding the GIL: with torch, kornia,
        # OpenCV and Qt loaded, about 90 ms on the 2-core CPU, a visible freeze. The objects alive now (modules,
        # classes, the widgets) live as long as the app: freezing them leaves later collections only the new ones.
        gc.freeze()
        self.processing.start()
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
        chart_dock = QDockWidget("Latency per stage (ms), fps and inlier ratio", self)
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
        for w in (self.rec_label, self.state_label, self.inlier_label, self.fps_label):
            w.setMinimumWidth(90)
            bar.addPermanentWidget(w)
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_REFRESH_MS)
        self.status_timer.timeout.connect(self._refresh_status)
        self.status_timer.start()

    def _action(self, name: str, menu, slot, checkable: bool = False) -> QAction:
        shortcut, text = next((k, t) for n, k, t in SHORTCUTS if n == name)
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.actions[name] = action
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        source = bar.addMenu("&Source")
        self.camera_menu = source.addMenu("Camera")
        self._cameras: list[SourceSpec] | None = None
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self._action("open_video", source, self._ask_video)
        self._action("open_folder", source, self._ask_folder)
        self._action("open_demo", source, lambda: self.open_source(SourceSpec.demo()))
        source.addSeparator()
        self._action("quit", source, self.close)

        view = bar.addMenu("&View")
        self._action("pause", view, self.toggle_pause, checkable=True)
        self._action("step", view, self.step)
        view.addSeparator()
        self._action("keypoints", view, self.cycle_keypoints)
        for name, attr in (("matches", "matches"), ("inliers", "inliers_only"), ("tracks", "tracks"),
                           ("heatmap", "heatmap")):
            a = self._action(name, view, lambda checked, attr=attr: self.set_view(**{attr: checked}), checkable=True)
            a.setChecked(getattr(self.view_options, attr))

        target = bar.addMenu("&Target")
        self._action("target_image", target, self._ask_target_image)
        self._action("clear", target, self.clear_targets)
        overlay = target.addMenu("AR overlay")
        self._action("overlay", overlay, self.cycle_overlay)
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

        record = bar.addMenu("&Record")
        self._action("record", record, self.toggle_recording, checkable=True)
        self._action("snapshot", record, self.snapshot)
        self._action("export", record, self.export_poses)

        help_menu = bar.addMenu("&Help")
        self._action("help", help_menu, self.show_shortcuts)

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
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", "", "Videos (*.mp4 *.avi *.mov *.mkv *.webm);;All files (*)")
        if path:
            self.open_source(SourceSpec.video(path))

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open an image folder")
        if path:
            self.open_source(SourceSpec.folder(path))

    def open_source(self, spec: SourceSpec) -> None:
        """Stop the current source and start reading ``spec``; its errors go to the status bar (or a dialog)."""
        self.stop_capture()
        self.source = spec
        self.pose_log = PoseLog()
        self.chart.clear()
        self.frame_times.clear()
        self.slot.clear()
        self.processing.post(lambda p: p.new_source(spec))
        self.view.set_message(f"Opening {spec.label} …")
        self.show_message(f"Opening {spec.label} …")
        self.capture = CaptureThread(spec.opener(), self.slot, self.signals, fps=spec.pace_fps, loop=spec.loop)
        self.capture.set_paused(self.actions["pause"].isChecked())
        if self.actions["pause"].isChecked():
            self.capture.step()
        self.capture.start()

    def stop_capture(self) -> None:
        if self.capture is not None:
            self.capture.stop()
            self.capture.join(JOIN_TIMEOUT_S)
            self.capture = None

    def _source_opened(self, source) -> None:
        if self.capture is None:
            return
        if self.source.kind == "demo":  # track the demo's target at once, so a new user sees it work
            self.processing.post(lambda p: None if p.num_targets else p.add_target_image(str(demo_sequence().target)))
            self.target_label.setText("Target: the demo's poster (drag a rectangle to add another)")
        self.show_message(f"Playing {self.source.label}" + (f" ({source.describe()})" if hasattr(source, "describe") else ""))

    def _source_failed(self, message: str) -> None:
        label = self.source.label if self.source else "the source"
        self.report_error(f"{label} failed: {message}")
        self.view.set_message(f"{label} failed:\n{message}\n\nOpen another source from the Source menu.")

    def _source_ended(self, message: str) -> None:
        label = self.source.label if self.source else "the source"
        if self.source is not None and self.source.kind == "camera":
            self.report_error(f"{label} stopped sending frames (unplugged?). Open a source from the Source menu.")
        else:
            self.show_message(f"{label}: end of the sequence")

    # ----------------------------------------------------------------- settings and views
    def post_configure(self, settings: AppSettings) -> None:
        self.processing.post(lambda p: self.signals.model_status.emit(p.configure(settings)))

    def apply_settings(self, settings: AppSettings) -> None:
        if self.remember:
            settings.save(self.store)
        self.post_configure(settings)

    def set_view(self, **changes) -> None:
        self.view_options = replace(self.view_options, **changes)
        options = self.view_options
        self.processing.post(lambda p: p.set_view(options))

    def cycle_keypoints(self) -> None:
        order = ["off", "score", "scale"]
        mode = order[(order.index(self.view_options.keypoints) + 1) % len(order)]
        self.set_view(keypoints=mode)
        self.show_message(f"Keypoints: {mode}")

    def cycle_overlay(self) -> None:
        order = ["none", "cube", "axes"]
        kind = self.view_options.overlay
        self.choose_overlay(order[(order.index(kind) + 1) % len(order)] if kind in order else "none")

    def choose_overlay(self, kind: str, path: str | None = None) -> None:
        if kind in ("image", "video") and path is None:
            filters = "Images (*.png *.jpg *.jpeg *.bmp)" if kind == "image" else "Videos (*.mp4 *.avi *.mov *.mkv)"
            path, _ = QFileDialog.getOpenFileName(self, f"AR overlay {kind}", "", f"{filters};;All files (*)")
            if not path:
                self.overlay_actions[self.view_options.overlay].setChecked(True)
                return
        self.overlay_actions[kind].setChecked(True)
        self.set_view(overlay=kind, overlay_path=path or "")

    def toggle_pause(self, paused: bool) -> None:
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
        """Track the region ``rect`` (frame pixels) of the frame on screen."""
        frame_index = self.output.index if self.output is not None else -1
        box = (rect.x(), rect.y(), rect.width(), rect.height())
        self.processing.post(lambda p: p.add_target_rect(box, frame_index))
        self.target_label.setText(f"Target: rectangle {box} of frame {frame_index}")

    def _ask_target_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Target image", "", "Images (*.png *.jpg *.jpeg *.bmp *.ppm);;All files (*)")
        if path:
            self.load_target_image(path)

    def load_target_image(self, path: str) -> None:
        self.processing.post(lambda p: p.add_target_image(path))
        self.target_label.setText(f"Target: {Path(path).name}")

    def clear_targets(self) -> None:
        self.processing.post(lambda p: p.clear_targets())
        self.target_label.setText("Target: none (drag a rectangle on the video)")

    def inspect_point(self, point: QPointF) -> None:
        """Show the score, scale, track length and match distance of the keypoint nearest the click."""
        if self.output is None:
            return
        info = self.output.keypoint_near(point.x(), point.y())
        if info is None:
            self.point_label.setText("No keypoint near the click")
            return
        self.point_label.setText("\n".join(f"{k}: {v}" for k, v in info.items()))

    # ----------------------------------------------------------------- output
    def _show_output(self) -> None:
        output: FrameOutput | None = self.processing.take_output()
        if output is None:
            return
        self.output = output
        self.view.set_frame(output.bgr)
        now = time.perf_counter()
        if output.fresh:
            self.frame_times = [t for t in self.frame_times[-FPS_WINDOW_FRAMES:] if now - t < FPS_WINDOW_S] + [now]
            span = now - self.frame_times[0]
            self.fps = (len(self.frame_times) - 1) / span if span > 0 else 0.0
            self.chart.add(output.timings_ms, self.fps, output.inliers, output.inlier_ratio)
            self.pose_log.add(output.record())
            self.frame_shown.emit(output)
        for event in output.events:
            self.show_message(event)

    def _refresh_status(self) -> None:
        """The status bar's state, inliers and fps (a few times a second: relaying out the bar on every frame
        costs the UI thread more than the numbers are worth)."""
        output = self.output
        if output is None:
            return
        for label, text in ((self.state_label, f"state: {output.state}"),
                            (self.inlier_label, f"inliers: {output.inliers} ({output.inlier_ratio:.0%})"),
                            (self.fps_label, f"fps: {self.fps:.1f}")):
            if label.text() != text:
                label.setText(text)

    def _record(self, output: FrameOutput) -> None:
        """Called in the processing thread with each new annotated frame."""
        recorder = self.recorder
        if recorder is not None:
            recorder.write(output.bgr)

    # ----------------------------------------------------------------- recording
    def start_recording(self, path: str | Path) -> None:
        fps = self.source.pace_fps if self.source and self.source.pace_fps else 30.0
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
        frames = recorder.close()
        self.show_message(f"Recorded {frames} frames to {recorder.path}")
        return frames

    def toggle_recording(self, on: bool) -> None:
        if not on:
            self.stop_recording()
            return
        path, _ = QFileDialog.getSaveFileName(self, "Record to", default_name("recording", ".mp4"), "MP4 video (*.mp4)")
        if path:
            self.start_recording(path if path.endswith(".mp4") else path + ".mp4")
        else:
            self.actions["record"].setChecked(False)

    def snapshot(self, path: str | Path | None = None) -> None:
        if self.output is None:
            self.show_message("Nothing to save yet")
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Snapshot", default_name("snapshot", ".png"), "PNG image (*.png)")
            if not path:
                return
        try:
            save_snapshot(self.output.bgr, path)
        except OSError as exc:
            self.report_error(str(exc))
            return
        self.show_message(f"Saved {path}")

    def export_poses(self, path: str | Path | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export poses", default_name("poses", ".json"), "JSON (*.json)")
            if not path:
                return
        try:
            self.pose_log.save(path, self.source.label if self.source else "")
        except OSError as exc:
            self.report_error(f"cannot write {path}: {exc}")
            return
        self.show_message(f"Exported {len(self.pose_log)} frames to {path}")

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def report_error(self, text: str) -> None:
        """An error for the user: the status bar, and a dialog when ``ask``."""
        self.statusBar().showMessage(text)
        if self.ask:
            QMessageBox.warning(self, "keynet-live", text)

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
        """Stop both threads (join with a timeout), release the source, finish a recording."""
        self.stop_capture()
        self.processing.stop()
        self.processing.join(JOIN_TIMEOUT_S)
        self.stop_recording()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)


def default_name(stem: str, suffix: str) -> str:
    return str(Path.cwd() / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}")

