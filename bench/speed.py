"""Key.Net response time: ours (exact and fast) against kornia.feature.KeyNet with the same weights, in one run.

    python -m bench.speed                 # 640x480, 1280x720 and the paper's 600x600; writes bench/results/
    python -m bench.speed --quick --json  # 640x480 only, one JSON object on stdout
    python -m bench.speed --device cuda
    python -m bench.speed --update-readme  # also puts the table in README.md
    python -m bench.speed --quick --isa avx2  # as on an AVX2-only CPU, on any newer x86 CPU

The machine's CPU class (amx, avx512_bf16, avx512, avx2, other) is printed and recorded; ``--isa avx2`` re-runs
the benchmark in a child process with every library limited to AVX2 (oneDNN, ATen, numba) before torch loads.

Each implementation is timed on the same image, after warm-up, taking turns run by run so that any background
load falls on all of them alike; the table gives medians and each one's ratio to kornia's time. OpenMP threads
sleep while they wait (``keynet.runtime.prefer_sleeping_threads``, as in the app and the command line) unless
``OMP_WAIT_POLICY`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from keynet.runtime import keep_freed_memory, prefer_sleeping_threads

prefer_sleeping_threads()  # before torch loads, as main.py does: what the app and the command line run with

import numpy as np  # noqa: E402
import torch  # noqa: E402
from kornia.feature import KeyNet as KorniaKeyNet  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.machine import ISA_LIMITS, cpu_class, describe_machine, machine_line, run_limited  # noqa: E402
from bench.readme import replace_section  # noqa: E402
from keynet.devices import resolve_device  # noqa: E402
from keynet.errors import DeviceError  # noqa: E402
from keynet.files import atomic_write_json, atomic_write_text  # noqa: E402
from keynet.inference import response_function  # noqa: E402
from keynet.model import KeyNet, TinyKeyNet  # noqa: E402
from keynet.weights import load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"


def test_image(height: int, width: int, device: torch.device) -> torch.Tensor:
    """A deterministic textured grey image (smoothed noise), (1, 1, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, height // 4, width // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return x.clamp(0, 1).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_turns(fns: dict[str, Callable[[], object]], runs: int, warmup: int, device: torch.device, desc: str) -> dict:
    """Median and spread of each callable's time in milliseconds, the callables taking turns each run."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in tqdm(range(runs), desc=desc, leave=False, file=sys.stderr):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: {"median_ms": statistics.median(t), "p10_ms": float(np.percentile(t, 10)),
                   "p90_ms": float(np.percentile(t, 90)), "runs": len(t)} for name, t in times.items()}


def build_peers(device: torch.device) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], str]:
    """The implementations to time, all with the authors' weights when present (else the same random ones)."""
    model = KeyNet().eval()
    if AUTHORS_WEIGHTS.is_file():
        model.load_state_dict(load_checkpoint(AUTHORS_WEIGHTS)["state_dict"])
        weights = "authors' keynet_pytorch.pth"
    else:
        weights = "random initialisation (../shared absent; speed does not depend on the values)"
    kornia = KorniaKeyNet(pretrained=False).eval().to(device)
    kornia.load_state_dict(model.state_dict())
    tiny = TinyKeyNet().eval()

    def kornia_response(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return kornia(x)

    peers = {
        "kornia": kornia_response,
        "exact": response_function(model, "exact", device),
        "fast": response_function(model, "fast", device),
        "tiny_exact": response_function(tiny, "exact", device),
        "tiny_fast": response_function(tiny, "fast", device),
    }
    return peers, weights


def run(sizes: list[tuple[int, int]], runs: int, warmup: int, device: torch.device) -> dict:
    peers, weights = build_peers(device)
    rows = []
    for w, h in sizes:
        x = test_image(h, w, device)
        timed = time_turns({n: (lambda f=f, x=x: f(x)) for n, f in peers.items()}, runs, warmup, device, f"{w}x{h}")
        base = timed["kornia"]["median_ms"]
        for name, t in timed.items():
            rows.append({"size": f"{w}x{h}", "implementation": name, **t, "ratio_to_kornia": t["median_ms"] / base})
    return {"device": str(device), "weights": weights, "machine": describe_machine(str(device)), "rows": rows}


LABELS = {
    "kornia": "kornia.feature.KeyNet",
    "exact": "Key.Net exact (fp32)",
    "fast": "Key.Net fast",
    "tiny_exact": "Tiny-Key.Net exact",
    "tiny_fast": "Tiny-Key.Net fast",
}


def markdown(result: dict) -> str:
    lines = [
        f"Key.Net response time on {result['device']}: {machine_line(result['machine'])}.",
        f"Weights: {result['weights']}. Median of {result['rows'][0]['runs']} runs after warm-up, peers taking turns; "
        f"OpenMP wait policy {result['machine'].get('omp_wait_policy', 'default')}.",
        "",
        "| image | implementation | median ms | p10-p90 ms | x kornia |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['size']} | {LABELS[r['implementation']]} | {r['median_ms']:.1f} | "
                     f"{r['p10_ms']:.1f}-{r['p90_ms']:.1f} | {r['ratio_to_kornia']:.2f} |")
    return "\n".join(lines) + "\n"


#: The environment that limits each library to an instruction set, per ``--isa`` value.
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="640x480 only, 20 runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object (kornia_ms, exact_ms, fast_ms, ...)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per implementation (at least 20)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (keynet.devices)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--update-readme", action="store_true", help="put the table in README.md's speed section")
    parser.add_argument("--isa", choices=sorted(ISA_LIMITS),
                        help="run as on a CPU of this class: limit oneDNN, ATen and numba to it (in a child process)")
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    if args.isa:
        return run_limited("bench.speed", args.isa, sys.argv[1:] if argv is None else argv)
    print(f"CPU class: {cpu_class()}", file=sys.stderr)
    keep_freed_memory()
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
    sizes = [(640, 480)] if args.quick else [(640, 480), (1280, 720), (600, 600)]
    result = run(sizes, 20 if args.quick else args.runs, 5, device)
    if args.json:
        first = {r["implementation"]: r for r in result["rows"] if r["size"] == "640x480"}
        print(json.dumps({f"{name}_ms": round(r["median_ms"], 3) for name, r in first.items()}
                         | {"fast_ratio": round(first["fast"]["ratio_to_kornia"], 3),
                            "exact_ratio": round(first["exact"]["ratio_to_kornia"], 3),
                            "device": result["device"], "size": "640x480",
                            "cpu_class": result["machine"]["cpu_class"]}))
    else:
        print(markdown(result))
    if not args.no_save and not args.quick:
        suffix = f"-{result['machine']['cpu_class']}" if device.type == "cpu" else ""
        stem = RESULTS / f"speed-{device.type}{suffix}"
        atomic_write_json(result, stem.with_suffix(".json"))
        atomic_write_text(markdown(result), stem.with_suffix(".md"))
    if args.update_readme:
        replace_section("speed", markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
