"""The app's settings as data (no Qt): model, device, the tracker settings the side panel offers, the calibration.

Every tracker default comes from ``keynet.config.TrackerConfig``, the one source the command line and the
benchmarks read too; ``tracker_config`` turns the settings back into a ``TrackerConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from keynet.config import TrackerConfig

MODELS = {"keynet": "Key.Net", "tiny_keynet": "Tiny-Key.Net", "file": "Weights file"}
DEVICES = {"auto": "Auto", "cuda": "CUDA", "cpu": "CPU"}
TRACKER_DEFAULTS: dict[str, Any] = TrackerConfig().flat()
# The tracker settings the panel offers, by their TrackerConfig names.
TRACKER_FIELDS = ("device", "num_keypoints", "nms_size", "descriptor", "ratio", "ransac_threshold")


@dataclass(frozen=True)
class AppSettings:
    """What the user can change in the side panel and the Tools menu; ``model`` is an architecture or ``"file"``
    (``weights_file``); ``calibration_file``: the camera calibration (OpenCV YAML/XML or JSON) the pose and the
    cube use ("" for the field of view's camera).

    The other fields are ``TrackerConfig`` fields of the same names, with its defaults.
    """

    model: str = "keynet"
    weights_file: str = ""
    device: str = TRACKER_DEFAULTS["device"]
    num_keypoints: int = TRACKER_DEFAULTS["num_keypoints"]
    nms_size: int = TRACKER_DEFAULTS["nms_size"]
    descriptor: str = TRACKER_DEFAULTS["descriptor"]
    ratio: float = TRACKER_DEFAULTS["ratio"]
    ransac_threshold: float = TRACKER_DEFAULTS["ransac_threshold"]
    calibration_file: str = ""

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> AppSettings:
        """Settings from stored values (strings from a settings file, for one); a missing or unreadable value
        keeps its default."""
        parsed = {}
        for f in fields(cls):
            default = getattr(cls, f.name)
            raw = values.get(f.name, default)
            try:
                parsed[f.name] = type(default)(raw)
            except (TypeError, ValueError):
                parsed[f.name] = default
        return cls(**parsed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tracker_config(self, keep_response: bool = False, device: str | None = None) -> TrackerConfig:
        """The ``TrackerConfig`` of these settings (``device``: the resolved device, instead of ``self.device``)."""
        values = {name: getattr(self, name) for name in TRACKER_FIELDS}
        if device is not None:
            values["device"] = device
        return TrackerConfig().replace(**values, keep_response=keep_response)
