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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from keynet import devices
from keynet.detect import local_maxima
from keynet.errors import KeyNetError, OptionError, OutputError, WeightsError
from keynet.files import atomic_path, atomic_torch_save, remove_stale_temporaries
from keynet.inference import native_bf16
from keynet.metrics import COMMON_REGION_BORDER, common_region_masks, repeatability, select_in_mask
from keynet.model import KeyNet, build_model
from keynet.runtime import keep_freed_memory

from .checkpoints import MAX_WEIGHT, export_run, read_checkpoint, weights_problem
from .data import PairDataset, Pairs, find_images, generate_pairs, load_photographs
from .loss import msip_loss
from .network import (
    Float32Handcrafted,
    freeze_biases_before_batchnorm,
    he_initialise,
    optimizer_for,
    use_global_batchnorm,
)
from .options import RUN_DEFINING, SWITCHES, default_conf, option_name, training_options


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


class TrainingStopped(KeyNetError, RuntimeError):
    """A run that cannot go on; the message says why and which checkpoint is the last good one."""


class NonFiniteLoss(TrainingStopped):
    """The loss was not finite for ``max_nan_steps`` steps in a row."""


class DivergedWeights(TrainingStopped):
    """An optimiser step made the weights non-finite or exploded (``checkpoints.weights_problem``)."""


def process_group() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside ``torchrun``."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class Trainer:
    """A training run in ``out``: data, model, optimiser, schedule, checkpoints and logs.

    Set up in named steps, each one job: the options, the device, the output folder (and the checkpoint to resume),
    the photographs, the model, the optimiser, the resumed state, the pairs. Nothing is written before every check
    has passed.

    Args:
        images: folders of photographs (searched recursively).
        out: the run folder; it must be new or empty unless ``resume`` or ``overwrite``.
        device: a name for ``keynet.devices.resolve_device`` ("auto", "cpu", "cuda", "cuda:N").
        resume: continue from ``out/last.pt`` when it exists.
        overwrite: start afresh in an existing ``out``.
        command: the command line, for the model card.
        **conf: overrides of ``trainer.options.default_conf``.

    Raises:
        OptionError: an unknown option or a bad value; DeviceError: an absent or unknown device; OutputError: ``out``
        is a file or cannot be made; WeightsError: a ``last.pt`` to resume that is damaged or does not fit the run;
        InputError: no readable photographs.
    """

    def __init__(self, images: list[str | Path], out: str | Path, device: str = "auto", resume: bool = False,
                 overwrite: bool = False, command: str = "", **conf: Any) -> None:
        self.rank, self.world = process_group()
        self.conf = training_options(conf, self.world)
        self.images, self.command, self.out = [str(i) for i in images], command, Path(out)
        self.device = self._choose_device(device)
        resumed = self._check_output(resume, overwrite)
        photos = load_photographs(find_images(self.images), self.conf["crop"])
        self._make_output()
        self._build_model()
        self._build_optimiser()
        if resumed is not None:
            self._restore(resumed)
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self._make_pairs(photos)

    # -- set-up steps ---------------------------------------------------------------------------------------------
    def _choose_device(self, name: str) -> torch.device:
        """The training device; bf16 only where it is native (elsewhere a warning and fp32); torch's threads."""
        device = resolve_device(name, self.world)
        if self.conf["bf16"] and not native_bf16(device):
            self.conf["bf16"] = False
            print(f"warning: --bf16 ignored: {device.type} here has no native bf16, where bf16 is many times "
                  "slower than fp32; training in fp32", file=sys.stderr)
        if self.conf["threads"]:
            torch.set_num_threads(self.conf["threads"])
        return device

    def _check_output(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        """Check ``out`` may hold this run, writing nothing; returns the checkpoint to resume from, if any (read and
        checked: the same run-defining options, finite weights)."""
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"--out {self.out} is a file, not a folder; give a folder for the run")
        if self.out.is_dir() and any(self.out.iterdir()) and not (resume or overwrite):
            raise OutputError(f"output folder {self.out} exists; pass --resume to continue it or --overwrite")
        last = self.out / "last.pt"
        if not (resume and last.exists()):
            return None
        state = read_checkpoint(last)
        changed = [k for k in RUN_DEFINING if state["conf"].get(k) != self.conf[k]]
        if changed:
            raise OptionError(f"--resume needs the options of the run in {self.out}; changed: " + ", ".join(
                f"{k} {state['conf'].get(k)!r} -> {self.conf[k]!r}" for k in changed))
        problem = weights_problem(state["model"])
        if problem:
            raise WeightsError(f"checkpoint {last} cannot be resumed: {problem}")
        return state

    def _make_output(self) -> None:
        """Create ``out`` (rank 0) and remove the temporary files of writes that a killed process left midway."""
        if self.rank != 0:
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {self.out}: cannot create the run folder ({exc.strerror or exc})") from None
        remove_stale_temporaries(self.out)

    def _build_model(self) -> None:
        """The seeded He-initialised model on the device, BatchNorm over every process, fp32 handcrafted block."""
        torch.manual_seed(self.conf["seed"])
        model = build_model("tiny_keynet" if self.conf["tiny"] else "keynet")
        he_initialise(model)
        freeze_biases_before_batchnorm(model)
        self.model = use_global_batchnorm(model).to(self.device)
        self.model.feature_extractor.hc_block = Float32Handcrafted(self.model.feature_extractor.hc_block)

    def _build_optimiser(self) -> None:
        """Adam with the learning rate halved every ``lr_decay_epochs``; no epoch done yet."""
        self.optimizer = optimizer_for(self.model, self.conf)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, self.conf["lr_decay_epochs"], 0.5)
        self.epoch, self.best, self.history = 0, -math.inf, []

    def _make_pairs(self, photos: list[np.ndarray]) -> None:
        """The fixed training and validation pairs (seeded), held on the device."""
        c = self.conf
        self.train_pairs = generate_pairs(PairDataset(photos, c["train_pairs"], c["seed"], crop=c["crop"]),
                                          c["workers"], "training pairs").to(self.device)
        self.val_pairs = generate_pairs(PairDataset(photos, c["val_pairs"], c["seed"] + 1_000_003, crop=c["crop"]),
                                        c["workers"], "validation pairs").to(self.device)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best": self.best,
                "history": self.history, "conf": self.conf, "torch_rng": torch.get_rng_state(),
                "images": self.images, "command": self.command,
                "machine": machine_description(self.device, self.world)}

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, the checked ``out/last.pt``: model, optimiser, schedule, history, random state."""
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"checkpoint {self.out / 'last.pt'} does not fit this run ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])

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
                                            f"({self._last_good()})")
                    continue
                problem = self._weights_problem()
                if problem:
                    raise DivergedWeights(f"training diverged in epoch {epoch}: {problem}; stopped and nothing "
                                          f"exported (try a --lr lower than {c['lr']:g}; {self._last_good()})")
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

    def _weights_problem(self) -> str:
        """Why the weights after a step are not a trainable model ("" when they are); one device sync."""
        largest = float(torch.stack([p.detach().abs().amax() for p in self.model.parameters()]).max())
        if math.isfinite(largest) and largest <= MAX_WEIGHT:
            return ""
        return weights_problem(self.model.state_dict())

    def _last_good(self) -> str:
        last = self.out / "last.pt"
        return f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was saved yet"

    def export(self) -> Path:
        """Write the best checkpoint's model to our weights format, with its model card."""
        if self.rank != 0:
            return self.out / f"{'tiny_keynet' if self.conf['tiny'] else 'keynet'}.pt"
        return export_run(self.out)


def resolve_device(device: str | torch.device, world: int = 1) -> torch.device:
    """``keynet.devices.resolve_device``; under ``torchrun`` (``world`` > 1), cuda means this process's GPU
    (LOCAL_RANK)."""
    resolved = devices.resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None and world > 1:
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return resolved


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


#: The ``default_conf`` options the command line takes as numbers (flag ``option_name(key)``), with their help.
NUMBER_FLAGS = {"epochs": "", "batch_size": "global batch size", "lr": "", "lr_decay_epochs": "halve the lr every N",
                "weight_decay": "L2 of the conv kernels", "train_pairs": "", "val_pairs": "",
                "crop": "pair image side in pixels", "seed": "", "workers": "processes making the pairs",
                "threads": "torch threads (0: one per core)"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    d = default_conf
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train Key.Net with the M-SIP loss.")
    parser.add_argument("--images", action="append", required=True, help="folder of photographs (repeatable)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png, weights)")
    parser.add_argument("--tiny", action="store_true", help="train Tiny-Key.Net")
    for key, text in NUMBER_FLAGS.items():
        parser.add_argument(option_name(key), type=type(d[key]), default=d[key], help=text or None)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the network (the loss stays fp32)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an existing --out")
    parser.add_argument("--export", action="store_true",
                        help="only write the weights of the best checkpoint in --out (a run that stopped or still runs)")
    args = parser.parse_args(argv)
    command = "python -m trainer " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if args.export:
            path = export_run(args.out, args.images, command.replace(" --export", ""),
                              machine_description(resolve_device(args.device)))  # for runs that do not record them
            print(f"weights written to {path}")
            return 0
        return run_training(args, command)
    except KeyNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.out}/last.pt (if saved) holds the last finished epoch; --resume continues",
              file=sys.stderr)
        return 130


def run_training(args: Any, command: str) -> int:
    """The training run of the parsed command line ``args``, in one process or as one of ``torchrun``'s."""
    keep_freed_memory()  # the same large activations every step: no page faults on fresh memory each time
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        use_cuda = devices.resolve_device(args.device).type == "cuda"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        trainer = Trainer(args.images, args.out, args.device, args.resume, args.overwrite,
                          command=command,
                          **{key: getattr(args, key) for key in (*NUMBER_FLAGS, *SWITCHES)})
        path = trainer.fit()
        if trainer.rank == 0:
            print(f"weights written to {path}")
        return 0
    finally:
        if distributed:
            dist.destroy_process_group()
