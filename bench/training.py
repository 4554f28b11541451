"""Training throughput in pairs per second: the trainer's own optimiser step, fp32 and bf16, Key.Net and Tiny.

    python -m bench.training                  # CPU; writes bench/results/training-cpu.{json,md}
    python -m bench.training --device cuda    # a GPU; writes bench/results/training-cuda.{json,md}

Each configuration builds a ``trainer.train.Trainer`` (the pairs made once from ``--images``) and times
``Trainer.step`` on global batches of 32 pairs of 192x192 images, the configurations taking turns, median over
the timed steps after warm-up. bf16 is measured only where it is native (``keynet.inference.native_bf16``):
elsewhere the trainer itself trains in fp32, and its row says it was skipped. The paper's anchor: 45 epochs of 9,000 pairs in under 2 hours on a GTX 1080 Ti,
at least 56 pairs/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from keynet.devices import resolve_device
from keynet.errors import DeviceError
from keynet.files import atomic_write_json, atomic_write_text
from keynet.inference import native_bf16
from keynet.runtime import keep_freed_memory
from trainer.train import Trainer

from .machine import describe_machine, machine_line

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "train_photos"
PAPER_PAIRS_PER_SECOND = 45 * 9000 / (2 * 3600)  # 45 epochs of 9,000 pairs in 2 hours (section 5.3)
PAPER_EPOCH_PAIRS = 45 * 9000


SKIPPED_BF16 = "bf16 (not native here: skipped)"


def run(images: list[str], device: str, batch_size: int, crop: int, steps: int, warmup: int) -> dict:
    load_before = os.getloadavg()[0]
    native = native_bf16(resolve_device(device))
    configs = [(arch, bf16) for arch in ("keynet", "tiny_keynet") for bf16 in (False, True) if native or not bf16]
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = None
        for arch, bf16 in configs:
            t = Trainer(images, Path(tmp) / f"{arch}-{bf16}", device, tiny=arch == "tiny_keynet", bf16=bf16,
                        batch_size=batch_size, crop=crop, train_pairs=batch_size * 2 if shared else
                        batch_size * (steps + warmup), val_pairs=1)
            shared = shared or t.train_pairs
            t.train_pairs = shared  # every configuration trains on the same pairs
            trainers[(arch, bf16)] = t
        times: dict[tuple[str, bool], list[float]] = {c: [] for c in configs}
        batches = next(iter(trainers.values())).batches(1)
        for i in range(warmup + steps):
            for config, t in trainers.items():  # the configurations take turns
                if t.device.type == "cuda":
                    torch.cuda.synchronize(t.device)
                start = time.perf_counter()
                t.step(batches[i % len(batches)])
                if t.device.type == "cuda":
                    torch.cuda.synchronize(t.device)
                if i >= warmup:
                    times[config].append(time.perf_counter() - start)
    device_type = next(iter(trainers.values())).device.type
    rows = []
    for (arch, bf16), ts in times.items():
        pairs_per_s = batch_size / statistics.median(ts)
        rows.append({"model": arch, "precision": "bf16 autocast" if bf16 else "fp32", "batch_size": batch_size,
                     "crop": crop, "median_step_s": statistics.median(ts), "pairs_per_s": pairs_per_s,
                     "x_paper_gtx1080ti": pairs_per_s / PAPER_PAIRS_PER_SECOND,
                     "hours_for_paper_schedule": PAPER_EPOCH_PAIRS / pairs_per_s / 3600, "steps": len(ts)})
        if not native:
            rows.append({"model": arch, "precision": SKIPPED_BF16, "batch_size": batch_size, "crop": crop,
                         "steps": 0})
    return {"device": device_type, "machine": describe_machine(device_type), "images": images,
            "paper_pairs_per_s": PAPER_PAIRS_PER_SECOND, "rows": rows,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "note": "other processes may have been running on this machine during the measurement"}


def markdown(result: dict) -> str:
    lines = [f"Training throughput on {result['device']}: {machine_line(result['machine'])}.",
             "The trainer's optimiser step (siamese forward, M-SIP loss, backward, Adam), median of "
             f"{result['rows'][0]['steps']} steps after warm-up, configurations taking turns; "
             f"{result['note']} (1-minute load average {result['load_average_1min'][0]} before, "
             f"{result['load_average_1min'][1]} after, on {result['machine']['cpu_cores']} cores).", "",
             "| model | precision | batch | pairs/s | x paper (GTX 1080 Ti, 56 pairs/s) | hours for 45 x 9,000 pairs |",
             "|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        figures = (f"{r['pairs_per_s']:.1f} | {r['x_paper_gtx1080ti']:.2f} | {r['hours_for_paper_schedule']:.1f}"
                   if r["steps"] else "– | – | –")
        lines.append(f"| {r['model']} | {r['precision']} | {r['batch_size']} ({r['crop']} px) | {figures} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", help=f"photograph folder (default {DEFAULT_IMAGES})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-save", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args(argv)
    images = args.images or [str(DEFAULT_IMAGES)]
    try:
        device = str(resolve_device(args.device))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keep_freed_memory()
    result = run(images, device, args.batch_size, args.crop, args.steps, args.warmup)
    text = markdown(result)
    print(text)
    if not args.no_save:
        stem = RESULTS / f"training-{result['device']}"
        atomic_write_json(result, stem.with_suffix(".json"))
        atomic_write_text(text, stem.with_suffix(".md"))
        print(f"written {stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
