"""Ship trained weights: a run's best model into ``assets/weights``, then the detector benchmark's figures into the
model cards and ``assets/weights/README.md``.

    python -m tools.ship_weights --runs RUN [RUN ...] [--note TEXT]   # 1. each run's best checkpoint, shipped
    python -m bench.detectors --update-readme                           # 2. benchmarked beside the authors' weights
    python -m tools.ship_weights --results                              # 3. the figures into the cards and README

Step 3 refuses results that were not computed with the shipped files (``weights_digest`` of each file against the
digests ``bench.detectors`` records). The figures are repeatability (SL and L, %) per kind of change, ours beside
the authors' Key.Net-SI, on each benchmark set, and pooled over the real captures (hpatches and oxford, weighted
by pairs) where issue 5 sets its bar: no more than 1 point below the authors on any of viewpoint and illumination
SL and L, and at least theirs on the mean of the four.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench.adapters import AUTHORS, OURS
from bench.report import RESULTS, saved_results
from keynet.files import atomic_path, atomic_write_text
from keynet.weights import load_checkpoint, load_model, read_model_card, save_weights, weights_digest
from trainer.checkpoints import export_run

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "assets" / "weights"
REAL_SETS = ("hpatches", "oxford")
BAR_KINDS = ("viewpoint", "illumination")
MEASURES = ("repeatability_sl", "repeatability_l")


def ship_runs(runs: list[Path], note: str) -> list[Path]:
    """Export each run's best checkpoint and copy it to ``assets/weights/<architecture>.pt`` (atomically)."""
    shipped = []
    for run in runs:
        exported = export_run(run)
        card = read_model_card(exported)
        if note:
            card["note"] = note
            save_weights(load_model(exported), exported, card)
        target = WEIGHTS / exported.name
        with atomic_path(target) as tmp:
            shutil.copyfile(exported, tmp)
        shipped.append(target)
    return shipped


def shipped_files() -> list[tuple[str, str, Path]]:
    """(architecture, detector label, path) of each of our detectors whose weights are in ``assets/weights``."""
    return [(arch, label, WEIGHTS / f"{arch}.pt") for arch, label in OURS if (WEIGHTS / f"{arch}.pt").is_file()]


def pooled(results: dict[str, dict], name: str, sets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per kind: each measure of detector ``name`` averaged over the pairs of ``sets`` (weighted by pairs)."""
    totals: dict[str, dict[str, float]] = {}
    for s in sets:
        for kind, row in results.get(s, {}).get("detectors", {}).get(name, {}).get("by_kind", {}).items():
            t = totals.setdefault(kind, {"pairs": 0.0, **{m: 0.0 for m in MEASURES}})
            t["pairs"] += row["pairs"]
            for m in MEASURES:
                t[m] += row[m] * row["pairs"]
    return {k: {"pairs": int(t["pairs"]), **{m: round(t[m] / t["pairs"], 2) for m in MEASURES}}
            for k, t in totals.items() if t["pairs"]}


def benchmark_card(results: dict[str, dict], label: str, arch: str) -> dict:
    """The model card's ``benchmark`` entry for our detector ``label``: per set and pooled, ours and the authors'."""
    ours, authors = f"{label}-SI (ours)", AUTHORS
    card: dict = {"sets": {}, "source": "bench/results/detectors-<set>.json"}
    for s, result in results.items():
        card["sets"][s] = {"date": result["machine"].get("date", ""), "ours": pooled(results, ours, (s,)),
                           "authors": pooled(results, authors, (s,))}
    real = [s for s in REAL_SETS if s in results]
    mine, theirs = pooled(results, ours, tuple(real)), pooled(results, authors, tuple(real))
    card["real_pooled"] = {"sets": real, "ours": mine, "authors": theirs}
    if arch == "keynet":
        diffs = {f"{k} {m[-2:].upper().strip('_')}": round(mine[k][m] - theirs[k][m], 2)
                 for k in BAR_KINDS for m in MEASURES if k in mine and k in theirs}
        card["issue_bar"] = {"differences": diffs, "met": len(diffs) == 4 and min(diffs.values()) >= -1.0
                             and sum(diffs.values()) >= 0.0}
    return card


def add_results() -> None:
    """Put the saved benchmark figures into the shipped files' model cards (refusing stale results)."""
    results = saved_results()
    if not results:
        raise FileNotFoundError(f"no detectors-*.json in {RESULTS}: run python -m bench.detectors first")
    for arch, label, path in shipped_files():
        model = load_model(path)
        digest = weights_digest(model)
        for s, result in results.items():
            ran = result.get("settings", {}).get("weights_digests", {}).get(arch)
            if ran != digest:
                raise ValueError(f"bench/results/detectors-{s}.json was not computed with {path} "
                                 f"(digest {ran} != {digest}): run python -m bench.detectors again")
        card = read_model_card(path)
        card["benchmark"] = benchmark_card(results, label, arch)
        save_weights(model, path, card)


def fmt_rows(entry: dict) -> list[str]:
    rows = []
    for kind in sorted(entry["ours"]):
        o, a = entry["ours"][kind], entry["authors"].get(kind, {})
        rows.append(f"| {kind} | {o['pairs']} | {o['repeatability_sl']:.1f} / {o['repeatability_l']:.1f} | "
                    + (f"{a['repeatability_sl']:.1f} / {a['repeatability_l']:.1f} |" if a else "– |"))
    return rows


def readme() -> str:
    """``assets/weights/README.md``: every shipped file's model card."""
    lines = ["# Shipped weights", "", "Trained by this project's `trainer/` on `../shared/data/train_images` (ImageNet "
             "photographs, as in the paper) and `../shared/data/train_photos`, never on an evaluation folder. Each "
             "file holds the same model card (`keynet.weights.read_model_card`). Written by `python -m "
             "tools.ship_weights`.", ""]
    for _arch, label, path in shipped_files():
        card = read_model_card(path)
        hours = float(card.get("training_seconds", 0)) / 3600
        lines += [f"## `{path.name}`: {label}", "",
                  f"- command: `{card.get('command', '')}`",
                  f"- data: {card.get('data', '')}",
                  f"- epochs: {card.get('epochs')} (best validation repeatability {card.get('validation_repeatability')}%"
                  f" at epoch {card.get('best_epoch')}); training time {hours:.1f} h",
                  f"- machine: {card.get('machine', '')}; date {card.get('date', '')}"]
        if card.get("note"):
            lines.append(f"- note: {card['note']}")
        bench = card.get("benchmark")
        if bench:
            lines += ["", "Repeatability SL / L (%), ours beside the authors' Key.Net-SI, from "
                      f"`{bench['source']}`:", ""]
            for s, entry in bench["sets"].items():
                lines += [f"{s} ({entry['date']}):", "", "| change | pairs | ours | authors |",
                          "|---|---:|---:|---:|", *fmt_rows(entry), ""]
            real = bench["real_pooled"]
            lines += [f"Real captures pooled ({' + '.join(real['sets'])}):", "", "| change | pairs | ours | authors |",
                      "|---|---:|---:|---:|", *fmt_rows(real), ""]
            bar = bench.get("issue_bar")
            if bar:
                diffs = ", ".join(f"{k} {v:+.1f}" for k, v in bar["differences"].items())
                lines += [f"Ours minus the authors' on the real captures: {diffs}. Issue 5's bar (none below -1, "
                          f"mean at least 0) is {'met' if bar['met'] else 'not met'}.", ""]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, help="training run folders to ship (their best checkpoint)")
    parser.add_argument("--note", default="", help="a note for the model cards (how the training went)")
    parser.add_argument("--results", action="store_true", help="put bench/results/detectors-*.json into the cards")
    args = parser.parse_args(argv)
    if not args.runs and not args.results:
        parser.error("give --runs RUN [RUN ...] and/or --results")
    try:
        if args.runs:
            for path in ship_runs(args.runs, args.note):
                print(f"shipped {path} ({load_checkpoint(path)['architecture']})")
        if args.results:
            add_results()
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(readme(), WEIGHTS / "README.md")
    print(f"written {WEIGHTS / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
