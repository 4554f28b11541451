"""keynet-live: Key.Net keypoint detection, description, matching, homographies and planar tracking (no Qt).

The names below load on first use, so ``import keynet.runtime`` (what entry points call before torch loads)
imports nothing heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "KeyNet": "model", "TinyKeyNet": "model", "build_model": "model",
    "KeyNetDetector": "detect", "Keypoints": "detect",
    "load_model": "weights", "save_weights": "weights",
    "KeyNetError": "errors", "WeightsError": "errors",
    "TrackerConfig": "config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keynet' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
