"""Detector benchmark: the Key.Net paper's repeatability protocol, matching and homography accuracy, against peers.

    python -m bench.detectors                    # the three default sets, reported apart; writes bench/results/
    python -m bench.detectors --data DIR         # any folder of HPatches- or Oxford-layout sequences
    python -m bench.detectors --update-readme    # also regenerates the README's results section

Every detector gives up to 1,500 keypoints per image; the protocol keeps the best 1,000 in the region both images
see (``keynet.metrics``). One descriptor for all: kornia's RootSIFT descriptor of a 32x32 patch at each
keypoint's own scale (upright: orientation is ignored for every detector, as the paper does), matched by mutual
nearest neighbour. Matching score = matches within 5 px / points
(the authors' benchmark); MMA(t) = share of matches within t px; homography accuracy = share of pairs whose
MAGSAC homography from the matches moves image 1's corners by less than 1, 3 and 5 px on average.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.feature import KeyNetDetector as KorniaKeyNetDetector
from kornia.feature import (
    SIFTDescriptor,
    extract_patches_from_pyramid,
    get_laf_center,
    get_laf_scale,
    laf_from_center_scale_ori,
)
from tqdm import tqdm

from bench.machine import describe_machine, machine_line
from bench.readme import replace_section
from keynet.datasets import find_sequences
from keynet.detect import KeyNetDetector
from keynet.files import atomic_path, atomic_write_json, atomic_write_text
from keynet.image import to_grey_tensor
from keynet.inference import keep_freed_memory
from keynet.metrics import (
    common_region_masks,
    corner_error,
    match_errors,
    mutual_nearest_neighbours,
    repeatability,
    select_in_mask,
)
from keynet.weights import default_weights, load_checkpoint, load_model

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"
DEFAULT_SETS = ("hpatches", "oxford", "eval_sequences")
CANDIDATES = 1500  # keypoints each detector gives per image
TOP_K = 1000  # of which the protocol keeps the best in the common region
MATCH_THRESHOLD = 5.0  # px, for the matching score (the authors' benchmark default)
MMA_THRESHOLDS = list(range(1, 11))
FIXED_SIZE = 22.0  # region diameter given to detectors without a scale (Key.Net's at scale 1)

# Paper Table 2 (HPatches, full release): repeatability SL / L, viewpoint and illumination.
PAPER_TABLE2 = {
    "Key.Net-SI": {"viewpoint": (60.5, 73.2), "illumination": (61.3, 66.2)},
    "Key.Net-TI": {"viewpoint": (34.2, 72.5), "illumination": (72.1, 72.1)},
    "Tiny-Key.Net-SI": {"viewpoint": (57.8, 70.4), "illumination": (56.1, 62.8)},
    "SIFT-SI": {"viewpoint": (43.1, 56.0), "illumination": (46.2, 57.8)},
    "FAST-TI": {"viewpoint": (30.4, 63.1), "illumination": (63.5, 63.5)},
}

# A detector maps a BGR/grey image to (N, 4) float arrays of x, y, region radius, score, best first.
Detector = Callable[[np.ndarray], np.ndarray]


def keynet_detector(model: torch.nn.Module, multi_scale: bool) -> Detector:
    detector = KeyNetDetector(model, num_keypoints=CANDIDATES, multi_scale=multi_scale, mode="exact")

    def detect(image: np.ndarray) -> np.ndarray:
        kps = detector.detect(image)[0]
        return np.concatenate([kps.numpy()[:, :2], kps.sizes.numpy()[:, None] / 2, kps.numpy()[:, 3:]], 1)

    return detect


def kornia_detector(state_dict: dict) -> Detector:
    detector = KorniaKeyNetDetector(pretrained=False, num_features=CANDIDATES).eval()
    detector.model.load_state_dict(state_dict)

    def detect(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            lafs, responses = detector(to_grey_tensor(image))
        keep = responses[0] > 0
        xy = get_laf_center(lafs)[0][keep].numpy()
        radius = get_laf_scale(lafs)[0, :, 0, 0][keep].numpy() / 2
        score = responses[0][keep].numpy()
        order = np.argsort(-score, kind="stable")
        return np.concatenate([xy, radius[:, None], score[:, None]], 1)[order]

    return detect


def opencv_detector(make: Callable[[], cv2.Feature2D], fixed_size: bool) -> Detector:
    feature = make()

    def detect(image: np.ndarray) -> np.ndarray:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        kps = sorted(feature.detect(grey, None), key=lambda k: -k.response)[:CANDIDATES]
        if not kps:
            return np.zeros((0, 4))
        return np.array([[k.pt[0], k.pt[1], FIXED_SIZE / 2 if fixed_size else k.size / 2, k.response] for k in kps])

    return detect


def build_detectors() -> dict[str, Detector]:
    """Every detector of the benchmark that can run here (ours only when their weights exist)."""
    detectors: dict[str, Detector] = {}
    for arch, label in (("keynet", "Key.Net"), ("tiny_keynet", "Tiny-Key.Net")):
        path = default_weights(arch)
        if path is not None:
            model = load_model(path)
            detectors[f"{label}-SI (ours)"] = keynet_detector(model, True)
            if arch == "keynet":
                detectors[f"{label}-TI (ours)"] = keynet_detector(model, False)
    if AUTHORS_WEIGHTS.is_file():
        authors = load_model(AUTHORS_WEIGHTS)
        detectors["Key.Net-SI (authors)"] = keynet_detector(authors, True)
        detectors["Key.Net-TI (authors)"] = keynet_detector(authors, False)
        detectors["kornia KeyNetDetector (authors)"] = kornia_detector(load_checkpoint(AUTHORS_WEIGHTS)["state_dict"])
    detectors["SIFT"] = opencv_detector(lambda: cv2.SIFT_create(nfeatures=CANDIDATES), False)
    detectors["ORB"] = opencv_detector(lambda: cv2.ORB_create(nfeatures=CANDIDATES), False)
    detectors["FAST"] = opencv_detector(lambda: cv2.FastFeatureDetector_create(), True)
    detectors["GFTT/Harris"] = opencv_detector(
        lambda: cv2.GFTTDetector_create(maxCorners=CANDIDATES, qualityLevel=0.001, useHarrisDetector=True), True)
    return detectors


SIFT_PATCH = SIFTDescriptor(32, rootsift=True).eval()


def describe(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Upright RootSIFT descriptors (N, 128) of 32x32 patches at each point, a patch spanning 2 x the region diameter."""
    if len(points) == 0:
        return np.zeros((0, 128), np.float32)
    x = to_grey_tensor(image)
    xy = torch.from_numpy(points[:, :2]).float()[None]
    scale = torch.from_numpy(4 * points[:, 2]).float().view(1, -1, 1, 1)
    lafs = laf_from_center_scale_ori(xy, scale, torch.zeros(1, len(points), 1))
    with torch.inference_mode():
        return SIFT_PATCH(extract_patches_from_pyramid(x, lafs, 32)[0]).numpy()


def evaluate_pair(shape1: tuple[int, int], shape2: tuple[int, int], points1: np.ndarray, points2: np.ndarray,
                  desc1: np.ndarray, desc2: np.ndarray, h: np.ndarray) -> dict:
    """All metrics of one image pair for one detector (points and descriptors of every detection)."""
    mask1, mask2 = common_region_masks(h, shape1, shape2)
    i1, i2 = select_in_mask(points1, mask1, TOP_K), select_in_mask(points2, mask2, TOP_K)
    p1, p2 = points1[i1], points2[i2]
    rep = repeatability(p1[:, :3], p2[:, :3], h)
    matches = mutual_nearest_neighbours(desc1[i1], desc2[i2])
    errors = match_errors(p1[:, :2], p2[:, :2], matches, h)
    h_est = None
    if len(matches) >= 4:
        h_est, _ = cv2.findHomography(p1[matches[:, 0], :2], p2[matches[:, 1], :2], cv2.USAC_MAGSAC, 3.0)
    n = rep.num_points
    return {
        "repeatability_sl": rep.repeatability_sl,
        "repeatability_l": rep.repeatability_l,
        "overlap_error_sl": rep.overlap_error_sl,
        "overlap_error_l": rep.overlap_error_l,
        "num_points": n,
        "matching_score": 100.0 * float((errors <= MATCH_THRESHOLD).sum()) / n if n else 0.0,
        "mma": [float((errors <= t).mean()) if len(errors) else 0.0 for t in MMA_THRESHOLDS],
        "corner_error": corner_error(h_est, h, shape1),
    }


def scale_range(points: np.ndarray) -> float:
    return float(points[:, 2].max() / points[:, 2].min()) if len(points) else 0.0


def summarise(pairs: list[dict], ranges: list[float]) -> dict:
    """Means over pairs (and over images for the scale range)."""
    if not pairs:
        return {}
    errors = np.array([p["corner_error"] for p in pairs])
    return {
        "pairs": len(pairs),
        **{k: float(np.mean([p[k] for p in pairs])) for k in
           ("repeatability_sl", "repeatability_l", "overlap_error_sl", "overlap_error_l", "matching_score",
            "num_points")},
        "mma": [float(v) for v in np.mean([p["mma"] for p in pairs], 0)],
        "homography_accuracy": {f"{t}px": float((errors < t).mean()) for t in (1, 3, 5)},
        "scale_range": float(np.mean(ranges)) if ranges else 0.0,
    }


def run(data: Path, detectors: dict[str, Detector]) -> dict:
    sequences = find_sequences(data)
    per_pair: dict[str, dict[str, list[dict]]] = {name: {} for name in detectors}
    ranges: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    total = sum(len(s.images) for s in sequences)
    with tqdm(total=total, desc=f"{data.name}: images", file=sys.stderr) as bar:
        for seq in sequences:
            images = [seq.load(i) for i in range(len(seq.images))]
            for name, detect in detectors.items():
                t0 = time.perf_counter()
                points = [detect(image) for image in images]
                seconds[name] += time.perf_counter() - t0
                descs = [describe(image, p) for image, p in zip(images, points)]
                shapes = [image.shape[:2] for image in images]
                pairs = [evaluate_pair(shapes[0], shapes[k], points[0], points[k], descs[0], descs[k],
                                       seq.homographies[k - 1]) for k in range(1, len(images))]
                per_pair[name][seq.name] = pairs
                ranges[name].setdefault(seq.kind, []).extend(scale_range(p) for p in points)
            bar.update(len(images))
    kinds = sorted({s.kind for s in sequences})
    result = {"data": str(data), "machine": describe_machine(), "sequences": {s.name: s.kind for s in sequences},
              "detectors": {}}
    for name in detectors:
        by_kind = {kind: summarise([p for s in sequences if s.kind == kind for p in per_pair[name][s.name]],
                                   ranges[name].get(kind, [])) for kind in kinds}
        by_sequence = {s: summarise(p, []) for s, p in per_pair[name].items()}
        result["detectors"][name] = {"by_kind": by_kind, "by_sequence": by_sequence,
                                     "seconds_per_image": seconds[name] / total}
    return result


def markdown(result: dict, title: str) -> str:
    """Tables laid out like the paper's Table 2 (repeatability) and Table 3 (matching), one column group per kind."""
    kinds = sorted({k for d in result["detectors"].values() for k in d["by_kind"]})
    lines = [f"### {title}", "", f"Data: `{Path(result['data']).name}` ({len(result['sequences'])} sequences: " +
             ", ".join(f"{k} {list(result['sequences'].values()).count(k)}" for k in kinds) +
             f"). Machine: {machine_line(result['machine'])}.", ""]
    header = "| detector | " + " | ".join(f"{k} Rep SL | {k} Rep L | {k} ε SL | {k} ε L | {k} S range" for k in kinds)
    lines += [header + " |", "|---|" + "---:|" * (5 * len(kinds))]
    for name, d in result["detectors"].items():
        cells = []
        for k in kinds:
            s = d["by_kind"].get(k) or {}
            cells += [f"{s.get('repeatability_sl', 0):.1f}", f"{s.get('repeatability_l', 0):.1f}",
                      f"{s.get('overlap_error_sl', 0):.2f}", f"{s.get('overlap_error_l', 0):.2f}",
                      f"{s.get('scale_range', 0):.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| detector | " + " | ".join(f"{k} MS | {k} MMA@3 | {k} H@1/3/5 px" for k in kinds) + " | s/image |",
              "|---|" + "---:|" * (3 * len(kinds) + 1)]
    for name, d in result["detectors"].items():
        cells = []
        for k in kinds:
            s = d["by_kind"].get(k) or {}
            acc = s.get("homography_accuracy", {})
            cells += [f"{s.get('matching_score', 0):.1f}", f"{100 * s.get('mma', [0] * 10)[2]:.1f}",
                      "/".join(f"{100 * acc.get(f'{t}px', 0):.0f}" for t in (1, 3, 5))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {d['seconds_per_image']:.2f} |")
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
        kinds = result["detectors"][name]["by_kind"]
        mma = np.mean([k["mma"] for k in kinds.values() if k], 0)
        ax2.plot(MMA_THRESHOLDS, 100 * mma, marker="o", label=name)
    ax1.set_xticks(np.arange(len(seqs)) + 0.4 - width / 2, seqs, rotation=60, ha="right", fontsize=7)
    ax1.set_ylabel("repeatability SL (%)")
    ax1.set_title(f"Repeatability per sequence: {Path(result['data']).name}")
    ax1.legend(fontsize=7, ncol=2)
    ax2.set_xlabel("threshold (px)")
    ax2.set_ylabel("MMA (%)")
    ax2.set_title("Mean matching accuracy (RootSIFT patches, mutual NN)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def readme_section(results: dict[str, dict]) -> str:
    parts = ["Measured by `python -m bench.detectors` (the full tables and per-sequence figures are in "
             "`bench/results/detectors-*.md`); SL = detected scales and locations, L = locations only.", ""]
    for data, result in results.items():
        kinds = sorted({k for d in result["detectors"].values() for k in d["by_kind"]})
        parts += [f"**{data}** ({len(result['sequences'])} sequences)", "",
                  "| detector | " + " | ".join(f"{k} Rep SL / L | {k} MS" for k in kinds) + " |",
                  "|---|" + "---:|" * (2 * len(kinds))]
        for name, d in result["detectors"].items():
            cells = []
            for k in kinds:
                s = d["by_kind"].get(k) or {}
                cells += [f"{s.get('repeatability_sl', 0):.1f} / {s.get('repeatability_l', 0):.1f}",
                          f"{s.get('matching_score', 0):.1f}"]
            parts.append(f"| {name} | " + " | ".join(cells) + " |")
        parts += ["", f"![{data}](bench/results/detectors-{data}.png)", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="a folder of sequences (repeatable); default: ../shared sets")
    parser.add_argument("--update-readme", action="store_true", help="regenerate README.md's results section")
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.set_grad_enabled(False)
    folders = [Path(d) for d in args.data] if args.data else [SHARED_DATA / s for s in DEFAULT_SETS]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"error: data folder(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    detectors = build_detectors()
    results = {}
    for folder in folders:
        try:
            result = run(folder, detectors)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        name = folder.name
        results[name] = result
        atomic_write_json(result, RESULTS / f"detectors-{name}.json")
        text = markdown(result, f"Detectors on {name}")
        atomic_write_text(text, RESULTS / f"detectors-{name}.md")
        plot(result, RESULTS / f"detectors-{name}.png")
        print(text)
    if args.update_readme:
        replace_section("detectors", readme_section(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
