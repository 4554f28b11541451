"""Key.Net's handcrafted block computed fast: the Sobel derivatives as separable filters and the ten maps in one
numba pass per image, channels-last, in fp32 or rounded to bf16, or quantized to uint8 per map (the int8 route)."""

from __future__ import annotations

import cv2
import numba
import numpy as np
import torch
import torch.nn.functional as F

from .model import sobel_kernels


def derivative_kernels() -> torch.Tensor:
    """The 5x5 kernels of dx, dy, dxx, dxy, dyy as Key.Net composes them (Sobel of Sobel), shape (5, 1, 5, 5)."""
    sobel = sobel_kernels()  # (2, 1, 3, 3)
    first = F.pad(sobel, (1, 1, 1, 1))  # centred in 5x5
    # A correlation of a correlation is a correlation with the convolution of the two kernels.
    second = F.conv2d(first, sobel.flip(-1, -2), padding=1)  # (2, 2, 5, 5): [d/dx, d/dy] of [dx, dy]
    return torch.stack([first[0, 0], first[1, 0], second[0, 0], second[0, 1], second[1, 1]])[:, None]


# Sobel d/dx and d/dy as separable (x kernel, y kernel) pairs; their outer products are ``sobel_kernels()``.
SOBEL_X_SEPARABLE = (np.array([-1.0, 0.0, 1.0], np.float32) / 2, np.array([1.0, 2.0, 1.0], np.float32) / 4)
SOBEL_Y_SEPARABLE = (SOBEL_X_SEPARABLE[1], SOBEL_X_SEPARABLE[0])


def composed(first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The separable kernel of correlating with ``first`` and then ``then`` (the convolution of the kernels)."""
    return np.convolve(first[0], then[0]).astype(np.float32), np.convolve(first[1], then[1]).astype(np.float32)


def separable_derivative_kernels() -> list[tuple[np.ndarray, np.ndarray]]:
    """Separable 5-tap (x kernel, y kernel) pairs whose outer products are ``derivative_kernels()``."""
    x, y = SOBEL_X_SEPARABLE, SOBEL_Y_SEPARABLE
    delta = (np.array([0.0, 1.0, 0.0], np.float32),) * 2  # pads a 3-tap kernel to 5 taps, centred
    return [composed(x, delta), composed(y, delta), composed(x, x), composed(x, y), composed(y, y)]


def filter_planes(planes: torch.Tensor, kernel: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    """Correlate each (H, W) plane of a (B, H, W) CPU float32 tensor with a separable kernel; replicated borders."""
    kx, ky = kernel
    out = [torch.from_numpy(cv2.sepFilter2D(p.numpy(), -1, kx, ky, borderType=cv2.BORDER_REPLICATE)) for p in planes]
    return out[0][None] if len(out) == 1 else torch.stack(out)


def handcrafted_maps(dx: torch.Tensor, dy: torch.Tensor, dxx: torch.Tensor, dxy: torch.Tensor, dyy: torch.Tensor) -> torch.Tensor:
    """The ten handcrafted maps from five (B, H, W) derivatives, as a channels-last (B, 10, H, W) tensor."""
    maps = torch.stack([dx, dy, dx * dx, dy * dy, dx * dy, dxy, dxy * dxy, dxx, dyy, dxx * dyy], -1)
    return maps.permute(0, 3, 1, 2)


# Compiled when the module is first imported (then cached), not at the first frame: the app's first frames, and
# the UI thread that numba's compiler would hold up, do not wait for it.
@numba.njit("void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int64, float32[:, ::1])", inline="always",
            nogil=True)
def _derivative_row(padded: np.ndarray, kx: np.ndarray, ky: np.ndarray, y: int, d: np.ndarray) -> None:
    """dx, dy, dxx, dxy, dyy of row ``y`` of the image inside a replicate-padded (H + 4, W + 4) plane into ``d``
    (5, W): each derivative's separable 5x5 filter (``kx``, ``ky``: (5, 5) taps), vertical pass then horizontal."""
    w = padded.shape[1] - 4
    v = np.empty((5, w + 4), np.float32)
    for k in range(5):
        for x in range(w + 4):
            v[k, x] = (ky[k, 0] * padded[y, x] + ky[k, 1] * padded[y + 1, x] + ky[k, 2] * padded[y + 2, x]
                       + ky[k, 3] * padded[y + 3, x] + ky[k, 4] * padded[y + 4, x])
    for k in range(5):
        for x in range(w):
            d[k, x] = (kx[k, 0] * v[k, x] + kx[k, 1] * v[k, x + 1] + kx[k, 2] * v[k, x + 2]
                       + kx[k, 3] * v[k, x + 3] + kx[k, 4] * v[k, x + 4])


@numba.njit(["void(float32[:, ::1], float32[:, ::1], float32[:, ::1], uint16[:, :, ::1], boolean)",
             "void(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, :, ::1], boolean)"],
            parallel=True, cache=True, nogil=True)
def _maps_hwc(padded: np.ndarray, kx: np.ndarray, ky: np.ndarray, out: np.ndarray, as_bf16: bool) -> None:
    """The ten maps of a replicate-padded (H + 4, W + 4) plane into ``out`` (H, W, 10): float32, or uint16 holding
    bfloat16 bits (round to nearest even) when ``as_bf16``. One pass per row: the derivatives are never written to
    memory."""
    h, w = padded.shape[0] - 4, padded.shape[1] - 4
    for y in numba.prange(h):
        d = np.empty((5, w), np.float32)
        _derivative_row(padded, kx, ky, y, d)
        m = np.empty((w, 10), np.float32)
        for x in range(w):
            dx, dy, dxx, dxy, dyy = d[0, x], d[1, x], d[2, x], d[3, x], d[4, x]
            m[x, 0], m[x, 1], m[x, 2], m[x, 3], m[x, 4] = dx, dy, dx * dx, dy * dy, dx * dy
            m[x, 5], m[x, 6], m[x, 7], m[x, 8], m[x, 9] = dxy, dxy * dxy, dxx, dyy, dxx * dyy
        if as_bf16:
            bits = m.view(np.uint32)
            for x in range(w):
                for c in range(10):
                    b = bits[x, c]
                    out[y, x, c] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        else:
            for x in range(w):
                for c in range(10):
                    out[y, x, c] = m[x, c]


@numba.njit("void(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, :, ::1], float32[:, ::1])",
            parallel=True, cache=True, nogil=True)
def _derivatives_and_range(padded: np.ndarray, kx: np.ndarray, ky: np.ndarray, out: np.ndarray,
                           row_absmax: np.ndarray) -> None:
    """The five derivatives of a replicate-padded (H + 4, W + 4) plane into ``out`` (5, H, W), and each row's
    largest |dx|, |dy|, |dxx|, |dxy|, |dyy|, |dx·dy| and |dxx·dyy| into ``row_absmax`` (H, 7)."""
    h, w = padded.shape[0] - 4, padded.shape[1] - 4
    for y in numba.prange(h):
        d = np.empty((5, w), np.float32)
        _derivative_row(padded, kx, ky, y, d)
        for k in range(5):
            top = np.float32(0.0)
            for x in range(w):
                out[k, y, x] = d[k, x]
                top = max(top, abs(d[k, x]))
            row_absmax[y, k] = top
        top_first, top_second = np.float32(0.0), np.float32(0.0)
        for x in range(w):
            top_first = max(top_first, abs(d[0, x] * d[1, x]))
            top_second = max(top_second, abs(d[2, x] * d[4, x]))
        row_absmax[y, 5], row_absmax[y, 6] = top_first, top_second


@numba.njit("void(float32[:, :, ::1], float32[::1], uint8[:, :, ::1])", parallel=True, cache=True, nogil=True,
            fastmath=True)
def _quantized_maps_hwc(derivatives: np.ndarray, inv_scale: np.ndarray, out: np.ndarray) -> None:
    """The ten maps of (5, H, W) derivatives as uint8 ``round(map * inv_scale) + 128`` (rounding half up, clamped
    to [0, 255]) into ``out`` (H, W, 10): each row quantized planar, then interleaved."""
    h, w = derivatives.shape[1], derivatives.shape[2]
    s, low, high, half = inv_scale, np.float32(0.0), np.float32(255.0), np.float32(128.5)
    for y in numba.prange(h):
        q = np.empty((10, w), np.uint8)
        dx, dy, dxx, dxy, dyy = derivatives[0, y], derivatives[1, y], derivatives[2, y], derivatives[3, y], derivatives[4, y]
        for x in range(w):
            a, b, c, d, e = dx[x], dy[x], dxx[x], dxy[x], dyy[x]
            q[0, x] = np.uint8(min(max(a * s[0] + half, low), high))
            q[1, x] = np.uint8(min(max(b * s[1] + half, low), high))
            q[2, x] = np.uint8(min(max(a * a * s[2] + half, low), high))
            q[3, x] = np.uint8(min(max(b * b * s[3] + half, low), high))
            q[4, x] = np.uint8(min(max(a * b * s[4] + half, low), high))
            q[5, x] = np.uint8(min(max(d * s[5] + half, low), high))
            q[6, x] = np.uint8(min(max(d * d * s[6] + half, low), high))
            q[7, x] = np.uint8(min(max(c * s[7] + half, low), high))
            q[8, x] = np.uint8(min(max(e * s[8] + half, low), high))
            q[9, x] = np.uint8(min(max(c * e * s[9] + half, low), high))
        row = out[y]
        for x in range(w):
            for k in range(10):
                row[x, k] = q[k, x]


def map_absmax(derivative_absmax: np.ndarray) -> np.ndarray:
    """The largest |value| of each of the ten maps, (10,), from the (7,) derivative and product maxima of
    ``_derivatives_and_range``."""
    dx, dy, dxx, dxy, dyy, dx_dy, dxx_dyy = derivative_absmax
    return np.array([dx, dy, dx * dx, dy * dy, dx_dy, dxy, dxy * dxy, dxx, dyy, dxx_dyy], np.float32)


def stacked_kernels(kernels: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The (5, 5) x taps and (5, 5) y taps of five separable 5-tap kernels."""
    return (np.stack([k[0] for k in kernels]).astype(np.float32), np.stack([k[1] for k in kernels]).astype(np.float32))


def fused_handcrafted_maps(x: torch.Tensor, kernels: list[tuple[np.ndarray, np.ndarray]],
                           dtype: torch.dtype) -> torch.Tensor:
    """``handcrafted_maps`` of the derivatives by ``kernels`` (replicated borders), in one pass over a CPU image.

    Shape:
        (B, 1, H, W) float32 -> channels-last (B, 10, H, W) of ``dtype`` (float32 or bfloat16).
    """
    kx, ky = stacked_kernels(kernels)
    b, _, h, w = x.shape
    bf16 = dtype == torch.bfloat16
    out = np.empty((b, h, w, 10), np.uint16 if bf16 else np.float32)
    for plane, dest in zip(x[:, 0].numpy(), out):
        _maps_hwc(cv2.copyMakeBorder(plane, 2, 2, 2, 2, cv2.BORDER_REPLICATE), kx, ky, dest, bf16)
    maps = torch.from_numpy(out)
    return (maps.view(torch.bfloat16) if bf16 else maps).permute(0, 3, 1, 2)


def quantized_handcrafted_maps(x: torch.Tensor, kernels: list[tuple[np.ndarray, np.ndarray]], levels: int,
                               steps_per_octave: int) -> tuple[torch.Tensor, np.ndarray]:
    """``fused_handcrafted_maps`` quantized per map: uint8 ``round(map / scale) + 128``, each map's scale its largest
    |value| over the batch divided by ``levels``, rounded up to a power of 2^(1 / ``steps_per_octave``) (so images
    of about the same contrast share scales; 1 for a map that is zero everywhere). Two passes over the image (the
    derivatives and their ranges, then the quantized maps): the fp32 maps are never stored.

    Shape:
        (B, 1, H, W) float32 -> channels-last uint8 (B, 10, H, W), and the scales (10,) float32.
    """
    kx, ky = stacked_kernels(kernels)
    b, _, h, w = x.shape
    derivatives = np.empty((b, 5, h, w), np.float32)
    row_absmax = np.empty((b, h, 7), np.float32)
    for plane, dest, top in zip(x[:, 0].numpy(), derivatives, row_absmax):
        _derivatives_and_range(cv2.copyMakeBorder(plane, 2, 2, 2, 2, cv2.BORDER_REPLICATE), kx, ky, dest, top)
    absmax = map_absmax(row_absmax.max((0, 1))).astype(np.float64)
    steps = np.ceil(np.log2(np.where(absmax > 0, absmax / levels, 1.0)) * steps_per_octave)
    scale = np.exp2(steps / steps_per_octave).astype(np.float32)
    out = np.empty((b, h, w, 10), np.uint8)
    for image, dest in zip(derivatives, out):
        _quantized_maps_hwc(image, (1.0 / scale).astype(np.float32), dest)
    return torch.from_numpy(out).permute(0, 3, 1, 2), scale
