"""The paper's figures (Key.Net, ICCV 2019, Table 2) and the benchmark's comparisons with them."""

from __future__ import annotations

import numpy as np

from bench.adapters import RANDOM

# Scale-invariant and translation-invariant groups for the ranking check (the paper's Table 2 compares each).
RANK_GROUPS = {"SI": ("Key.Net-SI (authors)", ("SIFT", "ORB")),
               "TI": ("Key.Net-TI (authors)", ("FAST", "GFTT/Harris"))}

# Paper Table 2 (the full HPatches, 59 viewpoint and 57 illumination sequences): Rep SL, Rep L, eps SL, eps L.
PAPER_TABLE2 = {
    "Key.Net-SI": {"viewpoint": (60.5, 73.2, 0.19, 0.14), "illumination": (61.3, 66.2, 0.12, 0.10)},
    "Key.Net-TI": {"viewpoint": (34.2, 72.5, 0.20, 0.11), "illumination": (72.1, 72.1, 0.10, 0.10)},
    "Tiny-Key.Net-SI": {"viewpoint": (57.8, 70.4, 0.20, 0.12), "illumination": (56.1, 62.8, 0.14, 0.11)},
    "SIFT-SI": {"viewpoint": (43.1, 56.0, 0.18, 0.12), "illumination": (46.2, 57.8, 0.18, 0.12)},
    "FAST-TI": {"viewpoint": (30.4, 63.1, 0.21, 0.10), "illumination": (63.5, 63.5, 0.09, 0.09)},
}
PAPER_ROWS = {"Key.Net-SI (authors)": "Key.Net-SI", "Key.Net-TI (authors)": "Key.Net-TI",
              "Tiny-Key.Net-SI (ours)": "Tiny-Key.Net-SI", "SIFT": "SIFT-SI", "FAST": "FAST-TI"}


def kinds_of(result: dict) -> list[str]:
    return sorted({k for d in result["detectors"].values() for k in d["by_kind"]})


def ranking(result: dict) -> list[str]:
    """Key.Net against the handcrafted peers of its group, per kind: rank, paired difference, the paper's difference.

    The difference is the mean over the kind's pairs of Key.Net's repeatability minus the peer's on the same pair,
    with its standard error; it is called a tie when it is under two standard errors.
    """
    lines = []
    for kind in kinds_of(result):
        for group, (keynet, peers) in RANK_GROUPS.items():
            names = [n for n in (keynet, *peers) if n in result["detectors"]]
            if keynet not in names or len(names) < 2:
                continue
            for index, label, key in ((0, "SL", "repeatability_sl"), (1, "L", "repeatability_l")):
                per_pair = {n: np.array([v[index] for seq, pairs in result["detectors"][n]["pairs"].items()
                                         if result["sequences"][seq] == kind for v in pairs]) for n in names}
                means = {n: float(v.mean()) for n, v in per_pair.items()}
                rank = 1 + sum(means[n] > means[keynet] for n in names if n != keynet)
                parts = []
                for peer in names[1:]:
                    diff = per_pair[keynet] - per_pair[peer]
                    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
                    verdict = "tie" if abs(diff.mean()) < 2 * se else ("ahead" if diff.mean() > 0 else "behind")
                    text = f"vs {peer} {diff.mean():+.1f} ± {se:.1f} ({verdict}"
                    if peer in PAPER_ROWS and kind in PAPER_TABLE2[PAPER_ROWS[peer]]:
                        paper = (PAPER_TABLE2[PAPER_ROWS[keynet]][kind][index]
                                 - PAPER_TABLE2[PAPER_ROWS[peer]][kind][index])
                        text += f"; paper {paper:+.1f}"
                    parts.append(text + ")")
                chance = result["detectors"].get(RANDOM, {}).get("by_kind", {}).get(kind, {}).get(key)
                lines.append(f"- {kind}, {group}, Rep {label}: {keynet} {means[keynet]:.1f}, rank {rank}/{len(names)}; "
                             + ", ".join(parts) + (f"; random points {chance:.1f}." if chance is not None else "."))
    return lines


def paper_comparison(result: dict) -> list[str]:
    """Our Rep SL / L beside the paper's Table 2 for the detectors and kinds it reports."""
    kinds = [k for k in ("viewpoint", "illumination") if k in kinds_of(result)]
    rows = [n for n in PAPER_ROWS if n in result["detectors"]]
    if not kinds or not rows:
        return []
    lines = ["| detector | " + " | ".join(f"{k} SL / L here | {k} SL / L paper" for k in kinds) + " |",
             "|---|" + "---:|" * (2 * len(kinds))]
    for name in rows:
        cells = []
        for k in kinds:
            s = result["detectors"][name]["by_kind"].get(k) or {}
            paper = PAPER_TABLE2[PAPER_ROWS[name]][k]
            cells += [f"{s.get('repeatability_sl', 0):.1f} / {s.get('repeatability_l', 0):.1f}",
                      f"{paper[0]:.1f} / {paper[1]:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
