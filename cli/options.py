"""Options that several commands share: the weights and architecture, and the device."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from keynet.config import DetectorConfig
from keynet.devices import DEVICE_CHOICES
from keynet.model import ARCHITECTURES

T = TypeVar("T", int, float)


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--weights FILE`` (default: the shipped weights of the chosen architecture)."""
    parser.add_argument("--weights", help="Key.Net weights file (ours or the authors' keynet_pytorch.pth); "
                        "default: the shipped ones")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (``keynet.devices.resolve_device`` checks the name)."""
    default = DetectorConfig().device
    parser.add_argument("--device", default=default,
                        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default {default})")


def _number_argument(text: str, convert: Callable[[str], T], valid: Callable[[T], bool], expected: str) -> T:
    """``convert(text)`` when it parses and is ``valid``; otherwise an argparse error saying ``expected``."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text}")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _number_argument(text, int, lambda value: value >= 0, "a whole number >= 0")


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _number_argument(text, float, lambda value: math.isfinite(value) and value > 0, "a finite number > 0")


def add_architecture_option(parser: argparse.ArgumentParser) -> None:
    """``--architecture keynet|tiny_keynet`` (the same name in every command and the app's settings)."""
    parser.add_argument("--architecture", default="keynet", choices=sorted(ARCHITECTURES),
                        help="Key.Net or Tiny-Key.Net (default keynet)")
