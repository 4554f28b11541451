"""Detector benchmark: the Key.Net paper's repeatability protocol, matching and homography accuracy, against peers.

    python -m bench.detectors                    # the three default sets, reported apart; writes bench/results/
    python -m bench.detectors --data DIR         # any folder of HPatches- or Oxford-layout sequences
    python -m bench.detectors --update-readme    # also regenerates the README's results section from this run
    python -m bench.detectors --render-only      # only re-renders the tables, plots and README from the JSON files

Every detector gives up to 1,500 keypoints per image; the protocol (``keynet.metrics``) keeps the best 1,000 in
the region both images see. A keypoint is a circle of the detector's own region diameter D: Key.Net 22 x its level's
scale (kornia's ``s_mult``), SIFT 3 x ``KeyPoint.size`` (the extent its own descriptor samples), ORB
``KeyPoint.size`` / 2 (its 31-pixel BRIEF patch is 2D wide), FAST and GFTT/Harris a fixed 22 px (Key.Net's at
scale 1). Repeatability only uses ratios of diameters, so these constants matter for the descriptor alone.

One descriptor for all: kornia's RootSIFT (``SIFTDescriptor``) of a 16x16 patch spanning 2D (SIFT's own 4x4 cells of
4x4 samples; kornia samples it from the level of an image pyramid that avoids aliasing), upright (orientation is
ignored for every detector, as the paper does), matched by mutual nearest neighbour among the protocol's points.
Our Key.Net runs in ``exact`` mode by default, the same algebra as kornia's, so that the two can be compared point
for point; ``--mode fast`` measures the fast inference mode instead (2.5x faster at 640x480: bench/results/speed-cpu.md).
Matching score = matches within 5 px / min(points in either image), the Key.Net authors' benchmark threshold;
MMA(t) = share of the matches within t px, t = 1..10; homography accuracy = share of pairs whose
``cv2.findHomography(USAC_MAGSAC, 3 px)`` from the matches moves image 1's corners by less than 1, 3 and 5 px
on average (a pair with fewer than 4 matches, or no homography, fails).
"""

from __future__ import annotations

import argparse
import os
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
from keynet.datasets import Sequence, find_sequences
from keynet.detect import KeyNetDetector
from keynet.files import atomic_path, atomic_write_json, atomic_write_text
from keynet.image import to_grey_tensor
from keynet.runtime import keep_freed_memory
from keynet.metrics import (
    TOP_K,
    common_region_masks,
    corner_error,
    match_errors,
    mutual_nearest_neighbours,
    repeatability,
    select_in_mask,
)
from keynet.weights import default_weights, load_checkpoint, load_model, weights_digest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"
DEFAULT_SETS = ("hpatches", "oxford", "eval_sequences")
CANDIDATES = 1500  # keypoints each detector gives per image
MATCH_THRESHOLD = 5.0  # px, for the matching score (the Key.Net authors' benchmark default)
MMA_THRESHOLDS = list(range(1, 11))
HOMOGRAPHY_THRESHOLDS = (1, 3, 5)
PATCH_SIZE = 16  # a 32x32 patch gives about the same scores at 6 times the cost
FIXED_DIAMETER = 22.0  # region diameter given to detectors without a scale (Key.Net's at scale 1)
SIFT_DIAMETER = 3.0  # x KeyPoint.size: the extent of SIFT's own descriptor (6 x size wide, as kornia-moons' mrSize)
ORB_DIAMETER = 0.5  # x KeyPoint.size: ORB describes a patch KeyPoint.size wide
AGREEMENT_PX = 1.0
KORNIA_DIFFERENCE = (
    "The rest differ by design, not by the network: kornia 0.9's MultiResolutionDetector ranks the maxima of all "
    "pyramid levels together and keeps the strongest overall, where our extraction, like the authors', shares the "
    "budget out over the levels in proportion to their area.")

AUTHORS, KORNIA = "Key.Net-SI (authors)", "kornia KeyNetDetector (authors)"
RANDOM = "random points (chance level)"
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

# A detector maps a BGR/grey image to an (N, 4) float array of x, y, region radius (D / 2), score, best first.
Detector = Callable[[np.ndarray], np.ndarray]


def keynet_detector(model: torch.nn.Module, multi_scale: bool, mode: str) -> Detector:
    detector = KeyNetDetector(model, num_keypoints=CANDIDATES, multi_scale=multi_scale, mode=mode)

    def detect(image: np.ndarray) -> np.ndarray:
        kps = detector.detect(image)[0]
        return np.concatenate([kps.numpy()[:, :2], kps.sizes.numpy()[:, None] / 2, kps.numpy()[:, 3:]], 1)

    return detect


def kornia_detector(state_dict: dict) -> Detector:
    """kornia's KeyNetDetector with the given weights; its LAF scale is the region diameter (22 x level scale)."""
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


def opencv_detector(make: Callable[[], cv2.Feature2D], diameter: Callable[[cv2.KeyPoint], float]) -> Detector:
    """An OpenCV detector's best ``CANDIDATES`` keypoints by response, with region diameter ``diameter(kp)``."""
    feature = make()

    def detect(image: np.ndarray) -> np.ndarray:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        kps = sorted(feature.detect(grey, None), key=lambda k: -k.response)[:CANDIDATES]
        if not kps:
            return np.zeros((0, 4))
        return np.array([[k.pt[0], k.pt[1], diameter(k) / 2, k.response] for k in kps])

    return detect


def random_detector(seed: int = 0) -> Detector:
    """Uniformly random points of a fixed diameter: the chance level of every measure (L is lenient: a 30 px
    normalised circle accepts a partner up to about 10 px away)."""
    rng = np.random.default_rng(seed)

    def detect(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        xy = rng.uniform((0, 0), (w - 1, h - 1), (CANDIDATES, 2))
        return np.column_stack([xy, np.full(CANDIDATES, FIXED_DIAMETER / 2), -np.arange(CANDIDATES, dtype=float)])

    return detect


OURS = (("keynet", "Key.Net"), ("tiny_keynet", "Tiny-Key.Net"))


def our_weights_digests() -> dict[str, str]:
    """``weights_digest`` of each of our shipped weights files, by architecture: which weights a result is of."""
    return {arch: weights_digest(load_model(path)) for arch, _ in OURS if (path := default_weights(arch))}


def build_detectors(mode: str = "exact") -> dict[str, Detector]:
    """Every detector of the benchmark that can run here (ours only when their weights exist)."""
    detectors: dict[str, Detector] = {}
    for arch, label in OURS:
        path = default_weights(arch)
        if path is not None:
            model = load_model(path)
            detectors[f"{label}-SI (ours)"] = keynet_detector(model, True, mode)
            if arch == "keynet":
                detectors[f"{label}-TI (ours)"] = keynet_detector(model, False, mode)
    if AUTHORS_WEIGHTS.is_file():
        authors = load_model(AUTHORS_WEIGHTS)
        detectors[AUTHORS] = keynet_detector(authors, True, mode)
        detectors["Key.Net-TI (authors)"] = keynet_detector(authors, False, mode)
        detectors[KORNIA] = kornia_detector(load_checkpoint(AUTHORS_WEIGHTS)["state_dict"])
    detectors["SIFT"] = opencv_detector(lambda: cv2.SIFT_create(nfeatures=CANDIDATES), lambda k: SIFT_DIAMETER * k.size)
    detectors["ORB"] = opencv_detector(lambda: cv2.ORB_create(nfeatures=CANDIDATES), lambda k: ORB_DIAMETER * k.size)
    detectors["FAST"] = opencv_detector(lambda: cv2.FastFeatureDetector_create(), lambda k: FIXED_DIAMETER)
    detectors["GFTT/Harris"] = opencv_detector(
        lambda: cv2.GFTTDetector_create(maxCorners=CANDIDATES, qualityLevel=0.001, useHarrisDetector=True),
        lambda k: FIXED_DIAMETER)
    detectors[RANDOM] = random_detector()
    return detectors


def missing_detectors() -> dict[str, str]:
    """Detectors of the issue that cannot run here, with the reason."""
    missing = {}
    if default_weights("keynet") is None:
        missing["Key.Net SI/TI (ours)"] = "no trained weights yet (assets/weights/keynet.pt is absent)"
    if default_weights("tiny_keynet") is None:
        missing["Tiny-Key.Net-SI (ours)"] = ("no weights: the authors published none and ours "
                                             "(assets/weights/tiny_keynet.pt) do not exist yet")
    if not AUTHORS_WEIGHTS.is_file():
        missing["Key.Net (authors), kornia KeyNetDetector"] = f"{AUTHORS_WEIGHTS} is absent"
    return missing


SIFT_PATCH = SIFTDescriptor(PATCH_SIZE, rootsift=True).eval()


def describe(grey: torch.Tensor, points: np.ndarray) -> np.ndarray:
    """Upright RootSIFT descriptors (N, 128) of PATCH_SIZE-pixel patches 2D wide at (N, >=3) points x, y, radius D / 2.

    Args:
        grey: (1, 1, H, W) image in [0, 1].
    """
    if len(points) == 0:
        return np.zeros((0, 128), np.float32)
    xy = torch.from_numpy(points[:, :2]).float()[None]
    scale = torch.from_numpy(2 * points[:, 2]).float().view(1, -1, 1, 1)  # kornia's patch is 2 x scale wide
    lafs = laf_from_center_scale_ori(xy, scale, torch.zeros(1, len(points), 1))
    with torch.inference_mode():
        return SIFT_PATCH(extract_patches_from_pyramid(grey, lafs, PATCH_SIZE)[0]).numpy()


def evaluate_pair(points1: np.ndarray, points2: np.ndarray, desc1: np.ndarray, desc2: np.ndarray, h: np.ndarray,
                  shape1: tuple[int, int]) -> dict:
    """All metrics of one image pair for one detector.

    Args:
        points1, points2: (N1, 4), (N2, 4) the protocol's points (top-k in the common region), best first.
        desc1, desc2: their descriptors; h: 3x3 homography from image 1 to image 2.
    """
    rep = repeatability(points1[:, :3], points2[:, :3], h)
    matches = mutual_nearest_neighbours(desc1, desc2)
    errors = match_errors(points1[:, :2], points2[:, :2], matches, h)
    h_est = None
    if len(matches) >= 4:
        h_est, _ = cv2.findHomography(points1[matches[:, 0], :2], points2[matches[:, 1], :2], cv2.USAC_MAGSAC, 3.0)
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


def describe_shared(grey: torch.Tensor, point_sets: list[np.ndarray]) -> list[np.ndarray]:
    """``describe`` several detectors' points of one image in one call, so the patch pyramid is built once."""
    descs = describe(grey, np.concatenate([p[:, :3] for p in point_sets]) if point_sets else np.zeros((0, 3)))
    return np.split(descs, np.cumsum([len(p) for p in point_sets])[:-1])


def evaluate_sequence(found: dict[str, list[np.ndarray]], greys: list[torch.Tensor],
                      masks: list[tuple[np.ndarray, np.ndarray]], seq: Sequence) -> dict[str, list[dict]]:
    """Pairs (1, k) of one sequence for every detector; only the protocol's points are described.

    Args:
        found: per detector, the (N, 4) points of each image of ``seq``.
        masks: per pair (1, k), the common-region masks of image 1 and image k.
    """
    chosen = {name: [(select_in_mask(points[0], m1, TOP_K), select_in_mask(points[k + 1], m2, TOP_K))
                     for k, (m1, m2) in enumerate(masks)] for name, points in found.items()}
    # Image 1's points used by any pair, and image k's points of pair (1, k), each described once.
    used = {name: [np.unique(np.concatenate([i1 for i1, _ in pairs] + [np.zeros(0, int)]))] + [i2 for _, i2 in pairs]
            for name, pairs in chosen.items()}
    descs: dict[str, list[np.ndarray]] = {name: [] for name in found}
    for j, grey in enumerate(greys):
        for name, desc in zip(found, describe_shared(grey, [found[n][j][used[n][j]] for n in found])):
            full = np.zeros((len(found[name][j]), 128), np.float32)
            full[used[name][j]] = desc
            descs[name].append(full)
    shape1 = tuple(greys[0].shape[-2:])
    return {name: [evaluate_pair(found[name][0][i1], found[name][k + 1][i2], descs[name][0][i1],
                                 descs[name][k + 1][i2], seq.homographies[k], shape1)
                   for k, (i1, i2) in enumerate(pairs)] for name, pairs in chosen.items()}


def agreement(ours: np.ndarray, theirs: np.ndarray, tolerance: float = AGREEMENT_PX, top: int = TOP_K) -> float:
    """Share (%) of ``theirs`` best ``top`` points with one of ours (best ``top``) within ``tolerance`` px, same scale."""
    a, b = ours[:top], theirs[:top]
    if len(b) == 0:
        return 100.0 if len(a) == 0 else 0.0
    if len(a) == 0:
        return 0.0
    d = np.sqrt(((b[:, None, :2] - a[None, :, :2]) ** 2).sum(2))
    same_scale = np.abs(np.log(b[:, None, 2] / a[None, :, 2])) < 0.01
    return 100.0 * float(((d <= tolerance) & same_scale).any(1).mean())


def scale_range(points: np.ndarray) -> float:
    """S_range of one image's (N >= 1, 3+) points: the largest detected region over the smallest (1 for one scale)."""
    return float(points[:, 2].max() / points[:, 2].min())


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
        "homography_accuracy": {f"{t}px": float((errors < t).mean()) for t in HOMOGRAPHY_THRESHOLDS},
        "scale_range": float(np.mean(ranges)) if ranges else 0.0,
    }


def run(data: Path, detectors: dict[str, Detector]) -> dict:
    """Every detector on every sequence of ``data``; the results dict written to the JSON file."""
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    sequences = find_sequences(data)
    per_pair: dict[str, dict[str, list[dict]]] = {name: {} for name in detectors}
    ranges: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    agreements: list[tuple[float, float]] = []  # per image: top-k and top-k/2
    total = sum(len(s.images) for s in sequences)
    with tqdm(total=total * len(detectors), desc=f"{data.name}", unit="image", file=sys.stderr) as bar:
        for seq in sequences:
            images = [seq.load(i) for i in range(len(seq.images))]
            greys = [to_grey_tensor(image) for image in images]
            masks = [common_region_masks(h, images[0].shape[:2], image.shape[:2])
                     for h, image in zip(seq.homographies, images[1:])]
            found = {}
            for name, detect in detectors.items():
                t0 = time.perf_counter()
                found[name] = [detect(image) for image in images]
                seconds[name] += time.perf_counter() - t0
                ranges[name].setdefault(seq.kind, []).extend(scale_range(p) for p in found[name] if len(p))
                bar.update(len(images))
            for name, pairs in evaluate_sequence(found, greys, masks, seq).items():
                per_pair[name][seq.name] = pairs
            if AUTHORS in found and KORNIA in found:
                agreements += [(agreement(a, b), agreement(a, b, top=TOP_K // 2))
                               for a, b in zip(found[AUTHORS], found[KORNIA])]
    kinds = sorted({s.kind for s in sequences})
    result = {"data": str(data), "machine": describe_machine(), "sequences": {s.name: s.kind for s in sequences},
              "settings": {"candidates": CANDIDATES, "top_k": TOP_K, "match_threshold_px": MATCH_THRESHOLD,
                           "patch_size": PATCH_SIZE},
              "missing": missing_detectors(), "detectors": {}}
    if agreements:
        top, half = np.array(agreements).T
        result["kornia_agreement"] = {"tolerance_px": AGREEMENT_PX, "mean_percent": float(top.mean()),
                                      "min_percent": float(top.min()), "images": len(agreements),
                                      "top_half_mean_percent": float(half.mean()),
                                      "top_half_min_percent": float(half.min())}
    for name in detectors:
        by_kind = {kind: summarise([p for s in sequences if s.kind == kind for p in per_pair[name][s.name]],
                                   ranges[name].get(kind, [])) for kind in kinds}
        by_sequence = {s: summarise(p, []) for s, p in per_pair[name].items()}
        pairs = {s: [[p["repeatability_sl"], p["repeatability_l"]] for p in v] for s, v in per_pair[name].items()}
        result["detectors"][name] = {"by_kind": by_kind, "by_sequence": by_sequence, "pairs": pairs,
                                     "seconds_per_image": seconds[name] / total}
    result["seconds"] = time.perf_counter() - start
    result["load_average"] = [load_start, os.getloadavg()[0]]  # 1-minute load at the start and the end
    return result


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
    lines += ["| detector | " + " | ".join(f"{k} Rep SL | {k} Rep L | {k} ε SL | {k} ε L | {k} S range"
                                             for k in kinds) + " |",
              "|---|" + "---:|" * (5 * len(kinds))]
    for name, d in result["detectors"].items():
        cells = []
        for k in kinds:
            s = d["by_kind"].get(k) or {}
            cells += [f"{s.get('repeatability_sl', 0):.1f}", f"{s.get('repeatability_l', 0):.1f}",
                      f"{s.get('overlap_error_sl', 0):.2f}", f"{s.get('overlap_error_l', 0):.2f}",
                      f"{s.get('scale_range', 0):.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Matching (like Table 3; one RootSIFT patch descriptor for all, mutual nearest neighbours): "
              f"matching score MS (%, matches within {MATCH_THRESHOLD:g} px / points), MMA at 3 px (% of matches), "
              "homography accuracy H (% of pairs with mean corner error under 1 / 3 / 5 px), detection time:", ""]
    lines += ["| detector | " + " | ".join(f"{k} MS | {k} MMA@3 | {k} H@1/3/5 px" for k in kinds) + " | s/image |",
              "|---|" + "---:|" * (3 * len(kinds) + 1)]
    for name, d in result["detectors"].items():
        cells = []
        for k in kinds:
            s = d["by_kind"].get(k) or {}
            acc = s.get("homography_accuracy", {})
            cells += [f"{s.get('matching_score', 0):.1f}", f"{100 * s.get('mma', [0] * 10)[2]:.1f}",
                      "/".join(f"{100 * acc.get(f'{t}px', 0):.0f}" for t in HOMOGRAPHY_THRESHOLDS)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {d['seconds_per_image']:.2f} |")
    paper = paper_comparison(result)
    if paper:
        lines += ["", "Beside the paper's Table 2 (the full HPatches: 59 viewpoint and 57 illumination sequences):",
                  "", *paper]
    agree = result.get("kornia_agreement")
    if agree:
        lines += ["", f"Parity: {agree['mean_percent']:.1f}% of kornia's KeyNetDetector top-1,000 points (authors' "
                  f"weights) have one of our Key.Net-SI points with the same weights within {agree['tolerance_px']:g}"
                  f" px at the same scale (mean over {agree['images']} images, lowest {agree['min_percent']:.1f}%); "
                  f"of the best 500, {agree['top_half_mean_percent']:.1f}% (lowest "
                  f"{agree['top_half_min_percent']:.1f}%). Both rows are in the tables above. " + KORNIA_DIFFERENCE]
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
                  + DATA_NOTES.get(data, ""), "",
                  "| detector | " + " | ".join(f"{k} Rep SL / L | {k} MS" for k in kinds) + " |",
                  "|---|" + "---:|" * (2 * len(kinds))]
        for name, d in result["detectors"].items():
            cells = []
            for k in kinds:
                s = d["by_kind"].get(k) or {}
                cells += [f"{s.get('repeatability_sl', 0):.1f} / {s.get('repeatability_l', 0):.1f}",
                          f"{s.get('matching_score', 0):.1f}"]
            parts.append(f"| {name} | " + " | ".join(cells) + " |")
        paper = PAPER_TABLE2["Key.Net-SI"]
        if any(k in paper for k in kinds):
            cells = [f"{paper[k][0]:.1f} / {paper[k][1]:.1f} | –" if k in paper else "– | –" for k in kinds]
            parts.append("| *paper's Table 2: Key.Net-SI, full HPatches* | " + " | ".join(cells) + " |")
        agree = result.get("kornia_agreement")
        if agree:
            parts += ["", f"Our Key.Net-SI and kornia's KeyNetDetector with the authors' weights: "
                      f"{agree['mean_percent']:.1f}% of kornia's top-1,000 points per image are ours within "
                      f"{agree['tolerance_px']:g} px at the same scale (lowest {agree['min_percent']:.1f}%); of "
                      f"the best 500, {agree['top_half_mean_percent']:.1f}%. " + KORNIA_DIFFERENCE]
        parts += ["", f"![{data}](bench/results/detectors-{data}.png)", ""]
    missing = next(iter(results.values()), {}).get("missing", {})
    for name, why in missing.items():
        parts += [f"Not measured: {name}: {why}.", ""]
    return "\n".join(parts)


def saved_results(names: tuple[str, ...] = DEFAULT_SETS) -> dict[str, dict]:
    """The results files of the named sets that exist, in that order."""
    import json

    return {n: json.loads(p.read_text(encoding="utf-8")) for n in names
            if (p := RESULTS / f"detectors-{n}.json").is_file()}


def write_report(name: str, result: dict) -> str:
    """Write the Markdown tables and the plot of one set's results; returns the Markdown."""
    text = markdown(result, f"Detectors on {name}")
    atomic_write_text(text, RESULTS / f"detectors-{name}.md")
    plot(result, RESULTS / f"detectors-{name}.png")
    return text


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
        results = saved_results()
        if not results:
            print(f"error: no detectors-*.json results in {RESULTS}", file=sys.stderr)
            return 2
        for name, result in results.items():
            write_report(name, result)
        replace_section("detectors", readme_section(results))
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
        result["settings"]["mode"] = args.mode
        result["settings"]["weights_digests"] = our_weights_digests()
        atomic_write_json(result, RESULTS / f"detectors-{folder.name}.json")
        print(write_report(folder.name, result))
        results[folder.name] = result
        if args.update_readme:  # after every set, so that an interrupted run still shows what it finished
            replace_section("detectors", readme_section(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
