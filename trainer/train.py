"""Siamese training of Key.Net with the M-SIP loss (the paper's sections 4, 5.1 and 5.3).

One process on a CPU or a GPU, or many through ``torchrun`` (DistributedDataParallel: gloo on CPUs, nccl on GPUs).
Every process takes its equal share of the same global batches, BatchNorm statistics cover the global batch and
the loss is a mean over pairs, so the number of processes does not change the result (up to float rounding).

The training and validation pairs are made once per run (seeded, in parallel processes) and kept in memory as
uint8 tensors on the training device, as the paper's fixed set of 9,000 + 3,000 pairs: no data loading in the
loop. Every epoch ends with a validation repeatability and an atomic checkpoint (``last.pt``, and ``best.pt``
when it improves); ``--resume`` continues from ``last.pt`` after any interruption, losing at most the epoch in
progress. The best model is exported to our weights format with its model card (``keynet.pt`` or
``tiny_keynet.pt``).
"""

from __future__ import annotations

import csv
import math
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from keynet.detect import local_maxima
from keynet.files import atomic_path, atomic_torch_save
from keynet.inference import native_bf16
from keynet.runtime import keep_freed_memory
from keynet.metrics import COMMON_REGION_BORDER, common_region_masks, repeatability, select_in_mask
from keynet.model import KeyNet, build_model
from keynet.weights import save_weights

from .data import PairDataset, Pairs, find_images, generate_pairs, load_photographs
from .loss import msip_loss

default_conf: dict[str, Any] = {
    "epochs": 45,
    "batch_size": 32,  # global: split across processes
    "lr": 1e-3,
    "lr_decay_epochs": 30,  # the learning rate is halved every this many epochs
    "weight_decay": 1e-5,  # L2 regularisation of the convolution kernels only (the paper gives no value)
    "train_pairs": 9000,
    "val_pairs": 3000,
    "crop": 192,
    "seed": 0,
    "tiny": False,
    "bf16": False,
    "workers": min(8, os.cpu_count() or 1),  # processes making the pairs
    "threads": 0,  # torch threads of the training process; 0 leaves torch's default (one per core)
    "max_nan_steps": 5,
    "val_keypoints": 30,  # per 192x192 crop: the density of 1,000 points in a 1.2-megapixel image
}


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


def validation_repeatability(model: KeyNet, pairs: Pairs, top_k: int, bf16: bool = False,
                             batch_size: int = 32) -> float:
    """Mean repeatability (%) of the single-scale maxima over the validation pairs (keynet.metrics, ``L``).

    Keypoints: strict 15x15 maxima of the response, the ``top_k`` best inside each image's common region (15 px
    from either border), as the benchmark's protocol. ``bf16``: the network under bf16 autocast, as in training.
    """
    was_training = model.training
    model.eval()
    scores = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            a, b, h_ab, _ = pairs.batch(slice(start, start + batch_size))
            with torch.autocast(a.device.type, dtype=torch.bfloat16, enabled=bf16):
                responses = model(torch.cat([a, b])).float().cpu()
            maxima = local_maxima(responses, 15, 0, 0.0)
            for i, h in enumerate(h_ab.cpu().double().numpy()):
                size = tuple(a.shape[-2:])
                masks = common_region_masks(h, size, size, COMMON_REGION_BORDER)
                circles = []
                for (xy, _), mask in zip((maxima[i], maxima[len(a) + i]), masks):
                    xy = xy.numpy().astype(np.float64)
                    xy = xy[select_in_mask(xy, mask, top_k)]
                    circles.append(np.concatenate([xy, np.ones((len(xy), 1))], 1))
                scores.append(repeatability(circles[0], circles[1], h).repeatability_l)
    model.train(was_training)
    return float(np.mean(scores)) if scores else 0.0


#: Options that define a run's data and model: --resume refuses to change them (epochs, lr, bf16... may change).
RUN_DEFINING = ("train_pairs", "val_pairs", "crop", "seed", "tiny", "batch_size")


class NonFiniteLoss(RuntimeError):
    """The loss was not finite for ``max_nan_steps`` steps in a row."""


class Trainer:
    """A training run in ``out``: data, model, optimiser, schedule, checkpoints and logs.

    Args:
        images: folders of photographs (searched recursively).
        out: the run folder; it must be new or empty unless ``resume`` or ``overwrite``.
        device: "cpu", "cuda" or "auto".
        resume: continue from ``out/last.pt`` when it exists.
        overwrite: start afresh in an existing ``out``.
        command: the command line, for the model card.
        **conf: overrides of ``default_conf``.
    """

    def __init__(self, images: list[str | Path], out: str | Path, device: str = "auto", resume: bool = False,
                 overwrite: bool = False, command: str = "", **conf: Any) -> None:
        unknown = set(conf) - set(default_conf)
        if unknown:
            raise ValueError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(default_conf)}")
        self.conf = c = {**default_conf, **conf}
        for key in ("epochs", "batch_size", "train_pairs", "val_pairs", "lr_decay_epochs"):
            if int(c[key]) < 1:
                raise ValueError(f"{key} must be at least 1; got {c[key]}")
        self.out, self.images, self.command = Path(out), [str(i) for i in images], command
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        if c["batch_size"] % self.world:
            raise ValueError(f"batch size {c['batch_size']} must divide by the {self.world} processes")
        if c["train_pairs"] < c["batch_size"]:
            raise ValueError(f"train_pairs ({c['train_pairs']}) must be at least one batch ({c['batch_size']})")
        self.device = resolve_device(device, self.world)
        if c["bf16"] and not native_bf16(self.device):
            c["bf16"] = False
            print(f"warning: --bf16 ignored: {self.device.type} here has no native bf16, where bf16 is many times "
                  "slower than fp32; training in fp32", file=sys.stderr)
        if c["threads"]:
            torch.set_num_threads(c["threads"])
        last = self.out / "last.pt"
        if self.out.exists() and any(self.out.iterdir()) and not (resume or overwrite):
            raise FileExistsError(f"output folder {self.out} exists; pass --resume to continue it or --overwrite")
        photos = load_photographs(find_images(self.images), c["crop"])
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            for orphan in self.out.glob(".*.tmp*"):  # the temporary file of a write that was killed midway
                orphan.unlink()

        torch.manual_seed(c["seed"])
        self.model = build_model("tiny_keynet" if c["tiny"] else "keynet")
        he_initialise(self.model)
        freeze_biases_before_batchnorm(self.model)
        self.model = use_global_batchnorm(self.model).to(self.device)
        self.model.feature_extractor.hc_block = Float32Handcrafted(self.model.feature_extractor.hc_block)
        self.optimizer = optimizer_for(self.model, c)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, c["lr_decay_epochs"], 0.5)
        self.epoch, self.best, self.history = 0, -math.inf, []
        if resume and last.is_file():
            self._restore(torch.load(last, map_location="cpu", weights_only=True))
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)

        pair_conf = {"crop": c["crop"]}
        self.train_pairs = generate_pairs(PairDataset(photos, c["train_pairs"], c["seed"], **pair_conf),
                                          c["workers"], "training pairs").to(self.device)
        self.val_pairs = generate_pairs(PairDataset(photos, c["val_pairs"], c["seed"] + 1_000_003, **pair_conf),
                                        c["workers"], "validation pairs").to(self.device)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best": self.best,
                "history": self.history, "conf": self.conf, "torch_rng": torch.get_rng_state(),
                "images": self.images, "command": self.command,
                "machine": machine_description(self.device, self.world)}

    def _restore(self, state: dict[str, Any]) -> None:
        changed = [k for k in RUN_DEFINING if state["conf"].get(k) != self.conf[k]]
        if changed:
            raise ValueError("--resume needs the options of the run in " + str(self.out) + "; changed: " + ", ".join(
                f"{k} {state['conf'].get(k)!r} -> {self.conf[k]!r}" for k in changed))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])
        torch.set_rng_state(state["torch_rng"])

    def _save(self, improved: bool) -> None:
        if self.rank != 0:
            return
        state = self._state()
        atomic_torch_save(state, self.out / "last.pt")
        if improved:
            atomic_torch_save(state, self.out / "best.pt")
        with atomic_path(self.out / "log.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, ["epoch", "train_loss", "val_repeatability", "lr", "seconds", "skipped_steps"])
            writer.writeheader()
            writer.writerows(self.history)
        plot_curves(self.history, self.out / "curves.png")

    # -- training ------------------------------------------------------------------------------------------------
    def batches(self, epoch: int) -> torch.Tensor:
        """(steps, batch_size / processes) this process's share of each global batch of the epoch.

        The global order depends on the seed and the epoch only, never on the number of processes.
        """
        bs, share = self.conf["batch_size"], self.conf["batch_size"] // self.world
        order = torch.from_numpy(np.random.default_rng([self.conf["seed"], epoch]).permutation(len(self.train_pairs)))
        steps = len(order) // bs
        return order[: steps * bs].view(steps, bs)[:, self.rank * share : (self.rank + 1) * share]

    def step(self, index: torch.Tensor) -> float | None:
        """One optimiser step on the pairs ``index``; None, and no change at all, when the loss is not finite."""
        a, b, h_ab, mask = self.train_pairs.batch(index.to(self.device))
        statistics = [x.clone() for x in self.model.buffers()]  # BatchNorm's running statistics
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.conf["bf16"]):
            responses = self.net(torch.cat([a, b]))
        ra, rb = responses.float().chunk(2)
        loss = msip_loss(ra, rb, h_ab, mask)
        check = loss.detach().clone()
        if self.world > 1:  # every process skips the step if any has a non-finite loss
            dist.all_reduce(check)
        if not torch.isfinite(check):
            for x, saved in zip(self.model.buffers(), statistics):
                x.copy_(saved)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(check) / self.world

    def validate(self) -> float:
        return validation_repeatability(self.model, self.val_pairs, self.conf["val_keypoints"], self.conf["bf16"])

    def fit(self) -> Path:
        """Train the remaining epochs; returns the exported weights file."""
        c = self.conf
        if not self.history:
            self.history.append({"epoch": 0, "train_loss": "", "val_repeatability": round(self.validate(), 3),
                                 "lr": c["lr"], "seconds": 0, "skipped_steps": 0})
        while self.epoch < c["epochs"]:
            epoch = self.epoch + 1
            t0, losses, nan_run, skipped = time.time(), [], 0, 0
            bar = tqdm(self.batches(epoch), desc=f"epoch {epoch}/{c['epochs']}", disable=self.rank != 0,
                       file=sys.stderr, unit="step")
            for index in bar:
                loss = self.step(index)
                if loss is None:
                    nan_run, skipped = nan_run + 1, skipped + 1
                    if self.rank == 0:
                        tqdm.write(f"warning: non-finite loss in epoch {epoch}; step skipped", file=sys.stderr)
                    if nan_run >= c["max_nan_steps"]:
                        raise NonFiniteLoss(f"the loss was not finite {nan_run} steps in a row; training stopped "
                                            f"(last good checkpoint: {self.out / 'last.pt'})")
                    continue
                nan_run = 0
                losses.append(loss)
                bar.set_postfix(loss=f"{np.mean(losses):.4f}", val=f"{self.history[-1]['val_repeatability']:.1f}%")
            self.scheduler.step()
            rep = self.validate()
            self.epoch = epoch
            self.history.append({"epoch": epoch, "train_loss": round(float(np.mean(losses)), 6) if losses else "",
                                 "val_repeatability": round(rep, 3), "lr": self.optimizer.param_groups[0]["lr"],
                                 "seconds": round(time.time() - t0, 1), "skipped_steps": skipped})
            improved = rep > self.best
            self.best = max(self.best, rep)
            if self.rank == 0:
                tqdm.write(f"epoch {epoch}: loss {self.history[-1]['train_loss']}, validation repeatability "
                           f"{rep:.1f}%{' (best)' if improved else ''}", file=sys.stderr)
            self._save(improved)
        return self.export()

    def export(self) -> Path:
        """Write the best checkpoint's model to our weights format, with its model card."""
        if self.rank != 0:
            return self.out / f"{'tiny_keynet' if self.conf['tiny'] else 'keynet'}.pt"
        return export_run(self.out)


def export_run(out: str | Path, images: list[str] | None = None, command: str = "", machine: str = "") -> Path:
    """Write the best checkpoint of the run in ``out`` (finished, interrupted or still going) to
    ``out/<architecture>.pt`` in our weights format, with its model card.

    Args:
        images, command, machine: the training folders, command line and machine for the model card, when the
            checkpoint does not record them.
    """
    out = Path(out)
    best, last = out / "best.pt", out / "last.pt"
    if not (best.is_file() or last.is_file()):
        raise FileNotFoundError(f"{out} holds no checkpoint (best.pt or last.pt) to export")
    history = torch.load(last if last.is_file() else best, map_location="cpu", weights_only=True)["history"]
    state = torch.load(best if best.is_file() else last, map_location="cpu", weights_only=True)
    conf = state["conf"]
    arch = "tiny_keynet" if conf["tiny"] else "keynet"
    model = build_model(arch)
    model.load_state_dict(state["model"])
    best_row = max((r for r in history if r["epoch"]), key=lambda r: r["val_repeatability"], default={})
    card = {
        "data": ", ".join(state.get("images", images or [])),
        "epochs": int(history[-1]["epoch"]) if history else 0,
        "best_epoch": int(best_row.get("epoch", 0)),
        "validation_repeatability": float(best_row.get("val_repeatability", 0.0)),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": state.get("command", command),
        "machine": state.get("machine", machine),
        "training_seconds": round(sum(float(r["seconds"]) for r in history), 1),
        "config": {k: v for k, v in conf.items() if k not in ("workers", "threads")},
    }
    path = out / f"{arch}.pt"
    save_weights(model.eval(), path, card)
    return path


def resolve_device(device: str, world: int = 1) -> torch.device:
    """"auto" -> cuda when available, else cpu; under torchrun, cuda means this process's GPU (LOCAL_RANK)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA GPU")
    if device == "cuda" and world > 1:
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device(device)


def machine_description(device: torch.device, world: int = 1) -> str:
    """CPU model and cores, or GPU name, and the process count: for model cards and benchmarks."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = f"{cpu} ({os.cpu_count()} cores)"
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)}, host {where}"
    return f"{where}, {world} process(es), torch {torch.__version__}"


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation repeatability per epoch, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot([r["epoch"] for r in history if r["train_loss"] != ""],
             [r["train_loss"] for r in history if r["train_loss"] != ""], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("M-SIP loss")
    ax2.plot(epochs, [r["val_repeatability"] for r in history], marker="o", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation repeatability (%)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import argparse

    d = default_conf
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train Key.Net with the M-SIP loss.")
    parser.add_argument("--images", action="append", required=True, help="folder of photographs (repeatable)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png, weights)")
    parser.add_argument("--tiny", action="store_true", help="train Tiny-Key.Net")
    parser.add_argument("--epochs", type=int, default=d["epochs"])
    parser.add_argument("--batch-size", type=int, default=d["batch_size"], help="global batch size")
    parser.add_argument("--lr", type=float, default=d["lr"])
    parser.add_argument("--lr-decay-epochs", type=int, default=d["lr_decay_epochs"], help="halve the lr every N")
    parser.add_argument("--weight-decay", type=float, default=d["weight_decay"], help="L2 of the conv kernels")
    parser.add_argument("--train-pairs", type=int, default=d["train_pairs"])
    parser.add_argument("--val-pairs", type=int, default=d["val_pairs"])
    parser.add_argument("--crop", type=int, default=d["crop"], help="pair image side in pixels")
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--workers", type=int, default=d["workers"], help="processes making the pairs")
    parser.add_argument("--threads", type=int, default=d["threads"], help="torch threads (0: one per core)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the network (the loss stays fp32)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an existing --out")
    parser.add_argument("--export", action="store_true",
                        help="only write the weights of the best checkpoint in --out (a run that stopped or still runs)")
    args = parser.parse_args(argv)
    command = "python -m trainer " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.export:
        try:
            path = export_run(args.out, args.images, command.replace(" --export", ""),
                              machine_description(resolve_device(args.device)))  # for runs that do not record them
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"weights written to {path}")
        return 0
    keep_freed_memory()  # the same large activations every step: no page faults on fresh memory each time
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        trainer = Trainer(args.images, args.out, args.device, args.resume, args.overwrite,
                          command=command,
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          lr_decay_epochs=args.lr_decay_epochs, weight_decay=args.weight_decay,
                          train_pairs=args.train_pairs, val_pairs=args.val_pairs, crop=args.crop, seed=args.seed,
                          tiny=args.tiny, bf16=args.bf16, workers=args.workers, threads=args.threads)
        path = trainer.fit()
        if trainer.rank == 0:
            print(f"weights written to {path}")
        return 0
    except (FileExistsError, FileNotFoundError, ValueError, NonFiniteLoss) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            dist.destroy_process_group()
