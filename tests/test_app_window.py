"""The main window driven offscreen on the demo source: target by drag, views, recording, failures, responsiveness,
what the window reports (every target, the end of a file, the loop, the inspected keypoint) and the calibration;
the comparison window: two pipelines on the demo, a failing source and an unknown pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import QPoint, QPointF, QSettings, Qt, QTimer  # noqa: E402
from PyQt6.QtGui import QColor, QImage  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.pipeline import SourceSpec  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.settings_panel import load_settings, save_settings  # noqa: E402
from keynet.weights import default_weights  # noqa: E402

from .conftest import REPO  # noqa: E402

FAST = dict(num_keypoints=400)


def shipped_weights():
    """The project's own Key.Net weights (a fresh clone has them: no ../shared needed)."""
    path = default_weights("keynet")
    if path is None:
        pytest.skip("the shipped weights assets/weights/keynet.pt are absent")
    return path


# The layers keynet.render draws ("inliers only" may change nothing: a frame may have no outliers).
LAYERS_DRAWN = {"matches", "tracks", "heatmap"}
NO_MODEL = AppSettings(model="file", weights_file="", device="cpu")  # frames shown as they are: quick


@pytest.fixture
def source() -> SourceSpec:
    return SourceSpec.demo()


def texture_folder(folder, frames: int) -> SourceSpec:
    """A folder of ``frames`` 320x240 crops of a drifting random texture, played once."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (400, 500), np.uint8), (0, 0), 1.5)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), texture[i % 20: i % 20 + 240, i % 30: i % 30 + 320])
    return SourceSpec.folder(folder)


@pytest.fixture
def show_window(qtbot):
    """Shows a window (``app.threads.PipelineWindow``) at a size; at the end each is shut down, its threads
    stopped."""
    windows = []

    def show(window, size: tuple[int, int]):
        qtbot.addWidget(window)
        window.resize(*size)
        window.show()
        windows.append(window)
        return window

    yield show
    for w in windows:
        w.shutdown()
        assert w.capture is None and not w.processing.is_alive()


@pytest.fixture
def make_window(show_window, source):
    def make(spec: SourceSpec | None = None, settings: AppSettings | None = None) -> MainWindow:
        if settings is None:
            settings = AppSettings(model="file", weights_file=str(shipped_weights()), device="cpu", **FAST)
        return show_window(MainWindow(spec or source, settings, remember=False, ask=False), (1000, 700))

    return make


@pytest.fixture
def running_window(qtbot, make_window) -> MainWindow:
    """A main window on the demo with the shipped weights, its frames out of the model, tracking the poster."""
    window = make_window()
    wait_running(qtbot, window)
    return window


@pytest.fixture
def make_comparison(show_window):
    from app.comparison_window import ComparisonWindow

    return lambda *args, **kwargs: show_window(ComparisonWindow(*args, **kwargs), (1200, 560))


def wait_output(qtbot, window: MainWindow, after: int = -1, timeout: int = 15000):
    qtbot.waitUntil(lambda: window.output is not None and window.output.fresh and window.output.index > after,
                    timeout=timeout)
    return window.output


def wait_running(qtbot, window: MainWindow) -> None:
    """Until frames come out of the model, tracking the source's target when the tracker is there."""
    qtbot.waitUntil(lambda: window.output is not None and window.output.state != "no model", timeout=60000)
    qtbot.waitUntil(lambda: window.output.state == "tracking", timeout=30000)


def drag(qtbot, view, box: tuple[int, int, int, int]) -> None:
    """Press, move and release the mouse over the frame rectangle ``box`` (x, y, w, h in frame pixels) of the
    video ``view``."""
    x, y, w, h = box
    a = view.to_widget(QPointF(x, y)).toPoint()
    b = view.to_widget(QPointF(x + w, y + h)).toPoint()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, (a + b) / 2)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def drag_inside_the_poster(qtbot, window: MainWindow, homography: np.ndarray) -> None:
    """Drag a rectangle 10 px inside the demo's poster where ``homography`` (3, 3) puts it on the frame shown, and
    keep it as the target."""
    from keynet.demo import demo_sequence

    tw, th = cv2.imread(str(demo_sequence().target)).shape[1::-1]
    corners = cv2.perspectiveTransform(np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])[None], homography)[0]
    fh, fw = window.output.bgr.shape[:2]
    x0, y0 = np.clip(corners.min(0) + 10, 0, [fw, fh]).astype(int)
    x1, y1 = np.clip(corners.max(0) - 10, 0, [fw, fh]).astype(int)
    drag(qtbot, window.view, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    keep_rated_target(qtbot, window)


def states_shown(window: MainWindow) -> list[str]:
    """The states of the frames shown from now on (a list that grows)."""
    states: list[str] = []
    window.frame_shown.connect(lambda out: states.append(out.state))
    return states


def assert_tracking_within_30_frames(qtbot, states: list[str]) -> None:
    qtbot.waitUntil(lambda: "tracking" in states or len(states) >= 30, timeout=60000)
    assert "tracking" in states[:30], states


def keep_rated_target(qtbot, window: MainWindow) -> None:
    """Wait for the quality view to rate the target just set, and keep it ("Track it")."""
    qtbot.waitUntil(lambda: window.quality_view.preview is not None and window.quality_view.isVisible(),
                    timeout=60000)
    assert window.quality_view.keep_button.isEnabled(), window.quality_view.verdict.text()
    qtbot.mouseClick(window.quality_view.keep_button, Qt.MouseButton.LeftButton)
    assert not window.quality_view.isVisible()


def step_until(qtbot, window: MainWindow, condition, steps: int = 40):
    """Step one frame at a time (paused: every frame is processed, none passed by) until ``condition(output)``."""
    for _ in range(steps):
        if window.output is not None and window.output.fresh and condition(window.output):
            return window.output
        index = window.output.index if window.output is not None else -1
        window.step()
        qtbot.waitUntil(lambda index=index: window.output is not None and window.output.fresh
                        and window.output.index > index, timeout=30000)
    raise AssertionError(f"not reached in {steps} frames: the last was {window.output.summary()}")


def pause_on_a_frame(qtbot, window: MainWindow):
    """Pause, and wait until the last frame captured has been processed and shown."""
    window.actions["pause"].trigger()
    qtbot.waitUntil(lambda: window.output.index == window.capture.last_put, timeout=10000)
    return window.output


def test_drag_sets_the_target_and_tracking_starts_within_30_frames(qtbot, make_window):
    from keynet.demo import demo_sequence

    window = make_window()
    qtbot.waitUntil(lambda: window.output is not None and window.output.state == "tracking", timeout=60000)
    window.clear_targets()  # the demo's own target: the drag must do the work
    qtbot.waitUntil(lambda: window.output.state == "no target", timeout=10000)
    shown = pause_on_a_frame(qtbot, window)
    homographies = demo_sequence().homographies
    drag_inside_the_poster(qtbot, window, homographies[shown.index % len(homographies)])
    states = states_shown(window)
    window.actions["pause"].trigger()  # play on
    assert_tracking_within_30_frames(qtbot, states)
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
    window.actions["pause"].trigger()  # from the first frame on, one frame at a time: the same frames under any load
    window.actions["tracks"].trigger()  # trails grow from the frames processed while the layer is on
    before = step_until(qtbot, window, lambda out: out.state == "tracking" and out.matches > 0
                        and out.result.track_lengths.max() >= 8)  # matches and long tracks to draw
    window.actions["tracks"].trigger()  # off while paused: the trails stay for the frame on screen
    qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=30000)
    for name, attr in (("matches", "matches"), ("tracks", "tracks"), ("heatmap", "heatmap"),
                       ("inliers", "inliers_only")):
        shown = displayed(window)
        window.actions[name].trigger()
        assert getattr(window.view_options, attr) is True
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=30000)
        assert window.output.index == before.index and not window.output.fresh
        assert np.array_equal(displayed(window), window.output.rgb)
        if name in LAYERS_DRAWN:  # "inliers only" hides outliers' lines (there may be none)
            assert not np.array_equal(displayed(window), shown), name
        window.actions[name].trigger()
        assert getattr(window.view_options, attr) is False
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=30000)
        assert np.array_equal(displayed(window), shown), f"{name} off: the picture as before"
    modes, pictures = [], []
    for _ in range(3):
        shown = window.output.rgb
        window.actions["keypoints"].trigger()
        modes.append(window.view_options.keypoints)
        qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=30000)
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


def test_recording_plays_as_long_as_it_lasted_and_exports_the_frame_schema(qtbot, running_window, tmp_path):
    window = running_window
    tmp_path = tmp_path / "out"
    path = tmp_path / "rec.mp4"
    window.start_recording(path)
    recorder = window.recorder
    qtbot.waitUntil(lambda: recorder.shown >= 8, timeout=60000)
    before_stop = time.perf_counter()
    written = window.stop_recording()
    after_stop = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == written and fps == pytest.approx(recorder.fps)
    # the file lasts from the first frame recorded to the stop, whatever rate the frames were processed at
    assert before_stop - recorder.started - 1 / fps <= count / fps <= after_stop - recorder.started + 1 / fps
    assert count > recorder.shown  # processed slower than the file's rate: frames held while they were shown
    window.snapshot(tmp_path / "snap.png")
    snap = cv2.imread(str(tmp_path / "snap.png"))
    assert snap is not None and snap.shape == window.output.bgr.shape
    window.export_poses(tmp_path / "poses.json")
    import json

    frames = json.loads((tmp_path / "poses.json").read_text())["frames"]
    assert len(frames) >= recorder.shown
    assert set(frames[-1]) == {"frame", "time", "keypoints", "regions", "camera", "timings_ms", "events", "targets"}
    assert set(frames[-1]["targets"][0]) >= {"name", "state", "homography", "raw_homography", "corners", "pose"}


def test_a_snapshot_name_opencv_cannot_write_is_reported_and_the_app_goes_on(qtbot, make_window, tmp_path):
    window = make_window(settings=NO_MODEL)
    wait_output(qtbot, window)
    window.snapshot(tmp_path / "snap.xyz")
    message = window.statusBar().currentMessage()
    assert "snap.xyz" in message and "\n" not in message
    assert not (tmp_path / "snap.xyz").exists() and window.isVisible()
    window.snapshot(tmp_path)  # a folder
    assert str(tmp_path) in window.statusBar().currentMessage() and window.isVisible()
    after = wait_output(qtbot, window, window.output.index)  # still playing
    assert after.fresh


def test_an_export_or_a_recording_that_cannot_be_written_is_reported_and_the_app_goes_on(qtbot, make_window,
                                                                                          tmp_path):
    window = make_window(settings=NO_MODEL)
    wait_output(qtbot, window)
    old = tmp_path / "old.json"
    old.write_text("kept")
    window.export_poses(tmp_path)  # a folder
    assert str(tmp_path) in window.statusBar().currentMessage() and window.isVisible()
    for bad in (tmp_path, tmp_path / "rec.xyz"):
        window.start_recording(bad)
        message = window.statusBar().currentMessage()  # now: later status messages (the demo's poster) replace it
        assert str(bad.name) in message and "\n" not in message, message
        qtbot.wait(300)
        window.stop_recording()
        assert not window.actions["record"].isChecked() and window.isVisible()
    assert old.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    after = wait_output(qtbot, window, window.output.index)  # still playing
    assert after.fresh


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
    def opener(self, progress=None):
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


def test_the_event_loop_stays_responsive_while_processing(qtbot, running_window):
    window = running_window
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
    weights = shipped_weights()
    monkeypatch.setattr("app.pipeline.default_weights", lambda arch="keynet": None)
    window = make_window(settings=AppSettings(model="keynet", device="cpu"))
    out = wait_output(qtbot, window)
    assert out.state == "no model"
    qtbot.waitUntil(lambda: "Weights file" in window.notice_label.text(), timeout=5000)
    assert window.notice_label.isVisible()
    window.panel.choose_weights_file(str(REPO / "missing.pth"))
    qtbot.waitUntil(lambda: "Cannot load the weights" in window.notice_label.text(), timeout=5000)
    window.panel.choose_weights_file(str(weights))
    qtbot.waitUntil(lambda: not window.notice_label.isVisible(), timeout=30000)
    qtbot.waitUntil(lambda: window.output.state != "no model", timeout=30000)


def test_clicking_a_keypoint_shows_its_details(qtbot, running_window):
    window = running_window
    out = pause_on_a_frame(qtbot, window)
    x, y = out.keypoints[0, :2]
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=window.view.to_widget(QPointF(x, y)).toPoint())
    text = window.point_label.text()
    assert f"score: {out.keypoints[0, 3]:.4f}" in text and f"scale: {out.keypoints[0, 2]:.2f}" in text
    assert "track length" in text and "match distance" in text
    marker = window.view.marker  # the inspected keypoint is marked on the video
    assert marker is not None and abs(marker.x() - x) < 0.01 and abs(marker.y() - y) < 0.01
    track = window.inspected_track
    window.step()
    qtbot.waitUntil(lambda: window.output.fresh and window.output.index > out.index, timeout=30000)
    followed = window.output
    if window.view.marker is None:  # its track ended: the panel says so
        assert "gone" in window.point_label.text() and window.inspected is None
    else:  # followed along its track
        row = window.inspected[1]
        assert track >= 0 and followed.result.track_ids[row] == track
        assert abs(window.view.marker.x() - followed.keypoints[row, 0]) < 0.01
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=QPoint(1, 1))


def test_settings_are_remembered(tmp_path):
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    s = AppSettings(model="tiny_keynet", device="cpu", num_keypoints=800, nms_size=9, ratio=0.8,
                    ransac_threshold=2.5)
    save_settings(s, store)
    again = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert load_settings(again) == s
    again.setValue("settings/num_keypoints", "garbage")
    assert load_settings(again).num_keypoints == AppSettings().num_keypoints


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


def test_the_heatmap_shows_the_response_of_the_frame_on_screen(qtbot, running_window):
    from keynet.colour_scales import colour_bar_rect

    window = running_window
    assert not window.pipeline.tracker.config.keep_response
    paused = pause_on_a_frame(qtbot, window)
    before = displayed(window)
    window.actions["heatmap"].trigger()  # paused: the response of the frame on screen is computed for it
    qtbot.waitUntil(lambda: window.output.view == window.view_options, timeout=30000)
    assert window.output.index == paused.index
    response = window.pipeline.last[1].response
    assert response is not None and response.shape == before.shape[:2]
    frame = window.pipeline.last[0].image  # the frame on screen, its response computed again here
    assert np.allclose(response, window.pipeline.tracker.detector.detect_with_response(frame)[1][0, 0].numpy(),
                       atol=1e-4)
    tint = np.abs(displayed(window).astype(int) - before).max(axis=2)
    x0, _, _, y1 = colour_bar_rect(tint.shape[1], tint.shape[0])
    tint, response = tint[y1 + 10:, : x0 - 60], response[y1 + 10:, : x0 - 60]  # below the legends
    strong, weak = response > np.percentile(response, 95), response <= np.percentile(response, 25)
    assert tint[strong].mean() > 2 * tint[weak].mean()  # the colour is where Key.Net responds
    window.actions["pause"].trigger()  # play: every new frame comes with its response
    qtbot.waitUntil(lambda: window.output.fresh and window.output.index > paused.index + 1, timeout=30000)
    assert window.pipeline.tracker.config.keep_response
    window.actions["heatmap"].trigger()
    qtbot.waitUntil(lambda: not window.pipeline.tracker.config.keep_response, timeout=10000)


class GatedSpec(SourceSpec):
    """A source whose opening reports progress (as the demo's first rendering does), then waits for ``gate``."""

    gate = threading.Event()

    def opener(self, progress=None):
        def open_it():
            for done in (1, 2, 3):
                progress(done, 5)
            self.gate.wait(30)
            return BreakingSource()

        return open_it


def test_the_first_start_shows_its_progress_in_the_window(qtbot, make_window):
    GatedSpec.gate.clear()
    window = make_window(GatedSpec("camera", "camera:9", "Camera 9"), NO_MODEL)
    bar = window.progress_bar
    qtbot.waitUntil(lambda: bar.isVisible() and bar.value() == 3, timeout=10000)
    assert bar.maximum() == 5 and "Rendering the demo" in bar.format()
    assert "Rendering the demo" in window.view.message and "3 of 5" in window.view.message  # not a black window
    GatedSpec.gate.set()
    wait_output(qtbot, window)
    assert not bar.isVisible()


def test_a_file_ends_visibly_and_a_target_dragged_on_its_last_frame_is_tracked_when_it_plays_again(
        qtbot, make_window, source):
    from keynet.demo import demo_sequence

    window = make_window(replace(source, loop=False))
    wait_running(qtbot, window)
    window.clear_targets()
    demo = demo_sequence()
    last = len(demo.homographies) - 1
    qtbot.waitUntil(lambda: window.ended, timeout=60000)
    qtbot.waitUntil(lambda: window.output.index == last, timeout=10000)  # the last frame is never passed by
    assert "End of video" in window.view.banner and window.state_label.text() == "state: end of video"
    drag_inside_the_poster(qtbot, window, demo.homographies[last])
    qtbot.waitUntil(lambda: window.pipeline.num_targets == 1, timeout=30000)
    states = states_shown(window)
    window.actions["pause"].trigger()  # Space: play it again
    assert not window.ended and window.view.banner == ""
    assert_tracking_within_30_frames(qtbot, states)


def test_files_loop_when_asked(qtbot, make_window, tmp_path):
    frames = 12
    window = make_window(texture_folder(tmp_path / "clip", frames), NO_MODEL)
    assert not window.actions["loop"].isChecked()  # a folder plays once unless asked
    qtbot.waitUntil(lambda: window.ended, timeout=30000)
    window.actions["loop"].trigger()
    window.actions["pause"].trigger()  # play again, looping now
    qtbot.waitUntil(lambda: window.output is not None and window.output.index >= 2 * frames, timeout=30000)
    assert not window.ended and window.capture.loop


def test_opening_the_demo_again_says_its_poster_is_tracked_already(qtbot, make_window, source):
    window = make_window()
    notices: list[str] = []
    window.signals.notice.connect(notices.append)
    qtbot.waitUntil(lambda: window.pipeline.num_targets == 1, timeout=60000)
    window.open_source(source)
    qtbot.waitUntil(lambda: any("tracked already" in n for n in notices), timeout=30000)
    assert window.pipeline.num_targets == 1


def test_the_status_bar_reports_every_target_as_the_video_label_does(qtbot, running_window):
    window = running_window
    out = pause_on_a_frame(qtbot, window)
    drag(qtbot, window.view, (60, 60, 160, 120))  # a second target beside the poster
    keep_rated_target(qtbot, window)
    qtbot.waitUntil(lambda: window.pipeline.num_targets == 2, timeout=30000)
    window.step()
    qtbot.waitUntil(lambda: window.output.fresh and window.output.index > out.index, timeout=30000)
    qtbot.waitUntil(lambda: window.state_label.text() == window.output.summary(), timeout=5000)  # its refresh
    text = window.state_label.text()
    output = window.output
    names = [name for name, *_ in output.targets]
    assert len(names) == 2 and all(f"{name}: " in text for name in names)
    # the label drawn on the video reads the same (keynet.render's status line), and the chart has every target
    # with the inliers of the frame shown
    assert text == output.summary() == "  ".join(f"{t.name}: {t.state} ({t.num_inliers} inliers)"
                                                 for t in output.result.targets)
    assert window.chart.targets == names
    assert window.chart.frames[-1].inliers == [(name, inliers) for name, _, inliers, _ in output.targets]


def test_opening_the_demo_with_a_target_set_adds_its_poster_beside_it(qtbot, make_window, source, tmp_path):
    window = make_window(replace(texture_folder(tmp_path / "clip", 12), loop=True))
    qtbot.waitUntil(lambda: window.output is not None and window.output.state == "no target", timeout=60000)
    window.actions["pause"].trigger()
    drag(qtbot, window.view, (80, 60, 160, 120))
    keep_rated_target(qtbot, window)
    qtbot.waitUntil(lambda: window.pipeline.num_targets == 1, timeout=30000)
    notices: list[str] = []
    window.signals.notice.connect(notices.append)
    window.actions["pause"].trigger()  # play on: the demo opens playing
    window.actions["open_demo"].trigger()
    qtbot.waitUntil(lambda: any("beside your 1 other target" in n for n in notices), timeout=60000)
    assert window.pipeline.num_targets == 2
    qtbot.waitUntil(lambda: window.output.result is not None and len(window.output.targets) == 2, timeout=30000)
    assert [name for name, *_ in window.output.targets] == ["region 1", "demo poster"]


def short_clip(path, frames: int = 10) -> SourceSpec:
    """An MP4 of ``frames`` 320x240 frames of a drifting texture (a short clip: it loops by default)."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), np.uint8), (0, 0), 1.5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 240))
    for i in range(frames):
        writer.write(np.ascontiguousarray(texture[i: i + 240, i: i + 320]))
    writer.release()
    return SourceSpec.video(path)


def test_the_demo_and_short_clips_loop_by_default(qtbot, make_window, source, tmp_path):
    window = make_window(settings=NO_MODEL)
    qtbot.waitUntil(lambda: window.capture is not None and window.output is not None, timeout=60000)
    assert window.actions["loop"].isChecked() and window.actions["loop"].isEnabled() and window.capture.loop
    frames = 10
    clip = short_clip(tmp_path / "clip.mp4", frames)
    assert clip.loop
    window.open_source(clip)
    assert window.actions["loop"].isChecked() and window.capture.loop
    qtbot.waitUntil(lambda: window.output is not None and window.output.index >= 2 * frames, timeout=30000)
    assert not window.ended
    window.actions["loop"].trigger()  # off: it ends, visibly
    qtbot.waitUntil(lambda: window.ended, timeout=30000)
    assert "End of video" in window.view.banner


def marker_painted(window: MainWindow) -> bool:
    """Whether the view's widget shows the inspected keypoint's magenta ring where the marker is."""
    from app.views import MARKER_COLOUR, MARKER_RADIUS_PX

    picture = window.view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    centre = window.view.to_widget(window.view.marker)
    ring = QColor(MARKER_COLOUR)
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        x = round(centre.x() + MARKER_RADIUS_PX * np.cos(angle))
        y = round(centre.y() + MARKER_RADIUS_PX * np.sin(angle))
        pixel = picture.pixelColor(x, y)
        if abs(pixel.red() - ring.red()) + abs(pixel.green() - ring.green()) + abs(pixel.blue() - ring.blue()) < 60:
            return True
    return False


def test_the_inspected_keypoint_is_marked_on_the_video_and_its_panel_clears_when_it_is_gone(
        qtbot, make_window, tmp_path):
    folder = tmp_path / "clip"
    texture_folder(folder, 3)
    for i in range(3, 6):  # then plain grey: no keypoint, every track ends
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((240, 320, 3), 128, np.uint8))
    window = make_window(SourceSpec.folder(folder))
    window.actions["pause"].trigger()
    out = step_until(qtbot, window, lambda out: out.result is not None and out.index >= 1 and len(out.keypoints))
    x, y = out.keypoints[0, :2]
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=window.view.to_widget(QPointF(x, y)).toPoint())
    assert window.inspected == (out.index, 0) and f"score: {out.keypoints[0, 3]:.4f}" in window.point_label.text()
    assert window.view.marker == QPointF(float(x), float(y)) and marker_painted(window)
    gone = step_until(qtbot, window, lambda out: out.index >= 3)  # the first grey frame
    assert len(gone.keypoints) == 0
    assert window.inspected is None and window.view.marker is None
    assert "gone" in window.point_label.text() and "score" not in window.point_label.text()


def write_calibration(path, matrix: np.ndarray) -> None:
    """A calibration file as the calibration writes it (OpenCV YAML, keynet.calibration.save_calibration)."""
    from keynet.calibration import CalibrationResult, save_calibration
    from keynet.chessboard import ChessboardSpec

    save_calibration(CalibrationResult(matrix, np.zeros(5), 0.2, np.zeros(1), (640, 480), 12, ChessboardSpec()),
                     path)


def test_a_calibration_file_gives_the_camera_of_the_next_tracked_frames(qtbot, running_window, tmp_path):
    window = running_window
    matrix = np.array([[700.0, 0, 300], [0, 710, 250], [0, 0, 1]])
    write_calibration(tmp_path / "camera.yaml", matrix)
    window.use_calibration(str(tmp_path / "camera.yaml"))
    assert window.settings.calibration_file == str(tmp_path / "camera.yaml")
    assert "camera.yaml" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.output.fresh and window.output.state == "tracking"
                    and np.allclose(window.output.result.camera.matrix, matrix), timeout=30000)
    assert window.output.record()["camera"]["camera_matrix"] == matrix.tolist()  # and the export says so
    (tmp_path / "broken.yaml").write_text("%YAML:1.0\nnothing: 1\n")
    window.use_calibration(str(tmp_path / "broken.yaml"))  # said in one line; the calibration in use stays
    message = window.statusBar().currentMessage()
    assert "broken.yaml" in message and "\n" not in message
    assert window.settings.calibration_file == str(tmp_path / "camera.yaml")
    window.actions["no_calibration"].trigger()  # back to the field of view's camera
    fov = window.pipeline.settings.tracker_config().geometry.fov_deg
    qtbot.waitUntil(lambda: window.output.fresh and window.output.result.camera.matrix[0, 0] != 700.0, timeout=30000)
    width = window.output.bgr.shape[1]
    assert window.output.result.camera.matrix[0, 0] == pytest.approx(0.5 * width / np.tan(np.radians(fov) / 2))


def test_tools_calibrate_opens_the_dialog_with_the_live_frames_and_uses_what_it_saves(qtbot, running_window,
                                                                                      tmp_path, monkeypatch):
    from app.calibration_dialog import CalibrationDialog

    window = running_window
    forwarded: list[np.ndarray] = []
    monkeypatch.setattr(CalibrationDialog, "add_frame", lambda self, frame: forwarded.append(frame))
    window.actions["calibrate"].trigger()
    dialog = window.calibration_dialog
    assert isinstance(dialog, CalibrationDialog) and dialog.isVisible()
    qtbot.waitUntil(lambda: len(forwarded) >= 2, timeout=30000)
    assert forwarded[-1].shape == window.output.bgr.shape and forwarded[-1].dtype == np.uint8
    assert any(np.array_equal(frame, window.pipeline.frames.get(window.output.index, frame[:0]))
               for frame in forwarded[-2:])  # the frames as captured, not the drawn ones
    matrix = np.array([[720.0, 0, 320], [0, 720, 240], [0, 0, 1]])
    write_calibration(tmp_path / "saved.yaml", matrix)
    dialog.calibrated.emit(str(tmp_path / "saved.yaml"))
    assert window.settings.calibration_file == str(tmp_path / "saved.yaml")
    qtbot.waitUntil(lambda: window.output.fresh and np.allclose(window.output.result.camera.matrix, matrix),
                    timeout=30000)
    dialog.close()
    count = len(forwarded)
    index = window.output.index
    qtbot.waitUntil(lambda: window.output.index > index + 2, timeout=30000)
    assert len(forwarded) == count  # none while it is closed


def test_view_compare_opens_the_comparison_on_this_source_and_this_window_plays_again_when_it_closes(
        qtbot, make_window, tmp_path):
    from app.comparison_window import ComparisonWindow

    spec = replace(texture_folder(tmp_path / "clip", 12), loop=True)
    settings = AppSettings(model="file", weights_file=str(shipped_weights()), device="cpu", num_keypoints=300)
    window = make_window(spec, settings)
    wait_output(qtbot, window)
    window.actions["compare"].trigger()
    comparison = window.comparison
    assert isinstance(comparison, ComparisonWindow)
    assert comparison.source == spec and window.capture is None  # one source read at a time
    assert "Comparing" in window.view.banner
    qtbot.waitUntil(lambda: comparison.output is not None, timeout=60000)
    comparison.close()
    assert window.comparison is None and comparison.capture is None and not comparison.processing.is_alive()
    index = window.output.index
    qtbot.waitUntil(lambda: window.capture is not None and window.output.fresh and window.output.index != index,
                    timeout=30000)
    assert window.view.banner == ""


def test_the_keypoint_colouring_is_the_same_in_the_side_panel_and_the_k_shortcut(qtbot, make_window):
    window = make_window(settings=NO_MODEL)
    combo = window.panel.keypoint_colours
    assert combo.currentData() == window.view_options.keypoints
    window.actions["keypoints"].trigger()
    assert combo.currentData() == window.view_options.keypoints == "scale"
    combo.setCurrentIndex(combo.findData("rank"))
    assert window.view_options.keypoints == "rank"
    qtbot.waitUntil(lambda: window.pipeline.view.keypoints == "rank", timeout=10000)


# ----------------------------------------------------------------------------------------------- the comparison window
def test_the_comparison_window_compares_two_pipelines_on_the_demo(qtbot, make_comparison, source):
    shipped_weights()
    window = make_comparison(source, AppSettings(device="cpu"), "keynet", "orb")
    shown = []
    window.frame_shown.connect(lambda out: shown.append([side.frame.state for side in out.sides]))
    qtbot.waitUntil(lambda: window.output is not None and all(s.frame.state == "tracking" for s in window.output.sides),
                    timeout=60000)
    assert window.processing.frames_processed <= 30
    assert all(view.frame is not None for view in window.views)
    assert [label.text() for label in window.stats] == [side.stats() for side in window.output.sides]  # in step
    assert "inliers" in window.stats[1].text()
    assert window.titles[0].text() == "Left: Key.Net + ORB" and window.titles[1].text() == "Right: ORB"
    drag(qtbot, window.views[1], (220, 170, 200, 150))  # a drag on the right view is a target of both sides
    qtbot.waitUntil(lambda: [len(s.frame.result.targets) for s in window.output.sides] == [2, 2], timeout=20000)
    # the right box chooses the right side's pipeline
    window.choosers[1].setCurrentIndex(window.available.index("sift"))
    qtbot.waitUntil(lambda: window.output.right.kind == "sift" and window.output.right.frame.state == "tracking",
                    timeout=30000)


def test_a_failing_source_and_an_unknown_pipeline_are_status_messages_of_the_comparison(qtbot, make_comparison,
                                                                                       tmp_path):
    from keynet.baselines import available_pipelines

    missing = tmp_path / "no-such-video.mp4"
    window = make_comparison(SourceSpec("video", str(missing), missing.name), None, "nope", "sift")
    assert window.pipeline.kinds[1] == "sift" and window.pipeline.kinds[0] in available_pipelines()
    assert "'nope' is not available here" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "failed" in window.statusBar().currentMessage(), timeout=10000)
    message = window.statusBar().currentMessage()
    assert "no-such-video" in message and "\n" not in message and window.isVisible()
    window.load_target_image(str(tmp_path / "no-such-image.png"))
    qtbot.waitUntil(lambda: "no-such-image" in window.statusBar().currentMessage()
                    and "Processing error" in window.statusBar().currentMessage(), timeout=10000)
    assert window.processing.is_alive()
