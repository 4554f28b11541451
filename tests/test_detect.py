"""Detection: NMS, borders, top-K, the authors' multi-scale budget, conversions, batches and fast-mode agreement."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from kornia.feature import KeyNetDetector as KorniaKeyNetDetector

from keynet.demo import demo_sequence
from keynet.detect import KeyNetDetector, level_budgets
from keynet.image import to_grey_tensor
from keynet.maxima import local_maxima, ring_max, subpixel_peaks, window_max
from keynet.weights import default_weights, load_checkpoint, load_model

from .conftest import DATA, SHARED, TEST_IMAGE, require_shared


def peaks(shape, points):
    """A (1, 1, H, W) map of zeros with the given (x, y, value) peaks."""
    r = torch.zeros(1, 1, *shape)
    for x, y, v in points:
        r[0, 0, y, x] = v
    return r


def test_a_single_peak_gives_one_keypoint_at_its_pixel():
    xy, score = local_maxima(peaks((60, 80), [(40, 25, 3.0)]), nms_size=15, border=15, threshold=0.0)[0]
    assert xy.tolist() == [[40, 25]] and score.tolist() == [3.0]


def test_subpixel_peaks_recover_the_vertex_of_a_sampled_paraboloid():
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
    truth = [(20.3, 11.8), (7.55, 30.45)]
    r = torch.full((40, 50), -1e6)
    for x0, y0 in truth:  # each peak a paraboloid (a parabola per axis: the fit is exact) in its own 9x9 box
        box = (xs - round(x0)).abs().le(4) & (ys - round(y0)).abs().le(4)
        r = torch.where(box, 100 - (xs - x0) ** 2 - 0.5 * (ys - y0) ** 2, r)
    xy, _ = local_maxima(r[None, None], 5, 0, 0.0)[0]
    refined = subpixel_peaks(r, xy)
    expected = torch.tensor(sorted(truth, key=lambda p: p[0]))
    assert torch.allclose(refined[refined[:, 0].argsort()], expected, atol=1e-4)


def test_subpixel_offsets_stay_within_half_a_pixel_and_at_the_border():
    r = torch.zeros(5, 5)
    r[0, 4], r[0, 3] = 1.0, 0.99  # a corner peak with a near-equal neighbour: no neighbour beyond the border
    refined = subpixel_peaks(r, torch.tensor([[4, 0]]))
    assert refined.tolist() == [[4.0, 0.0]]
    r[2, 2], r[2, 1], r[2, 3] = 1.0, 1.0 - 1e-7, 0.0  # a flat-topped peak: the shift is capped at half a pixel
    assert 1.5 <= subpixel_peaks(r, torch.tensor([[2, 2]]))[0, 0] < 2


def test_a_weaker_peak_inside_the_window_is_suppressed_and_one_outside_is_kept():
    r = peaks((60, 80), [(30, 30, 5.0), (36, 30, 4.0), (50, 30, 2.0)])  # 6 px apart (< 7), then 20 px
    xy, score = local_maxima(r, 15, 15, 0.0)[0]
    assert xy.tolist() == [[30, 30], [50, 30]] and score.tolist() == [5.0, 2.0]


def test_a_plateau_is_not_a_maximum():
    r = torch.full((1, 1, 60, 80), 1.5)
    assert len(local_maxima(r, 15, 15, 0.0)[0][0]) == 0


def test_two_equal_peaks_in_one_window_are_both_ties_and_dropped():
    r = peaks((60, 80), [(30, 30, 5.0), (35, 33, 5.0), (60, 30, 1.0)])
    xy, _ = local_maxima(r, 15, 15, 0.0)[0]
    assert xy.tolist() == [[60, 30]]


def test_window_max_matches_max_pool():
    r = torch.randn(2, 1, 37, 53)
    torch.testing.assert_close(window_max(r, 15), torch.nn.functional.max_pool2d(r, 15, 1, 7))


def test_ring_max_is_the_max_of_the_eight_neighbours():
    r = torch.randint(0, 4, (2, 1, 9, 11)).float()
    padded = torch.nn.functional.pad(r, (1, 1, 1, 1), value=float("-inf"))
    want = torch.full_like(r, float("-inf"))
    for dy in range(3):
        for dx in range(3):
            if (dy, dx) != (1, 1):
                want = torch.maximum(want, padded[..., dy:dy + 9, dx:dx + 11])
    torch.testing.assert_close(ring_max(r), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the CPU's numba pass; the torch ops of GPUs
@pytest.mark.parametrize("nms_size", [3, 5, 9])
def test_strict_maxima_match_an_exhaustive_search(dtype, nms_size):
    r = torch.randint(0, 6, (2, 1, 40, 50)).to(dtype)  # many exact ties
    rad = nms_size // 2
    for j, (xy, score) in enumerate(local_maxima(r, nms_size, 3, 0.0)):
        want = set()
        for y in range(3, 37):
            for x in range(3, 47):
                window = r[j, 0, max(0, y - rad) : y + rad + 1, max(0, x - rad) : x + rad + 1]
                v = r[j, 0, y, x]
                if v > 0 and (window == v).sum() == 1 and v == window.max():
                    want.add((x, y))
        assert set(map(tuple, xy.tolist())) == want
        assert len(xy) == len(set(map(tuple, xy.tolist())))
        assert torch.all(score[:-1] >= score[1:])


def test_border_and_threshold_remove_points():
    r = peaks((60, 80), [(5, 30, 9.0), (40, 30, 0.5), (60, 30, 2.0)])
    xy, _ = local_maxima(r, 15, 15, threshold=1.0)[0]
    assert xy.tolist() == [[60, 30]]


def test_nms_size_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        local_maxima(torch.zeros(1, 1, 40, 40), 4, 0, 0.0)


def test_level_budgets_reproduce_the_authors_keypoint_file(test_image):
    # The authors' multi-scale extraction wrote this file with 1500 points, 1 level up and 4 down, factor sqrt 2.
    authors = np.load(require_shared(SHARED / "reference" / "keynet_official" / "test_im_tf_keypoints.npy"))
    scales, counts = np.unique(np.round(authors[:, 2], 3), return_counts=True)
    assert level_budgets(1500, 6, 1, math.sqrt(2)) == counts[np.argsort(scales)].tolist()


@pytest.fixture(scope="module")
def authors_model():
    return load_model(require_shared(SHARED / "reference" / "keynet_official" / "keynet_pytorch.pth"))


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_multi_scale_returns_the_number_of_keypoints_asked_for(k):
    image = np.random.default_rng(0).integers(0, 255, (240, 320), np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 1.5)
    kps = KeyNetDetector(load_model(default_weights()), num_keypoints=k).detect(image)[0]
    assert len(kps) == k and torch.all(kps.score[:-1] >= kps.score[1:])


def test_multi_scale_shares_points_out_per_level(authors_model):
    image = cv2.imread(str(require_shared(TEST_IMAGE)))
    kps = KeyNetDetector(authors_model, num_keypoints=1500).detect(image)[0]
    scales, counts = np.unique(kps.scale.numpy(), return_counts=True)
    np.testing.assert_allclose(scales, [2**-0.5, 1, 2**0.5, 2, 2**1.5, 4], rtol=1e-6)
    budgets = level_budgets(1500, 6, 1, math.sqrt(2))  # the authors' shares, rounded down: 1496 in all
    assert np.all(counts >= budgets) and counts.sum() == 1500  # the rest from the best maxima left on any level
    assert torch.all(kps.score[:-1] >= kps.score[1:])
    h, w = image.shape[:2]
    assert kps.xy[:, 0].min() >= 15 * 2**-0.5 and kps.xy[:, 0].max() < w - 10
    assert kps.xy[:, 1].min() >= 15 * 2**-0.5 and kps.xy[:, 1].max() < h - 10


def test_single_scale_matches_kornia_on_one_level(authors_model, authors_weights):
    # kornia's detector on the image level alone (same strict NMS, same 15 px border) is an independent reference.
    image = cv2.imread(str(require_shared(TEST_IMAGE)))
    ours = KeyNetDetector(authors_model, num_keypoints=500, multi_scale=False).detect(image)[0]
    kornia = KorniaKeyNetDetector(pretrained=False, num_features=500).eval()
    kornia.model.load_state_dict(load_checkpoint(authors_weights)["state_dict"])
    with torch.no_grad():
        scores, lafs = kornia.detect_features_on_single_level(to_grey_tensor(image), 500, (1.0, 1.0))
    theirs = lafs[0, :, :, 2][scores.view(-1) > 0]
    assert len(ours) == len(theirs) == 500
    assert set(map(tuple, ours.xy.int().tolist())) == set(map(tuple, theirs.int().tolist()))


def test_batches_give_the_same_keypoints_as_single_images(authors_model):
    a = cv2.imread(str(require_shared(DATA / "oxford" / "leuven" / "img1.ppm")))[:320, :400]
    b = cv2.imread(str(require_shared(DATA / "oxford" / "leuven" / "img2.ppm")))[:320, :400]
    detector = KeyNetDetector(authors_model, num_keypoints=300)
    batch = to_grey_tensor(torch.from_numpy(np.stack([a, b])[..., ::-1].copy()).permute(0, 3, 1, 2))
    together = detector.detect(batch)
    for image, kps in zip((a, b), together):
        alone = detector.detect(image)[0]
        torch.testing.assert_close(kps.xy, alone.xy)
        torch.testing.assert_close(kps.score, alone.score, rtol=1e-5, atol=1e-3)


def test_conversions_to_opencv_and_kornia(authors_model):
    image = cv2.imread(str(require_shared(TEST_IMAGE)))
    kps = KeyNetDetector(authors_model, num_keypoints=50, multi_scale=False).detect(image)[0]
    cv_kps = kps.to_cv2()
    assert len(cv_kps) == 50
    np.testing.assert_allclose([k.pt for k in cv_kps], kps.xy.numpy(), rtol=1e-6)
    np.testing.assert_allclose([k.size for k in cv_kps], kps.sizes.numpy(), rtol=1e-6)
    np.testing.assert_allclose([k.response for k in cv_kps], kps.score.numpy(), rtol=1e-6)
    from kornia.feature import get_laf_center, get_laf_scale

    laf = kps.to_laf()
    assert laf.shape == (1, 50, 2, 3)
    torch.testing.assert_close(get_laf_center(laf)[0], kps.xy)
    torch.testing.assert_close(get_laf_scale(laf)[0, :, 0, 0], kps.sizes)


@pytest.mark.parametrize("multi_scale", [True, False])
def test_fast_mode_keeps_95_percent_of_exact_keypoints(authors_model, multi_scale):
    paths = [TEST_IMAGE, DATA / "oxford" / "leuven" / "img1.ppm", DATA / "train_photos" / "lightglue_sacre_coeur1.jpg"]
    exact = KeyNetDetector(authors_model, num_keypoints=1000, multi_scale=multi_scale, mode="exact")
    fast = KeyNetDetector(authors_model, num_keypoints=1000, multi_scale=multi_scale, mode="fast")
    for path in paths:
        image = cv2.imread(str(require_shared(path)))
        e, f = exact.detect(image)[0], fast.detect(image)[0]
        kept = (torch.cdist(e.xy, f.xy).min(1).values <= 1.0).float().mean()
        assert kept >= 0.95, (path, float(kept))


def test_region_boxes_grow_snap_clip_and_merge():
    from keynet.detect import REGION_GRID, merged_boxes

    boxes = merged_boxes([(100, 100, 200, 200), (190, 150, 300, 260), (500, 10, 520, 30)], (640, 480), 24, 40)
    assert len(boxes) == 2
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = sorted(boxes)
    assert ax0 % REGION_GRID == 0 and ay0 % REGION_GRID == 0 and ax0 <= 76 and ay0 <= 76
    assert (ax1, ay1) == (324, 284)  # the union of the first two, grown by 24
    assert bx1 - bx0 >= 40 and by0 == 0 and bx1 <= 640  # a small box near the top: at least 40 px, clipped


def test_detection_in_regions_finds_the_full_frames_keypoints_there():
    frame = cv2.imread(str(sorted(demo_sequence().frames.iterdir())[40]))
    detector = KeyNetDetector(load_model(default_weights()), multi_scale=False, subpixel=True, nms_size=9,
                              num_keypoints=100_000)
    regions = [(150, 100, 450, 330), (400, 250, 600, 420)]
    full = detector.detect(frame)[0].xy.numpy()
    inside = np.zeros(len(full), bool)
    for x0, y0, x1, y1 in regions:
        inside |= (full[:, 0] >= x0) & (full[:, 0] < x1) & (full[:, 1] >= y0) & (full[:, 1] < y1)
    found = detector.detect_in_regions(frame, regions)
    assert len(found) == pytest.approx(inside.sum(), rel=0.05)
    distance = np.linalg.norm(full[inside][:, None] - found.xy.numpy()[None], axis=2).min(1)
    assert np.mean(distance < 1) >= 0.95
    assert torch.all(found.score[:-1] >= found.score[1:]) and len(detector.detect_in_regions(frame, regions, 7)) == 7
