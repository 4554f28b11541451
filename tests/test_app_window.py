"""The main window driven offscreen on the demo source: target by drag, views, recording, failures, responsiveness."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import QPoint, QPointF, QSettings, Qt, QTimer  # noqa: E402
from PyQt6.QtGui import QImage  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.pipeline import SourceSpec  # noqa: E402
from app.settings_panel import AppSettings  # noqa: E402
from keynet.render import RenderOptions  # noqa: E402

from .conftest import AUTHORS_WEIGHTS, REPO, require_shared  # noqa: E402

FAST = dict(num_keypoints=400)


def has_tracker() -> bool:
    try:
        import keynet.tracker  # noqa: F401
    except ImportError:
        return False
    return True




DEMO = importlib.util.find_spec("keynet.demo") is not None
# The layers keynet.render draws ("inliers only" may change nothing: a frame may have no outliers).
LAYERS_DRAWN = {"matches", "tracks"} | ({"heatmap"} if "heatmap" in RenderOptions.__dataclass_fields__ else set())


@pytest.fixture
def source(tmp_path) -> SourceSpec:
    """The bundled demo; while it is absent, a small folder of a drifting random texture (320x240)."""
    if DEMO:
        return SourceSpec.demo()
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (400, 500), np.uint8), (0, 0), 1.5)
    for i in range(60):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), texture[i % 20: i % 20 + 240, i % 30: i % 30 + 320])
    return replace(SourceSpec.folder(tmp_path), loop=True)


@pytest.fixture
def make_window(qtbot, source):
    windows = []

    def make(spec: SourceSpec | None = None, settings: AppSettings | None = None) -> MainWindow:
        if settings is None:
            settings = AppSettings(model="file", weights_file=str(require_shared(AUTHORS_WEIGHTS)), device="cpu", **FAST)
        w = MainWindow(spec or source, settings, remember=False, ask=False)
        qtbot.addWidget(w)
        w.resize(1000, 700)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.shutdown()
        assert w.capture is None and not w.processing.is_alive()


def wait_output(qtbot, window: MainWindow, after: int = -1, timeout: int = 15000):
    qtbot.waitUntil(lambda: window.output is not None and window.output.fresh and window.output.index > after,
                    timeout=timeout)
    return window.output


def wait_running(qtbot, window: MainWindow) -> None:
    """Until frames come out of the model, tracking the source's target when the tracker is there."""
    qtbot.waitUntil(lambda: window.output is not None and window.output.state != "no model", timeout=60000)
    if has_tracker():
        qtbot.waitUntil(lambda: window.output.state == "tracking", timeout=30000)


def drag(qtbot, window: MainWindow, box: tuple[int, int, int, int]) -> None:
    """Press, move and release the mouse over the frame rectangle ``box`` (x, y, w, h in frame pixels)."""
    view = window.view
    x, y, w, h = box
    a = view.to_widget(QPointF(x, y)).toPoint()
    b = view.to_widget(QPointF(x + w, y + h)).toPoint()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, (a + b) / 2)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def pause_on_a_frame(qtbot, window: MainWindow):
    """Pause, and wait until the last frame captured has been processed and shown."""
    window.actions["pause"].trigger()
    qtbot.waitUntil(lambda: window.output.index == window.capture.last_put, timeout=10000)
    return window.output


@pytest.mark.skipif(not DEMO, reason="the bundled demo (keynet/demo.py) is not in this checkout")
def test_drag_sets_the_target_and_tracking_starts_within_30_frames(qtbot, make_window):
    from keynet.demo import demo_sequence

    window = make_window()
    qtbot.waitUntil(lambda: window.output is not None and window.output.state == "tracking", timeout=60000)
    window.clear_targets()  # the demo's own target: the drag must do the work
    qtbot.waitUntil(lambda: window.output.state == "no target", timeout=10000)
    shown = pause_on_a_frame(qtbot, window)
    demo = demo_sequence()
    h_true = demo.homographies[shown.index % len(demo.homographies)]
    tw, th = cv2.imread(str(demo.target)).shape[1::-1]
    corners = cv2.perspectiveTransform(np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])[None], h_true)[0]
    fh, fw = shown.rgb.shape[:2]
    x0, y0 = np.clip(corners.min(0) + 10, 0, [fw, fh]).astype(int)
    x1, y1 = np.clip(corners.max(0) - 10, 0, [fw, fh]).astype(int)
    drag(qtbot, window, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    window.actions["pause"].trigger()  # play on
    processed: list[str] = []
    window.frame_shown.connect(lambda out: processed.append(out.state))
    qtbot.waitUntil(lambda: "tracking" in processed or len(processed) >= 30, timeout=60000)
    assert "tracking" in processed[:30], processed
    assert window.output.inliers > 0


def displayed(window: MainWindow) -> np.ndarray:
    """The pixels of the frame the video view shows, (H, W, 3) RGB."""
    image = window.view.image.convertToFormat(QImage.Format.Format_RGB888)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def test_each_view_toggles_and_changes_the_picture(qtbot, make_window):
    window = make_window()
    wait_running(qtbot, window)
    wait_output(qtbot, window, wait_output(qtbot, window, window.output.index).index)  # tracks to draw
    before = pause_on_a_frame(qtbot, window)
    for name, attr in (("matches", "matches"), ("tracks", "tracks"), ("heatmap", "heatmap"),
                       ("inliers", "inliers_only")):
        shown = displayed(window)
        window.actions[name].trigger()
        assert getattr(window.view_options, attr) is True
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=5000)
        assert window.output.index == before.index and not window.output.fresh
        assert np.array_equal(displayed(window), window.output.rgb)
        if name in LAYERS_DRAWN:  # "inliers only" hides outliers' lines (there may be none)
            assert not np.array_equal(displayed(window), shown), name
        window.actions[name].trigger()
        assert getattr(window.view_options, attr) is False
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=5000)
        assert np.array_equal(displayed(window), shown), f"{name} off: the picture as before"
    modes, pictures = [], []
    for _ in range(3):
        shown = window.output.rgb
        window.actions["keypoints"].trigger()
        modes.append(window.view_options.keypoints)
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=5000)
        pictures.append(window.output.rgb)
    assert modes == ["scale", "off", "score"]
    assert not np.array_equal(pictures[1], pictures[2])  # keypoints off, then drawn
    for kind in ("none", "axes", "cube"):
        window.choose_overlay(kind)
        assert window.view_options.overlay == kind


def test_pause_and_step_one_frame_at_a_time(qtbot, make_window):
    window = make_window()
    wait_output(qtbot, window)
    out = pause_on_a_frame(qtbot, window)
    qtbot.wait(300)
    assert window.output.index == out.index
    following = window.capture.frames_read  # out's successor, or a later one if frames were passed by before
    window.actions["step"].trigger()
    qtbot.waitUntil(lambda: window.output.index == following and window.output.fresh, timeout=10000)
    qtbot.wait(300)
    assert window.output.index == following and window.capture.frames_read == following + 1


def test_recording_reads_back_with_the_frames_written(qtbot, make_window, tmp_path):
    window = make_window()
    wait_running(qtbot, window)
    tmp_path = tmp_path / "out"
    path = tmp_path / "rec.mp4"
    window.start_recording(path)
    qtbot.waitUntil(lambda: window.recorder.frames >= 8, timeout=60000)
    written = window.stop_recording()
    assert written >= 8
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == written
    window.snapshot(tmp_path / "snap.png")
    snap = cv2.imread(str(tmp_path / "snap.png"))
    assert snap is not None and snap.shape == window.output.bgr.shape
    window.export_poses(tmp_path / "poses.json")
    import json

    frames = json.loads((tmp_path / "poses.json").read_text())["frames"]
    assert len(frames) >= 8 and {"frame", "state", "homographies", "poses", "timings_ms"} <= set(frames[0])


class BreakingSource:
    """Twenty grey frames, then the camera goes away."""

    def __init__(self) -> None:
        self.i = 0

    def read(self):
        self.i += 1
        if self.i > 20:
            raise OSError("camera 7 was unplugged")
        return np.full((200, 300, 3), 128, np.uint8)

    def close(self) -> None:
        pass


class BreakingSpec(SourceSpec):
    def opener(self):
        return BreakingSource


def test_a_source_failing_mid_stream_is_reported_and_the_app_stays_usable(qtbot, make_window, source):
    window = make_window(BreakingSpec("camera", "camera:7", "Camera 7"))
    qtbot.waitUntil(lambda: "unplugged" in window.statusBar().currentMessage(), timeout=10000)
    assert "Camera 7" in window.statusBar().currentMessage()
    window.open_source(source)
    qtbot.waitUntil(lambda: window.output is not None and window.output.rgb.shape[:2] != (200, 300), timeout=30000)  # the new source's frames
    window.open_source(SourceSpec.video(REPO / "no-such-video.mp4"))
    qtbot.waitUntil(lambda: "no-such-video" in window.statusBar().currentMessage()
                    and "failed" in window.statusBar().currentMessage(), timeout=10000)


def test_the_event_loop_stays_responsive_while_processing(qtbot, make_window):
    window = make_window()
    wait_running(qtbot, window)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    start_index = window.output.index
    timer.start()
    qtbot.wait(3000)
    timer.stop()
    gaps = np.diff(ticks)
    assert window.output.index - start_index >= 10  # it was processing all along
    assert gaps.max() < 0.100, f"longest gap {gaps.max() * 1000:.0f} ms"


def test_without_weights_the_video_shows_with_a_message(qtbot, make_window, monkeypatch):
    monkeypatch.setattr("app.pipeline.default_weights", lambda arch="keynet": None)
    window = make_window(settings=AppSettings(model="keynet", device="cpu"))
    out = wait_output(qtbot, window)
    assert out.state == "no model"
    qtbot.waitUntil(lambda: "Weights file" in window.notice_label.text(), timeout=5000)
    assert window.notice_label.isVisible()
    window.panel.choose_weights_file(str(REPO / "missing.pth"))
    qtbot.waitUntil(lambda: "Cannot load the weights" in window.notice_label.text(), timeout=5000)
    window.panel.choose_weights_file(str(require_shared(AUTHORS_WEIGHTS)))
    qtbot.waitUntil(lambda: not window.notice_label.isVisible(), timeout=30000)
    qtbot.waitUntil(lambda: window.output.state != "no model", timeout=30000)


def test_clicking_a_keypoint_shows_its_details(qtbot, make_window):
    window = make_window()
    wait_running(qtbot, window)
    out = pause_on_a_frame(qtbot, window)
    x, y = out.keypoints[0, :2]
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=window.view.to_widget(QPointF(x, y)).toPoint())
    text = window.point_label.text()
    assert f"score: {out.keypoints[0, 3]:.4f}" in text and f"scale: {out.keypoints[0, 2]:.2f}" in text
    if has_tracker():
        assert "track length" in text and "match distance" in text
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=QPoint(1, 1))


def test_settings_are_remembered(tmp_path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    s = AppSettings(model="tiny_keynet", device="cpu", num_keypoints=800, nms_size=9, ratio=0.8, ransac_px=2.5)
    s.save(store)
    again = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert AppSettings.load(again) == s
    again.setValue("settings/num_keypoints", "garbage")
    assert AppSettings.load(again).num_keypoints == AppSettings().num_keypoints


def test_settings_changes_apply_live(qtbot, make_window):
    window = make_window()
    wait_output(qtbot, window)
    window.panel.num_keypoints.setValue(150)
    qtbot.waitUntil(lambda: window.pipeline.settings.num_keypoints == 150, timeout=5000)
    # an output processed before the change may still be on its way: the new frames after it have 150 at most
    qtbot.waitUntil(lambda: window.output.fresh and 0 < len(window.output.keypoints) <= 150, timeout=30000)
    assert window.pipeline.tracker.detector.conf["num_keypoints"] == 150


def test_main_without_a_display_says_so():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "main.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "xvfb-run" in r.stderr and "Traceback" not in r.stderr


def test_the_heatmap_shows_the_response_of_the_frame_on_screen(qtbot, make_window):
    window = make_window()
    wait_running(qtbot, window)
    assert not window.pipeline.tracker.conf["keep_response"]
    paused = pause_on_a_frame(qtbot, window)
    before = displayed(window)
    window.actions["heatmap"].trigger()  # paused: the response of the frame on screen is computed for it
    qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=10000)
    assert window.output.index == paused.index
    response = window.pipeline.last[1].response
    assert response is not None and response.shape == before.shape[:2]
    tinted = np.abs(displayed(window).astype(int) - before).max(axis=2) > 20
    assert 0.01 < tinted.mean() < 0.9
    assert response[tinted].mean() > 3 * response[~tinted].mean()  # the colour is where Key.Net responds
    window.actions["pause"].trigger()  # play: every new frame comes with its response
    qtbot.waitUntil(lambda: window.output.fresh and window.output.index > paused.index + 1, timeout=30000)
    assert window.pipeline.tracker.conf["keep_response"]
    window.actions["heatmap"].trigger()
    qtbot.waitUntil(lambda: not window.pipeline.tracker.conf["keep_response"], timeout=10000)
