"""Descriptors at Key.Net keypoints: OpenCV and kornia references, HardNet weights files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from kornia.feature import HardNet

from keynet.describe import DESCRIPTORS, Describer, intensity_centroid_angles
from keynet.detect import Keypoints
from keynet.errors import OptionError, WeightsError
from keynet.match import distance_matrix, mutual_nn_ratio


def keypoints(xy) -> Keypoints:
    xy = torch.tensor(xy, dtype=torch.float32)
    return Keypoints(xy, torch.ones(len(xy)), torch.linspace(1, 0.5, len(xy)))


def blurred_noise(seed: int, shape: tuple[int, int], sigma: float, kernel: int = 0) -> np.ndarray:
    """(H, W) uint8 random noise blurred by a Gaussian (``kernel`` 0: sized from ``sigma``)."""
    noise = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return cv2.GaussianBlur(noise, (kernel, kernel), sigma)


@pytest.fixture
def image():
    return blurred_noise(0, (120, 160), 1, kernel=5)


@pytest.mark.parametrize("oriented", [False, True])
def test_orb_equals_opencv_on_the_same_keypoints(image, oriented):
    kps = keypoints([[2, 2], [60, 50], [100, 70]])
    d = Describer(descriptor="orb", oriented=oriented)(image, kps)
    assert d.binary and d.index.tolist() == [1, 2]  # the border point has no descriptor
    orb = cv2.ORB_create(edgeThreshold=15, patchSize=31)
    angles = intensity_centroid_angles(image, np.array([[60, 50], [100, 70]])) if oriented else [0, 0]
    _, ref = orb.compute(image, [cv2.KeyPoint(60, 50, 22, float(angles[0])), cv2.KeyPoint(100, 70, 22, float(angles[1]))])
    np.testing.assert_array_equal(d.data.numpy(), ref)


@pytest.mark.parametrize("name", ["brisk", "sift", "patch_sift"])
def test_every_descriptor_gives_one_row_per_kept_point(image, name):
    if name not in DESCRIPTORS:
        pytest.skip(f"{name} is not in this OpenCV build ({cv2.__version__})")
    d = Describer(descriptor=name)(image, keypoints([[60, 50], [100, 70]]))
    assert len(d) == d.data.shape[0] == 2
    if not d.binary:
        np.testing.assert_allclose(d.data.norm(dim=1).numpy(), 1, atol=1e-5)


def test_hardnet_from_a_weights_file(image, tmp_path):
    torch.manual_seed(0)
    net = HardNet(pretrained=False)
    torch.save(net.state_dict(), tmp_path / "hardnet.pth")
    d = Describer(descriptor="hardnet", weights=str(tmp_path / "hardnet.pth"))(image, keypoints([[60, 50]]))
    assert d.data.shape == (1, 128)
    (tmp_path / "bad.pth").write_bytes(b"nonsense")
    with pytest.raises(WeightsError, match="bad.pth"):
        Describer(descriptor="hardnet", weights=str(tmp_path / "bad.pth"))
    with pytest.raises(WeightsError, match="HardNet weights file .*missing.pth does not exist"):
        Describer(descriptor="hardnet", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(OptionError, match="weights file"):
        Describer(descriptor="hardnet")


def test_unknown_descriptor():
    with pytest.raises(OptionError, match="orb"):
        Describer(descriptor="surf")
    assert "patch_sift" in DESCRIPTORS


def rotated_clockwise(image: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image turned 90 degrees clockwise (exactly, pixel for pixel) and the points' places in it."""
    h = image.shape[0]
    return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), np.column_stack([h - 1 - xy[:, 1], xy[:, 0]])


@pytest.fixture
def textured():
    return blurred_noise(1, (200, 240), 2.5)


def corners(image: np.ndarray, n: int = 60) -> np.ndarray:
    pts = cv2.goodFeaturesToTrack(image, n, 0.01, 8, mask=None)[:, 0]
    keep = (pts[:, 0] > 24) & (pts[:, 0] < image.shape[1] - 24) & (pts[:, 1] > 24) & (pts[:, 1] < image.shape[0] - 24)
    return np.rint(pts[keep]).astype(np.float32)


def test_intensity_centroid_angle_turns_with_the_image(textured):
    xy = corners(textured)
    turned, xy2 = rotated_clockwise(textured, xy)
    before, after = intensity_centroid_angles(textured, xy), intensity_centroid_angles(turned, xy2)
    # (dx, dy) -> (-dy, dx) under the clockwise turn (y down): every angle grows by exactly 90 degrees
    np.testing.assert_allclose((after - before) % 360, 90, atol=1e-3)
    kps = cv2.ORB_create(edgeThreshold=31, patchSize=31, nlevels=1, fastThreshold=5).detect(textured, None)  # at whole pixels
    ours = intensity_centroid_angles(textured, np.array([k.pt for k in kps], np.float32))
    diff = np.abs((ours - np.array([k.angle for k in kps]) + 180) % 360 - 180)
    assert len(kps) > 50 and diff.max() < 0.5, diff  # ORB's own orientation (its fastAtan2 is within 0.3 deg)


@pytest.mark.parametrize("name", ["orb", "sift", "patch_sift"])
def test_oriented_descriptors_match_across_a_quarter_turn(textured, name):
    xy = corners(textured)
    turned, xy2 = rotated_clockwise(textured, xy)
    shares = {}
    for oriented in (True, False):
        describer = Describer(descriptor=name, oriented=oriented)
        d1, d2 = describer(textured, keypoints(xy)), describer(turned, keypoints(xy2))
        m, _ = mutual_nn_ratio(distance_matrix(d1, d2), 1.0)
        correct = d1.index[m[:, 0]] == d2.index[m[:, 1]]
        shares[oriented] = correct.sum() / len(xy)
    assert shares[True] >= 0.8 and shares[False] <= 0.3, shares
