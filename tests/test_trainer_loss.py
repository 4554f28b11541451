"""The Index Proposal layer and the M-SIP loss on analytic cases."""

from __future__ import annotations

import torch

from keynet.model import HandcraftedBlock, KeyNet, TinyKeyNet
from trainer.loss import hard_index, index_proposal, msip_loss, warp


def peaks_map(size=96, window=8, seed=0):
    """One peak of random height at a random pixel of every window: a map whose maxima are known."""
    g = torch.Generator().manual_seed(seed)
    r = torch.zeros(1, 1, size, size)
    cells = size // window
    for cy in range(cells):
        for cx in range(cells):
            y, x = torch.randint(0, window, (2,), generator=g).tolist()
            r[0, 0, cy * window + y, cx * window + x] = 0.5 + torch.rand(1, generator=g).item()
    return r


def test_a_single_peak_in_a_window_yields_its_own_coordinates():
    r = torch.zeros(1, 1, 16, 24)
    r[0, 0, 11, 19] = 3.0  # in the window of corner (16, 8)
    coords, peak = index_proposal(r, 8)
    assert coords.shape == (1, 6, 2)
    torch.testing.assert_close(coords[0, 5], torch.tensor([19.0, 11.0]), atol=1e-3, rtol=0)
    assert peak[0, 5] == 3.0
    torch.testing.assert_close(hard_index(r, 8)[0][0, 5], torch.tensor([19.0, 11.0]))


def test_the_proposal_does_not_depend_on_the_response_scale():
    r = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(index_proposal(r, 16)[0], index_proposal(7.5 * r, 16)[0])


def translation(dx, dy):
    return torch.tensor([[[1.0, 0, dx], [0, 1, dy], [0, 0, 1]]])


def test_maps_related_by_the_homography_give_zero_loss_and_others_more():
    ra = peaks_map(window=8)
    h = translation(8.0, 16.0)  # whole windows, so every window's peak stays in its window
    rb = warp(ra, h)
    mask = torch.zeros_like(ra)
    mask[..., :80, :88] = 1  # the part of a that b sees
    windows = {"window_sizes": (8,), "window_weights": (1.0,)}
    exact = msip_loss(ra, rb, h, mask, **windows)
    assert float(exact) < 1e-5
    assert float(msip_loss(ra, warp(ra, translation(11.0, 16.0)), h, mask, **windows)) > 100 * float(exact) + 1e-3
    assert float(msip_loss(ra, peaks_map(seed=1), h, mask, **windows)) > 1e-3


def test_gradients_reach_every_learned_parameter_and_none_the_handcrafted_block():
    assert list(HandcraftedBlock().parameters()) == []
    for model in (KeyNet(), TinyKeyNet()):
        handcrafted = [m for m in model.modules() if isinstance(m, HandcraftedBlock)]
        outputs = []
        for m in handcrafted:
            m.register_forward_hook(lambda _m, _i, out, seen=outputs: seen.append(out))
        a, b = torch.rand(2, 1, 64, 64).unbind(0)
        h = translation(3.0, -2.0)
        mask = torch.ones(1, 1, 64, 64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            responses = model(torch.stack([a, b]))
            loss = msip_loss(responses[:1], responses[1:], h, mask, window_sizes=(8, 16), window_weights=(4.0, 1.0))
            optimizer.zero_grad()
            loss.backward()
            for name, p in model.named_parameters():
                assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
            optimizer.step()
        # The handcrafted maps are constants of the input: no gradient flows into them, training leaves them as they were.
        assert handcrafted and outputs and not any(out.requires_grad for out in outputs)
        half = len(outputs) // 2
        for before, after in zip(outputs[:half], outputs[half:]):
            torch.testing.assert_close(before, after, rtol=0, atol=0)
