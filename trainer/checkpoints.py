"""A run's checkpoints: read and checked (a damaged file is named, never half-used), and exported as weights."""

from __future__ import annotations

import math
import pickle
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from keynet.errors import InputError, WeightsError
from keynet.model import build_model
from keynet.weights import save_weights

#: What a checkpoint of ``trainer.train.Trainer`` holds.
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "best", "history", "conf", "torch_rng")
#: Learned weights beyond this size mean a diverged run (trained Key.Net weights stay under 10).
MAX_WEIGHT = 1e4
# What torch.load raises for a truncated, corrupt or foreign file.
UNREADABLE = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError, TypeError,
              AttributeError, IndexError, UnicodeDecodeError)


def weights_problem(state_dict: dict[str, torch.Tensor]) -> str:
    """Why ``state_dict`` cannot be a trained model ("" when it can): non-finite values, or weights over MAX_WEIGHT."""
    for name, value in state_dict.items():
        if not value.is_floating_point():
            continue
        largest = float(value.detach().abs().max()) if value.numel() else 0.0
        if not math.isfinite(largest):
            return f"{name} holds non-finite values"
        if largest > MAX_WEIGHT and "running_" not in name:
            return f"{name} reaches {largest:.3g} (trained weights stay under {MAX_WEIGHT:g})"
    return ""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The training state saved in ``path``, checked to be complete.

    Raises:
        WeightsError: ``path`` cannot be read (truncated, corrupt, a folder) or is not a checkpoint of this trainer;
            the message names the file, which is left as it is.
    """
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise WeightsError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, *UNREADABLE) as exc:  # a truncated zip archive can fail with EINVAL
        raise WeightsError(f"checkpoint {path} is truncated or corrupt (torch.load: {type(exc).__name__}); it was "
                           "left as it is") from None
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(CHECKPOINT_KEYS)
    if missing or not isinstance(state["conf"], dict) or not isinstance(state["model"], dict):
        raise WeightsError(f"checkpoint {path} is not a checkpoint of this trainer (missing or malformed: "
                           f"{', '.join(missing) or 'conf or model'})")
    return state


def export_run(out: str | Path, images: list[str] | None = None, command: str = "", machine: str = "") -> Path:
    """Write the best checkpoint of the run in ``out`` (finished, interrupted or still going) to
    ``out/<architecture>.pt`` in our weights format, with its model card.

    Args:
        images, command, machine: the training folders, command line and machine for the model card, when the
            checkpoint does not record them.

    Raises:
        InputError: ``out`` holds no checkpoint.
        WeightsError: a checkpoint is damaged, or its weights are not finite or exploded (nothing is written).
    """
    out = Path(out)
    best, last = out / "best.pt", out / "last.pt"
    if not (best.is_file() or last.is_file()):
        raise InputError(f"{out} holds no checkpoint (best.pt or last.pt) to export")
    history = read_checkpoint(last if last.is_file() else best)["history"]
    chosen = best if best.is_file() else last
    state = read_checkpoint(chosen)
    problem = weights_problem(state["model"])
    if problem:
        raise WeightsError(f"checkpoint {chosen} is not exported: {problem}")
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
