"""Descriptor matching on the compute device: mutual nearest neighbours with a ratio test, and keypoint tracks."""

from __future__ import annotations

import numba
import numpy as np
import torch

from .config import MatchingConfig
from .describe import Descriptors


def distance_matrix(a: Descriptors, b: Descriptors) -> torch.Tensor:
    """(N, M) distances: Hamming (bits) for binary descriptors, Euclidean for unit float descriptors."""
    if a.binary != b.binary:
        raise ValueError("cannot compare binary with float descriptors; describe both with the same descriptor")
    if a.binary:
        # popcount(x xor y) = |x| + |y| - 2 x.y, one product; exact, as x.y <= 256 (bits: float32, or bfloat16
        # where it is native: AMX multiplies it 3.5x faster)
        x, y = a.bits, b.bits
        sums = x.sum(1, keepdim=True, dtype=torch.float32) + y.sum(1, dtype=torch.float32)[None]
        return sums.sub_((x @ y.T).float(), alpha=2.0)
    return torch.cdist(a.data.float(), b.data.float())


def mutual_nn_ratio(dist: torch.Tensor, ratio: float = MatchingConfig.ratio) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of a distance matrix passing the ratio test (best < ratio * second best).

    Args:
        dist: (N, M) distances; ``inf`` marks forbidden pairs (guided matching).
        ratio: the ratio threshold; 1 disables the test.

    Returns:
        matches: (K, 2) int64 row, column indices; distances: (K,) float32.
    """
    n, m = dist.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    k = min(2, m)
    vals, idx = dist.topk(k, dim=1, largest=False)
    nn12 = idx[:, 0]
    nn21 = dist.argmin(dim=0)
    rows = torch.arange(n, device=dist.device)
    ok = (nn21[nn12] == rows) & torch.isfinite(vals[:, 0])
    if k == 2 and ratio < 1:
        ok &= vals[:, 0] < ratio * vals[:, 1]
    rows = rows[ok]
    matches = torch.stack([rows, nn12[ok]], 1).cpu().numpy().astype(np.int64)
    return matches, vals[ok, 0].cpu().numpy().astype(np.float32)


def guide(dist: torch.Tensor, predicted: np.ndarray, observed: np.ndarray, radius: float) -> torch.Tensor:
    """``dist`` with pairs farther than ``radius`` px apart set to ``inf``.

    Args:
        dist: (N, M); predicted: (N, 2) where the rows should appear; observed: (M, 2) the columns' positions.
    """
    p = torch.as_tensor(predicted, dtype=torch.float32, device=dist.device)
    o = torch.as_tensor(observed, dtype=torch.float32, device=dist.device)
    return dist.masked_fill(torch.cdist(p, o) > radius, float("inf"))


@numba.njit("void(uint64[:, ::1], uint64[:, ::1], float32[:, ::1], float32[:, ::1], float64, int64[::1], "
            "float32[::1], float32[::1], int64[::1], float32[::1])", cache=True, nogil=True)
def _guided_hamming(a: np.ndarray, b: np.ndarray, pa: np.ndarray, pb: np.ndarray, radius2: float,
                    row_best: np.ndarray, row_d1: np.ndarray, row_d2: np.ndarray, col_best: np.ndarray,
                    col_d: np.ndarray) -> None:
    """Hamming distances of the pairs within ``sqrt(radius2)`` px only: each row's best column and two smallest
    distances, each column's best row (the first one on ties, as ``argmin``). Arrays come filled with -1 / inf."""
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            dx, dy = pa[i, 0] - pb[j, 0], pa[i, 1] - pb[j, 1]
            if dx * dx + dy * dy > radius2:
                continue
            bits = 0
            for k in range(a.shape[1]):  # popcount of the xor, 64 bits at a time (SWAR)
                v = a[i, k] ^ b[j, k]
                v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
                v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
                v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
                bits += (v * np.uint64(0x0101010101010101)) >> np.uint64(56)
            d = np.float32(bits)
            if d < row_d1[i]:
                row_d2[i], row_d1[i], row_best[i] = row_d1[i], d, j
            elif d < row_d2[i]:
                row_d2[i] = d
            if d < col_d[j]:
                col_d[j], col_best[j] = d, i


def guided_matches(a: Descriptors, b: Descriptors, predicted: np.ndarray, observed: np.ndarray, radius: float,
                   ratio: float = MatchingConfig.ratio) -> tuple[np.ndarray, np.ndarray]:
    """``mutual_nn_ratio(guide(distance_matrix(a, b), predicted, observed, radius), ratio)``.

    Binary descriptors on the CPU are compared only for the pairs within ``radius`` (a few per row instead of
    all of them: one numba pass); the others take the dense route.

    Args:
        a: N descriptors expected near ``predicted`` (N, 2); b: M descriptors at ``observed`` (M, 2).
    """
    if not (a.binary and b.binary and a.data.device.type == "cpu" and b.data.device.type == "cpu"
            and a.data.shape[1] % 8 == 0 and a.data.shape[1] == b.data.shape[1]):
        return mutual_nn_ratio(guide(distance_matrix(a, b), predicted, observed, radius), ratio)
    n, m = len(a), len(b)
    row_best, col_best = np.full(n, -1, np.int64), np.full(m, -1, np.int64)
    row_d1, row_d2, col_d = (np.full(k, np.inf, np.float32) for k in (n, n, m))
    words_a, words_b = (np.ascontiguousarray(d.data.numpy()).view(np.uint64) for d in (a, b))
    at_a, at_b = (np.ascontiguousarray(p, np.float32) for p in (predicted, observed))
    _guided_hamming(words_a, words_b, at_a, at_b, float(radius) ** 2, row_best, row_d1, row_d2, col_best, col_d)
    rows = np.flatnonzero(row_best >= 0)
    rows = rows[col_best[row_best[rows]] == rows]
    if m >= 2 and ratio < 1:
        rows = rows[row_d1[rows] < ratio * row_d2[rows]]
    return np.stack([rows, row_best[rows]], 1).astype(np.int64), row_d1[rows]


def coherent_motion(before: np.ndarray, after: np.ndarray, config: MatchingConfig | None = None) -> np.ndarray:
    """Which matches move like their neighbours: a wrong match jumps across the image, a right one moves with the
    points around it (a smooth motion field, planar or not).

    A match is kept when its motion differs from the median motion of its ``config.coherent_neighbours`` nearest
    matched points (in the previous frame) by at most ``max(coherent_min_px, coherent_share * |median motion|)
    + coherent_gradient * (median distance to them)``: the motion field may change by ``coherent_gradient`` px per
    px (0.1: a turn of about 6 degrees, a 10% zoom between frames).

    Args:
        before, after: (K, 2) positions of the K matched points in the previous and the current frame.
        config: the limits (default ``MatchingConfig()``).

    Returns:
        (K,) bool; every match is kept when there are too few for a local motion (fewer than 4).
    """
    c = config or MatchingConfig()
    k = len(before)
    if k < 4:
        return np.ones(k, bool)
    start = torch.from_numpy(np.asarray(before, np.float32))
    motion = torch.from_numpy(np.asarray(after, np.float32)) - start
    d = torch.cdist(start, start).fill_diagonal_(float("inf"))
    spacing, near = d.topk(min(c.coherent_neighbours, k - 1), dim=1, largest=False)
    local = motion[near].median(dim=1).values
    tolerance = ((c.coherent_share * local.norm(dim=1)).clamp(min=c.coherent_min_px)
                 + c.coherent_gradient * spacing.median(dim=1).values)
    return ((motion - local).norm(dim=1) <= tolerance).numpy()


class TrackBook:
    """Frame-to-frame matching that gives each keypoint a track id and a track length (frames seen in a row).

    A match continues a track only when it moves like the matches around it (``coherent_motion``); the others start
    new tracks, so trails do not jump between unrelated points.

    Args:
        config: ``ratio`` (the ratio test), ``track_radius`` (the largest motion in pixels between two frames) and
            the ``coherent_*`` limits; default ``MatchingConfig()``. Replace ``book.config`` to change them.
    """

    def __init__(self, config: MatchingConfig | None = None) -> None:
        self.config = config or MatchingConfig()
        self.reset()

    def reset(self) -> None:
        self.prev: tuple[Descriptors, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.next_id = 0

    def update(self, desc: Descriptors, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Track ids, lengths and previous positions ((N, 2), NaN for new tracks) of described points ``xy`` (N, 2)."""
        n = len(desc)
        ids = np.full(n, -1, np.int64)
        lengths = np.ones(n, np.int64)
        prev_xy = np.full((n, 2), np.nan, np.float32)
        if self.prev is not None and n and len(self.prev[0]):
            p_desc, p_xy, p_ids, p_len = self.prev
            m, _ = guided_matches(desc, p_desc, xy, p_xy, self.config.track_radius, self.config.ratio)
            m = m[coherent_motion(p_xy[m[:, 1]], xy[m[:, 0]], self.config)]
            ids[m[:, 0]] = p_ids[m[:, 1]]
            lengths[m[:, 0]] = p_len[m[:, 1]] + 1
            prev_xy[m[:, 0]] = p_xy[m[:, 1]]
        new = ids < 0
        ids[new] = np.arange(self.next_id, self.next_id + new.sum())
        self.next_id += int(new.sum())
        self.prev = (desc, xy.astype(np.float32), ids, lengths)
        return ids, lengths, prev_xy
