"""Local maxima of a response map: non-maxima suppression, borders, threshold, and sub-pixel peaks.

NMS (``local_maxima``): a point is kept when it is strictly greater than the rest of its ``nms_size`` window (as
kornia's NMS; the authors' ``==`` test also keeps every pixel of a flat region) and exceeds ``score_threshold``; the
border strip is removed after the suppression, so a strong response inside the strip still suppresses a weaker
one beside it (removing it first would turn the strip's inner edge into false maxima).
"""

from __future__ import annotations

import cv2
import numba
import numpy as np
import torch
import torch.nn.functional as F

from .errors import OptionError


def window_max(response: torch.Tensor, window: int) -> torch.Tensor:
    """The maximum over each ``window`` x ``window`` neighbourhood (outside the image counts as -inf).

    OpenCV's dilation on the CPU (a van Herk/Gil-Werman filter, ~100x faster than ``max_pool2d`` there).

    Shape:
        (B, 1, H, W) -> (B, 1, H, W).
    """
    if response.device.type == "cpu" and response.dtype == torch.float32:
        kernel = np.ones((window, window), np.uint8)
        planes = [cv2.dilate(p.numpy(), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=float("-inf"))
                  for p in response[:, 0]]
        return torch.from_numpy(np.stack(planes))[:, None]
    return F.max_pool2d(response, window, stride=1, padding=window // 2)


def ring_max(response: torch.Tensor) -> torch.Tensor:
    """The maximum of each pixel's 8 neighbours, not the pixel itself (outside the image counts as -inf); the
    torch route of ``local_maxima`` (the CPU's numba pass tests its neighbours itself).

    Shape:
        (B, 1, H, W) -> (B, 1, H, W).
    """
    h, w = response.shape[-2:]
    padded = F.pad(response, (1, 1, 1, 1), value=float("-inf"))
    shifted = [padded[..., dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1)]
    return torch.stack(shifted).amax(0)


def _has_equal_neighbour(padded: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor, radius: int,
                         pad: int) -> torch.Tensor:
    """For each point, whether another pixel within ``radius`` (Chebyshev) has exactly its value."""
    offsets = torch.arange(-radius, radius + 1, device=padded.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    centre = dy.numel() // 2
    dy = torch.cat([dy.reshape(-1)[:centre], dy.reshape(-1)[centre + 1 :]])
    dx = torch.cat([dx.reshape(-1)[:centre], dx.reshape(-1)[centre + 1 :]])
    value = padded[b, y + pad, x + pad]
    around = padded[b[:, None], (y + pad)[:, None] + dy, (x + pad)[:, None] + dx]
    return (around == value[:, None]).any(1)


@numba.njit("void(float32[:, :], float32[:, :], int64, int64, float64, uint8[:, :])", parallel=True, cache=True,
            nogil=True)  # compiled on import, as keynet.inference's kernel
def _strict_maxima_mask(r: np.ndarray, window: np.ndarray, radius: int, border: int, threshold: float,
                        out: np.ndarray) -> None:
    """``out[y, x] = 1`` where ``r`` exceeds ``threshold``, equals its window maximum ``window`` and no other pixel
    within ``radius`` (Chebyshev, inside the map) has its value; the ``border`` strip stays 0."""
    h, w = r.shape
    for y in numba.prange(border, h - border):
        for x in range(border, w - border):
            v = r[y, x]
            if v <= threshold or v != window[y, x]:
                continue
            unique = True
            for yy in range(max(0, y - radius), min(h, y + radius + 1)):
                for xx in range(max(0, x - radius), min(w, x + radius + 1)):
                    if r[yy, xx] == v and (yy != y or xx != x):
                        unique = False
                        break
                if not unique:
                    break
            if unique:
                out[y, x] = 1


def _local_maxima_cpu(r: torch.Tensor, window: torch.Tensor, nms_size: int, border: int,
                      threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``local_maxima`` of one (H, W) CPU float32 map, given its ``window_max``: one numba pass."""
    plane = r.numpy()
    mask = np.zeros(plane.shape, np.uint8)
    _strict_maxima_mask(plane, window.numpy(), nms_size // 2, border, float(threshold), mask)
    y, x = np.nonzero(mask)
    scores = plane[y, x]
    order = np.argsort(-scores, kind="stable")
    xy = torch.from_numpy(np.stack([x[order], y[order]], 1).astype(np.int64))
    return xy, torch.from_numpy(scores[order].copy())


def local_maxima(
    response: torch.Tensor, nms_size: int, border: int, threshold: float
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Strict local maxima of each response map, strongest first.

    A point is kept when it is strictly greater than every other response in its ``nms_size`` window, exceeds
    ``threshold`` and lies outside the ``border`` strip. Strictness matters: a flat region (a saturated sky, a
    black frame) has a constant response, and an ``==`` test would report every pixel of it. The strip is removed
    after the suppression, so a strong response inside it still suppresses a weaker one beside it.

    Args:
        response: (B, 1, H, W) response.
        nms_size: odd window side of the suppression (1 keeps every point above the threshold).
        border: width of the strip along each side where no keypoint is kept.
        threshold: a maximum must exceed it.

    Returns:
        Per image: (N, 2) long xy pixel coordinates and (N,) scores, sorted by score (descending).
    """
    if nms_size < 1 or nms_size % 2 == 0:
        raise OptionError(f"nms_size must be a positive odd number; got {nms_size}")
    r = response[:, 0]
    if r.device.type == "cpu" and r.dtype == torch.float32 and nms_size > 1:
        windows = window_max(response, nms_size)[:, 0]  # OpenCV's dilation
        return [_local_maxima_cpu(plane, window, nms_size, border, threshold) for plane, window in zip(r, windows)]
    candidates = r > threshold
    if nms_size > 1:
        # strictly above the 8 neighbours (dense: a flat region would leave every pixel a candidate), and the
        # window's maximum
        candidates &= (r > ring_max(response)[:, 0]) & (r == window_max(response, nms_size)[:, 0])
    if border > 0:
        h, w = r.shape[-2:]
        candidates[:, :border] = False
        candidates[:, h - border :] = False
        candidates[:, :, :border] = False
        candidates[:, :, w - border :] = False
    b, y, x = candidates.nonzero(as_tuple=True)
    if nms_size > 3 and len(b):  # ties beyond the 8 neighbours, among the few candidates left
        pad = nms_size // 2
        padded = F.pad(r, (pad, pad, pad, pad), value=float("-inf"))
        keep = ~_has_equal_neighbour(padded, b, y, x, pad, pad)
        b, y, x = b[keep], y[keep], x[keep]
    scores = r[b, y, x]
    out = []
    for j in range(r.shape[0]):
        mine = b == j
        s, order = torch.sort(scores[mine], descending=True, stable=True)
        out.append((torch.stack([x[mine], y[mine]], 1)[order], s))
    return out


def subpixel_peaks(response: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Sub-pixel positions of maxima: the vertex of a parabola through each peak and its two neighbours, per axis
    (no shift along an axis where a neighbour lies outside the map).

    Args:
        response: (H, W) map; xy: (N, 2) long integer maxima of it.

    Returns:
        (N, 2) float32 positions, each within half a pixel of its integer maximum.
    """
    h, w = response.shape
    x, y = xy[:, 0], xy[:, 1]
    centre = response[y, x]
    offsets = []
    for lo, hi, inside in (((y, (x - 1).clamp(min=0)), (y, (x + 1).clamp(max=w - 1)), (x > 0) & (x < w - 1)),
                           (((y - 1).clamp(min=0), x), ((y + 1).clamp(max=h - 1), x), (y > 0) & (y < h - 1))):
        before, after = response[lo], response[hi]
        curvature = before + after - 2 * centre
        step = torch.where(inside & (curvature < 0), 0.5 * (before - after) / curvature.clamp(max=-1e-12), 0.0)
        offsets.append(step.clamp(-0.5, 0.5))
    return xy.float() + torch.stack(offsets, 1)
