"""Synthetic pairs: folders, bad files, geometry against OpenCV's warp, masks, texture rejection, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from keynet.errors import InputError
from trainer.data import PairDataset, find_images, generate_pairs, load_photographs

NO_PHOTOMETRY = {"contrast": (1.0, 1.0), "brightness": (0.0, 0.0), "hue_deg": (0.0, 0.0)}


def textured(size=(160, 200), seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
    return cv2.resize(noise, size[::-1], interpolation=cv2.INTER_CUBIC)


@pytest.fixture
def photo_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "one.PNG"), textured(seed=1))
    cv2.imwrite(str(tmp_path / "sub" / "two.jpg"), textured(seed=2))
    cv2.imwrite(str(tmp_path / "sub" / "three.bmp"), textured(seed=3))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_find_images_is_recursive_and_case_insensitive(photo_folder, tmp_path_factory):
    assert sorted(p.name for p in find_images([photo_folder])) == ["one.PNG", "three.bmp", "two.jpg"]
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ValueError, match="no photographs"):
        find_images([empty])
    with pytest.raises(InputError, match="does not exist"):
        find_images([empty / "missing"])


def test_corrupt_files_are_skipped_with_a_count_and_small_images_upscaled(photo_folder):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (photo_folder / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        photos = load_photographs(find_images([photo_folder]), crop=96)
    assert len(photos) == 3
    assert all(min(p.shape[:2]) >= 192 for p in photos)  # 160 px photographs upscaled to twice the crop
    with pytest.raises(ValueError, match="none of the 1"), pytest.warns(UserWarning):
        load_photographs([photo_folder / "broken.jpg"], crop=96)


def test_image_b_is_image_a_warped_by_the_homography_and_the_mask_is_the_common_area(photo_folder):
    photos = load_photographs(find_images([photo_folder]), crop=64)
    pairs = PairDataset(photos, 12, seed=3, crop=64, **NO_PHOTOMETRY)
    for i in range(len(pairs)):
        a, b, h, mask = (t.numpy() for t in pairs[i])
        a, b, mask = a[0], b[0], mask[0]
        # OpenCV's warp of a by H, where the whole 2x2 interpolation footprint lies inside a.
        warped = cv2.warpPerspective(a.astype(np.float32), h, (64, 64), flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(np.ones((64, 64), np.float32), h, (64, 64), flags=cv2.INTER_LINEAR)
        inside = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert inside.sum() > 20
        assert np.abs(warped[inside] - b[inside]).mean() < 1.0
        # The mask: pixels of a whose image under H lies in b.
        ys, xs = np.mgrid[:64, :64]
        q = np.stack([xs.ravel(), ys.ravel(), np.ones(64 * 64)]) .T @ h.T.astype(float)
        q = q[:, :2] / q[:, 2:]
        in_b = ((q > -0.5) & (q < 63.5)).all(1).reshape(64, 64)
        assert mask.mean() >= 0.05
        assert (mask.astype(bool) & ~in_b).sum() == 0
        assert (in_b & ~mask.astype(bool)).sum() <= 0.1 * in_b.sum()  # only the 1-pixel erosion of b's edge


def test_pairs_are_seeded_textured_and_the_same_in_parallel_workers(photo_folder):
    photos = load_photographs(find_images([photo_folder]), crop=64) + [np.full((128, 128, 3), 120, np.uint8)]
    dataset = PairDataset(photos, 6, seed=7, crop=64)
    again = PairDataset(photos, 6, seed=7, crop=64)
    for x, y in zip(dataset[4], again[4]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(dataset[4][0], PairDataset(photos, 6, seed=8, crop=64)[4][0])
    serial, parallel = generate_pairs(dataset), generate_pairs(dataset, workers=2)
    assert serial.a.shape == (6, 1, 64, 64) and serial.a.dtype == torch.uint8
    for x, y in zip((serial.a, serial.b, serial.h_ab, serial.mask), (parallel.a, parallel.b, parallel.h_ab,
                                                                  parallel.mask)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert float(serial.a.float().std((1, 2, 3)).min()) > 5  # the flat photograph never gives a pair
    a, b, h, mask = serial.batch(slice(0, 2))
    assert a.dtype == torch.float32 and float(a.max()) <= 1.0 and h.shape == (2, 3, 3)
