"""The trainer's options: their defaults, and the checks that refuse a bad value naming the option.

A value is checked once, before any data is made or any file is touched; the message names the command-line flag
(``--crop``) or, for options without one, the keyword (``max_nan_steps``), and says what is expected.
"""

from __future__ import annotations

import math
import os
from typing import Any

from keynet.errors import OptionError, check_options

from .loss import default_conf as loss_conf

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

#: Options that define a run's data and model: --resume refuses to change them (epochs, lr, bf16... may change).
RUN_DEFINING = ("train_pairs", "val_pairs", "crop", "seed", "tiny", "batch_size")
#: Options without a command-line flag: messages name them by their keyword.
KEYWORD_ONLY = ("max_nan_steps", "val_keypoints")
#: The smallest crop: one window of the M-SIP loss's largest size fits in it.
MIN_CROP = max(loss_conf["window_sizes"])
#: The largest learning rate: Adam's steps are about ``lr`` in size, and the weights are of order 1.
MAX_LR = 1.0
COUNTS = ("epochs", "batch_size", "train_pairs", "val_pairs", "lr_decay_epochs", "max_nan_steps", "val_keypoints")
NON_NEGATIVE = ("seed", "workers", "threads")
SWITCHES = ("tiny", "bf16")


def option_name(key: str) -> str:
    """How the user gave option ``key``: its flag (``--batch-size``), or its keyword when it has no flag."""
    return key if key in KEYWORD_ONLY else "--" + key.replace("_", "-")


def _whole(key: str, value: Any, minimum: int, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f"{option_name(key)} must be {expected}; got {value!r}")


def _number(key: str, value: Any, low: float, high: float, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise OptionError(f"{option_name(key)} must be {expected}; got {value!r}")


def training_options(overrides: dict[str, Any], world: int = 1) -> dict[str, Any]:
    """``default_conf`` with ``overrides``, every value checked, for a run of ``world`` processes.

    Raises:
        OptionError: an unknown option or a value out of range, named as the user gave it.
    """
    check_options(overrides, default_conf, "training")
    conf = {**default_conf, **overrides}
    for key in COUNTS:
        _whole(key, conf[key], 1, "a whole number of at least 1")
    for key in NON_NEGATIVE:
        _whole(key, conf[key], 0, "a whole number of at least 0" + (" (0: one per core)" if key == "threads" else ""))
    _whole("crop", conf["crop"], MIN_CROP, f"a whole number of pixels of at least {MIN_CROP} (the M-SIP loss's "
           f"largest window; the default is {default_conf['crop']})")
    if not (isinstance(conf["lr"], (int, float)) and conf["lr"] > 0):
        raise OptionError(f"--lr must be a positive number; got {conf['lr']!r}")
    _number("lr", conf["lr"], 0.0, MAX_LR, f"at most {MAX_LR:g}: Adam moves every weight by about lr each step, "
            f"and weights are of order 1 (the default is {default_conf['lr']:g})")
    _number("weight_decay", conf["weight_decay"], 0.0, 1.0, "a number from 0 to 1")
    for key in SWITCHES:
        if not isinstance(conf[key], bool):
            raise OptionError(f"{option_name(key)} must be True or False; got {conf[key]!r}")
    if conf["batch_size"] % world:
        raise OptionError(f"--batch-size {conf['batch_size']} must divide by the {world} processes")
    if conf["train_pairs"] < conf["batch_size"]:
        raise OptionError(f"--train-pairs ({conf['train_pairs']}) must be at least one batch "
                          f"(--batch-size {conf['batch_size']})")
    return conf
