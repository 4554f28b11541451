"""The benchmark's detectors behind one interface: ours, the authors' Key.Net, kornia's, OpenCV's, random points.

A detector (``Detector``) maps a BGR/grey image to an (N, 4) float array of x, y, region radius (D / 2) and score,
best first, at most ``CANDIDATES`` (1,500) rows. A keypoint is a circle of the detector's own region diameter D:
Key.Net 22 x its level's
scale (kornia's ``s_mult``), SIFT 3 x ``KeyPoint.size`` (the extent its own descriptor samples), ORB
``KeyPoint.size`` / 2 (its 31-pixel BRIEF patch is 2D wide), FAST and GFTT/Harris a fixed 22 px (Key.Net's at
scale 1). Repeatability only uses ratios of diameters, so these constants matter for the descriptor alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.feature import KeyNetDetector as KorniaKeyNetDetector
from kornia.feature import get_laf_center, get_laf_scale

from keynet.detect import KeyNetDetector
from keynet.image import to_grey_tensor
from keynet.weights import default_weights, load_checkpoint, load_model, weights_digest

REPO = Path(__file__).resolve().parent.parent
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
CANDIDATES = 1500  # keypoints each detector gives per image
FIXED_DIAMETER = 22.0  # region diameter given to detectors without a scale (Key.Net's at scale 1)
SIFT_DIAMETER = 3.0  # x KeyPoint.size: the extent of SIFT's own descriptor (6 x size wide, as kornia-moons' mrSize)
ORB_DIAMETER = 0.5  # x KeyPoint.size: ORB describes a patch KeyPoint.size wide

AUTHORS, KORNIA = "Key.Net-SI (authors)", "kornia KeyNetDetector (authors)"
RANDOM = "random points (chance level)"

# A detector maps a BGR/grey image to an (N, 4) float array of x, y, region radius (D / 2), score, best first.
Detector = Callable[[np.ndarray], np.ndarray]


def keynet_detector(model: torch.nn.Module, multi_scale: bool, mode: str) -> Detector:
    """Our ``KeyNetDetector``, multi-scale (SI) or single-scale (TI), in inference ``mode``; D = its keypoint size."""
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
