"""numba kernels that quantize channels-last activations to uint8 for the int8 learned blocks (``keynet.inference``).

Plain parallel loops over contiguous arrays, which numba vectorises; compiled when the module is first imported
(then cached), as the handcrafted maps' kernel is.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit("void(float32[::1], float32, uint8[::1])", parallel=True, cache=True, nogil=True, fastmath=True)
def quantize_unsigned(values: np.ndarray, inv_scale: float, out: np.ndarray) -> None:
    """``out = round(values * inv_scale)`` clamped to [0, 255], rounding half up: (N,) float32 >= 0 -> (N,) uint8."""
    for i in numba.prange(values.size):
        out[i] = np.uint8(min(values[i] * inv_scale + np.float32(0.5), np.float32(255.0)))


@numba.njit("void(float32[:, ::1], float32[::1], uint8[:, ::1])", parallel=True, cache=True, nogil=True,
            fastmath=True)
def quantize_signed_channels(values: np.ndarray, inv_scale: np.ndarray, out: np.ndarray) -> None:
    """``out = round(values * inv_scale) + 128`` per channel, clamped to [0, 255], rounding half up.

    Shape:
        values (N, C) float32, inv_scale (C,) -> out (N, C) uint8 (zero point 128).
    """
    channels = values.shape[1]
    for i in numba.prange(values.shape[0]):
        for c in range(channels):
            v = values[i, c] * inv_scale[c] + np.float32(128.5)
            out[i, c] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
