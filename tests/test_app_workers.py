"""The app's threads: latest-frame-wins hand-off, pause and step, failures reported, clean shutdown, torch's
thread count and OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("PyQt6")

from app.frames import Frame  # noqa: E402
from app.workers import CaptureThread, LatestFrame, ProcessingThread, WorkerSignals  # noqa: E402

from .conftest import REPO  # noqa: E402


class ListSource:
    """A source of ``n`` small frames; raises at frame ``fail_at`` (a camera unplugged mid-stream); passes frames by
    without decoding them when ``skippable`` (as an image folder does), except the last."""

    def __init__(self, n: int = 1000, fail_at: int | None = None, skippable: bool = False) -> None:
        self.n, self.fail_at, self.i, self.closed = n, fail_at, 0, False
        self.skippable, self.decoded = skippable, 0

    def read(self) -> np.ndarray | None:
        if self.fail_at is not None and self.i == self.fail_at:
            raise OSError("camera 0 stopped delivering frames")
        if self.i >= self.n:
            return None
        self.i += 1
        self.decoded += 1
        return np.full((48, 64, 3), self.i % 256, np.uint8)

    def skip(self) -> bool:
        if not self.skippable or self.i >= self.n - 1:
            return False
        self.i += 1
        return True

    def close(self) -> None:
        self.closed = True


def test_latest_frame_keeps_the_newest_and_counts_drops():
    slot = LatestFrame()
    for i in range(5):
        slot.put(i)
    assert slot.take(0.01) == 4
    assert slot.dropped == 4
    assert slot.take(0.01) is None


def play_to_the_end(qtbot, source: ListSource, fps: float, seconds_per_frame: float) -> tuple[CaptureThread,
                                                                                              LatestFrame, list[int]]:
    """Play ``source`` paced at ``fps`` through a processing thread that takes ``seconds_per_frame`` a frame; the
    capture thread, the slot and the indices processed, once both threads have ended."""
    signals = WorkerSignals()
    slot = LatestFrame()
    seen: list[int] = []

    class Slow:
        def process(self, frame: Frame) -> int:
            time.sleep(seconds_per_frame)
            seen.append(frame.index)
            return frame.index

    capture = CaptureThread(lambda: source, slot, signals, fps=fps)
    processing = ProcessingThread(Slow(), slot, signals)
    with qtbot.waitSignal(signals.source_ended, timeout=5000):
        processing.start()
        capture.start()
    time.sleep(0.1)
    processing.stop()
    processing.join(2)
    capture.join(2)
    assert not capture.is_alive() and not processing.is_alive()
    return capture, slot, seen


def test_slow_processing_drops_frames_and_sees_the_newest(qtbot):
    source = ListSource(n=200)
    _, slot, seen = play_to_the_end(qtbot, source, fps=1000, seconds_per_frame=0.02)
    assert source.closed
    assert slot.dropped > 0 and len(seen) < 200
    assert seen == sorted(seen) and seen[-1] == 199


def test_a_file_source_is_not_decoded_for_frames_processing_would_drop(qtbot):
    source = ListSource(n=100, skippable=True)
    capture, slot, seen = play_to_the_end(qtbot, source, fps=400, seconds_per_frame=0.03)
    assert capture.frames_read == 100 and slot.dropped == 100 - len(seen)
    assert source.decoded < len(seen) + 5  # about one decoded frame per frame processed, not 100
    assert seen == sorted(seen) and seen[-1] == 99  # the last frame is read, not passed by


def test_pause_and_step_read_one_frame_each(qtbot):
    signals = WorkerSignals()
    slot = LatestFrame()
    source = ListSource()
    capture = CaptureThread(lambda: source, slot, signals)
    capture.set_paused(True)
    capture.start()
    time.sleep(0.1)
    assert capture.frames_read == 0
    for expected in (1, 2, 3):
        capture.step()
        qtbot.waitUntil(lambda e=expected: capture.frames_read == e, timeout=2000)
    time.sleep(0.1)
    assert capture.frames_read == 3 and slot.take(0.01).index == 2
    capture.stop()
    capture.join(2)
    assert not capture.is_alive() and source.closed


def failure_reported(qtbot, capture: CaptureThread) -> str:
    """The message of the ``source_failed`` signal ``capture`` emits once started (it then ends)."""
    with qtbot.waitSignal(capture.signals.source_failed, timeout=2000) as blocker:
        capture.start()
    capture.join(2)
    return blocker.args[0]


def test_a_failing_source_is_reported_and_released(qtbot):
    signals = WorkerSignals()
    source = ListSource(fail_at=10)
    assert "stopped delivering frames" in failure_reported(qtbot, CaptureThread(lambda: source, LatestFrame(), signals))
    assert source.closed


def test_a_source_that_cannot_open_is_reported(qtbot):
    signals = WorkerSignals()

    def fail():
        raise FileNotFoundError("video missing.mp4 does not exist")

    assert "missing.mp4" in failure_reported(qtbot, CaptureThread(fail, LatestFrame(), signals))


def test_processing_errors_are_reported_and_the_thread_goes_on(qtbot):
    signals = WorkerSignals()
    slot = LatestFrame()
    done = threading.Event()

    class Flaky:
        def process(self, frame: Frame) -> int:
            if frame.index == 0:
                raise ValueError("bad frame")
            done.set()
            return frame.index

    processing = ProcessingThread(Flaky(), slot, signals)
    processing.start()
    with qtbot.waitSignal(signals.processing_failed, timeout=2000) as blocker:
        slot.put(Frame(0, np.zeros((4, 4, 3), np.uint8), 0.0))
    assert "bad frame" in blocker.args[0]
    with qtbot.waitSignal(signals.frame_ready, timeout=2000):
        slot.put(Frame(1, np.zeros((4, 4, 3), np.uint8), 0.0))
    assert processing.take_output() == 1
    processing.stop()
    processing.join(2)
    assert not processing.is_alive()


def test_torch_gets_every_core_only_while_openmp_threads_sleep(monkeypatch):
    import torch

    from app import app_threads

    cores, before = os.cpu_count() or 1, torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        assert app_threads() == cores == torch.get_num_threads()
        monkeypatch.delenv("OMP_WAIT_POLICY")
        assert app_threads() == max(1, cores - 1) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_main_sets_the_openmp_wait_policy_before_torch_loads():
    code = ("import sys; assert 'torch' not in sys.modules; import main, os; assert 'torch' in sys.modules; "
            "print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, timeout=120)
    assert kept.stdout.strip() == "ACTIVE"  # the user's own choice stays
