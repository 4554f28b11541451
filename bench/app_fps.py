"""Frames per second the app shows on the demo, against the same pipeline run headless, in one run.

    python -m bench.app_fps                    # Key.Net and Tiny-Key.Net, 20 s each; writes bench/results/
    python -m bench.app_fps --seconds 5 --no-save
    python -m bench.app_fps --source VIDEO|IMAGE_DIR

The app runs as users see it (offscreen Qt platform): the capture thread plays the source in real time, the
processing thread tracks with the settings given, the UI thread shows each output. "shown fps" counts the new
frames the window displayed per second; the peer is the same ``TrackingPipeline`` called in a plain loop on the
same frames (no threads, no Qt), so "x headless" is the share of the pipeline's own speed the app delivers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
from PyQt6.QtCore import QEventLoop, QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from app import leave_a_core_free  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.pipeline import FrameOutput, SourceSpec, TrackingPipeline, ViewOptions  # noqa: E402
from app.settings_panel import AppSettings  # noqa: E402
from app.workers import Frame  # noqa: E402
from bench.machine import describe_machine, machine_line  # noqa: E402
from keynet.files import atomic_write_json, atomic_write_text  # noqa: E402
from keynet.inference import keep_freed_memory  # noqa: E402
from keynet.weights import default_weights  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"
TARGET_FPS = 15.0


def settings_for(architecture: str, num_keypoints: int) -> tuple[AppSettings, str]:
    """Settings using the shipped weights, else (development machines) the authors' checkpoint for Key.Net."""
    if default_weights(architecture) is not None:
        return AppSettings(model=architecture, device="cpu", num_keypoints=num_keypoints), "shipped"
    if architecture == "keynet" and AUTHORS_WEIGHTS.is_file():
        return AppSettings(model="file", weights_file=str(AUTHORS_WEIGHTS), device="cpu",
                           num_keypoints=num_keypoints), "authors' keynet_pytorch.pth"
    return None, f"no weights for {architecture} (assets/weights/{architecture}.pt)"


def wait(app: QApplication, seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def measure_app(app: QApplication, spec: SourceSpec, settings: AppSettings, seconds: float) -> dict:
    """Open the window on ``spec``, let it warm up, then count the new frames it shows for ``seconds``."""
    window = MainWindow(spec, settings, remember=False, ask=False)
    window.resize(1280, 800)
    window.show()
    shown: list[FrameOutput] = []
    window.frame_shown.connect(shown.append)
    deadline = time.perf_counter() + 60
    while len(shown) < 10 and time.perf_counter() < deadline:
        wait(app, 0.2)
    shown.clear()
    processed0, dropped0 = window.processing.frames_processed, window.slot.dropped
    t0 = time.perf_counter()
    wait(app, seconds)
    elapsed = time.perf_counter() - t0
    states = [o.state for o in shown]
    stages = sorted({k for o in shown for k in o.timings_ms})
    result = {
        "shown_fps": len(shown) / elapsed,
        "processed_fps": (window.processing.frames_processed - processed0) / elapsed,
        "dropped_frames": window.slot.dropped - dropped0,
        "tracking_share": states.count("tracking") / max(1, len(states)),
        "stage_ms": {s: statistics.median(o.timings_ms.get(s, 0.0) for o in shown) for s in stages},
    }
    window.close()
    return result


def measure_headless(spec: SourceSpec, settings: AppSettings, frames: int) -> float:
    """Frames per second of the same pipeline in a plain loop over the source's first ``frames`` frames."""
    source = spec.opener()()
    images = []
    while len(images) < frames:
        image = source.read()
        if image is None:
            break
        images.append(image)
    source.close()
    pipeline = TrackingPipeline(settings, ViewOptions())
    pipeline.configure(settings)
    for i, image in enumerate(images[:5]):
        pipeline.process(Frame(i, image, time.perf_counter()))
    t0 = time.perf_counter()
    for i, image in enumerate(images):
        pipeline.process(Frame(i, image, time.perf_counter()))
    return len(images) / (time.perf_counter() - t0)


def markdown(result: dict) -> str:
    lines = [
        f"App frames per second on {result['source']}: {machine_line(result['machine'])}.",
        f"{result['seconds']:.0f} s per model after warm-up, {result['settings']}. Target: at least {TARGET_FPS:.0f} fps "
        f"shown with Key.Net. Load average (1 min) at the end: {result['load_average_1min']:.1f} on "
        f"{result['machine']['cpu_cores']} cores: other processes may have been running.",
        "",
        "| model | torch threads | weights | shown fps | processed fps | headless fps | x headless | frames dropped "
        "| tracking | median stage ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        if "skipped" in r:
            lines.append(f"| {r['model']} | {r['threads']} | {r['skipped']} | | | | | | | |")
            continue
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items())
        lines.append(
            f"| {r['model']} | {r['threads']} | {r['weights']} | {r['shown_fps']:.1f} | {r['processed_fps']:.1f} | "
            f"{r['headless_fps']:.1f} | {r['shown_fps'] / r['headless_fps']:.2f} | {r['dropped_frames']} | "
            f"{r['tracking_share']:.0%} | {stages} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per model (default 20)")
    parser.add_argument("--source", help="a video or image folder instead of the bundled demo")
    parser.add_argument("--num-keypoints", type=int, default=500)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    keep_freed_memory()
    app_threads = leave_a_core_free()
    all_threads = os.cpu_count() or 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.source:
        spec = SourceSpec.folder(args.source) if Path(args.source).is_dir() else SourceSpec.video(args.source)
        spec = replace(spec, loop=True)  # as the demo: the measurement must not run out of frames
    else:
        spec = SourceSpec.demo()
    runs = []
    # The app's thread count, and (the peer) torch on every core, as a plain torch program would run.
    configs = [("keynet", "Key.Net", app_threads), ("keynet", "Key.Net", all_threads),
               ("tiny_keynet", "Tiny-Key.Net", app_threads)]
    for architecture, label, threads in configs if all_threads > app_threads else configs[::2]:
        settings, weights = settings_for(architecture, args.num_keypoints)
        if settings is None:
            print(f"{label}: skipped, {weights}", file=sys.stderr)
            runs.append({"model": label, "threads": threads, "skipped": weights})
            continue
        torch.set_num_threads(threads)
        r = measure_app(app, spec, settings, args.seconds)
        r["headless_fps"] = measure_headless(spec, settings, 60)
        r.update(model=label, weights=weights, threads=threads)
        print(f"{label}, {threads} thread(s): shown {r['shown_fps']:.1f} fps, processed {r['processed_fps']:.1f}, "
              f"headless {r['headless_fps']:.1f}", file=sys.stderr)
        runs.append(r)
    torch.set_num_threads(app_threads)
    result = {
        "source": spec.label,
        "seconds": args.seconds,
        "settings": f"fast mode, single scale, {args.num_keypoints} keypoints, CPU; the app runs torch on "
                    f"{app_threads} of {all_threads} cores",
        "target_fps": TARGET_FPS,
        "machine": describe_machine("cpu"),
        "load_average_1min": os.getloadavg()[0],
        "runs": runs,
    }
    text = markdown(result)
    print(text)
    if not args.no_save:
        stem = RESULTS / "app-fps-cpu"
        atomic_write_json(result, stem.with_suffix(".json"))
        atomic_write_text(text, stem.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
