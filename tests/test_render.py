"""Rendering: overlays land on the target's quad, layers draw without touching the input, degenerate = no overlay."""

from __future__ import annotations

import numpy as np

from keynet.geometry import Camera, Pose, corners_of, project
from keynet.render import Renderer, colour_map, warp_overlay
from keynet.tracker import FrameResult, Target, TargetResult


def frame_result(target: TargetResult) -> FrameResult:
    kps = np.array([[100, 100, 1, 0.5], [200, 150, 2, 0.9]], np.float32)
    return FrameResult(3, 0.1, kps, np.array([0, 1]), np.array([3, 1]), np.full((2, 2), np.nan, np.float32),
                       np.full(2, np.inf, np.float32), [target], {}, [])


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
    cam = Camera.from_fov(320, 240)
    pose = Pose(np.zeros(3), np.array([-0.5, -0.3, 2.0]))
    t = TargetResult("poster", "tracking", h, h, project(h, corners_of(200, 100)), pose,
                     np.array([[0, 0], [1, 1]]), np.array([True, False]))
    target = Target("poster", np.zeros((100, 200, 3), np.uint8), (200, 100), np.array([[80, 120], [10, 10]],
                    np.float32), None)
    for overlay in ("cube", "axes", "none"):
        r = Renderer(overlay=overlay, keypoints="scale", matches=True, tracks=True)
        out = r.draw(frame, frame_result(t), [target], cam)
        assert out.shape == frame.shape and (out != 50).any()
    assert (frame == 50).all()


def test_no_overlay_without_a_homography():
    frame = np.full((240, 320, 3), 50, np.uint8)
    t = TargetResult("poster", "lost", rejected="flipped")
    r = Renderer(np.full((10, 10, 3), 255, np.uint8), overlay="image", status=False)
    out = r.draw(frame, frame_result(t), [Target("p", frame, (320, 240), np.zeros((0, 2)), None)])
    assert (out == 50).all()


def test_colour_map_ends():
    c = colour_map(np.array([0.0, 1.0]))
    assert c[0, 0] > c[0, 2] and c[1, 2] > c[1, 0]  # low = blue, high = red (BGR)
