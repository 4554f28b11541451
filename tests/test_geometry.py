"""Homography estimation, plausibility checks, intrinsics and pose against analytic references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.geometry import (
    Camera,
    align_homography,
    corners_of,
    estimate_homography,
    implausible,
    match_local_brightness,
    pose_from_homography,
    project,
)


def test_homography_recovered_with_outliers():
    rng = np.random.default_rng(0)
    h_true = np.array([[0.9, 0.1, 30], [-0.05, 1.1, 20], [1e-4, 2e-4, 1]])
    src = rng.uniform(0, 400, (200, 2))
    dst = project(h_true, src) + rng.normal(0, 0.3, (200, 2))
    dst[:60] = rng.uniform(0, 400, (60, 2))
    h, inliers = estimate_homography(src, dst, 3.0)
    assert inliers[60:].mean() > 0.95 and inliers[:60].mean() < 0.1
    c = corners_of(400, 300)
    assert np.abs(project(h, c) - project(h_true, c)).max() < 1.0


def test_alignment_brings_a_perturbed_homography_to_the_true_one():
    rng = np.random.default_rng(1)
    target = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.float32), (0, 0), 2.0)
    target = cv2.normalize(target, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    h_true = np.array([[1.1, 0.15, 120], [-0.1, 0.95, 90], [2e-4, -1e-4, 1]])
    frame = cv2.warpPerspective(target, h_true, (640, 480), flags=cv2.INTER_CUBIC)
    c = corners_of(320, 240)
    h_start = cv2.getPerspectiveTransform(c, (project(h_true, c) + rng.uniform(-1.5, 1.5, (4, 2))).astype(np.float32))
    points = rng.uniform([20, 20], [300, 220], (150, 2))
    aligned = align_homography(target, frame, h_start, points)
    before = np.linalg.norm(project(h_start, c) - project(h_true, c), axis=1).max()
    after = np.linalg.norm(project(aligned, c) - project(h_true, c), axis=1).max()
    assert before > 1.0 and after < 0.15


def test_alignment_near_the_target_edge_is_not_pulled_by_the_background():
    # Every window reaches past the target's edge, where the frame shows the scene behind it (here bright): the
    # warped target is laid over the frame, not over black, whose edge would drag every window towards it.
    rng = np.random.default_rng(2)
    target = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.float32), (0, 0), 2.0)
    target = cv2.normalize(target, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    h_true = np.array([[1.1, 0.15, 120], [-0.1, 0.95, 90], [2e-4, -1e-4, 1]])
    frame = np.full((480, 640), 230, np.uint8)
    cv2.warpPerspective(target, h_true, (640, 480), dst=frame, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
    c = corners_of(320, 240)
    h_start = cv2.getPerspectiveTransform(c, (project(h_true, c) + rng.uniform(-1.5, 1.5, (4, 2))).astype(np.float32))
    edge = np.concatenate([np.stack([rng.uniform(5, 315, 40), rng.choice([4.0, 235.0], 40)], 1),
                           np.stack([rng.choice([4.0, 315.0], 40), rng.uniform(5, 235, 40)], 1)])
    aligned = align_homography(target, frame, h_start, edge)
    before = np.linalg.norm(project(h_start, c) - project(h_true, c), axis=1).max()
    after = np.linalg.norm(project(aligned, c) - project(h_true, c), axis=1).max()
    assert before > 1.0 and after < 0.5 * before  # over black, every window is dragged off: worse than the start


def test_alignment_is_not_biased_by_a_change_of_lighting():
    # The frame is darker on the left than on the right, and brighter overall, than the target (a lamp beside the
    # poster, an exposure change): a brightness difference biases Lucas-Kanade unless it is compensated.
    rng = np.random.default_rng(3)
    target = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.float32), (0, 0), 2.0)
    target = cv2.normalize(target, None, 40, 200, cv2.NORM_MINMAX).astype(np.uint8)
    h_true = np.array([[1.1, 0.15, 120], [-0.1, 0.95, 90], [2e-4, -1e-4, 1]])
    frame = cv2.warpPerspective(target, h_true, (640, 480), flags=cv2.INTER_CUBIC).astype(np.float32)
    frame = np.clip(frame * np.linspace(0.6, 1.3, 640, dtype=np.float32)[None] + 25, 0, 255).astype(np.uint8)
    c = corners_of(320, 240)
    h_start = cv2.getPerspectiveTransform(c, (project(h_true, c) + rng.uniform(-1.5, 1.5, (4, 2))).astype(np.float32))
    points = rng.uniform([20, 20], [300, 220], (150, 2))
    aligned = align_homography(target, frame, h_start, points)
    assert np.linalg.norm(project(aligned, c) - project(h_true, c), axis=1).max() < 0.15


def test_local_brightness_follows_a_slow_lighting_change_and_keeps_the_texture():
    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.float32), (0, 0), 1.5)
    image = cv2.normalize(image, None, 60, 180, cv2.NORM_MINMAX)
    ramp = np.linspace(0.7, 1.2, 320, dtype=np.float32)[None]
    reference = np.clip(image * ramp + 20, 0, 255).astype(np.uint8)
    inside = np.ones(image.shape, bool)
    out = match_local_brightness(image.astype(np.uint8), reference, inside)
    error = np.abs(out.astype(np.float32) - reference)[16:-16, 16:-16]
    assert error.mean() < 2.0 and np.abs(image[16:-16, 16:-16] - reference[16:-16, 16:-16]).mean() > 10


def test_alignment_keeps_the_homography_on_a_textureless_target():
    target = np.full((100, 100), 128, np.uint8)
    h = np.array([[1.0, 0, 10], [0, 1.0, 5], [0, 0, 1]])
    frame = cv2.warpPerspective(target, h, (200, 200))
    assert np.allclose(align_homography(target, frame, h, np.random.default_rng(0).uniform(10, 90, (30, 2))), h)


def test_too_few_matches_gives_none():
    h, inliers = estimate_homography(np.zeros((5, 2)), np.zeros((5, 2)))
    assert h is None and not inliers.any()


@pytest.mark.parametrize("h, reason", [
    (None, "no homography"),
    (np.diag([1.0, 1e-6, 1.0]), "near-singular"),
    (np.diag([-1.0, 1.0, 1.0]), "flipped"),
    (np.diag([0.01, 0.01, 1.0]), "collapsed"),
    (np.array([[1, 0, 0], [0, 1, 0], [-0.004, 0, 1.0]]), "behind"),
])
def test_implausible_homographies(h, reason):
    assert reason in implausible(h, corners_of(400, 300))


def test_plausible_homography():
    assert implausible(np.array([[0.8, 0.1, 50], [0, 0.9, 40], [1e-4, 0, 1]]), corners_of(400, 300)) == ""


def test_pose_reprojects_corners():
    cam = Camera.from_fov(640, 480, 60)
    assert cam.matrix[0, 0] == pytest.approx(320 / np.tan(np.radians(30)))
    rvec, tvec = np.array([0.2, -0.1, 0.05]), np.array([-0.4, -0.3, 2.0])
    obj = np.array([[0, 0, 0], [1, 0, 0], [1, 0.75, 0], [0, 0.75, 0]], np.float64)
    img, _ = cv2.projectPoints(obj, rvec, tvec, cam.matrix, cam.dist)
    h = cv2.getPerspectiveTransform(corners_of(400, 300), img.reshape(4, 2).astype(np.float32))
    pose = pose_from_homography(h, (400, 300), cam)
    np.testing.assert_allclose(pose.tvec, tvec, atol=1e-3)
    np.testing.assert_allclose(pose.rvec, rvec, atol=1e-3)


def test_calibration_files(tmp_path):
    js = tmp_path / "cam.json"
    js.write_text('{"camera_matrix": [[500, 0, 320], [0, 500, 240], [0, 0, 1]], "dist_coeffs": [0.1, 0, 0, 0]}')
    assert Camera.from_file(js).matrix[0, 0] == 500
    yml = tmp_path / "cam.yml"
    fs = cv2.FileStorage(str(yml), cv2.FILE_STORAGE_WRITE)
    fs.write("camera_matrix", np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]]))
    fs.write("dist_coeffs", np.zeros((1, 5)))
    fs.release()
    assert Camera.from_file(yml).matrix[1, 1] == 600
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json does not parse"):
        Camera.from_file(bad)
    missing = tmp_path / "nokey.json"
    missing.write_text('{"focal": 3}')
    with pytest.raises(ValueError, match="camera_matrix"):
        Camera.from_file(missing)
