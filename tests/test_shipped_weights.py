"""The weights we ship: plain data loadable with weights_only, their architecture and model card, the defaults,
and a detector that finds repeatable points under a known homography."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from keynet.demo import make_target
from keynet.detect import KeyNetDetector
from keynet.errors import WeightsError
from keynet.metrics import common_region_masks, repeatability, select_in_mask
from keynet.model import build_model
from keynet.weights import default_weights, load_model, resolve_weights

from .conftest import REPO

WEIGHTS = REPO / "assets" / "weights"
ARCHITECTURES = ["keynet", "tiny_keynet"]
CARD_KEYS = {"data", "epochs", "best_epoch", "date", "command", "machine", "training_seconds", "config", "benchmark"}
EVALUATION_FOLDERS = ("hpatches", "oxford", "eval_sequences", "video")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shipped_file_is_plain_data_with_its_architecture_and_model_card(architecture):
    path = WEIGHTS / f"{architecture}.pt"
    assert path.is_file(), f"{path} must ship with the repository"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == architecture
    assert raw["config"] == build_model(architecture).conf
    card = raw["model_card"]
    assert CARD_KEYS <= set(card), f"model card lacks {sorted(CARD_KEYS - set(card))}"
    assert "train_images" in card["data"] and not any(f"/{name}" in card["data"] for name in EVALUATION_FOLDERS)
    assert "--out" in card["command"] and ("--tiny" in card["command"]) == (architecture == "tiny_keynet")
    assert (WEIGHTS / "README.md").read_text(encoding="utf-8").count(card["command"]) == 1


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shipped_weights_are_the_default(architecture):
    path = WEIGHTS / f"{architecture}.pt"
    assert default_weights(architecture) == path
    assert resolve_weights(None, architecture) == path


def test_without_weights_or_shipped_ones_the_error_says_to_pass_them(monkeypatch):
    import keynet.weights

    monkeypatch.setattr(keynet.weights, "default_weights", lambda architecture="keynet": None)
    with pytest.raises(WeightsError, match="pass --weights FILE"):
        resolve_weights(None, "tiny_keynet")


def random_circles(rng: np.random.Generator, n: int, mask: np.ndarray) -> np.ndarray:
    """``n`` circles of a keypoint's size (radius 11) at uniformly random places of ``mask``: chance level."""
    ys, xs = np.nonzero(mask)
    pick = rng.choice(len(xs), n, replace=False)
    return np.column_stack([xs[pick], ys[pick], np.full(n, 11.0)]).astype(np.float64)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shipped_detector_is_repeatable_under_a_known_homography(architecture):
    image = cv2.cvtColor(make_target((480, 360), seed=3), cv2.COLOR_BGR2GRAY)
    h = np.array([[0.85, -0.2, 60.0], [0.15, 0.9, 30.0], [2e-4, -1e-4, 1.0]])
    warped = cv2.warpPerspective(image, h, (480, 360), flags=cv2.INTER_CUBIC)
    detector = KeyNetDetector(load_model(WEIGHTS / f"{architecture}.pt"), num_keypoints=300, multi_scale=False)
    (kps1,), (kps2,) = detector.detect(image), detector.detect(warped)
    mask1, mask2 = common_region_masks(h, image.shape, warped.shape)
    circles = []
    for kps, mask in ((kps1, mask1), (kps2, mask2)):
        arr = kps.numpy()
        chosen = arr[select_in_mask(arr, mask, 200)]
        circles.append(np.column_stack([chosen[:, :2], chosen[:, 2] * kps.size_multiplier / 2]))
    ours = repeatability(*circles, h).repeatability_l
    rng = np.random.default_rng(0)
    chance = repeatability(random_circles(rng, len(circles[0]), mask1),
                           random_circles(rng, len(circles[1]), mask2), h).repeatability_l
    assert ours >= 50 and ours > chance + 20, (ours, chance)
