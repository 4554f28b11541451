"""The benchmark's reports: Markdown tables, the plot per set, the README's section, and the saved results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.adapters import RANDOM
from bench.machine import machine_line
from bench.paper import PAPER_TABLE2, kinds_of, paper_comparison, ranking
from bench.protocol import HOMOGRAPHY_THRESHOLDS, MATCH_THRESHOLD, MMA_THRESHOLDS
from keynet.files import atomic_path, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SETS = ("hpatches", "oxford", "eval_sequences")
KORNIA_DIFFERENCE = (
    "The rest differ by design, not by the network: kornia 0.9's MultiResolutionDetector ranks the maxima of all "
    "pyramid levels together and keeps the strongest overall, where our extraction, like the authors', shares the "
    "budget out over the levels in proportion to their area.")


# How the default sets differ from the paper's full HPatches (59 viewpoint and 57 illumination sequences).
DATA_NOTES = {
    "hpatches": "Two of HPatches' 59 viewpoint sequences (v_churchill, v_wormhole: 10 pairs) and none of its 57 "
                "illumination sequences, so only the viewpoint columns compare with the paper, and 10 pairs give "
                "standard errors of several points where the paper averages 295.",
    "oxford": "Not HPatches: the Oxford affine sequences (Mikolajczyk et al.), 5 pairs each, changes growing to "
              "extremes by image 6. graf (up to 60 degrees of viewpoint) and boat (zoom and rotation) are counted "
              "as viewpoint, leuven (exposure) as illumination, bikes as blur, a kind the paper's Table 2 lacks. "
              "Every detector is described by an upright, isotropic patch (as in the paper), so graf's strong "
              "perspective and boat's rotation keep the viewpoint matching scores low for all of them.",
    "eval_sequences": "Not HPatches: 10 real ScanNet indoor frames (stored at 1000x747) and the authors' graffiti "
                      "test image under seeded random homographies of growing strength (v_*) or exposure, gamma, "
                      "colour, noise and low-light changes (i_*): real content, but generated geometry and "
                      "photometry, with no occlusion, parallax or sensor change between the views.",
}


def detector_table(result: dict, kinds: list[str], headings: tuple[str, ...], cells: Callable[[dict], list[str]],
                   last: tuple[str, Callable[[dict], str]] | None = None) -> list[str]:
    """A Markdown table with a row per detector of ``result``: for each kind, the ``headings`` columns that
    ``cells(stats)`` fills from the detector's figures of that kind ({} where it has none), then, if given, a
    ``last`` (heading, value of the detector's figures) column."""
    lines = ["| detector | " + " | ".join(f"{k} {h}" for k in kinds for h in headings)
             + ("" if last is None else f" | {last[0]}") + " |",
             "|---|" + "---:|" * (len(headings) * len(kinds) + (last is not None))]
    for name, d in result["detectors"].items():
        row = [cell for k in kinds for cell in cells(d["by_kind"].get(k) or {})]
        row += [] if last is None else [last[1](d)]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def parity(result: dict, sentence: Callable[[dict], str]) -> list[str]:
    """A paragraph on how our Key.Net-SI agrees with kornia's: ``sentence(result["kornia_agreement"])`` and
    ``KORNIA_DIFFERENCE``; nothing for a result without those figures."""
    agree = result.get("kornia_agreement")
    return ["", sentence(agree) + KORNIA_DIFFERENCE] if agree else []


def markdown(result: dict, title: str) -> str:
    """Tables laid out like the paper's Table 2 (repeatability) and Table 3 (matching), one column group per kind."""
    kinds = kinds_of(result)
    counts = ", ".join(f"{k} {list(result['sequences'].values()).count(k)}" for k in kinds)
    lines = [f"### {title}", "",
             f"Data: `{Path(result['data']).name}` ({len(result['sequences'])} sequences: {counts}). "
             f"Machine: {machine_line(result['machine'])}. The whole set took {result['seconds']:.0f} s; the 1-minute "
             "load average was {:.1f} at the start and {:.1f} at the end: other processes were running beside it "
             "wherever it exceeds 2.".format(*result["load_average"]), "",
             *([DATA_NOTES[Path(result["data"]).name], ""] if Path(result["data"]).name in DATA_NOTES else []),
             "Repeatability (%, top 1,000 in the common region, overlap error < 0.4 at 30 px), mean overlap error "
             "of the correspondences and S_range (largest / smallest region), like the paper's Table 2; "
             f"'{RANDOM}' are uniformly random points of one size, what each measure gives by chance:", ""]
    lines += detector_table(result, kinds, ("Rep SL", "Rep L", "ε SL", "ε L", "S range"), lambda s: [
        f"{s.get('repeatability_sl', 0):.1f}", f"{s.get('repeatability_l', 0):.1f}",
        f"{s.get('overlap_error_sl', 0):.2f}", f"{s.get('overlap_error_l', 0):.2f}", f"{s.get('scale_range', 0):.1f}"])
    lines += ["", f"Matching (like Table 3; one RootSIFT patch descriptor for all, mutual nearest neighbours): "
              f"matching score MS (%, matches within {MATCH_THRESHOLD:g} px / points), MMA at 3 px (% of matches), "
              "homography accuracy H (% of pairs with mean corner error under 1 / 3 / 5 px), detection time:", ""]
    lines += detector_table(result, kinds, ("MS", "MMA@3", "H@1/3/5 px"), lambda s: [
        f"{s.get('matching_score', 0):.1f}", f"{100 * s.get('mma', [0] * 10)[2]:.1f}",
        "/".join(f"{100 * s.get('homography_accuracy', {}).get(f'{t}px', 0):.0f}" for t in HOMOGRAPHY_THRESHOLDS)],
        ("s/image", lambda d: f"{d['seconds_per_image']:.2f}"))
    paper = paper_comparison(result)
    if paper:
        lines += ["", "Beside the paper's Table 2 (the full HPatches: 59 viewpoint and 57 illumination sequences):",
                  "", *paper]
    lines += parity(result, lambda agree: (
        f"Parity: {agree['mean_percent']:.1f}% of kornia's KeyNetDetector top-1,000 points (authors' weights) have "
        f"one of our Key.Net-SI points with the same weights within {agree['tolerance_px']:g} px at the same scale "
        f"(mean over {agree['images']} images, lowest {agree['min_percent']:.1f}%); of the best 500, "
        f"{agree['top_half_mean_percent']:.1f}% (lowest {agree['top_half_min_percent']:.1f}%). Both rows are in the "
        "tables above. "))
    rank = ranking(result)
    if rank:
        lines += ["", "Ranking against the handcrafted peers of the same group (the paper's Table 2 has Key.Net-SI "
                  "above SIFT-SI and Key.Net-TI above FAST-TI in SL and L, viewpoint and illumination). Differences "
                  "are Key.Net minus the peer on the same pairs, mean ± standard error; a tie is under two standard "
                  "errors:", "", *rank]
    for name, why in result.get("missing", {}).items():
        lines += ["", f"Not measured: {name}: {why}."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Repeatability (SL) per sequence and the MMA curves, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["detectors"])
    seqs = list(result["sequences"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 5.5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [result["detectors"][name]["by_sequence"][s].get("repeatability_sl", 0) for s in seqs]
        ax1.bar(np.arange(len(seqs)) + i * width, values, width, label=name)
        pairs = [k for k in result["detectors"][name]["by_kind"].values() if k]
        mma = np.average([k["mma"] for k in pairs], axis=0, weights=[k["pairs"] for k in pairs])
        ax2.plot(MMA_THRESHOLDS, 100 * mma, marker="o", label=name)
    ax1.set_xticks(np.arange(len(seqs)) + 0.4 - width / 2, seqs, rotation=60, ha="right", fontsize=7)
    ax1.set_ylim(0, 125)  # room for the legend above the bars
    ax1.set_yticks(range(0, 101, 20))
    ax1.set_ylabel("repeatability SL (%)")
    ax1.set_title(f"Repeatability per sequence: {Path(result['data']).name}")
    ax1.legend(fontsize=7, ncol=4, loc="upper center")
    ax2.set_xlabel("threshold (px)")
    ax2.set_ylabel("MMA (%)")
    ax2.set_title("Mean matching accuracy (RootSIFT patches, mutual NN)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def readme_section(results: dict[str, dict]) -> str:
    """The README's tables: Rep SL / L and matching score per set and kind, the paper's Key.Net-SI, the plots."""
    parts = ["Generated by `python -m bench.detectors --update-readme` from `bench/results/detectors-*.json`; the "
             "full tables (overlap errors, S_range, MMA, homography accuracy, timings, the ranking check) are in "
             "`bench/results/detectors-*.md`. SL = detected scales and locations, L = locations only (%); MS = "
             f"matching score within {MATCH_THRESHOLD:g} px with one RootSIFT patch descriptor for every detector. "
             f"The {len(results)} sets took {sum(r['seconds'] for r in results.values()) / 60:.1f} minutes in all "
             "(1-minute load average " + ", ".join(f"{r['load_average'][0]:.1f}" for r in results.values())
             + " at the start of each set, on 2 cores).", ""]
    for data, result in results.items():
        kinds = kinds_of(result)
        parts += [f"**{data}** ({len(result['sequences'])} sequences; {machine_line(result['machine'])}). "
                  + DATA_NOTES.get(data, ""), ""]
        parts += detector_table(result, kinds, ("Rep SL / L", "MS"), lambda s: [
            f"{s.get('repeatability_sl', 0):.1f} / {s.get('repeatability_l', 0):.1f}", f"{s.get('matching_score', 0):.1f}"])
        paper = PAPER_TABLE2["Key.Net-SI"]
        if any(k in paper for k in kinds):
            cells = [f"{paper[k][0]:.1f} / {paper[k][1]:.1f} | –" if k in paper else "– | –" for k in kinds]
            parts.append("| *paper's Table 2: Key.Net-SI, full HPatches* | " + " | ".join(cells) + " |")
        parts += parity(result, lambda agree: (
            f"Our Key.Net-SI and kornia's KeyNetDetector with the authors' weights: {agree['mean_percent']:.1f}% of "
            f"kornia's top-1,000 points per image are ours within {agree['tolerance_px']:g} px at the same scale "
            f"(lowest {agree['min_percent']:.1f}%); of the best 500, {agree['top_half_mean_percent']:.1f}%. "))
        parts += ["", f"![{data}](bench/results/detectors-{data}.png)", ""]
    missing = next(iter(results.values()), {}).get("missing", {})
    for name, why in missing.items():
        parts += [f"Not measured: {name}: {why}.", ""]
    return "\n".join(parts)


def saved_results(folder: Path = RESULTS, names: tuple[str, ...] = DEFAULT_SETS) -> dict[str, dict]:
    """The results files ``folder/detectors-<name>.json`` of the named sets that exist, in that order."""
    return {n: json.loads(p.read_text(encoding="utf-8")) for n in names
            if (p := folder / f"detectors-{n}.json").is_file()}


def write_report(name: str, result: dict, folder: Path = RESULTS) -> str:
    """Write the Markdown tables and the plot of one set's results into ``folder``; returns the Markdown."""
    text = markdown(result, f"Detectors on {name}")
    atomic_write_text(text, folder / f"detectors-{name}.md")
    plot(result, folder / f"detectors-{name}.png")
    return text
