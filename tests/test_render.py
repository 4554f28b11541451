"""Rendering: overlays land on the target's quad, layers draw without touching the input, degenerate = no overlay,
the heatmap colours the response's peak only, redrawing a frame changes nothing, the status line is legible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.errors import OptionError
from keynet.geometry import Camera, Pose, corners_of, project
from keynet.render import (
    Renderer,
    TrailBook,
    colour_map,
    draw_heatmap,
    draw_keypoints,
    draw_status,
    warp_overlay,
)
from keynet.tracker import FrameResult, TargetResult

NO_POINTS = np.zeros((0, 2), np.float32)


def frame_result(target: TargetResult, index: int = 3, shift: float = 0.0,
                 camera: Camera | None = None) -> FrameResult:
    kps = np.array([[100 + shift, 100, 1, 0.5], [200 + shift, 150, 2, 0.9]], np.float32)
    return FrameResult(index, index / 30, kps, np.array([0, 1]), np.array([3, 1]), np.full((2, 2), np.nan, np.float32),
                       np.full(2, np.inf, np.float32), [target], {}, [], camera or Camera.from_fov(320, 240))


def gaussian_peak(shape: tuple[int, int], centre: tuple[float, float], sigma: float) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    return np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_overlay_fills_the_quad_only():
    canvas = np.zeros((240, 320, 3), np.uint8)
    h = np.array([[0.5, 0, 60], [0, 0.5, 40], [0, 0, 1.0]])
    warp_overlay(canvas, np.full((50, 80, 3), 200, np.uint8), h, (200, 100), alpha=1.0)
    quad = project(h, corners_of(200, 100))
    assert quad.tolist() == [[60, 40], [160, 40], [160, 90], [60, 90]]
    assert canvas[65, 110].tolist() == [200] * 3 and canvas[20, 20].tolist() == [0] * 3


def test_all_layers_draw_and_input_is_untouched():
    frame = np.full((240, 320, 3), 50, np.uint8)
    h = np.array([[0.5, 0, 60], [0, 0.5, 40], [0, 0, 1.0]])
    pose = Pose(np.zeros(3), np.array([-0.5, -0.3, 2.0]))
    t = TargetResult("poster", "tracking", (200, 100), np.array([[80, 120], [10, 10]], np.float32), h, h,
                     project(h, corners_of(200, 100)), project(h, corners_of(200, 100)), pose,
                     np.array([[0, 0], [1, 1]]), np.array([True, False]))
    for overlay in ("cube", "axes", "none"):
        r = Renderer(overlay=overlay, keypoints="scale", matches=True, tracks=True)
        out = r.draw(frame, frame_result(t))
        assert out.shape == frame.shape and (out != 50).any()
    assert (frame == 50).all()


def test_no_overlay_without_a_homography():
    frame = np.full((240, 320, 3), 50, np.uint8)
    t = TargetResult("poster", "lost", (320, 240), NO_POINTS, rejected="flipped")
    r = Renderer(np.full((10, 10, 3), 255, np.uint8), overlay="image", status=False)
    out = r.draw(frame, frame_result(t))
    assert (out == 50).all()


def test_colour_map_ends():
    c = colour_map(np.array([0.0, 1.0]))
    assert c[0, 0] > c[0, 2] and c[1, 2] > c[1, 0]  # low = blue, high = red (BGR)


def test_heatmap_colours_the_peak_and_leaves_the_rest():
    canvas = np.full((240, 320, 3), 100, np.uint8)
    response = 1.5 + 40 * gaussian_peak((120, 160), (50, 30), 3.0)  # half the canvas's size: resized to it
    draw_heatmap(canvas, response, alpha=0.8)
    peak = canvas[60, 100].astype(int)
    assert peak[2] > peak[0] + 60 and peak[1] < 60  # turbo's top end is (dark) red, BGR
    far = np.ones(canvas.shape[:2], bool)
    far[20:100, 60:140] = False
    assert (canvas[far] == 100).all()
    flat = np.full((240, 320, 3), 100, np.uint8)
    draw_heatmap(flat, np.full((240, 320), 3.0, np.float32))
    assert (flat == 100).all()  # a flat response has nothing to show


def test_renderer_draws_the_heatmap_only_when_asked_and_given():
    frame = np.full((240, 320, 3), 100, np.uint8)
    t = TargetResult("poster", "searching", (200, 100), NO_POINTS)
    result = frame_result(t)
    result.response = gaussian_peak((240, 320), (160, 120), 4.0)
    on = Renderer(overlay="none", heatmap=True, status=False, outline=False).draw(frame, result)
    off = Renderer(overlay="none", status=False, outline=False).draw(frame, result)
    assert (on[120, 160] != 100).any() and (off == 100).all()
    result.response = None
    assert (Renderer(overlay="none", heatmap=True, status=False).draw(frame, result) == 100).all()


def test_drawing_the_same_frame_again_advances_nothing():
    frame = np.full((240, 320, 3), 50, np.uint8)
    h = np.array([[0.5, 0, 60], [0, 0.5, 40], [0, 0, 1.0]])
    t = TargetResult("poster", "tracking", (200, 100), NO_POINTS, h, h, project(h, corners_of(200, 100)))
    video = (np.full((10, 10, 3), 10 * (i + 1), np.uint8) for i in range(100))
    r = Renderer(video, overlay="video", tracks=True, alpha=1.0)
    first = r.draw(frame, frame_result(t, 3))
    again = r.draw(frame, frame_result(t, 3))
    assert np.array_equal(first, again)
    assert first[65, 110].tolist() == [10] * 3  # the video's first frame, still
    assert [len(p) for p in r.trails.trails.values()] == [1, 1]
    nxt = r.draw(frame, frame_result(t, 4, shift=5))
    assert nxt[65, 110].tolist() == [20] * 3  # one new frame = one step of the video
    assert [len(p) for p in r.trails.trails.values()] == [2, 2]
    r.draw(frame, frame_result(t, 0))  # a new source starts at 0: no trail spans the two
    assert [len(p) for p in r.trails.trails.values()] == [1, 1]


def test_trails_keep_the_last_frames_and_forget_ids_unseen_that_long():
    def result(track_id: int, x: float) -> FrameResult:
        kps = np.array([[x, 20, 1, 0.5]], np.float32)
        return FrameResult(0, 0.0, kps, np.array([track_id]), np.array([1]), np.full((1, 2), np.nan, np.float32),
                           np.full(1, np.inf, np.float32), [], {}, [], Camera.from_fov(80, 40))

    book = TrailBook(max_len=3)
    for x in (10, 30, 50):  # id 7 moves right over frames 1-3
        book.update(result(7, x))
    canvas = np.zeros((40, 80, 3), np.uint8)
    book.draw(canvas)
    assert canvas[20, 10:51].any(axis=1).all()
    book.update(result(8, 70))  # frame 4: id 7's first point is older than 3 frames
    canvas[:] = 0
    book.draw(canvas)
    assert not canvas[20, 10:20].any() and canvas[20, 30:51].any(axis=1).all()
    for _ in range(2):  # frames 5-6: id 7 unseen for 3 frames is forgotten
        book.update(result(8, 70))
    assert list(book.trails) == [8]


def test_status_line_is_white_on_a_dark_box():
    canvas = np.full((120, 400, 3), 255, np.uint8)
    draw_status(canvas, "poster: tracking (42 inliers)")
    box = canvas[6:30, 6:200]
    assert (box.max(axis=2) <= 40).mean() > 0.6  # mostly the dark box behind the text
    assert (box.min(axis=2) >= 200).sum() > 50  # white strokes of the text on it
    assert (canvas[60:] == 255).all()


def cube_corners(size: tuple[int, int]) -> np.ndarray:
    """(8, 3) the cube ``draw_cube`` stands on a target (its docstring): base = the central square of side 0.6 of
    the shorter side (target-width units), height towards the camera (-z)."""
    w, h = size
    side = min(1.0, h / w) * 0.6
    x0, y0 = 0.5 - side / 2, h / w / 2 - side / 2
    base = np.array([[x0, y0, 0], [x0 + side, y0, 0], [x0 + side, y0 + side, 0], [x0, y0 + side, 0]])
    return np.vstack([base, base - [0, 0, side]])


@pytest.mark.parametrize("fov", [40.0, 90.0])
def test_the_cube_is_projected_with_the_result_camera(fov):
    """The cube's drawn extent is that of cv2.projectPoints with ``result.camera``: a wider field of view draws
    it smaller; nothing else decides the intrinsics."""
    size = (200, 100)
    pose = Pose(np.array([0.3, -0.2, 0.1]), np.array([-0.5, -0.25, 2.5]))
    camera = Camera.from_fov(640, 480, fov)
    t = TargetResult("poster", "tracking", size, NO_POINTS, np.eye(3), np.eye(3), pose=pose)
    out = Renderer(overlay="cube", outline=False, status=False).draw(np.zeros((480, 640, 3), np.uint8),
                                                                     frame_result(t, camera=camera))
    ys, xs = np.nonzero(out.any(axis=2))
    projected, _ = cv2.projectPoints(cube_corners(size), pose.rvec, pose.tvec, camera.matrix, camera.dist)
    projected = projected.reshape(-1, 2)
    np.testing.assert_allclose([xs.min(), ys.min()], projected.min(0), atol=2.5)
    np.testing.assert_allclose([xs.max(), ys.max()], projected.max(0), atol=2.5)


def test_keypoints_by_rank_colour_by_the_score_order_not_its_spread():
    # scores 0.9, 0.11, 0.10: by score the second is nearly the lowest (blue); by rank it is the middle (green)
    keypoints = np.array([[20, 20, 1, 0.9], [60, 20, 1, 0.11], [100, 20, 1, 0.10]], np.float32)

    def brightest(by: str, x: int) -> np.ndarray:
        canvas = np.zeros((40, 130, 3), np.uint8)
        draw_keypoints(canvas, keypoints, by=by)
        window = canvas[20 - 8:20 + 9, x - 8:x + 9].reshape(-1, 3).astype(int)
        return window[window.sum(1).argmax()]

    best, middle, last = (brightest("rank", x) for x in (20, 60, 100))
    assert best[2] > best[0] and last[0] > last[2]  # red first, blue last (BGR)
    assert middle[1] > max(middle[0], middle[2])  # turbo's middle is green
    by_score = brightest("score", 60)
    assert by_score[0] > by_score[2]  # blue-ish: just above the lowest score
    with pytest.raises(OptionError, match="rank"):
        draw_keypoints(np.zeros((40, 130, 3), np.uint8), keypoints, by="size")
