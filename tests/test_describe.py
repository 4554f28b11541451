"""Descriptors at Key.Net keypoints: OpenCV and kornia references, HardNet weights files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from kornia.feature import HardNet

from keynet.describe import DESCRIPTORS, Describer
from keynet.detect import Keypoints


def keypoints(xy) -> Keypoints:
    xy = torch.tensor(xy, dtype=torch.float32)
    return Keypoints(xy, torch.ones(len(xy)), torch.linspace(1, 0.5, len(xy)))


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (120, 160), dtype=np.uint8), (5, 5), 1)


def test_orb_equals_opencv_on_the_same_keypoints(image):
    kps = keypoints([[2, 2], [60, 50], [100, 70]])
    d = Describer(descriptor="orb")(image, kps)
    assert d.binary and d.index.tolist() == [1, 2]  # the border point has no descriptor
    orb = cv2.ORB_create(edgeThreshold=15, patchSize=31)
    _, ref = orb.compute(image, [cv2.KeyPoint(60, 50, 22, 0), cv2.KeyPoint(100, 70, 22, 0)])
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
    with pytest.raises(ValueError, match="bad.pth"):
        Describer(descriptor="hardnet", weights=str(tmp_path / "bad.pth"))
    with pytest.raises(ValueError, match="weights file"):
        Describer(descriptor="hardnet")


def test_unknown_descriptor():
    with pytest.raises(ValueError, match="orb"):
        Describer(descriptor="surf")
    assert "patch_sift" in DESCRIPTORS
