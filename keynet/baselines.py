"""The classic pipelines Key.Net is compared with, on the same tracker: ORB and SIFT keypoints as ``Keypoints``.

``pipeline_tracker(kind)`` builds the ``PlanarTracker`` of one of ``PIPELINES`` the way ``bench/tracking.py`` does:
Key.Net or Tiny-Key.Net with the shipped weights and the tracking detector, or OpenCV's ORB or SIFT detector with
its own descriptor; every other setting is ``TrackerConfig``'s.

    >>> from keynet.baselines import pipeline_tracker
    >>> tracker = pipeline_tracker("orb")       # then tracker.add_target(image); tracker.process(frame)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .config import TrackerConfig
from .describe import Describer
from .detect import Keypoints
from .errors import InputError, OptionError, WeightsError
from .tracker import PlanarTracker, tracking_detector
from .weights import default_weights, load_model

OPENCV_DETECTORS = ("orb", "sift")
KEYNET_PIPELINES = ("keynet", "tiny_keynet")
PIPELINES: dict[str, str] = {"keynet": "Key.Net", "tiny_keynet": "Tiny-Key.Net", "orb": "ORB", "sift": "SIFT"}
OPENCV_SIZE_PER_SCALE = 22.0  # an OpenCV keypoint's size (px) at scale 1, as Keypoints.size_multiplier


class OpenCVDetector:
    """ORB or SIFT keypoints as ``Keypoints`` (scale = size / 22), so the tracker runs unchanged on them.

    ``detect`` returns one ``Keypoints`` (the full image; no pyramid levels of ours), the ``num_keypoints``
    strongest by OpenCV's response (SIFT: at most the count it was created with).

    Args:
        name: ``"orb"`` or ``"sift"``.
        num_keypoints: the most keypoints per image.

    Raises:
        InputError: another name.
    """

    def __init__(self, name: str, num_keypoints: int = 500) -> None:
        if name not in OPENCV_DETECTORS:
            raise InputError(f"OpenCV detector {name!r} is not one of {OPENCV_DETECTORS}")
        self.name, self.num = name, num_keypoints
        self.cv = cv2.ORB_create(num_keypoints) if name == "orb" else cv2.SIFT_create(num_keypoints)
        self.device = torch.device("cpu")
        self.min_image_side = 32

    def detect(self, image: np.ndarray, num_keypoints: int | None = None) -> list[Keypoints]:
        """Keypoints of ``image`` ((H, W) grey or (H, W, 3) BGR uint8), strongest first: xy (N, 2), scale (N,),
        score (N,) float32."""
        num = num_keypoints or self.num
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.name == "orb":
            self.cv.setMaxFeatures(num)
        kps = sorted(self.cv.detect(grey, None), key=lambda k: -k.response)[:num]
        xy = torch.tensor([k.pt for k in kps], dtype=torch.float32).reshape(-1, 2)
        scale = torch.tensor([k.size / OPENCV_SIZE_PER_SCALE for k in kps], dtype=torch.float32)
        score = torch.tensor([k.response for k in kps], dtype=torch.float32)
        return [Keypoints(xy, scale, score)]


def available_pipelines() -> list[str]:
    """The ``PIPELINES`` this checkout can build: ORB and SIFT always, Key.Net kinds when their weights ship."""
    return [kind for kind in PIPELINES if kind in OPENCV_DETECTORS or default_weights(kind) is not None]


def pipeline_descriptor(kind: str, config: TrackerConfig | None = None) -> str:
    """The descriptor ``kind``'s tracker uses: the detector's own for ORB and SIFT, else ``config``'s (ORB by
    default, as the benchmark)."""
    return kind if kind in OPENCV_DETECTORS else (config or TrackerConfig()).matching.descriptor


def pipeline_label(kind: str, config: TrackerConfig | None = None) -> str:
    """How views and reports name ``kind``'s pipeline, e.g. ``"Key.Net + ORB"``, ``"SIFT"``."""
    name = PIPELINES[kind]
    return name if kind in OPENCV_DETECTORS else f"{name} + {pipeline_descriptor(kind, config).upper()}"


def pipeline_tracker(kind: str, config: TrackerConfig | None = None, weights: str | Path | None = None) -> \
        PlanarTracker:
    """A tracker without targets for the pipeline ``kind`` (one of ``PIPELINES``) with the settings ``config``
    (default ``TrackerConfig()``; of its detector part, ORB and SIFT use only the keypoint count); a Key.Net kind
    loads ``weights`` (default: the shipped ones).

    Raises:
        OptionError: an unknown kind.
        WeightsError: a Key.Net kind whose weights (default assets/weights/<kind>.pt) are absent or unreadable.
    """
    if kind not in PIPELINES:
        raise OptionError(f"pipeline {kind!r} is not one of {list(PIPELINES)}")
    config = config or TrackerConfig()
    describer = Describer(descriptor=pipeline_descriptor(kind, config))
    if kind in OPENCV_DETECTORS:
        return PlanarTracker(OpenCVDetector(kind, config.detector.num_keypoints), describer, config=config)
    weights = weights or default_weights(kind)
    if weights is None:
        raise WeightsError(f"no shipped weights for {PIPELINES[kind]} (assets/weights/{kind}.pt) in this checkout")
    return PlanarTracker(tracking_detector(load_model(weights, kind), config.detector), describer, config=config)
