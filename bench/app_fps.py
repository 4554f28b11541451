"""Frames per second the app shows on the demo, against the same pipeline run headless, in one run.

    python -m bench.app_fps                    # Key.Net (3 thread settings) and Tiny-Key.Net, 20 s each
    python -m bench.app_fps --seconds 5 --no-save
    python -m bench.app_fps --source VIDEO|IMAGE_DIR

The app runs as users see it (offscreen Qt platform): the capture thread plays the source in real time, the
processing thread tracks with the settings given, the UI thread shows each output. "shown fps" counts the new
frames the window displayed per second; the peer is the same ``TrackingPipeline`` called in a plain loop on the
same frames (no threads, no Qt), measured before and after the app and averaged, so "x headless" is the share of
the pipeline's own speed the app delivers.

OpenMP reads its wait policy when torch loads, so each setting runs in a process of its own: the app's (every core,
threads sleeping while they wait: ``keynet.runtime.prefer_sleeping_threads``), torch's default spinning threads on every core,
and sleeping threads on every core but one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"
TARGET_FPS = 15.0
HEADLESS_FRAMES, HEADLESS_MAX_S = 60, 30.0
# (architecture, label, OpenMP wait policy: "PASSIVE" or "" for torch's default, threads: "all" or "all-1")
CONFIGS = [("keynet", "Key.Net", "PASSIVE", "all"), ("keynet", "Key.Net", "", "all"),
           ("keynet", "Key.Net", "PASSIVE", "all-1"), ("tiny_keynet", "Tiny-Key.Net", "PASSIVE", "all")]


def settings_for(architecture: str, num_keypoints: int):
    """Settings using the shipped weights, else (development machines) the authors' checkpoint for Key.Net."""
    from app.settings import AppSettings
    from keynet.weights import default_weights

    if default_weights(architecture) is not None:
        return AppSettings(model=architecture, device="cpu", num_keypoints=num_keypoints), "shipped"
    if architecture == "keynet" and AUTHORS_WEIGHTS.is_file():
        return AppSettings(model="file", weights_file=str(AUTHORS_WEIGHTS), device="cpu",
                           num_keypoints=num_keypoints), "authors' keynet_pytorch.pth"
    return None, f"no weights for {architecture} (assets/weights/{architecture}.pt)"


def wait(app, seconds: float) -> None:
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def measure_app(app, spec, settings, seconds: float) -> dict:
    """Open the window on ``spec``, let it warm up, then count the new frames it shows for ``seconds``."""
    from app.main_window import MainWindow

    window = MainWindow(spec, settings, remember=False, ask=False)
    window.resize(1280, 800)
    window.show()
    shown = []
    window.frame_shown.connect(shown.append)
    deadline = time.perf_counter() + 90
    while len(shown) < 10 and time.perf_counter() < deadline:
        wait(app, 0.2)
    shown.clear()
    processed0, dropped0 = window.processing.frames_processed, window.slot.dropped
    cpu0, t0 = time.process_time(), time.perf_counter()
    wait(app, seconds)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    states = [o.state for o in shown]
    stages = sorted({k for o in shown for k in o.timings_ms})
    result = {
        "shown_fps": len(shown) / elapsed,
        "processed_fps": (window.processing.frames_processed - processed0) / elapsed,
        "dropped_frames": window.slot.dropped - dropped0,
        "tracking_share": states.count("tracking") / max(1, len(states)),
        "stage_ms": {s: statistics.median(o.timings_ms.get(s, 0.0) for o in shown) for s in stages} if shown else {},
        "cpu_cores_used": cpu / elapsed,
    }
    window.close()
    return result


def measure_headless(spec, settings, frames: int, max_seconds: float) -> tuple[float, float]:
    """Frames per second of the same pipeline in a plain loop over the source's first ``frames`` frames, and its
    median detection time (ms)."""
    from app.frames import Frame
    from app.pipeline import TrackingPipeline

    with spec.opener()() as source:
        images = [image for _, image, _ in itertools.islice(source, frames)]
    pipeline = TrackingPipeline(settings)
    pipeline.configure(settings)
    for i, image in enumerate(images[:5]):
        pipeline.process(Frame(i, image, time.perf_counter()))
    t0 = time.perf_counter()
    detect_ms = []
    for i, image in enumerate(images):
        detect_ms.append(pipeline.process(Frame(i, image, time.perf_counter())).timings_ms.get("detect", 0.0))
        if time.perf_counter() - t0 > max_seconds:
            break
    return len(detect_ms) / (time.perf_counter() - t0), statistics.median(detect_ms)


def run_child(args: argparse.Namespace) -> int:
    """One configuration, in this process (its OpenMP policy was set by the parent); prints a JSON line."""
    from keynet.runtime import prefer_sleeping_threads

    passive = prefer_sleeping_threads() if args.policy == "PASSIVE" else False
    import torch
    from PyQt6.QtWidgets import QApplication

    from app.pipeline import SourceSpec
    from keynet.runtime import keep_freed_memory

    keep_freed_memory()
    cores = os.cpu_count() or 1
    threads = cores if args.threads == "all" else max(1, cores - 1)
    torch.set_num_threads(threads)
    row = {"model": args.label, "policy": "passive" if passive else "spinning (torch's default)", "threads": threads}
    settings, weights = settings_for(args.architecture, args.num_keypoints)
    if settings is None:
        print(json.dumps({**row, "skipped": weights}))
        return 0
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.source:
        spec = SourceSpec.folder(args.source) if Path(args.source).is_dir() else SourceSpec.video(args.source)
        spec = replace(spec, loop=True)  # as the demo: the measurement must not run out of frames
    else:
        spec = SourceSpec.demo()
    before, detect_before = measure_headless(spec, settings, HEADLESS_FRAMES, HEADLESS_MAX_S)
    r = measure_app(app, spec, settings, args.seconds)
    after, detect_after = measure_headless(spec, settings, HEADLESS_FRAMES, HEADLESS_MAX_S)
    r["headless_fps"] = (before + after) / 2  # before and after the app: a change of load weighs on both
    r["headless_fps_before_after"] = [before, after]
    r["headless_detect_ms"] = (detect_before + detect_after) / 2
    print(json.dumps({**row, **r, "weights": weights, "source": spec.label}))
    return 0


def markdown(result: dict) -> str:
    from bench.machine import machine_line  # imports torch: not before a child has set its OpenMP policy

    lines = [
        f"App frames per second on {result['source']}: {machine_line(result['machine'])}.",
        f"{result['seconds']:.0f} s per setting after warm-up, {result['settings']}. Target: at least "
        f"{TARGET_FPS:.0f} fps shown with Key.Net; the app runs the first setting. Load average (1 min) at the "
        f"start and the end: {result['load_average_1min'][0]:.1f}, {result['load_average_1min'][1]:.1f} on "
        f"{result['machine']['cpu_cores']} cores: other processes may have been running.",
        "",
        "| model | OpenMP threads | torch threads | weights | shown fps | processed fps | headless fps | x headless "
        "| detect ms, app / headless | frames dropped | tracking | app CPU (cores) | app median stage ms |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        if "skipped" in r or "failed" in r:
            lines.append(f"| {r['model']} | {r['policy']} | {r['threads']} | {r.get('skipped', r.get('failed'))} "
                         "| | | | | | | | | |")
            continue
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items())
        lines.append(
            f"| {r['model']} | {r['policy']} | {r['threads']} | {r['weights']} | {r['shown_fps']:.1f} | "
            f"{r['processed_fps']:.1f} | {r['headless_fps']:.1f} | {r['shown_fps'] / r['headless_fps']:.2f} | "
            f"{r['stage_ms'].get('detect', 0.0):.0f} / {r['headless_detect_ms']:.0f} | {r['dropped_frames']} | "
            f"{r['tracking_share']:.0%} | {r['cpu_cores_used']:.2f} | {stages} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from keynet.config import TrackerConfig  # torch-free: the OpenMP policy of the children is still open

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per setting (default 20)")
    parser.add_argument("--source", help="a video or image folder instead of the bundled demo")
    parser.add_argument("--num-keypoints", type=int, default=TrackerConfig().detector.num_keypoints)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--child", nargs=4, metavar=("ARCH", "LABEL", "POLICY", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.child:
        args.architecture, args.label, args.policy, args.threads = args.child
        return run_child(args)
    from bench.machine import describe_machine
    from keynet.files import atomic_write_json, atomic_write_text

    load_start = os.getloadavg()[0]
    runs = []
    for architecture, label, policy, threads in CONFIGS:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        command = [sys.executable, "-m", "bench.app_fps", "--seconds", str(args.seconds), "--num-keypoints",
                   str(args.num_keypoints), *(["--source", args.source] if args.source else []),
                   "--child", architecture, label, policy or "default", threads]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            row = {"model": label, "policy": policy or "default", "threads": threads,
                   "failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
        else:
            row = json.loads(lines[-1])
        runs.append(row)
        summary = row.get("skipped") or row.get("failed") or (
            f"shown {row['shown_fps']:.1f} fps, processed {row['processed_fps']:.1f}, headless {row['headless_fps']:.1f}")
        print(f"{label}, {row['policy']}, {row['threads']} thread(s): {summary}", file=sys.stderr)
    measured = [r for r in runs if "source" in r]
    result = {
        "source": measured[0]["source"] if measured else "the bundled demo",
        "seconds": args.seconds,
        "settings": f"fast mode, single scale, {args.num_keypoints} keypoints, CPU",
        "target_fps": TARGET_FPS,
        "machine": describe_machine("cpu"),
        "load_average_1min": [load_start, os.getloadavg()[0]],
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
