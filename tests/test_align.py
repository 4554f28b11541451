"""Photometric alignment: structure tensors, the weighted robust homography fit and align_homography, against
brute-force sums, analytic cases and ground-truth homographies."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from keynet.align import (
    align,
    align_homography,
    fit_homography_weighted,
    local_brightness_transfer,
    relight,
    structure_tensors,
    window_weights,
)
from keynet.config import AlignmentConfig
from keynet.geometry import corners_of, project

H_TRUE = np.array([[1.1, 0.15, 120], [-0.1, 0.95, 90], [2e-4, -1e-4, 1]])
CORNERS = corners_of(320, 240)


def textured(rng: np.random.Generator, low: int = 0, high: int = 255, shape: tuple[int, int] = (240, 320),
             blur: float = 2.0) -> np.ndarray:
    """Smooth random texture in ``low``..``high`` (uint8)."""
    image = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), blur)
    return cv2.normalize(image, None, low, high, cv2.NORM_MINMAX).astype(np.uint8)


def perturbed(rng: np.random.Generator, h: np.ndarray, amount: float) -> np.ndarray:
    """``h`` with each target corner moved by up to ``amount`` px in x and y."""
    moved = project(h, CORNERS) + rng.uniform(-amount, amount, (4, 2))
    return cv2.getPerspectiveTransform(CORNERS, moved.astype(np.float32))


class Scene(NamedTuple):
    """An alignment case: (H, W) uint8 ``target`` and ``frame``, a (3, 3) ``start`` homography, (N, 2) target
    ``points``."""

    rng: np.random.Generator
    target: np.ndarray
    frame: np.ndarray
    start: np.ndarray
    points: np.ndarray


def warped_scene(seed: int, corner_shift: float) -> Scene:
    """A textured target, the 640x480 frame showing it through ``H_TRUE``, a start homography with each corner
    moved by up to ``corner_shift`` px, 150 alignment points inside the target, and the generator that made them."""
    rng = np.random.default_rng(seed)
    target = textured(rng)
    frame = cv2.warpPerspective(target, H_TRUE, (640, 480), flags=cv2.INTER_CUBIC)
    start = perturbed(rng, H_TRUE, corner_shift)
    return Scene(rng, target, frame, start, rng.uniform([20, 20], [300, 220], (150, 2)))


def textureless() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat grey 100x100 target, a translation and the 200x200 frame showing the target through it."""
    target = np.full((100, 100), 128, np.uint8)
    h = np.array([[1.0, 0, 10], [0, 1.0, 5], [0, 0, 1]])
    return target, h, cv2.warpPerspective(target, h, (200, 200))


def corner_error(h: np.ndarray) -> float:
    return float(np.linalg.norm(project(h, CORNERS) - project(H_TRUE, CORNERS), axis=1).max())


def test_structure_tensors_equal_the_windowed_sums_of_scharr_gradients():
    rng = np.random.default_rng(0)
    image = textured(rng, shape=(120, 160), blur=1.0)
    kernel = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], np.float32) / 32
    gx = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.filter2D(image.astype(np.float32), -1, kernel.T, borderType=cv2.BORDER_REFLECT_101)
    points = np.array([[80.2, 60.7], [3.0, 4.0], [158.6, 119.0], [40.0, 100.4]])  # two near the border
    window, r = 11, 5
    got = structure_tensors(image, points, window)
    for (x, y), tensor in zip(np.rint(points).astype(int), got):
        box = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
        sx, sy = gx[box], gy[box]
        expected = [[(sx * sx).sum(), (sx * sy).sum()], [(sx * sy).sum(), (sy * sy).sum()]]
        assert np.allclose(tensor, expected, rtol=1e-4, atol=1e-2)


def test_structure_tensor_of_a_ramp_sees_only_the_gradient_direction():
    image = np.tile(np.arange(0, 200, 2, dtype=np.float32), (60, 1))  # 2 grey levels per pixel along x
    tensor = structure_tensors(image, np.array([[50.0, 30.0]]), 9)[0]
    assert np.allclose(tensor, [[4 * 81, 0], [0, 0]], atol=1e-3)


def test_weighted_fit_recovers_an_exact_homography_from_a_poor_start():
    rng = np.random.default_rng(1)
    src = rng.uniform([0, 0], [320, 240], (60, 2))
    a = rng.normal(size=(60, 2, 2))
    weights = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(2)
    h, inliers = fit_homography_weighted(src, project(H_TRUE, src), weights, perturbed(rng, H_TRUE, 3.0))
    assert corner_error(h) < 1e-6 and inliers.all()


def test_weighted_fit_uses_each_point_only_in_the_direction_it_is_certain():
    # Every point lies on an edge: its position is uncertain along the edge (1 px) and exact across it (0.03 px),
    # as Lucas-Kanade's are. Least squares takes both directions alike; the structure-tensor weights do not.
    rng = np.random.default_rng(2)
    weighted, plain = [], []
    for _ in range(20):
        src = rng.uniform([0, 0], [320, 240], (80, 2))
        angle = rng.uniform(0, np.pi, 80)
        along = np.stack([np.cos(angle), np.sin(angle)], 1)
        across = np.stack([-along[:, 1], along[:, 0]], 1)
        dst = project(H_TRUE, src) + along * rng.normal(0, 1.0, (80, 1)) + across * rng.normal(0, 0.03, (80, 1))
        weights = (across[:, :, None] * across[:, None, :] / 0.03**2 + along[:, :, None] * along[:, None, :])
        least_squares, _ = cv2.findHomography(np.float32(src), np.float32(dst), 0)
        weighted.append(corner_error(fit_homography_weighted(src, dst, weights, least_squares)[0]))
        plain.append(corner_error(least_squares))
    assert np.mean(weighted) < 0.3 * np.mean(plain)


def test_weighted_fit_is_not_pulled_by_outliers():
    rng = np.random.default_rng(3)
    src = rng.uniform([0, 0], [320, 240], (100, 2))
    dst = project(H_TRUE, src) + rng.normal(0, 0.05, (100, 2))
    dst[:15] += rng.uniform(2, 4, (15, 2)) * rng.choice([-1, 1], (15, 2))  # Lucas-Kanade caught on something else
    least_squares, _ = cv2.findHomography(np.float32(src), np.float32(dst), 0)
    h, inliers = fit_homography_weighted(src, dst, np.tile(np.eye(2), (100, 1, 1)), least_squares)
    assert corner_error(least_squares) > 0.3
    assert corner_error(h) < 0.1 and not inliers[:15].any() and inliers[15:].mean() > 0.95


def test_weighted_fit_keeps_the_start_without_enough_information():
    h0 = np.eye(3)
    src = np.random.default_rng(4).uniform(0, 100, (20, 2))
    h, inliers = fit_homography_weighted(src[:5], src[:5], np.tile(np.eye(2), (5, 1, 1)), h0)
    assert h is h0 and not inliers.any()
    h, inliers = fit_homography_weighted(src, src, np.zeros((20, 2, 2)), h0)  # textureless: no weight anywhere
    assert h is h0 and not inliers.any()


def test_alignment_brings_a_perturbed_homography_to_the_true_one():
    _, target, frame, h_start, points = warped_scene(1, 1.5)
    aligned = align_homography(target, frame, h_start, points)
    assert corner_error(h_start) > 1.0 and corner_error(aligned) < 0.1


def test_a_second_pass_brings_back_points_beyond_the_shift_limit():
    # Corners 3-4 px off: many points have to move further than max_shift (2 px) and are left out of the first fit;
    # the second pass starts from it and keeps them.
    _, target, frame, h_start, points = warped_scene(5, 4.0)
    one, two = (align_homography(target, frame, h_start, points, AlignmentConfig(align_passes=p))
                for p in (1, 2))
    assert corner_error(h_start) > 3.0 and corner_error(two) < 0.1 and corner_error(two) < corner_error(one)


def test_alignment_near_the_target_edge_is_not_pulled_by_the_background():
    # Every window reaches past the target's edge, where the frame shows the scene behind it (here bright): the
    # warped target is laid over the frame, not over black, whose edge would drag every window towards it.
    rng = np.random.default_rng(2)
    target = textured(rng)
    frame = np.full((480, 640), 230, np.uint8)
    cv2.warpPerspective(target, H_TRUE, (640, 480), dst=frame, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
    h_start = perturbed(rng, H_TRUE, 1.5)
    edge = np.concatenate([np.stack([rng.uniform(5, 315, 40), rng.choice([4.0, 235.0], 40)], 1),
                           np.stack([rng.choice([4.0, 315.0], 40), rng.uniform(5, 235, 40)], 1)])
    aligned = align_homography(target, frame, h_start, edge)
    assert corner_error(h_start) > 1.0 and corner_error(aligned) < 0.5 * corner_error(h_start)


def test_alignment_is_not_biased_by_a_change_of_lighting():
    # The frame is darker on the left than on the right, and brighter overall, than the target (a lamp beside the
    # poster, an exposure change): a brightness difference biases Lucas-Kanade unless it is compensated.
    rng = np.random.default_rng(3)
    target = textured(rng, 40, 200)
    frame = cv2.warpPerspective(target, H_TRUE, (640, 480), flags=cv2.INTER_CUBIC).astype(np.float32)
    frame = np.clip(frame * np.linspace(0.6, 1.3, 640, dtype=np.float32)[None] + 25, 0, 255).astype(np.uint8)
    aligned = align_homography(target, frame, perturbed(rng, H_TRUE, 1.5), rng.uniform([20, 20], [300, 220], (150, 2)))
    assert corner_error(aligned) < 0.15


def test_local_brightness_follows_a_slow_lighting_change_and_keeps_the_texture():
    rng = np.random.default_rng(4)
    image = textured(rng, 60, 180, blur=1.5)
    ramp = np.linspace(0.7, 1.2, 320, dtype=np.float32)[None]
    reference = np.clip(image * ramp + 20, 0, 255).astype(np.uint8)
    out = relight(image, *local_brightness_transfer(image, reference, np.ones(image.shape, bool)))
    error = np.abs(out.astype(np.float32) - reference)[16:-16, 16:-16]
    assert error.mean() < 2.0 and np.abs(image.astype(np.float32) - reference)[16:-16, 16:-16].mean() > 10


def test_alignment_keeps_the_homography_on_a_textureless_target():
    target, h, frame = textureless()
    assert np.allclose(align_homography(target, frame, h, np.random.default_rng(0).uniform(10, 90, (30, 2))), h)


def test_align_reports_the_refit_residual_or_none_when_it_keeps_the_start():
    rng, target, frame, h_start, points = warped_scene(1, 1.5)
    found = align(target, frame, h_start, points)
    assert found.residual_px is not None and found.residual_px < 0.1 and found.inliers > 100
    flat, h, flat_frame = textureless()
    kept = align(flat, flat_frame, h, rng.uniform(10, 90, (30, 2)))
    assert kept.residual_px is None and kept.homography is h


def test_window_weights_at_a_reduced_size_keep_the_directions():
    rng = np.random.default_rng(6)
    image = np.zeros((240, 320), np.uint8)
    for _ in range(12):  # lines of every direction: windows with one dominant gradient direction, and corners
        a, b = rng.uniform(0, [320, 240], (2, 2)).astype(int)
        cv2.line(image, tuple(int(v) for v in a), tuple(int(v) for v in b), int(rng.integers(80, 255)), 3)
    image = cv2.GaussianBlur(image, (0, 0), 1.5)
    points = rng.uniform([30, 30], [290, 210], (200, 2))
    full = structure_tensors(image, points, 31)
    assert np.array_equal(window_weights(image, points, 31, step=1), full)
    half = window_weights(image, points, 31, step=2)

    def orientation(t: np.ndarray) -> np.ndarray:  # the dominant gradient direction (mod pi) and its strength share
        return np.stack([0.5 * np.arctan2(2 * t[:, 0, 1], t[:, 0, 0] - t[:, 1, 1]),
                         np.hypot(t[:, 0, 0] - t[:, 1, 1], 2 * t[:, 0, 1]) / np.maximum(np.trace(t, axis1=1, axis2=2), 1e-9)], 1)

    a, b = orientation(full), orientation(half)
    turn = np.abs((a[:, 0] - b[:, 0] + np.pi / 2) % np.pi - np.pi / 2)
    oriented = a[:, 1] > 0.3
    assert oriented.sum() > 20 and np.median(turn[oriented]) < np.radians(10)
    assert np.median(np.abs(a[oriented, 1] - b[oriented, 1])) < 0.1  # (a few windows empty at the reduced size)
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (60, 1))
    edge_only = window_weights(ramp, np.array([[50.0, 30.0]]), 9, step=2)[0]
    assert edge_only[0, 0] > 0 and abs(edge_only[0, 1]) < 1e-6 and abs(edge_only[1, 1]) < 1e-6


def test_a_converged_first_pass_is_the_last():
    _, target, frame, h_start, points = warped_scene(1, 0.3)  # the first pass moves no corner by 1 px
    one = align_homography(target, frame, h_start, points, AlignmentConfig(align_passes=1))
    converged = align_homography(target, frame, h_start, points, AlignmentConfig(align_converged_px=1.0))
    two = align_homography(target, frame, h_start, points, AlignmentConfig(align_converged_px=0.0))
    assert np.array_equal(converged, one) and not np.array_equal(two, one)
    assert corner_error(one) < 0.1 and corner_error(two) < 0.1
