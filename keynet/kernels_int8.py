"""numba kernels of fast mode's CPU route (``keynet.inference``): the int8 learned blocks' activations quantized to
uint8, and each pyramid level's share of the last convolution straight from its features.

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


#: Output rows per parallel task of ``add_resized_conv`` (each task resamples its kernel's halo rows again).
CONV_ROWS_PER_TASK = 32

#: The channel count whose resampling ``add_resized_conv`` unrolls (Key.Net's 8 filters).
UNROLLED_CHANNELS = 8


@numba.njit(inline="always", nogil=True)
def _bilinear_taps(size: int, resized: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each of ``resized`` samples of a bilinear resize (half-pixel centres) reads a line of ``size``: the
    two source indices times ``stride`` and the weight of the second, (resized,) each."""
    first, second = np.empty(resized, np.int64), np.empty(resized, np.int64)
    weight = np.empty(resized, np.float32)
    for j in range(resized):
        s = max((j + 0.5) * (size / resized) - 0.5, 0.0)
        i = min(int(s), size - 1)
        first[j], second[j], weight[j] = i * stride, min(i + 1, size - 1) * stride, s - i if i < size - 1 else 0.0
    return first, second, weight


@numba.njit(inline="always", nogil=True, fastmath=True)
def _resample_across(source: np.ndarray, x0: np.ndarray, x1: np.ndarray, fx: np.ndarray, channels: int, offset: int,
                     out: np.ndarray) -> None:
    """One channels-last row (w * C,) resampled across to planar ``out[:, offset:offset + W]`` (C, W + 2 * offset):
    column x between source columns x0[x] and x1[x] (offsets in values, not columns), fx[x] of the way."""
    for x in range(x0.size):
        a, b, g = x0[x], x1[x], fx[x]
        if channels == UNROLLED_CHANNELS:  # a constant trip count: the channels in registers
            for c in range(UNROLLED_CHANNELS):
                out[c, x + offset] = source[a + c] + g * (source[b + c] - source[a + c])
        else:
            for c in range(channels):
                out[c, x + offset] = source[a + c] + g * (source[b + c] - source[a + c])


@numba.njit("void(float32[:, :, ::1], float32[:, :, ::1], float32[:, ::1])", parallel=True, cache=True, nogil=True,
            fastmath=True)
def add_resized_conv(features: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """``out += sum_c conv(resize(features[..., c]), weight[c])``: one pyramid level's share of the last convolution.

    The resize is bilinear with half-pixel centres (OpenCV's ``INTER_LINEAR``, torch's ``align_corners=False``) to
    ``out``'s size, the identity at the same size; the convolution is a correlation with 'same' zero padding. The
    resized features are never stored whole: each task resizes the source rows it needs across (each once), blends
    them into a ring of ``k`` planar rows and sums the taps row by row (5x5 kernels with a row's five taps at once).

    Shape:
        features (h, w, C) float32 channels-last, weight (C, k, k) odd k, out (H, W) float32.
    """
    h, w, channels = features.shape
    height, width = out.shape
    k = weight.shape[1]
    r = k // 2
    x0, x1, fx = _bilinear_taps(w, width, channels)
    y0, y1, fy = _bilinear_taps(h, height, 1)
    rows = features.reshape(h, w * channels)
    for task in numba.prange((height + CONV_ROWS_PER_TASK - 1) // CONV_ROWS_PER_TASK):
        start = task * CONV_ROWS_PER_TASK
        stop = min(height, start + CONV_ROWS_PER_TASK)
        ring = np.zeros((k, channels, width + 2 * r), np.float32)  # resized rows, planar, zero columns each side
        resampled = np.zeros((2, channels, width + 2 * r), np.float32)  # source rows resized across, by parity
        held = np.full(2, -1, np.int64)  # the source row each of them holds
        acc = np.empty(width, np.float32)
        for row in range(start - r, stop + r):
            slot = ring[(row - start + r) % k]
            if 0 <= row < height and h == height:  # rows as they are: resized across straight into the ring
                _resample_across(rows[row], x0, x1, fx, channels, r, slot)
            elif 0 <= row < height:
                for source_row in (y0[row], y1[row]):
                    if held[source_row % 2] != source_row:
                        held[source_row % 2] = source_row
                        _resample_across(rows[source_row], x0, x1, fx, channels, r, resampled[source_row % 2])
                above, below, f = resampled[y0[row] % 2], resampled[y1[row] % 2], fy[row]
                for c in range(channels):
                    for x in range(width + 2 * r):
                        slot[c, x] = above[c, x] + f * (below[c, x] - above[c, x])
            else:
                slot[:, r:r + width] = 0.0
            y = row - r
            if y < start:
                continue
            acc[:] = 0.0
            for ky in range(k):
                source = ring[(y + ky - start) % k]
                for c in range(channels):
                    line, taps = source[c], weight[c, ky]
                    if k == 5:
                        t0, t1, t2, t3, t4 = taps[0], taps[1], taps[2], taps[3], taps[4]
                        for x in range(width):
                            acc[x] += (t0 * line[x] + t1 * line[x + 1] + t2 * line[x + 2] + t3 * line[x + 3]
                                       + t4 * line[x + 4])
                    else:
                        for kx in range(k):
                            for x in range(width):
                                acc[x] += taps[kx] * line[x + kx]
            for x in range(width):
                out[y, x] += acc[x]
