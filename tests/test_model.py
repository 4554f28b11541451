"""Key.Net architecture: parameter counts (paper Table 4), checkpoint layout, and parity with kornia's KeyNet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from kornia.feature import KeyNet as KorniaKeyNet
from kornia.filters import spatial_gradient

from keynet.handcrafted import fused_handcrafted_maps, separable_derivative_kernels
from keynet.image import to_grey_tensor
from keynet.inference import response_function
from keynet.model import HandcraftedBlock, KeyNet, TinyKeyNet, count_learnable_parameters
from keynet.weights import load_checkpoint

from .conftest import DATA, TEST_IMAGE, require_shared

AUTHORS_KEYS = [
    f"feature_extractor.lb_block.conv{i}.{j}.{p}"
    for i in range(3)
    for j, params in ((0, ("weight", "bias")), (1, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")))
    for p in params
] + ["last_conv.0.weight", "last_conv.0.bias"]


def test_keynet_has_about_5_8k_learnable_parameters():
    # Paper Table 4: Key.Net 5.8k. Three 5x5 blocks of M=8 (10->8, 8->8, 8->8) and a 5x5 conv 24->1.
    expected_convs = (10 * 8 * 25 + 8) + 2 * (8 * 8 * 25 + 8) + (24 * 25 + 1)
    assert count_learnable_parameters(KeyNet(), include_batchnorm=False) == expected_convs == 5825
    assert count_learnable_parameters(KeyNet()) == expected_convs + 3 * 2 * 8
    assert round(count_learnable_parameters(KeyNet()) / 1000, 1) in (5.8, 5.9)


def test_tiny_keynet_has_260_parameters_plus_batchnorm():
    # Paper section 6.4: "only with 5x5x10 + bias and batch norm" (Table 4 rounds it to 260).
    tiny = TinyKeyNet()
    assert count_learnable_parameters(tiny, include_batchnorm=False) == 5 * 5 * 10 + 1
    assert count_learnable_parameters(tiny) == 5 * 5 * 10 + 1 + 2
    assert abs(count_learnable_parameters(tiny, include_batchnorm=False) - 260) / 260 < 0.05


def test_state_dict_uses_the_authors_layout():
    assert list(KeyNet().state_dict()) == AUTHORS_KEYS


def test_authors_checkpoint_loads_as_it_is(authors_weights):
    state = load_checkpoint(authors_weights)["state_dict"]
    KeyNet().load_state_dict(state, strict=True)


def test_handcrafted_block_on_a_quadratic_surface_gives_its_derivatives():
    # I = a x^2 + b x y + c y^2: away from the border, dx = 2ax + by, dxx = 2a, dxy = b, dyy = 2c.
    a, b, c = 0.01, -0.02, 0.015
    y, x = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
    image = (a * x**2 + b * x * y + c * y**2)[None, None]
    maps = HandcraftedBlock()(image)[0, :, 5:-5, 5:-5]
    xi, yi = x[5:-5, 5:-5], y[5:-5, 5:-5]
    dx, dy = 2 * a * xi + b * yi, b * xi + 2 * c * yi
    expected = [dx, dy, dx**2, dy**2, dx * dy, torch.full_like(dx, b), torch.full_like(dx, b * b),
                torch.full_like(dx, 2 * a), torch.full_like(dx, 2 * c), torch.full_like(dx, 4 * a * c)]
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_handcrafted_block_matches_kornia_sobel():
    image = torch.rand(1, 1, 33, 47)
    g = spatial_gradient(image)
    dx, dy = g[:, :, 0], g[:, :, 1]
    g2 = spatial_gradient(dx)
    dyy = spatial_gradient(dy)[:, :, 1]
    dxx, dxy = g2[:, :, 0], g2[:, :, 1]
    want = torch.cat([dx, dy, dx * dx, dy * dy, dx * dy, dxy, dxy * dxy, dxx, dyy, dxx * dyy], 1)
    torch.testing.assert_close(HandcraftedBlock()(image), want)


def parity_images() -> list:
    return [
        require_shared(TEST_IMAGE),
        require_shared(DATA / "hpatches" / "v_churchill" / "1.ppm"),
        require_shared(DATA / "train_photos" / "lightglue_sacre_coeur1.jpg"),
    ]


@pytest.mark.parametrize("mode", ["model", "exact"])
def test_response_equals_kornia_keynet_on_real_images(authors_weights, mode):
    state = load_checkpoint(authors_weights)["state_dict"]
    ours = KeyNet().eval()
    ours.load_state_dict(state)
    reference = KorniaKeyNet(pretrained=False).eval()
    reference.load_state_dict(state)
    respond = ours if mode == "model" else response_function(ours, "exact")
    for path in parity_images():
        x = to_grey_tensor(cv2.imread(str(path)))
        with torch.no_grad():
            want = reference(x)
            got = respond(x)
        assert float((got - want).abs().max()) <= 1e-4 * float(want.max()), path


def with_random_weights(model: KeyNet) -> KeyNet:
    """``model`` with every parameter drawn from N(0, 0.3²), in eval mode."""
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


def test_exact_mode_equals_the_module_for_random_weights():
    for model in (with_random_weights(KeyNet()), with_random_weights(TinyKeyNet())):
        x = torch.rand(2, 1, 61, 77)
        with torch.no_grad():
            want = model(x)
        got = response_function(model, "exact")(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_fused_handcrafted_maps_equal_the_model_block_inside_and_round_once_to_bf16():
    x = torch.rand(2, 1, 37, 53)
    with torch.no_grad():
        want = HandcraftedBlock()(x)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # fast mode pads the image, not dx, at the border
    fp32 = fused_handcrafted_maps(x, separable_derivative_kernels(), torch.float32)
    assert fp32.shape == want.shape and fp32.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fp32[inner], want[inner], rtol=1e-5, atol=1e-6)
    bf16 = fused_handcrafted_maps(x, separable_derivative_kernels(), torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(bf16, fp32.to(torch.bfloat16))  # round to nearest even, as torch converts


@pytest.mark.parametrize("fused", [True, False])
def test_the_torch_route_of_other_devices_equals_the_cpu_kernels(fused):
    # CUDA takes the torch ops (convolutions, interpolate, max-pool); the CPU takes OpenCV and numba: same response.
    from keynet.inference import FastKeyNetResponse

    model = with_random_weights(KeyNet())
    x = torch.rand(1, 1, 96, 128)
    with torch.no_grad():
        cpu = FastKeyNetResponse(model, fused, torch.float32, opencv=True)(x)
        other = FastKeyNetResponse(model, fused, torch.float32, opencv=False)(x)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # the pyramid's borders differ by a pixel
    torch.testing.assert_close(cpu[inner], other[inner], rtol=1e-4, atol=1e-4 * float(other.abs().max()))


def test_fast_mode_matches_exact_away_from_the_border(authors_weights):
    from keynet.weights import load_model

    model = load_model(authors_weights)
    image = cv2.imread(str(require_shared(TEST_IMAGE)), cv2.IMREAD_GRAYSCALE)
    x = to_grey_tensor(image)
    exact = response_function(model, "exact")(x)
    fast = response_function(model, "fast")(x)
    inner = (slice(None), slice(None), slice(20, -20), slice(20, -20))
    # bf16 hidden activations: about 3 significant digits of the response.
    assert float((fast - exact)[inner].abs().max()) < 5e-3 * float(exact.max())
    assert np.isfinite(fast.numpy()).all()
