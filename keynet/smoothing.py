"""Display smoothing of a tracked target's corners: what is drawn and exported beside the raw estimate.

The default smoother is a constant-velocity Kalman filter on the eight corner coordinates: it predicts where the
corners move and corrects by the estimate weighed by its own uncertainty (``sigma_px``, the estimate's corner
standard deviation), so a target moving steadily is shown without lag and a still one without jitter. When the
innovations are larger than the filter expects (the target accelerates), the prediction's covariance is inflated
by that excess (an adaptive fading factor) and the filter follows the estimate closely until the motion is steady
again. ``OneEuroFilter`` is the previous smoother (``method="one_euro"``), kept for comparison.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from .config import SmoothingConfig
from .errors import OptionError

METHODS = ("kalman", "one_euro")


class OneEuroFilter:
    """One-Euro filter (Casiez et al., CHI 2012) on a vector: little jitter when still, little lag when moving.

    Args:
        min_cutoff: cutoff frequency (Hz) at rest; beta: how fast the cutoff grows with speed; d_cutoff: for the speed.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()


class CornerSmoother(Protocol):
    """Smooths a target's four shown corners over time; one instance per tracked target."""

    def update(self, corners: np.ndarray, t: float, sigma_px: float | None = None) -> np.ndarray:
        """The shown (4, 2) float32 corners at time ``t`` (s) given the estimate's (4, 2) corners and its corner
        standard deviation ``sigma_px`` (px; None: the configured default). A time not after the last one
        restarts the filter."""
        ...

    def reset(self) -> None:
        """Forget the past: the next update starts afresh."""
        ...


class OneEuroCornerSmoother:
    """The One-Euro filter on the eight corner coordinates (``sigma_px`` is not used)."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.filter = OneEuroFilter(config.min_cutoff, config.beta, config.d_cutoff)

    def update(self, corners: np.ndarray, t: float, sigma_px: float | None = None) -> np.ndarray:
        shown = self.filter(np.asarray(corners, dtype=np.float64).reshape(8), t)
        return shown.reshape(4, 2).astype(np.float32)

    def reset(self) -> None:
        self.filter.reset()


class KalmanCornerSmoother:
    """Constant-velocity Kalman filter on the eight corner coordinates, each with state (position px, velocity
    px/s), driven by white acceleration noise (``config.process_noise``) and measured with variance
    ``max(sigma_px, config.min_sigma_px)²``. All coordinates share one 2x2 covariance (same model, same measurement noise). Started by two
    measurements (position, then the velocity between them); a mean normalised innovation squared above
    ``config.maneuver_gate`` inflates the predicted covariance by ``nis / maneuver_gate``."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.process_noise = config.process_noise
        self.default_sigma_px = config.default_sigma_px
        self.min_sigma_px = config.min_sigma_px
        self.maneuver_gate = config.maneuver_gate
        self.reset()

    def reset(self) -> None:
        self.position: np.ndarray | None = None  # (8,) px
        self.velocity: np.ndarray | None = None  # (8,) px/s, None until the second measurement
        self.covariance = np.zeros((2, 2))       # of (position, velocity), shared by the coordinates
        self.t: float | None = None

    def _variance(self, sigma_px: float | None) -> float:
        sigma = self.default_sigma_px if sigma_px is None or not math.isfinite(sigma_px) else sigma_px
        return max(float(sigma), self.min_sigma_px) ** 2

    def update(self, corners: np.ndarray, t: float, sigma_px: float | None = None) -> np.ndarray:
        z = np.asarray(corners, dtype=np.float64).reshape(8)
        r = self._variance(sigma_px)
        if self.position is None or self.t is None or t <= self.t:
            self.reset()
            self.position, self.t = z.copy(), t
            self.covariance = np.array([[r, 0.0], [0.0, 0.0]])
            return z.reshape(4, 2).astype(np.float32)
        dt = t - self.t
        self.t = t
        if self.velocity is None:  # two-point start: the velocity between the first two measurements
            self.velocity = (z - self.position) / dt
            self.position = z.copy()
            self.covariance = np.array([[r, r / dt], [r / dt, 2 * r / dt ** 2]])
            return z.reshape(4, 2).astype(np.float32)
        motion = np.array([[1.0, dt], [0.0, 1.0]])
        q = self.process_noise * np.array([[dt ** 3 / 3, dt ** 2 / 2], [dt ** 2 / 2, dt]])
        predicted = motion @ self.covariance @ motion.T + q
        innovation = z - (self.position + self.velocity * dt)
        nis = float(np.mean(innovation ** 2)) / (predicted[0, 0] + r)
        if nis > self.maneuver_gate:
            predicted = predicted * (nis / self.maneuver_gate)
        gain = predicted[:, 0] / (predicted[0, 0] + r)
        self.position = self.position + self.velocity * dt + gain[0] * innovation
        self.velocity = self.velocity + gain[1] * innovation
        self.covariance = predicted - np.outer(gain, predicted[0])
        return self.position.reshape(4, 2).astype(np.float32)


def make_smoother(config: SmoothingConfig) -> CornerSmoother:
    """The corner smoother ``config.method`` names.

    Raises:
        OptionError: an unknown method.
    """
    if config.method == "kalman":
        return KalmanCornerSmoother(config)
    if config.method == "one_euro":
        return OneEuroCornerSmoother(config)
    raise OptionError(f"unknown smoothing method {config.method!r}; known: {', '.join(METHODS)}")
