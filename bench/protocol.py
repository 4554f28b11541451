"""The benchmark's protocol: the Key.Net paper's repeatability, matching and homography accuracy, and their means.

Every detector gives up to 1,500 keypoints per image; the protocol (``keynet.metrics``) keeps the best 1,000 in
the region both images see. Repeatability only uses ratios of the region diameters, so the adapters' diameters
(``bench.adapters``) matter for the descriptor alone.

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

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.feature import SIFTDescriptor, extract_patches_from_pyramid, laf_from_center_scale_ori
from tqdm import tqdm

from bench.adapters import AUTHORS, CANDIDATES, KORNIA, Detector, missing_detectors
from bench.machine import describe_machine
from keynet.datasets import Sequence, find_sequences
from keynet.image import to_grey_tensor
from keynet.metrics import (
    TOP_K,
    common_region_masks,
    corner_error,
    match_errors,
    mutual_nearest_neighbours,
    repeatability,
    select_in_mask,
)

MATCH_THRESHOLD = 5.0  # px, for the matching score (the Key.Net authors' benchmark default)
MMA_THRESHOLDS = list(range(1, 11))
HOMOGRAPHY_THRESHOLDS = (1, 3, 5)
PATCH_SIZE = 16  # a 32x32 patch gives about the same scores at 6 times the cost
AGREEMENT_PX = 1.0

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
