"""Detector benchmark: the Key.Net paper's repeatability protocol, matching and homography accuracy, against peers.

    python -m bench.detectors                    # the three default sets, reported apart; writes bench/results/
    python -m bench.detectors --data DIR         # any folder of HPatches- or Oxford-layout sequences
    python -m bench.detectors --update-readme    # also regenerates the README's results section from this run
    python -m bench.detectors --render-only      # only re-renders the tables, plots and README from the JSON files

The work is split by job: ``bench.adapters`` (the detectors), ``bench.protocol`` (the paper's protocol, the
descriptor and the means), ``bench.paper`` (the paper's Table 2 and the ranking check), ``bench.report`` (tables,
plots, the README's section); this module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.adapters import build_detectors, our_weights_digests
from bench.protocol import run
from bench.readme import replace_section
from bench.report import DEFAULT_SETS, RESULTS, readme_section, saved_results, write_report
from keynet.files import atomic_write_json
from keynet.runtime import keep_freed_memory

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="a folder of sequences (repeatable); default: ../shared sets")
    parser.add_argument("--mode", choices=("exact", "fast"), default="exact",
                        help="our Key.Net's inference mode (keynet.inference); kornia's detector is unaffected")
    parser.add_argument("--update-readme", action="store_true", help="regenerate README.md's results section from "
                        "this run's sets")
    parser.add_argument("--render-only", action="store_true",
                        help="only re-render the Markdown, plots and README section from bench/results/*.json")
    args = parser.parse_args(argv)
    if args.render_only:
        results = saved_results(RESULTS)
        if not results:
            print(f"error: no detectors-*.json results in {RESULTS}", file=sys.stderr)
            return 2
        publish(results, list(results), readme=True)
        return 0
    keep_freed_memory()
    folders = [Path(d) for d in args.data] if args.data else [SHARED_DATA / s for s in DEFAULT_SETS]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"error: data folder(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)  # this process only benchmarks; after the argument checks, so callers keep autograd
    detectors = build_detectors(args.mode)
    results = {}
    for folder in folders:
        try:
            result = run(folder, detectors)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result["settings"].update(mode=args.mode, weights_digests=our_weights_digests())
        atomic_write_json(result, RESULTS / f"detectors-{folder.name}.json")
        results[folder.name] = result
        # the README after every set, so that an interrupted run still shows what it finished
        for text in publish(results, [folder.name], readme=args.update_readme):
            print(text)
    return 0


def publish(results: dict[str, dict], names: list[str], readme: bool) -> list[str]:
    """Write the tables and plot of each set of ``names`` (keys of ``results``) into ``RESULTS`` and, with
    ``readme``, the README's section of every set in ``results``; returns each set's Markdown."""
    texts = [write_report(name, results[name], RESULTS) for name in names]
    if readme:
        replace_section("detectors", readme_section(results))
    return texts


if __name__ == "__main__":
    sys.exit(main())
