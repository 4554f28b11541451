"""Matching: distances against scipy/numpy references, mutual NN and ratio test on analytic cases, tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keynet.config import MatchingConfig
from keynet.describe import Descriptors
from keynet.match import TrackBook, coherent_motion, distance_matrix, guide, guided_matches, mutual_nn_ratio


def binary(rows: np.ndarray) -> Descriptors:
    return Descriptors(np.arange(len(rows)), torch.from_numpy(rows.astype(np.uint8)), True)


def test_hamming_matches_bit_count():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (7, 32)), rng.integers(0, 256, (5, 32))
    expected = np.unpackbits((a[:, None] ^ b[None]).astype(np.uint8), axis=2).sum(2)
    np.testing.assert_array_equal(distance_matrix(binary(a), binary(b)).numpy(), expected)
    ones, zeros = np.full((1, 32), 255), np.zeros((1, 32))  # the extremes: 256 bits in common, or none
    np.testing.assert_array_equal(distance_matrix(binary(ones), binary(np.vstack([ones, zeros]))).numpy(), [[0, 256]])


def test_mutual_nn_and_ratio():
    d = torch.tensor([[1.0, 5.0, 9.0], [1.2, 9.0, 9.0], [9.0, 9.0, 4.0]])
    m, dist = mutual_nn_ratio(d, ratio=1.0)
    assert m.tolist() == [[0, 0], [2, 2]]  # row 1's nearest (column 0) prefers row 0
    m, _ = mutual_nn_ratio(d, ratio=0.1)
    assert m.tolist() == []
    m, _ = mutual_nn_ratio(torch.tensor([[1.0, 10.0]]), ratio=0.5)
    assert m.tolist() == [[0, 0]]


def test_guided_matching_forbids_far_pairs():
    d = torch.zeros(1, 2)
    g = guide(d, np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [30.0, 0.0]]), radius=10)
    assert g[0, 0] == 0 and torch.isinf(g[0, 1])


def first_frame(seed: int, n: int, extent: float, ratio: float, radius: float):
    """A TrackBook that has seen one frame of ``n`` random descriptors at random places; its ids and lengths."""
    rng = np.random.default_rng(seed)
    desc, xy = rng.integers(0, 256, (n, 32)), rng.uniform(0, extent, (n, 2))
    book = TrackBook(MatchingConfig(ratio=ratio, track_radius=radius))
    return rng, desc, xy, book, *book.update(binary(desc), xy)[:2]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("radius", "ratio"), [(40.0, 0.9), (25.0, 0.8), (1e4, 0.9), (40.0, 1.0)])
def test_sparse_guided_matching_equals_the_dense_route(seed, radius, ratio):
    rng = np.random.default_rng(seed)
    n, m = 300, 200
    base = rng.integers(0, 256, (m, 32), dtype=np.uint8)
    noisy = base[rng.integers(0, m, n)] ^ (rng.random((n, 32, 8)) < 0.1).astype(np.uint8) @ (1 << np.arange(8))
    a = Descriptors(np.arange(n), torch.from_numpy(noisy.astype(np.uint8)), True)
    b = Descriptors(np.arange(m), torch.from_numpy(base), True)
    pa, pb = rng.uniform(0, 300, (n, 2)), rng.uniform(0, 300, (m, 2))
    got, got_d = guided_matches(a, b, pa, pb, radius, ratio)
    want, want_d = mutual_nn_ratio(guide(distance_matrix(a, b), pa, pb, radius), ratio)
    if ratio < 1:  # with the test off, which of two equally near columns a row takes is the implementation's
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_d, want_d)
    assert len(got) > 0 and np.all(np.linalg.norm(pa[got[:, 0]] - pb[got[:, 1]], axis=1) <= radius)


def test_tracks_get_ids_and_lengths():
    rng, desc, xy, book, ids0, len0 = first_frame(1, 4, 100, ratio=0.95, radius=20)
    assert sorted(ids0.tolist()) == [0, 1, 2, 3] and len0.tolist() == [1] * 4
    order = np.array([2, 0, 3])
    ids1, len1, prev = book.update(binary(np.vstack([desc[order], rng.integers(0, 256, (1, 32))])),
                                   np.vstack([xy[order] + 2, [[500, 500]]]))
    assert ids1[:3].tolist() == ids0[order].tolist() and ids1[3] == 4
    assert len1.tolist() == [2, 2, 2, 1]
    np.testing.assert_allclose(prev[:3], xy[order], rtol=1e-5)


def test_matches_that_move_unlike_their_neighbours_are_rejected():
    rng = np.random.default_rng(2)
    before = rng.uniform(0, 400, (60, 2))
    angle = np.radians(4)  # a small turn about the centre and a shift: a smooth motion field
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    after = (before - 200) @ rot.T + 200 + [12.0, -5.0]
    wrong = [3, 17, 42]
    after[wrong] = after[wrong][::-1] + [[30, 0], [0, 30], [-30, 0]]  # swapped partners, far from where they go
    keep = coherent_motion(before, after)
    assert not keep[wrong].any() and keep.sum() == 57
    assert coherent_motion(before[:3], after[:3]).all()  # too few for a local motion: all kept


def test_a_wrong_continuation_starts_a_new_track():
    _, desc, xy, book, ids0, _ = first_frame(3, 30, 200, ratio=1.0, radius=60)
    moved = xy + [4.0, 2.0]
    moved[0] = xy[0] + [-35.0, 30.0]  # point 0's descriptor appears far from where its neighbours went
    ids1, len1, _ = book.update(binary(desc), moved)
    assert ids1[0] not in ids0 and len1[0] == 1
    assert (ids1[1:] == ids0[1:]).all() and (len1[1:] == 2).all()
