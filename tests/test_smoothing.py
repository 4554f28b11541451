"""The display smoothers against analytic cases and OpenCV's Kalman filter."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from keynet.config import SmoothingConfig
from keynet.errors import OptionError
from keynet.smoothing import KalmanCornerSmoother, OneEuroCornerSmoother, OneEuroFilter, make_smoother

FPS = 30.0
DT = 1 / FPS
CORNERS = np.array([[100, 80], [500, 90], [520, 400], [90, 380]], np.float64)
NO_GATE = SmoothingConfig(maneuver_gate=math.inf)  # the plain (linear) Kalman filter


def run(smoother, track: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The smoother's outputs (N, 4, 2) for a (N, 4, 2) track at FPS."""
    return np.array([smoother.update(c, i * DT, sigma) for i, c in enumerate(track)])


def opencv_kalman(config: SmoothingConfig, variance: float) -> cv2.KalmanFilter:
    """OpenCV's Kalman filter with the smoother's model for one coordinate: state (position, velocity) at FPS,
    white acceleration noise ``config.process_noise``, measured position of ``variance``."""
    kf = cv2.KalmanFilter(2, 1, 0, cv2.CV_64F)
    kf.transitionMatrix = np.array([[1, DT], [0, 1]], np.float64)
    kf.measurementMatrix = np.array([[1, 0]], np.float64)
    kf.processNoiseCov = config.process_noise * np.array([[DT ** 3 / 3, DT ** 2 / 2], [DT ** 2 / 2, DT]])
    kf.measurementNoiseCov = np.array([[variance]])
    return kf


def opencv_steady_gain(config: SmoothingConfig, sigma: float) -> tuple[float, float]:
    """The steady-state gains (alpha, beta = velocity gain * dt) of OpenCV's Kalman filter with the same
    constant-velocity model, after many updates."""
    kf = opencv_kalman(config, sigma ** 2)
    kf.errorCovPost = np.eye(2)
    for _ in range(5000):
        kf.predict()
        kf.correct(np.zeros((1, 1)))
    gain = kf.gain.ravel()
    return float(gain[0]), float(gain[1] * DT)


def test_make_smoother_picks_the_configured_method_and_refuses_unknown_ones():
    assert SmoothingConfig().method == "kalman"
    assert isinstance(make_smoother(SmoothingConfig()), KalmanCornerSmoother)
    assert isinstance(make_smoother(SmoothingConfig(method="one_euro")), OneEuroCornerSmoother)
    with pytest.raises(OptionError):
        make_smoother(SmoothingConfig(method="median"))


def test_one_euro_smoother_is_the_one_euro_filter_on_the_eight_coordinates():
    config = SmoothingConfig(method="one_euro")
    reference = OneEuroFilter(config.min_cutoff, config.beta, config.d_cutoff)
    rng = np.random.default_rng(0)
    smoother = make_smoother(config)
    for i in range(20):
        corners = CORNERS + rng.normal(0, 1, CORNERS.shape)
        shown = smoother.update(corners, i * DT, 0.5)
        assert shown.shape == (4, 2) and shown.dtype == np.float32
        np.testing.assert_allclose(shown, reference(corners.ravel(), i * DT).reshape(4, 2), atol=1e-4)


def test_kalman_follows_a_constant_velocity_track_without_lag_where_one_euro_lags():
    velocity = np.array([72.0, -36.0])  # px/s: 2.4 px a frame, as the sequence
    track = np.array([CORNERS + velocity * i * DT for i in range(120)])
    kalman = run(make_smoother(SmoothingConfig()), track, 0.1)
    assert kalman.shape == (120, 4, 2) and kalman.dtype == np.float32
    np.testing.assert_allclose(kalman[2:], track[2:], atol=1e-3)  # float32 output: exact to its rounding
    config = SmoothingConfig(method="one_euro")
    one_euro = run(make_smoother(config), track)
    # One-Euro's steady state on a ramp: an exponential smoother with factor a trails it by L = v dt (1 - a) / a;
    # its speed estimate (measurement - last output) / dt converges to v / a, so a is the fixed point of
    # a = 1 / (1 + tau / dt) with tau = 1 / (2 pi (min_cutoff + beta v / a)).
    for speed, corner_lag in zip(np.abs(velocity), (one_euro[-1] - track[-1])[0]):
        a = 0.5
        for _ in range(100):
            a = 1 / (1 + 1 / (2 * math.pi * (config.min_cutoff + config.beta * speed / a)) / DT)
        expected = speed * DT * (1 - a) / a
        assert abs(abs(corner_lag) - expected) < 0.02 * expected
    lag = np.linalg.norm(one_euro[-1] - track[-1], axis=1)
    assert lag.min() > 0.3 and np.abs(kalman[-1] - track[-1]).max() < 1e-3


def test_kalman_matches_opencvs_kalman_filter_without_the_maneuver_gate():
    rng = np.random.default_rng(1)
    sigma = 0.3
    track = np.array([CORNERS + [40 * math.sin(i / 15), 3.0 * i] + rng.normal(0, sigma, (4, 2)) for i in range(60)])
    shown = run(make_smoother(NO_GATE), track, sigma)
    r = sigma ** 2
    kf = opencv_kalman(NO_GATE, r)
    for k in range(8):  # each coordinate on its own, started as the smoother is: by two measurements
        z = track[:, k // 2, k % 2]
        kf.statePost = np.array([[z[1]], [(z[1] - z[0]) / DT]])
        kf.errorCovPost = np.array([[r, r / DT], [r / DT, 2 * r / DT ** 2]])
        for i in range(2, len(z)):
            kf.predict()
            expected = kf.correct(np.array([[z[i]]]))[0, 0]
            assert abs(shown[i, k // 2, k % 2] - expected) < 1e-3


def test_kalman_reduces_white_noise_on_a_still_target_by_the_alpha_beta_factor():
    """A steady-state Kalman filter is an alpha-beta filter; on white measurement noise of variance s² its
    position's variance is s² (2a² + 2b - 3ab) / (a (4 - 2a - b)) (Kalata 1984), a, b from OpenCV's filter."""
    sigma = 0.1
    alpha, beta = opencv_steady_gain(NO_GATE, sigma)
    factor = (2 * alpha ** 2 + 2 * beta - 3 * alpha * beta) / (alpha * (4 - 2 * alpha - beta))
    rng = np.random.default_rng(2)
    track = CORNERS + rng.normal(0, sigma, (6000, 4, 2))
    shown = run(make_smoother(NO_GATE), track, sigma)[1000:]
    measured = float(np.var(shown - CORNERS)) / sigma ** 2
    assert factor < 0.2 and abs(measured - factor) < 0.1 * factor
    gated = run(make_smoother(SmoothingConfig()), track, sigma)[1000:]  # the gate opens on rare noise peaks only
    assert float(np.var(gated - CORNERS)) / sigma ** 2 < 1.5 * factor


def test_kalman_with_its_gate_catches_up_with_a_target_that_starts_to_move():
    velocity = np.array([150.0, 0.0])  # still for a second, then 5 px a frame
    track = np.array([CORNERS + velocity * max(0, i - 30) * DT for i in range(60)])
    gated = run(make_smoother(SmoothingConfig()), track, 0.1)
    plain = run(make_smoother(NO_GATE), track, 0.1)
    gated_lag = np.abs(gated[40:] - track[40:]).max()
    plain_lag = np.abs(plain[40:] - track[40:]).max()
    assert gated_lag < 0.5 and plain_lag > 4 * gated_lag


def test_a_larger_sigma_smooths_more_none_is_the_default_and_a_tiny_one_the_floor():
    rng = np.random.default_rng(3)
    track = CORNERS + rng.normal(0, 0.3, (400, 4, 2))
    spread = {s: float(np.std(run(make_smoother(SmoothingConfig()), track, s)[100:] - CORNERS))
              for s in (0.05, 0.3, 1.0)}
    assert spread[1.0] < spread[0.3] < spread[0.05]
    config = SmoothingConfig()
    np.testing.assert_array_equal(run(make_smoother(config), track[:50], None),
                                  run(make_smoother(config), track[:50], config.default_sigma_px))
    np.testing.assert_array_equal(run(make_smoother(config), track[:50], config.min_sigma_px / 100),
                                  run(make_smoother(config), track[:50], config.min_sigma_px))


@pytest.mark.parametrize("method", ["kalman", "one_euro"])
def test_reset_and_time_going_backwards_restart_the_filter(method):
    config = replace(SmoothingConfig(), method=method)
    smoother = make_smoother(config)
    for i in range(10):
        smoother.update(CORNERS + i * 3.0, i * DT, 0.3)
    jump = CORNERS + 200.0
    np.testing.assert_array_equal(smoother.update(jump, 2 * DT, 0.3), jump.astype(np.float32))  # time went back
    smoother.update(jump + 1.0, 3 * DT, 0.3)
    smoother.reset()
    np.testing.assert_array_equal(smoother.update(CORNERS, 100.0, 0.3), CORNERS.astype(np.float32))
    fresh = make_smoother(config)
    fresh.update(CORNERS, 0.0, 0.3)
    np.testing.assert_array_equal(smoother.update(CORNERS + 1.0, 100.0 + DT, 0.3),
                                  fresh.update(CORNERS + 1.0, DT, 0.3))
