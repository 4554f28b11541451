"""Inference modes for a trained Key.Net: ``exact`` (the fp32 reference) and ``fast``.

Both compute the model's response for a (B, 1, H, W) image; neither changes the weights of the model given.

``exact``
    The model's own computation in fp32, laid out for speed: the learned blocks run channels-last, and the last
    convolution (many channels in, one out, the slowest layer in oneDNN) runs as a depthwise convolution whose
    channels are summed, the same sum in another order.

``fast``
    What makes it fast without changing what it detects:

    - the five derivatives (dx, dy, dxx, dxy, dyy) come from one fixed 5x5 convolution of the image;
    - BatchNorm is folded into the convolution before it;
    - channels-last layout throughout;
    - bfloat16 for the learned blocks where the hardware has native bf16 (AMX/AVX-512-BF16 CPUs, CUDA), while the
      derivatives, their products and the last convolution stay fp32: rounding the response itself reorders
      near-equal maxima and loses top-ranked keypoints, rounding the hidden activations does not;
    - on CUDA, the learned blocks in bf16 as well (``torch.compile`` is optional, through ``compile=True``).

    The derivative maps differ from ``exact`` only on the two-pixel border, where ``exact`` pads the first
    derivative again before the second; detection ignores a 15-pixel border.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .model import KeyNet, check_model_input, pyramid_down, sobel_kernels

MODES = ("exact", "fast")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast on ``device`` (CUDA with bf16, or a CPU with AMX or AVX-512 BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return weight.detach().clone(), ((bias - bn.running_mean) * scale + bn.bias).detach().clone()


def derivative_kernels() -> torch.Tensor:
    """The 5x5 kernels of dx, dy, dxx, dxy, dyy as Key.Net composes them (Sobel of Sobel), shape (5, 1, 5, 5)."""
    sobel = sobel_kernels()  # (2, 1, 3, 3)
    first = F.pad(sobel, (1, 1, 1, 1))  # 3x3 -> 5x5, centred
    # A correlation of a correlation is a correlation with the full convolution of the two kernels.
    second = F.conv2d(first, sobel.flip(-1, -2), padding=1)  # (2, 2, 5, 5): d?/dx, d?/dy
    dxx, dxy = second[0, 0], second[0, 1]
    dyy = second[1, 1]
    return torch.stack([first[0, 0], first[1, 0], dxx, dxy, dyy])[:, None]


def depthwise_sum_weight(conv: nn.Conv2d) -> torch.Tensor:
    """Depthwise weight (C, 1, k, k) whose channel sum equals a C->1 convolution."""
    return conv.weight.detach()[0][:, None].clone()


class ExactResponse(nn.Module):
    """The model's response in fp32, laid out for speed (see the module docstring)."""

    def __init__(self, model: KeyNet) -> None:
        super().__init__()
        self.model = model
        if model.has_last_conv:
            self.register_buffer("last_weight", depthwise_sum_weight(model.last_conv[0]))
            self.register_buffer("last_bias", model.last_conv[0].bias.detach().clone())

    def learned(self, x: torch.Tensor) -> torch.Tensor:
        hc = self.model.feature_extractor.hc_block(x)
        return self.model.feature_extractor.lb_block(hc.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_model_input(x)
        h, w = x.shape[-2:]
        feats = [self.learned(x)]
        for _ in range(1, self.model.conf["num_levels"]):
            x = pyramid_down(x, self.model.conf["pyramid_factor"])
            feats.append(F.interpolate(self.learned(x), size=(h, w), mode="bilinear", align_corners=False))
        if not self.model.has_last_conv:
            return feats[0].contiguous()
        stacked = torch.cat(feats, 1).contiguous(memory_format=torch.channels_last)
        pad = self.last_weight.shape[-1] // 2
        depthwise = F.conv2d(stacked, self.last_weight, padding=pad, groups=stacked.shape[1])
        return torch.relu(depthwise.sum(1, keepdim=True) + self.last_bias.view(1, -1, 1, 1))


class FastResponse(nn.Module):
    """Folded, fused and mixed-precision response (see the module docstring)."""

    def __init__(self, model: KeyNet, reduced_precision: bool) -> None:
        super().__init__()
        self.conf = dict(model.conf)
        self.has_last_conv = model.has_last_conv
        self.register_buffer("derivatives", derivative_kernels())
        weights, biases = [], []
        for block in model.feature_extractor.lb_block:
            w, b = fold_batchnorm(block[0], block[1])
            weights.append(w.contiguous(memory_format=torch.channels_last))
            biases.append(b)
        self.weights = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(b, requires_grad=False) for b in biases])
        self.reduced = reduced_precision
        if model.has_last_conv:
            self.register_buffer("last_weight", depthwise_sum_weight(model.last_conv[0]))
            self.register_buffer("last_bias", model.last_conv[0].bias.detach().clone())
        self.half_weights: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _blocks(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not self.reduced:
            return list(zip(self.weights, self.biases))
        if not self.half_weights or self.half_weights[0][0].device != self.weights[0].device:
            self.half_weights = [(w.to(torch.bfloat16), b.to(torch.bfloat16)) for w, b in zip(self.weights, self.biases)]
        return self.half_weights

    def learned(self, x: torch.Tensor) -> torch.Tensor:
        d = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.derivatives)
        dx, dy, dxx, dxy, dyy = d.unbind(1)
        hc = torch.stack([dx, dy, dx * dx, dy * dy, dx * dy, dxy, dxy * dxy, dxx, dyy, dxx * dyy], 1)
        blocks = self._blocks()
        y = hc.contiguous(memory_format=torch.channels_last).to(blocks[0][0].dtype)
        for w, b in blocks:
            y = torch.relu_(F.conv2d(y, w, b, padding=w.shape[-1] // 2))
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_model_input(x)
        h, w = x.shape[-2:]
        feats = [self.learned(x)]
        for _ in range(1, self.conf["num_levels"]):
            x = pyramid_down(x, self.conf["pyramid_factor"])
            feats.append(F.interpolate(self.learned(x), size=(h, w), mode="bilinear", align_corners=False))
        if not self.has_last_conv:
            return feats[0].float().contiguous()
        stacked = torch.cat(feats, 1).float().contiguous(memory_format=torch.channels_last)
        pad = self.last_weight.shape[-1] // 2
        depthwise = F.conv2d(stacked, self.last_weight, padding=pad, groups=stacked.shape[1])
        return torch.relu(depthwise.sum(1, keepdim=True) + self.last_bias.view(1, -1, 1, 1))


def response_function(
    model: KeyNet, mode: str = "exact", device: str | torch.device = "cpu", compile: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable (B, 1, H, W) -> (B, 1, H, W) computing ``model``'s response in the given mode, without gradients.

    Args:
        model: a Key.Net or Tiny-Key.Net; put in eval mode and moved to ``device``.
        mode: ``"exact"`` or ``"fast"``.
        device: where the computation runs.
        compile: wrap the fast module in ``torch.compile`` (CUDA only; ignored on the CPU).
    """
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; expected one of {MODES}")
    device = torch.device(device)
    model = model.eval().to(device)
    if mode == "exact":
        module: nn.Module = ExactResponse(model)
    else:
        module = FastResponse(model, reduced_precision=native_bf16(device)).to(device)
        if compile and device.type == "cuda":
            module = torch.compile(module, dynamic=True)
    module.eval()

    @torch.inference_mode()
    def respond(x: torch.Tensor) -> torch.Tensor:
        return module(x.to(device))

    return respond
