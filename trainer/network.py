"""The network as the trainer sets it up: He initialisation, BatchNorm over every process, fp32 handcrafted maps
under autocast, and Adam with L2 on the convolution kernels only."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the batch of every process (a differentiable all-reduce).

    The state dict is BatchNorm2d's. In one process, or in eval mode, it is BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        stats = torch.stack([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)),
                             x.new_full((x.shape[1],), x.numel() / x.shape[1])])
        stats = all_reduce(stats)
        count = stats[2]
        mean = stats[0] / count
        var = stats[1] / count - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_((var * count / (count - 1)).detach(), self.momentum)
        shape = (1, -1, 1, 1)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def use_global_batchnorm(model: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d for a GlobalBatchNorm holding the same parameters and statistics."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum)
            replacement.load_state_dict(child.state_dict())
            setattr(model, name, replacement)
        else:
            use_global_batchnorm(child)
    return model


class Float32Handcrafted(nn.Module):
    """The handcrafted block computed in fp32 under autocast: bf16 training keeps fp32 derivatives, as inference."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.block(x.float())


def he_initialise(model: nn.Module) -> None:
    """He (Kaiming) normal initialisation of every convolution, zero biases (section 5.3)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def freeze_biases_before_batchnorm(model: nn.Module) -> None:
    """Keep at zero the biases of convolutions followed by BatchNorm, which removes them.

    Their gradient is only float noise, which Adam scales up to full steps: a random walk that the running mean
    follows with a lag, so it would move eval-mode responses and make runs differ by their rounding.
    """
    for m in model.modules():
        if isinstance(m, nn.Sequential) and len(m) > 1 and isinstance(m[0], nn.Conv2d) \
                and isinstance(m[1], nn.BatchNorm2d) and m[0].bias is not None:
            nn.init.zeros_(m[0].bias)
            m[0].bias.requires_grad_(False)


def optimizer_for(model: nn.Module, conf: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam; the L2 regulariser applies to convolution kernels only (not biases or BatchNorm)."""
    learned = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    kernels = [p for n, p in learned if n.endswith("weight") and p.dim() == 4]
    others = [p for n, p in learned if not (n.endswith("weight") and p.dim() == 4)]
    return torch.optim.Adam([{"params": kernels, "weight_decay": conf["weight_decay"]},
                             {"params": others, "weight_decay": 0.0}], lr=conf["lr"])
