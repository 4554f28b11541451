"""Memory of a long headless ``track`` run: the command's own loop over a looping source, resident memory sampled.

    python -m bench.soak                       # 20 minutes of the demo, looped, Key.Net (the shipped weights)
    python -m bench.soak --minutes 2 --no-save

Runs ``python main.py track`` in a child process on a folder that repeats the demo's frames (hard links) long
enough for the time asked, with ``--json`` and ``--out`` written as a user would, and samples the child's resident
set size (``/proc/PID/status`` VmRSS) every few seconds. The figure is the growth after warm-up: the largest
resident size in the last quarter of the run against the median of the first minute after warm-up (the first
minute: kernels compiled, allocator pools filled). The issue's bound is 20 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe_machine, machine_line
from keynet.demo import demo_sequence
from keynet.files import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BOUND_MB = 20.0
WARM_UP_S = 60.0


def resident_mb(pid: int) -> float | None:
    """The resident set size of process ``pid`` in MiB (None when it has ended)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def looped_demo(folder: Path, frames: int) -> Path:
    """A folder of ``frames`` links to the demo's frames, in order, repeated (hard links where the file system
    allows, symbolic links across file systems)."""
    seq = sorted(demo_sequence().frames.iterdir())
    folder.mkdir(parents=True)
    for i in range(frames):
        original, link = seq[i % len(seq)], folder / f"{i:06d}{seq[i % len(seq)].suffix}"
        try:
            os.link(original, link)
        except OSError:
            os.symlink(original, link)
    return folder


def soak(minutes: float, architecture: str, interval_s: float = 5.0) -> dict:
    """Run the child for ``minutes`` and return the samples and the growth figures."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = looped_demo(work / "frames", int(minutes * 60 * 40) + 200)  # more frames than the run can track
        cmd = [sys.executable, str(REPO / "main.py"), "track", "--source", str(source), "--target",
               str(demo_sequence().target), "--architecture", architecture, "--json", str(work / "log.jsonl"),
               "--out", str(work / "out.mp4")]
        child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        while time.monotonic() - start < minutes * 60 and child.poll() is None:
            rss = resident_mb(child.pid)
            if rss is not None:
                samples.append((time.monotonic() - start, rss))
            time.sleep(interval_s)
        child.terminate()
        child.wait(timeout=900)  # the video is read back before it is moved into place
        frames = sum(1 for line in open(work / "log.jsonl", encoding="utf-8") if '"kind":"frame"' in line)
    elapsed = samples[-1][0] if samples else 0.0
    baseline = [m for t, m in samples if WARM_UP_S <= t < 2 * WARM_UP_S]
    late = [m for t, m in samples if t >= 0.75 * elapsed]
    growth = max(late) - statistics.median(baseline) if baseline and late else float("nan")
    return {"minutes": minutes, "architecture": architecture, "frames": frames, "samples": samples,
            "baseline_mb": statistics.median(baseline) if baseline else None, "late_max_mb": max(late) if late else None,
            "growth_mb": growth, "bound_mb": BOUND_MB, "child_exit": child.returncode}


def markdown(result: dict, machine: dict) -> str:
    """The results file: the figure, the bound and the machine."""
    return "\n".join([
        f"# Headless soak: {result['minutes']:g} minutes of `track` on the looped demo ({result['architecture']})",
        "",
        f"Machine: {machine_line(machine)}.",
        "",
        "| frames tracked | resident after warm-up (median, minute 2) | largest in the last quarter | growth | bound |",
        "|---|---|---|---|---|",
        f"| {result['frames']} | {result['baseline_mb']:.1f} MiB | {result['late_max_mb']:.1f} MiB | "
        f"{result['growth_mb']:+.1f} MiB | {result['bound_mb']:g} MiB |",
        "",
        "`python -m bench.soak` (the child is `python main.py track --json --out` on a folder repeating the demo's "
        "frames; resident memory from /proc every 5 s).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--architecture", default="keynet", choices=["keynet", "tiny_keynet"])
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    result = soak(args.minutes, args.architecture)
    machine = describe_machine("cpu")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    if not args.no_save:
        atomic_write_json({"machine": machine, **result}, RESULTS / "soak-cpu.json")
        atomic_write_text(markdown(result, machine), RESULTS / "soak-cpu.md")
    return 0 if result["growth_mb"] <= BOUND_MB else 1


if __name__ == "__main__":
    sys.exit(main())
