"""keynet-live: Key.Net keypoint detection, description, matching, homographies and planar tracking (no Qt)."""

from .detect import KeyNetDetector, Keypoints
from .model import KeyNet, TinyKeyNet, build_model
from .weights import WeightsError, load_model, save_weights

__all__ = ["KeyNet", "TinyKeyNet", "build_model", "KeyNetDetector", "Keypoints", "load_model", "save_weights", "WeightsError"]
