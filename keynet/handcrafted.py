"""Key.Net's handcrafted block computed fast: the Sobel derivatives as separable filters and the ten maps in one
numba pass per image, channels-last, in fp32 or rounded to bf16, with each map's range (the int8 route's scales)."""

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
@numba.njit(["void(float32[:, ::1], float32[:, ::1], float32[:, ::1], uint16[:, :, ::1], boolean, float32[:, ::1])",
             "void(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, :, ::1], boolean, float32[:, ::1])"],
            parallel=True, cache=True, nogil=True)
def _maps_hwc(padded: np.ndarray, kx: np.ndarray, ky: np.ndarray, out: np.ndarray, as_bf16: bool,
              row_absmax: np.ndarray) -> None:
    """The ten maps of a replicate-padded (H + 4, W + 4) plane into ``out`` (H, W, 10): float32, or uint16 holding
    bfloat16 bits (round to nearest even) when ``as_bf16``. ``kx``, ``ky``: (5, 5) separable taps of dx, dy, dxx,
    dxy, dyy. One pass per row: the derivatives are never written to memory. ``row_absmax`` (H, 7) gets each row's
    largest |dx|, |dy|, |dxx|, |dxy|, |dyy|, |dx·dy| and |dxx·dyy| (``map_absmax`` turns them into the maps')."""
    h, w = padded.shape[0] - 4, padded.shape[1] - 4
    for y in numba.prange(h):
        v = np.empty((5, w + 4), np.float32)  # each derivative's vertical pass over this row
        for k in range(5):
            for x in range(w + 4):
                v[k, x] = (ky[k, 0] * padded[y, x] + ky[k, 1] * padded[y + 1, x] + ky[k, 2] * padded[y + 2, x]
                           + ky[k, 3] * padded[y + 3, x] + ky[k, 4] * padded[y + 4, x])
        d = np.empty((5, w), np.float32)
        for k in range(5):
            for x in range(w):
                d[k, x] = (kx[k, 0] * v[k, x] + kx[k, 1] * v[k, x + 1] + kx[k, 2] * v[k, x + 2]
                           + kx[k, 3] * v[k, x + 3] + kx[k, 4] * v[k, x + 4])
        for k in range(5):
            top = np.float32(0.0)
            for x in range(w):
                top = max(top, abs(d[k, x]))
            row_absmax[y, k] = top
        m = np.empty((w, 10), np.float32)
        top_first, top_second = np.float32(0.0), np.float32(0.0)
        for x in range(w):
            dx, dy, dxx, dxy, dyy = d[0, x], d[1, x], d[2, x], d[3, x], d[4, x]
            m[x, 0], m[x, 1], m[x, 2], m[x, 3], m[x, 4] = dx, dy, dx * dx, dy * dy, dx * dy
            m[x, 5], m[x, 6], m[x, 7], m[x, 8], m[x, 9] = dxy, dxy * dxy, dxx, dyy, dxx * dyy
            top_first, top_second = max(top_first, abs(dx * dy)), max(top_second, abs(dxx * dyy))
        row_absmax[y, 5], row_absmax[y, 6] = top_first, top_second
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


def map_absmax(derivative_absmax: np.ndarray) -> np.ndarray:
    """The largest |value| of each of the ten maps, (10,), from ``_maps_hwc``'s (7,) derivative and product maxima."""
    dx, dy, dxx, dxy, dyy, dx_dy, dxx_dyy = derivative_absmax
    return np.array([dx, dy, dx * dx, dy * dy, dx_dy, dxy, dxy * dxy, dxx, dyy, dxx_dyy], np.float32)


def fused_handcrafted_maps_and_range(x: torch.Tensor, kernels: list[tuple[np.ndarray, np.ndarray]],
                                     dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """``fused_handcrafted_maps`` and the largest |value| of each map over the batch, (10,) float32."""
    kx = np.stack([k[0] for k in kernels]).astype(np.float32)
    ky = np.stack([k[1] for k in kernels]).astype(np.float32)
    b, _, h, w = x.shape
    bf16 = dtype == torch.bfloat16
    out = np.empty((b, h, w, 10), np.uint16 if bf16 else np.float32)
    row_absmax = np.empty((b, h, 7), np.float32)
    for plane, dest, top in zip(x[:, 0].numpy(), out, row_absmax):
        _maps_hwc(cv2.copyMakeBorder(plane, 2, 2, 2, 2, cv2.BORDER_REPLICATE), kx, ky, dest, bf16, top)
    maps = torch.from_numpy(out)
    return (maps.view(torch.bfloat16) if bf16 else maps).permute(0, 3, 1, 2), map_absmax(row_absmax.max((0, 1)))


def fused_handcrafted_maps(x: torch.Tensor, kernels: list[tuple[np.ndarray, np.ndarray]],
                           dtype: torch.dtype) -> torch.Tensor:
    """``handcrafted_maps`` of the derivatives by ``kernels`` (replicated borders), in one pass over a CPU image.

    Shape:
        (B, 1, H, W) float32 -> channels-last (B, 10, H, W) of ``dtype`` (float32 or bfloat16).
    """
    return fused_handcrafted_maps_and_range(x, kernels, dtype)[0]
