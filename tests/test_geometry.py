"""Homography estimation, plausibility checks, intrinsics and pose against analytic references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.config import GeometryConfig
from keynet.errors import InputError
from keynet.geometry import (
    Camera,
    Pose,
    corner_errors,
    corners_of,
    estimate_homography,
    homography_jacobians,
    implausible,
    local_scale,
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


def test_implausible_reads_its_limits_from_the_configuration():
    quarter = np.diag([0.5, 0.5, 1.0])  # a 400x300 target shown at 200x150: area ratio 4
    corners = corners_of(400, 300)
    assert implausible(quarter, corners) == ""
    assert implausible(quarter, corners, GeometryConfig(max_area_ratio=3.0)) == "implausible scale"
    assert implausible(quarter, corners, GeometryConfig(min_area=40000.0)) == "collapsed"
    assert implausible(quarter, corners, GeometryConfig(min_side=160.0)) == "collapsed"
    squeezed = np.diag([1.0, 0.01, 1.0])  # singular values 1 and 0.01
    assert implausible(squeezed, corners, GeometryConfig(min_area=1.0, min_side=1.0, max_area_ratio=1000.0)) == ""
    assert implausible(squeezed, corners, GeometryConfig(min_singular_ratio=0.02)) == "near-singular"


def test_corner_errors_are_at_the_image_outer_corners():
    # a 1.1x zoom about the origin moves corner (w, h) = (100, 50) by (10, 5): at w, h, not w - 1, h - 1
    zoom = np.diag([1.1, 1.1, 1.0])
    errors = corner_errors(zoom, np.eye(3), (100, 50))
    np.testing.assert_allclose(errors, [0.0, 10.0, np.hypot(10, 5), 5.0], atol=1e-9)


def test_homography_jacobians_equal_finite_differences():
    h = np.array([[0.9, 0.1, 30], [-0.05, 1.1, 20], [1e-3, 2e-4, 1]])
    points = np.array([[10.0, 20.0], [150.0, 80.0], [300.0, 250.0]])
    step = 1e-4
    numeric = np.stack([(project(h, points + d) - project(h, points - d)) / (2 * step)
                        for d in ([step, 0.0], [0.0, step])], axis=2)
    np.testing.assert_allclose(homography_jacobians(h, points), numeric, rtol=1e-5, atol=1e-8)


def test_camera_and_pose_round_trip_through_their_dicts():
    camera = Camera.from_fov(640, 480, 70.0)
    back = Camera.from_dict(camera.to_dict())
    np.testing.assert_array_equal(back.matrix, camera.matrix)
    np.testing.assert_array_equal(back.dist, camera.dist)
    pose = Pose(np.array([0.1, -0.2, 0.3]), np.array([1.0, 2.0, 5.0]))
    again = Pose.from_dict(pose.to_dict())
    np.testing.assert_array_equal(again.rvec, pose.rvec)
    np.testing.assert_array_equal(again.tvec, pose.tvec)


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


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.json", b"{not json", "bad.json does not parse"),
    ("nokey.json", b'{"focal": 3}', "camera_matrix"),
    ("negative.json", b'{"camera_matrix": [[-5, 0, 1], [0, 5, 1], [0, 0, 1]]}', "needs positive focal lengths"),
    ("random.json", bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)), "random.json does not parse"),
    # cv2.FileStorage's parser raises these as a SystemError
    ("garbage.yaml", b"%YAML:1.0\n: : [", r"garbage.yaml does not parse.*Invalid character"),
    ("random.yaml", bytes(np.random.default_rng(1).integers(0, 256, 300, np.uint8)), "random.yaml does not parse"),
    ("cut.xml", b'<?xml version="1.0"?>\n<opencv_storage><camera_matrix>', "cut.xml does not parse"),
    ("scalar.yml", b"%YAML:1.0\n---\ncamera_matrix: 3\n", "scalar.yml does not parse"),
])
def test_a_bad_calibration_file_is_one_input_error_naming_it(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        Camera.from_file(path)
    assert "\n" not in str(caught.value)


def test_local_scale_of_a_similarity_and_of_a_perspective_homography():
    c, s = np.cos(0.3), np.sin(0.3)
    assert local_scale(np.array([[2 * c, -2 * s, 40], [2 * s, 2 * c, 7], [0, 0, 1]]), np.array([50.0, 80.0])) == (
        pytest.approx(2.0))
    h = np.array([[0.9, 0.1, 30], [-0.05, 1.1, 20], [1e-3, 2e-3, 1]])
    p, e = np.array([120.0, 60.0]), 1e-3  # the area of a small square's image, against the analytic Jacobian
    square = project(h, np.array([p, p + [e, 0], p + [e, e], p + [0, e]]))
    x, y = square[:, 0], square[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace
    assert local_scale(h, p) == pytest.approx(np.sqrt(area) / e, rel=1e-3)
