"""Options that several commands share: the weights and architecture, and the device."""

from __future__ import annotations

import argparse

from keynet.config import DetectorConfig
from keynet.devices import DEVICE_CHOICES


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--weights FILE`` (default: the shipped weights of the chosen architecture)."""
    parser.add_argument("--weights", help="Key.Net weights file (ours or the authors' keynet_pytorch.pth); "
                        "default: the shipped ones")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (``keynet.devices.resolve_device`` checks the name)."""
    default = DetectorConfig().device
    parser.add_argument("--device", default=default,
                        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default {default})")
