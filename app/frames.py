"""What the capture thread hands to the processing thread (no Qt: the processing side imports it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One captured frame: its index in the source, the (H, W, 3) uint8 BGR image and when it was captured
    (``time.perf_counter`` seconds)."""

    index: int
    image: np.ndarray
    time: float
