"""Options that several commands share: the weights and architecture, and the device."""

from __future__ import annotations

import argparse
import math

from keynet.config import DetectorConfig
from keynet.devices import DEVICE_CHOICES
from keynet.model import ARCHITECTURES


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--weights FILE`` (default: the shipped weights of the chosen architecture)."""
    parser.add_argument("--weights", help="Key.Net weights file (ours or the authors' keynet_pytorch.pth); "
                        "default: the shipped ones")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (``keynet.devices.resolve_device`` checks the name)."""
    default = DetectorConfig().device
    parser.add_argument("--device", default=default,
                        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default {default})")


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0; got {value}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text}")
    return value


def add_architecture_option(parser: argparse.ArgumentParser) -> None:
    """``--architecture keynet|tiny_keynet`` (the same name in every command and the app's settings)."""
    parser.add_argument("--architecture", default="keynet", choices=sorted(ARCHITECTURES),
                        help="Key.Net or Tiny-Key.Net (default keynet)")
