"""Key.Net and Tiny-Key.Net (Barroso-Laguna et al., ICCV 2019), as the paper's sections 3 and 6.2 describe them.

Key.Net turns a grey image into a keypoint response map of the same size:

1. a handcrafted block computes ten Sobel-derivative maps (dx, dy, dx², dy², dx·dy, dxy, dxy², dxx, dyy, dxx·dyy);
2. a learned block (three 5x5 convolutions of M=8 filters, each with BatchNorm and ReLU) runs on them;
3. both run on three pyramid levels (blur and downsample by 1.2, shared weights); the coarser outputs are
   upsampled bilinearly back to the input size and concatenated;
4. a last 5x5 convolution and a ReLU give the response.

Tiny-Key.Net keeps the handcrafted block, one learned block of one filter, and a single scale.

The module names follow the authors' published PyTorch checkpoint (``feature_extractor.lb_block.conv{0,1,2}.{0,1}``
and ``last_conv.0``), so their state dict loads with ``load_state_dict`` as it is.

Example:
    >>> model = KeyNet().eval()
    >>> response = model(torch.rand(1, 1, 120, 160))  # (1, 1, 120, 160)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError, OptionError, check_options

#: The smallest image side the model accepts: the coarsest pyramid level needs at least 3 pixels for the
#: reflect padding of its blur, and a side of 16 leaves a margin.
MIN_IMAGE_SIDE = 16

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
_BINOMIAL_5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def sobel_kernels() -> torch.Tensor:
    """The normalised 3x3 Sobel kernels (d/dx, d/dy) used by Key.Net, shape (2, 1, 3, 3)."""
    return torch.stack([_SOBEL_X, _SOBEL_X.t()])[:, None]


def binomial_kernel_1d() -> torch.Tensor:
    """The 5-tap binomial (1, 4, 6, 4, 1) / 16, shape (5,): one axis of the pyramid blur."""
    return _BINOMIAL_5 / _BINOMIAL_5.sum()


def pyramid_blur_kernel() -> torch.Tensor:
    """The 5x5 binomial blur applied before each pyramid downsampling, shape (1, 1, 5, 5), summing to 1."""
    k = binomial_kernel_1d()
    return (k[:, None] * k[None, :])[None, None]


def sobel_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives of a one-channel map with replicated borders.

    Args:
        x: (B, 1, H, W).

    Returns:
        (dx, dy), each (B, 1, H, W).
    """
    kernel = sobel_kernels().to(device=x.device, dtype=x.dtype)
    d = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    return d[:, 0:1], d[:, 1:2]


def pyramid_down(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blur with a 5x5 binomial (reflected borders) and resize bilinearly to ``floor(side / factor)``.

    Args:
        x: (B, C, H, W).
        factor: downsampling factor, > 1.

    Returns:
        (B, C, floor(H / factor), floor(W / factor)).
    """
    b, c, h, w = x.shape
    kernel = pyramid_blur_kernel().to(device=x.device, dtype=x.dtype).expand(c, 1, 5, 5)
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=c)
    size = (int(h / factor), int(w / factor))
    return F.interpolate(blurred, size=size, mode="bilinear", align_corners=False)


class HandcraftedBlock(nn.Module):
    """The ten fixed derivative maps of section 3.1; it has no parameters.

    Shape:
        (B, 1, H, W) -> (B, 10, H, W), channels (dx, dy, dx², dy², dx·dy, dxy, dxy², dxx, dyy, dxx·dyy).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx, dy = sobel_gradient(x)
        dxx, dxy = sobel_gradient(dx)
        _, dyy = sobel_gradient(dy)
        return torch.cat([dx, dy, dx * dx, dy * dy, dx * dy, dxy, dxy * dxy, dxx, dyy, dxx * dyy], 1)


def learned_conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """One learned block: a ``kernel_size`` convolution, BatchNorm and ReLU (indices 0, 1, 2 as the authors')."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LearnedBlock(nn.Sequential):
    """A stack of learned blocks named ``conv0``, ``conv1``, ... as in the authors' checkpoint."""

    def __init__(self, in_channels: int, num_filters: int, num_blocks: int, kernel_size: int) -> None:
        super().__init__()
        for i in range(num_blocks):
            self.add_module(f"conv{i}", learned_conv_block(in_channels if i == 0 else num_filters, num_filters, kernel_size))


class FeatureExtractor(nn.Module):
    """Handcrafted block followed by the learned blocks; shared by every pyramid level."""

    def __init__(self, num_filters: int, num_blocks: int, kernel_size: int) -> None:
        super().__init__()
        self.hc_block = HandcraftedBlock()
        self.lb_block = LearnedBlock(10, num_filters, num_blocks, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lb_block(self.hc_block(x))


def check_model_input(x: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is a floating (B, 1, H, W) tensor of at least MIN_IMAGE_SIDE per side."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Key.Net input must be a torch.Tensor of shape (B, 1, H, W); got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 1:
        raise InputError(f"Key.Net input must have shape (B, 1, H, W) (one grey channel); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"Key.Net input must be a floating tensor with values in [0, 1]; got {x.dtype}")
    if min(x.shape[-2:]) < MIN_IMAGE_SIDE:
        raise InputError(
            f"Key.Net input is {x.shape[-1]}x{x.shape[-2]} pixels; each side must be at least {MIN_IMAGE_SIDE}"
        )


#: The sizes a Key.Net configuration may take (the paper's network is well inside them).
ARCHITECTURE_LIMITS: dict[str, tuple[float, float]] = {
    "num_filters": (1, 64), "num_blocks": (1, 8), "num_levels": (1, 6), "kernel_size": (1, 15),
    "pyramid_factor": (1.05, 4.0)}


def check_architecture(conf: dict[str, Any], name: str) -> None:
    """Refuse sizes outside ``ARCHITECTURE_LIMITS`` (integers where counts are meant, an odd kernel size).

    Raises:
        OptionError: the first value out of range, named.
    """
    for key, (low, high) in ARCHITECTURE_LIMITS.items():
        value = conf[key]
        integral = key != "pyramid_factor"
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)) or not (
                low <= value <= high):
            kind = "an integer" if integral else "a number"
            raise OptionError(f"{name} {key} must be {kind} in [{low:g}, {high:g}]; got {value!r}")
    if conf["kernel_size"] % 2 == 0:
        raise OptionError(f"{name} kernel_size must be odd; got {conf['kernel_size']}")


class KeyNet(nn.Module):
    """The Key.Net response network.

    Args:
        **conf: overrides of ``default_conf``: ``num_filters`` (M), ``num_blocks`` (learned blocks),
            ``num_levels`` (pyramid levels), ``kernel_size``, ``pyramid_factor``.

    Shape:
        (B, 1, H, W) grey image in [0, 1] -> (B, 1, H, W) non-negative response.
    """

    default_conf: dict[str, Any] = {
        "num_filters": 8,
        "num_blocks": 3,
        "num_levels": 3,
        "kernel_size": 5,
        "pyramid_factor": 1.2,
    }

    def __init__(self, **conf: Any) -> None:
        super().__init__()
        check_options(conf, self.default_conf, type(self).__name__)
        self.conf = {**self.default_conf, **conf}
        c = self.conf
        check_architecture(c, type(self).__name__)
        self.feature_extractor = FeatureExtractor(c["num_filters"], c["num_blocks"], c["kernel_size"])
        if not self.has_last_conv and c["num_levels"] != 1:
            raise OptionError(f"{type(self).__name__} has no last convolution to merge levels: num_levels must be 1")
        if self.has_last_conv:
            self.last_conv = nn.Sequential(
                nn.Conv2d(c["num_filters"] * c["num_levels"], 1, c["kernel_size"], padding=c["kernel_size"] // 2),
                nn.ReLU(inplace=True),
            )

    #: Whether a last convolution merges the levels into the response (Tiny-Key.Net has none).
    has_last_conv = True

    def level_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The learned features of every pyramid level, upsampled to the input size: list of (B, M, H, W)."""
        h, w = x.shape[-2:]
        feats = [self.feature_extractor(x)]
        for _ in range(1, self.conf["num_levels"]):
            x = pyramid_down(x, self.conf["pyramid_factor"])
            feats.append(F.interpolate(self.feature_extractor(x), size=(h, w), mode="bilinear", align_corners=False))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_model_input(x)
        feats = self.level_features(x)
        if not self.has_last_conv:
            return feats[0]
        return self.last_conv(torch.cat(feats, 1))


class TinyKeyNet(KeyNet):
    """Tiny-Key.Net (section 6.2): the handcrafted maps, one learned block of one filter, a single scale.

    Its learned block's output is the response: 5x5x10 weights + 1 bias and the BatchNorm affine pair.
    """

    default_conf: dict[str, Any] = {**KeyNet.default_conf, "num_filters": 1, "num_blocks": 1, "num_levels": 1}
    has_last_conv = False


ARCHITECTURES: dict[str, type[KeyNet]] = {"keynet": KeyNet, "tiny_keynet": TinyKeyNet}


def build_model(architecture: str, **conf: Any) -> KeyNet:
    """Build ``"keynet"`` or ``"tiny_keynet"`` with the given configuration overrides."""
    if architecture not in ARCHITECTURES:
        raise OptionError(f"unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**conf)


def architecture_name(model: KeyNet) -> str:
    """The registry name of a model instance (``"keynet"`` or ``"tiny_keynet"``)."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise InputError(f"{type(model).__name__} is not a registered Key.Net architecture")


def count_learnable_parameters(model: nn.Module, include_batchnorm: bool = True) -> int:
    """Number of trainable parameters; BatchNorm's affine pair is counted only if ``include_batchnorm``."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and not include_batchnorm:
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
    return total
