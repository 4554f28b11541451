"""The Index Proposal layer and the M-SIP loss of the Key.Net paper (section 4).

Index Proposal (IP, equations 2-3): the response is split into N x N windows; in each, a spatial softmax of base e
weights the pixel coordinates, giving one soft keypoint per window at the expected coordinates. As in the authors'
implementation, the exponent is the response divided by the window's maximum, and e^0 is subtracted, so the
proposal does not depend on the response's overall scale and zero responses carry no weight; the window maximum
in the exponent carries no gradient.

M-SIP (equations 4-5): for window sizes [8, 16, 24, 32, 40] with weights [256, 64, 16, 4, 1], the squared distance
(in window units) between the soft keypoint of a window in image a and the location of the maximum of b's
response, warped into a's frame by the ground-truth homography, in the same window; and symmetrically from b to a.
Each window's term is weighted by alpha = R_a + R_b at its maxima (equation 4), normalised over the pair's windows
so that the loss cannot fall by shrinking the response; the targets and the weights carry no gradient (as the
authors' code). Only windows entirely inside the area both images see count (a pair with none adds zero).

The choice of comparison: the target of a window is the hard maximum of the other response warped into this
image's frame by the ground-truth homography (kornia's ``warp_perspective``), so both coordinates live on the
same window grid. The loss is the mean over pairs of each pair's loss: a batch split across processes averages
to the same value and gradient as the whole batch in one process.
"""

from __future__ import annotations

from typing import Any

import torch
from kornia.geometry.transform import warp_perspective

default_conf: dict[str, Any] = {"window_sizes": (8, 16, 24, 32, 40), "window_weights": (256.0, 64.0, 16.0, 4.0, 1.0)}


def _cells(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, K, N*N): the non-overlapping cells of the top-left (H//N) x (W//N) grid, row-major."""
    rows, cols = x.shape[-2] // window, x.shape[-1] // window
    cells = x[:, 0, : rows * window, : cols * window].reshape(len(x), rows, window, cols, window)
    return cells.permute(0, 1, 3, 2, 4).reshape(len(x), rows * cols, window * window)


def _cell_coordinates(x: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local x, y of each pixel of a cell (N*N,) and each cell's corner (K, 2), for a (B, 1, H, W) map."""
    offsets = torch.arange(window, dtype=x.dtype, device=x.device)
    local_y, local_x = torch.meshgrid(offsets, offsets, indexing="ij")
    cols = x.shape[-1] // window
    k = torch.arange((x.shape[-2] // window) * cols, device=x.device)
    corners = torch.stack([(k % cols).to(x.dtype), (k // cols).to(x.dtype)], -1) * window
    return local_x.reshape(-1), local_y.reshape(-1), corners


def index_proposal(response: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft keypoint of each non-overlapping ``window`` x ``window`` cell (the IP layer).

    Args:
        response: (B, 1, H, W), non-negative.
        window: cell side N.

    Returns:
        coords: (B, K, 2) expected (x, y) pixel coordinates, K = (H // N) * (W // N).
        peak: (B, K) each cell's maximum response (no gradient).
    """
    cells = _cells(response, window)
    peak = cells.max(-1, keepdim=True).values.detach()
    weights = torch.exp(cells / (peak + 1e-6)) - (1 - 1e-6)
    weights = weights / weights.sum(-1, keepdim=True)
    local_x, local_y, corners = _cell_coordinates(response, window)
    return torch.stack([weights @ local_x, weights @ local_y], -1) + corners, peak[..., 0]


def hard_index(response: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Location (B, K, 2) and value (B, K) of each cell's maximum; no gradient."""
    with torch.no_grad():
        cells = _cells(response, window)
        peak, idx = cells.max(-1)
        local_x, local_y, corners = _cell_coordinates(response, window)
        return torch.stack([local_x[idx], local_y[idx]], -1) + corners, peak


def cells_inside(mask: torch.Tensor, window: int) -> torch.Tensor:
    """(B, K) bool: the cells of ``window`` entirely inside a (B, 1, H, W) mask."""
    return _cells(mask.float(), window).amin(-1) > 0.5


def warp(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Warp maps by homographies: out(q) = x(H^-1 q), i.e. a point p of x lands at H p. (B, C, H, W), (B, 3, 3)."""
    return warp_perspective(x, h, x.shape[-2:], align_corners=True)


def _one_way(response: torch.Tensor, other_warped: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """Per pair (B,): weighted mean squared distance (window units) from the soft keypoints to the other's maxima."""
    valid = cells_inside(mask, window).to(response.dtype)
    soft, peak = index_proposal(response, window)
    target, other_peak = hard_index(other_warped, window)
    alpha = (peak + other_peak) * valid
    distance = (((soft - target) / window) ** 2).sum(-1)
    return (alpha * distance).sum(1) / alpha.sum(1).clamp_min(1e-12)


def msip_loss(response_a: torch.Tensor, response_b: torch.Tensor, h_ab: torch.Tensor, mask_a: torch.Tensor,
              **conf: Any) -> torch.Tensor:
    """The M-SIP loss of a batch of pairs (a scalar).

    Args:
        response_a, response_b: (B, 1, H, W) Key.Net responses of images a and b.
        h_ab: (B, 3, 3) homographies mapping a's pixels to b's.
        mask_a: (B, 1, H, W) the area of a that b also sees.
        **conf: overrides of ``default_conf`` (window sizes and their weights).
    """
    c = {**default_conf, **conf}
    if len(c["window_sizes"]) != len(c["window_weights"]):
        raise ValueError("window_sizes and window_weights must have the same length")
    h_ba = torch.linalg.inv(h_ab)
    b_in_a = warp(response_b.detach(), h_ba)
    a_in_b = warp(response_a.detach(), h_ab)
    mask_b = warp(mask_a.float(), h_ab) > 0.999
    total = response_a.new_zeros(len(response_a))
    for window, weight in zip(c["window_sizes"], c["window_weights"]):
        total = total + weight * 0.5 * (_one_way(response_a, b_in_a, mask_a, window)
                                        + _one_way(response_b, a_in_b, mask_b, window))
    return total.mean()
