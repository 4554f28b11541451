"""Inference modes for a trained Key.Net: ``exact`` (the fp32 reference) and ``fast``.

Both compute the model's response for a (B, 1, H, W) grey image in [0, 1]; neither changes the model given.
Both use the same algebra as the model, rearranged for speed:

- BatchNorm (eval) is folded into the convolution before it;
- the learned blocks run channels-last, each convolution and its ReLU one fused oneDNN call on the CPU;
- the last convolution (3M channels in, one out: the slowest layer in oneDNN) is split per pyramid level, so the
  3M-channel concatenation is never built: on the CPU each level's share is one numba pass
  (``keynet.kernels_int8.add_resized_conv``) that upsamples the level's features row by row as it convolves them
  (the upsampled features are never stored either); elsewhere depthwise convolutions whose channels are summed;
- on the CPU, the pyramid's blur and resizing run in OpenCV (the same filters and bilinear sampling, several
  times faster than oneDNN on one channel).

``exact``
    fp32 throughout, and the handcrafted block computed as the model does (Sobel of a replicate-padded first
    derivative). Agrees with the model, and with kornia's KeyNet, to float rounding.

``fast``
    What makes it fast without changing what it detects:

    - the five derivatives (dx, dy, dxx, dxy, dyy) come straight from the image, each by one fixed 5x5 filter
      (separable); they differ from ``exact`` only on the two-pixel image border, where ``exact`` pads the first
      derivative again (detection ignores a 15-pixel border). On the CPU the five filters and the ten maps are one
      numba pass over the image that writes the maps channels-last in the blocks' dtype (3x faster than filtering,
      multiplying and stacking the maps one by one);
    - bfloat16 for the handcrafted maps and the learned blocks where the hardware has native bf16 (AMX /
      AVX-512-BF16 CPUs, CUDA); the maps are computed in fp32 and rounded once, and the merge of the levels and
      the last convolution stay fp32: rounding the response itself reorders near-equal maxima and loses
      top-ranked keypoints, rounding the hidden activations does not;
    - on other CPUs, Key.Net's learned blocks as oneDNN int8 convolutions (``Int8KeyNetResponse``; ``fast_route``
      says which route a model takes on a device): the maps quantized in the same two numba passes that compute
      them, so their fp32 values are never stored;
    - ``compile=True`` wraps it in ``torch.compile`` on CUDA.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cpu import int8_available, native_bf16
from .devices import resolve_device
from .errors import OptionError
from .handcrafted import (
    SOBEL_X_SEPARABLE,
    SOBEL_Y_SEPARABLE,
    derivative_kernels,
    filter_planes,
    fused_handcrafted_maps,
    handcrafted_maps,
    quantized_handcrafted_maps,
    separable_derivative_kernels,
)
from .kernels_int8 import add_resized_conv, quantize_unsigned
from .model import KeyNet, binomial_kernel_1d, check_model_input, pyramid_down, sobel_kernels

MODES = ("exact", "fast")


def fast_route(model: KeyNet, device: torch.device) -> str:
    """How ``fast`` mode computes ``model``'s learned blocks on ``device``: ``"bf16"`` where bf16 is native,
    ``"int8"`` for Key.Net on other CPUs with oneDNN's int8 convolutions, ``"fp32"`` elsewhere."""
    if native_bf16(device):
        return "bf16"
    if device.type == "cpu" and model.has_last_conv and int8_available():
        return "int8"
    return "fp32"


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return weight.detach().clone(), ((bias - bn.running_mean) * scale + bn.bias).detach().clone()


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], opencv: bool) -> torch.Tensor:
    """Bilinear resize (half-pixel centres, like ``align_corners=False``), by OpenCV if ``opencv`` on the CPU.

    Shape:
        (B, C, H, W) -> (B, C, size[0], size[1]); channels-last in, channels-last out with OpenCV.
    """
    if not opencv or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    hwc = x.permute(0, 2, 3, 1).contiguous()
    out = [cv2.resize(image.numpy(), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for image in hwc]
    out = [torch.from_numpy(o.reshape(size[0], size[1], -1)) for o in out]
    return (out[0][None] if len(out) == 1 else torch.stack(out)).permute(0, 3, 1, 2)


def pyramid_down_opencv(x: torch.Tensor, factor: float, opencv: bool) -> torch.Tensor:
    """``keynet.model.pyramid_down``, by OpenCV if ``opencv`` on the CPU (its reflect-101 border = torch's reflect)."""
    if not opencv or x.device.type != "cpu" or x.dtype != torch.float32:
        return pyramid_down(x, factor)
    kernel = binomial_kernel_1d().numpy()
    b, c, h, w = x.shape
    size = (int(w / factor), int(h / factor))
    planes = x.reshape(b * c, h, w).numpy()
    out = [
        cv2.resize(cv2.sepFilter2D(p, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101), size,
                   interpolation=cv2.INTER_LINEAR)
        for p in planes
    ]
    return torch.from_numpy(np.stack(out)).reshape(b, c, size[1], size[0])


def _fused_conv_relu_op() -> Callable[..., torch.Tensor] | None:
    """oneDNN's convolution with a fused ReLU (the op ``torch.compile`` emits on the CPU), if this build has it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


FUSED_CONV_RELU = _fused_conv_relu_op()


def conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias))`` with 'same' zero padding (odd kernels): one fused call on the CPU."""
    pad = weight.shape[-1] // 2
    if x.device.type == "cpu" and FUSED_CONV_RELU is not None:
        return FUSED_CONV_RELU(x, weight, bias, [pad, pad], [1, 1], [1, 1], 1, "relu", [], "")
    return torch.relu_(F.conv2d(x, weight, bias, padding=pad))


class FastKeyNetResponse(nn.Module):
    """Key.Net's response with folded BatchNorm and a split last convolution (see the module docstring).

    Args:
        model: the trained model (read once; later changes to it are not seen).
        fused_derivatives: derivatives from one 5x5 convolution (``fast``) or as the model computes them.
        block_dtype: dtype of the learned blocks (float32, or bfloat16 for ``fast`` on capable hardware).
        opencv: on the CPU, blur and resize the pyramid with OpenCV rather than torch.

    Shape:
        (B, 1, H, W) -> (B, 1, H, W) float32.
    """

    def __init__(
        self, model: KeyNet, fused_derivatives: bool, block_dtype: torch.dtype = torch.float32, opencv: bool = True
    ) -> None:
        super().__init__()
        self.num_levels = int(model.conf["num_levels"])
        self.pyramid_factor = float(model.conf["pyramid_factor"])
        self.has_last_conv = model.has_last_conv
        self.fused_derivatives = fused_derivatives
        self.opencv = opencv
        self.separable = separable_derivative_kernels()
        self.register_buffer("sobel", sobel_kernels())
        self.register_buffer("derivative_weight", derivative_kernels())
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for block in model.feature_extractor.lb_block:
            w, b = fold_batchnorm(block[0], block[1])
            self.weights.append(nn.Parameter(w.to(block_dtype).contiguous(memory_format=torch.channels_last), False))
            self.biases.append(nn.Parameter(b.to(block_dtype), False))
        if self.has_last_conv:
            conv = model.last_conv[0]
            # (1, L*M, k, k) -> L depthwise weights (M, 1, k, k), one per pyramid level.
            per_level = conv.weight.detach()[0].chunk(self.num_levels, 0)
            self.level_weights = nn.ParameterList([nn.Parameter(w[:, None].clone(), False) for w in per_level])
            self.level_taps = [w.float().clone().numpy() for w in per_level]  # (M, k, k) each, for the CPU
            self.register_buffer("last_bias", conv.bias.detach().clone())

    def derivatives(self, x: torch.Tensor) -> list[torch.Tensor]:
        """dx, dy, dxx, dxy, dyy of a (B, 1, H, W) image, each (B, H, W)."""
        if self.opencv and x.device.type == "cpu":
            image = x[:, 0]
            if self.fused_derivatives:
                return [filter_planes(image, k) for k in self.separable]
            dx, dy = filter_planes(image, SOBEL_X_SEPARABLE), filter_planes(image, SOBEL_Y_SEPARABLE)
            return [dx, dy, filter_planes(dx, SOBEL_X_SEPARABLE), filter_planes(dx, SOBEL_Y_SEPARABLE),
                    filter_planes(dy, SOBEL_Y_SEPARABLE)]
        if self.fused_derivatives:
            return list(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.derivative_weight).unbind(1))
        first = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.sobel)
        second = F.conv2d(F.pad(first, (1, 1, 1, 1), mode="replicate"), self.sobel.repeat(2, 1, 1, 1), groups=2)
        dxx, dxy, _, dyy = second.unbind(1)
        return [*first.unbind(1), dxx, dxy, dyy]

    def handcrafted(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.weights[0].dtype
        if self.opencv and self.fused_derivatives and x.device.type == "cpu":
            return fused_handcrafted_maps(x, self.separable, dtype)
        return handcrafted_maps(*(d.to(dtype) for d in self.derivatives(x)))

    def learned(self, x: torch.Tensor) -> torch.Tensor:
        y = self.handcrafted(x)
        for w, b in zip(self.weights, self.biases):
            y = conv_relu(y, w, b)
        return y.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_model_input(x)
        if not self.has_last_conv:
            return self.learned(x).contiguous()
        if self.opencv and x.device.type == "cpu":
            return self.forward_cpu(x)
        h, w = x.shape[-2:]
        pad = self.level_weights[0].shape[-1] // 2
        total = None
        for level, weight in enumerate(self.level_weights):
            if level > 0:
                x = pyramid_down_opencv(x, self.pyramid_factor, self.opencv)
            feats = self.learned(x)
            if level > 0:
                feats = resize_bilinear(feats, (h, w), self.opencv)
            part = F.conv2d(feats, weight, padding=pad, groups=weight.shape[0])
            total = part if total is None else total.add_(part)
        return torch.relu_(total.sum(1, keepdim=True).add_(self.last_bias.view(1, 1, 1, 1)))

    def forward_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` on the CPU: each level's features go straight from the learned blocks into the last
        convolution's sums (``add_resized_conv``), never upsampled whole."""
        b, _, h, w = x.shape
        total = torch.zeros(b, h, w)
        for level, taps in enumerate(self.level_taps):
            if level > 0:
                x = pyramid_down_opencv(x, self.pyramid_factor, self.opencv)
            features = self.learned(x).permute(0, 2, 3, 1).contiguous()  # a view of the channels-last blocks
            for image, out in zip(features.numpy(), total.numpy()):
                add_resized_conv(image, taps, out)
        return torch.relu_(total.add_(self.last_bias))[:, None]


#: Levels of the int8 blocks' weights each side of zero: 7 bits, since AVX2's and AVX-512's int8 products without
#: VNNI (vpmaddubsw) saturate when a pair of 8-bit activations meets a pair of 8-bit weights; the activations keep 8.
INT8_WEIGHT_LEVELS = 63

#: Levels of the signed handcrafted maps each side of their zero point 128, and of the ReLU activations.
SIGNED_LEVELS, UNSIGNED_LEVELS = 127, 255

#: The handcrafted maps' int8 scales are powers of 2^(1/8) (at most 9% coarser than their range asks; as many of
#: exact mode's keypoints kept as with unrounded scales, within a percent either way), so that frames of about the
#: same contrast share the first block's packed weights.
MAP_SCALE_STEPS = 8

#: How many packed weights (per block, input shape and, for the first block, the maps' scales) are kept.
PACKED_WEIGHTS_KEPT = 48


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 weights: (O, I, k, k) float -> (int8 (O, I, k, k), float64 scales (O,))."""
    scale = (weight.abs().amax((1, 2, 3)).clamp_min(1e-30) / INT8_WEIGHT_LEVELS).double()
    levels = torch.round(weight / scale.view(-1, 1, 1, 1).float()).clamp_(-INT8_WEIGHT_LEVELS, INT8_WEIGHT_LEVELS)
    return levels.to(torch.int8).contiguous(), scale


def channels_last_values(x: torch.Tensor) -> np.ndarray:
    """The values of a channels-last (B, C, H, W) CPU tensor as a (B * H * W, C) array, without copying."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).numpy()


class Int8KeyNetResponse(FastKeyNetResponse):
    """``fast`` Key.Net on CPUs without native bf16: the learned blocks as oneDNN int8 convolutions (uint8
    activations, 7-bit per-channel weights, int32 sums, fp32 output with the fused ReLU), the rest as
    ``FastKeyNetResponse`` with fp32 (the merge of the levels and the last convolution stay fp32).

    Each level's activations are quantized by their own range in that image: the ten handcrafted maps per channel
    (zero point 128; their scales, rounded up to powers of 2^(1/8), are folded into the first block's weights, packed
    once per scales and shape), the ReLU outputs per tensor. The integer sums are exact, so every CPU class
    computes the same response.

    Shape:
        (B, 1, H, W) -> (B, 1, H, W) float32.
    """

    def __init__(self, model: KeyNet) -> None:
        super().__init__(model, fused_derivatives=True, block_dtype=torch.float32, opencv=True)
        self.int8_weights = [quantize_weight(w) for w in self.weights[1:]]
        self.no_zero_points = torch.zeros(self.weights[0].shape[0], dtype=torch.long)
        # oneDNN's packed weights per block, input shape (and for the first block the maps' scales), latest last.
        self.packed: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()

    def int8_conv_relu(self, x: torch.Tensor, x_scale: float, x_zero_point: int, weight: torch.Tensor,
                       weight_scale: torch.Tensor, bias: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        """relu(conv2d((x - x_zero_point) * x_scale, weight * weight_scale) + bias), 'same' zero padding: uint8
        channels-last (B, I, H, W) -> float32 channels-last (B, O, H, W)."""
        pad = weight.shape[-1] // 2
        return torch.ops.onednn.qconv2d_pointwise(
            x, x_scale, x_zero_point, packed, weight_scale, self.no_zero_points, bias, [1, 1], [pad, pad], [1, 1], 1,
            1.0, 0, torch.float32, "relu", [], "")

    def prepacked(self, weight: torch.Tensor, x_zero_point: int, shape: tuple[int, ...]) -> torch.Tensor:
        """oneDNN's layout of an int8 weight for inputs of ``shape``."""
        pad = weight.shape[-1] // 2
        return torch.ops.onednn.qconv_prepack(weight, torch.ones(weight.shape[0], dtype=torch.double), 1.0,
                                              x_zero_point, [1, 1], [pad, pad], [1, 1], 1, list(shape))

    def packed_weights(self, key: tuple, make: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``make()``'s weights for ``key``, made once and kept among the last ``PACKED_WEIGHTS_KEPT`` keys (region
        detection sees a new input shape for each region size)."""
        if key in self.packed:
            self.packed.move_to_end(key)
        else:
            self.packed[key] = make()
            if len(self.packed) > PACKED_WEIGHTS_KEPT:
                self.packed.popitem(last=False)
        return self.packed[key]

    def first_block(self, shape: tuple[int, ...], map_scale: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The first block's int8 weight (scaled by the maps' scales ``map_scale`` (10,)), its per-channel scales,
        and oneDNN's packing of it for maps of ``shape``."""
        def make() -> tuple[torch.Tensor, ...]:
            weight, weight_scale = quantize_weight(self.weights[0] * torch.from_numpy(map_scale).view(1, -1, 1, 1))
            return weight, weight_scale, self.prepacked(weight, 128, shape)

        return self.packed_weights((0, shape, map_scale.tobytes()), make)

    def learned(self, x: torch.Tensor) -> torch.Tensor:
        quantized, map_scale = quantized_handcrafted_maps(x, self.separable, SIGNED_LEVELS, MAP_SCALE_STEPS)
        weight, weight_scale, packed = self.first_block(tuple(quantized.shape), map_scale)
        y = self.int8_conv_relu(quantized, 1.0, 128, weight, weight_scale, self.biases[0], packed)
        for index, ((weight, weight_scale), bias) in enumerate(zip(self.int8_weights, self.biases[1:])):
            top = float(y.amax())
            scale = top / UNSIGNED_LEVELS if top > 0 else 1.0
            quantized = torch.empty(y.shape, dtype=torch.uint8, memory_format=torch.channels_last)
            quantize_unsigned(channels_last_values(y).reshape(-1), np.float32(1.0 / scale),
                              channels_last_values(quantized).reshape(-1))
            shape = tuple(quantized.shape)
            (packed,) = self.packed_weights((index + 1, shape), lambda w=weight, s=shape: (self.prepacked(w, 0, s),))
            y = self.int8_conv_relu(quantized, scale, 0, weight, weight_scale, bias, packed)
        return y


def response_function(
    model: KeyNet, mode: str = "exact", device: str | torch.device = "cpu", compile: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable (B, 1, H, W) -> (B, 1, H, W) float32 computing ``model``'s response, without gradients.

    Args:
        model: a trained Key.Net or Tiny-Key.Net (eval mode is used; the model itself is not modified).
        mode: ``"exact"`` or ``"fast"``.
        device: where the computation runs.
        compile: wrap the module in ``torch.compile`` (CUDA only; ignored on the CPU).
    """
    if mode not in MODES:
        raise OptionError(f"unknown inference mode {mode!r}; expected one of {MODES}")
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    route = fast_route(model, device) if mode == "fast" else "exact"
    module: nn.Module
    if route == "int8":
        module = Int8KeyNetResponse(model).eval()
    else:
        dtype = torch.bfloat16 if route == "bf16" else torch.float32
        module = FastKeyNetResponse(model, fused_derivatives=mode == "fast", block_dtype=dtype).to(device).eval()
    model.train(was_training)
    if compile and device.type == "cuda":
        module = torch.compile(module, dynamic=True)

    @torch.inference_mode()
    def respond(x: torch.Tensor) -> torch.Tensor:
        return module(x.to(device))

    return respond
