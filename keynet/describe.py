"""Descriptors at Key.Net keypoints, one interface for all.

``Describer(descriptor=...)`` with ``"orb"``, ``"brisk"``, ``"sift"`` (OpenCV, computed on our keypoints, CPU),
``"patch_sift"`` (kornia's SIFTDescriptor on patches cut at each keypoint's scale, on the detector's device) or
``"hardnet"`` (kornia's HardNet architecture with a user-supplied weights file).

Key.Net keypoints have no orientation, so by default (``oriented=True``) each one gets ORB's: the direction of the
intensity centroid of the disc around it (Rosin 1999; ``intensity_centroid_angles``), and every descriptor is
computed in that frame, which makes matching invariant to in-plane rotation (a target turned in the camera's view).
``oriented=False`` describes upright patches (a little more distinctive when nothing rotates).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .detect import Keypoints
from .devices import resolve_device
from .errors import InputError, OptionError, WeightsError, check_options
from .image import to_grey_tensor
from .inference import native_bf16
from .weights import read_weights_file

ORIENTATION_RADIUS = 15  # px: ORB's disc (half its 31-pixel patch)

# BRISK left OpenCV's main modules in 5.0 (it is in opencv-contrib); it is offered where the build has it
DESCRIPTORS = tuple(d for d in ("orb", "brisk", "sift", "patch_sift", "hardnet")
                    if d != "brisk" or hasattr(cv2, "BRISK_create"))
BINARY = {"orb", "brisk"}


@dataclass
class Descriptors:
    """Descriptors of the keypoints ``index`` (OpenCV drops points too near the border).

    Attributes:
        index: (M,) int64 indices into the described ``Keypoints``.
        data: (M, D) float32 (unit length) or uint8 packed bits (``binary``), on the compute device.
        binary: compare with the Hamming distance.
    """

    index: np.ndarray
    data: torch.Tensor
    binary: bool
    _bits: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def bits(self) -> torch.Tensor:
        """(M, 8D) 0/1 of the binary descriptors unpacked, computed once (a target's serve every frame): bfloat16
        where the hardware multiplies it natively (0/1 and every sum of up to 256 of them are exact), else float32."""
        if not self.binary:
            raise InputError("float descriptors have no bits; only binary (ORB, BRISK) descriptors do")
        if self._bits is None:
            self._bits = unpack_bits(self.data, torch.bfloat16 if native_bf16(self.data.device) else torch.float32)
        return self._bits


_BITS = torch.tensor([1 << i for i in range(8)], dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, B) uint8 -> (N, 8B) of 0/1 in ``dtype``."""
    return ((packed[..., None] & _BITS.to(packed.device)) > 0).flatten(1).to(dtype)


def _opencv_extractor(name: str) -> Any:
    if name == "orb":
        return cv2.ORB_create(edgeThreshold=15, patchSize=31)
    if name == "brisk":
        return cv2.BRISK_create()
    return cv2.SIFT_create()


@functools.cache
def disc_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(P,) int64 x and y offsets of the pixels within ``radius`` of a centre pixel (made once per radius)."""
    v, u = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    inside = u * u + v * v <= radius * radius + radius  # the rounded disc OpenCV's ORB uses (umax table)
    return u[inside].astype(np.int64), v[inside].astype(np.int64)


def intensity_centroid_angles(grey: np.ndarray, xy: np.ndarray, radius: int = ORIENTATION_RADIUS) -> np.ndarray:
    """ORB's orientation of each point: the angle of the vector from it to the intensity centroid of its disc.

    Args:
        grey: (H, W) uint8 or float32 image; xy: (N, 2) pixel coordinates (rounded to the nearest pixel; the image
            is mirrored beyond its border).

    Returns:
        (N,) float32 angles in degrees in [0, 360), measured from +x towards +y (image coordinates, y down), as
        ``cv2.KeyPoint.angle``.
    """
    if len(xy) == 0:
        return np.zeros(0, np.float32)
    u, v = disc_offsets(radius)
    padded = cv2.copyMakeBorder(grey, radius, radius, radius, radius, cv2.BORDER_REFLECT_101)
    h, w = grey.shape
    x = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, w - 1) + radius
    y = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, h - 1) + radius
    stride = padded.shape[1]  # one gather at flat indices: 6x faster than indexing rows and columns
    values = padded.ravel().take((y * stride + x)[:, None] + (v * stride + u)[None]).astype(np.float32)
    # The moments by torch, not NumPy's BLAS: from about 1000 points OpenBLAS multithreads the product, and its
    # threads then spin for a while, taking the cores from Key.Net's next frame (3x slower detection).
    moments = (torch.from_numpy(values) @ torch.from_numpy(np.stack([v, u], 1).astype(np.float32))).numpy()
    return (np.degrees(np.arctan2(moments[:, 0], moments[:, 1])) % 360).astype(np.float32)


def load_hardnet(path: str | Path, device: torch.device) -> torch.nn.Module:
    """kornia's HardNet with the state dict in ``path`` (read as ``keynet.weights.read_weights_file`` reads).

    Raises:
        WeightsError: no such file, not a PyTorch file, or not HardNet's state dict.
    """
    from kornia.feature import HardNet

    state = read_weights_file(path, "HardNet weights file")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    net = HardNet(pretrained=False)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path} does not hold HardNet weights (32x32 patches, 128-d): {exc}") from None
    return net.eval().to(device)


class Describer:
    """Computes descriptors at keypoints.

    Args:
        **conf: overrides of ``default_conf``: ``descriptor`` (one of ``DESCRIPTORS``), ``weights`` (HardNet file),
            ``device`` (``auto``, ``cpu``, ``cuda``; the kornia descriptors run there), ``patch_size`` (pixels),
            ``oriented`` (describe each point in its intensity-centroid orientation; False: upright).
    """

    default_conf: dict[str, Any] = {"descriptor": "orb", "weights": None, "device": "cpu", "patch_size": 32,
                                    "oriented": True}

    def __init__(self, **conf: Any) -> None:
        check_options(conf, self.default_conf, "describer")
        self.conf = {**self.default_conf, **conf}
        name = self.conf["descriptor"]
        if name not in DESCRIPTORS:
            raise OptionError(f"descriptor {name!r} is not one of {DESCRIPTORS} (available in this OpenCV build)")
        self.device = resolve_device(self.conf["device"])
        self.binary = name in BINARY
        self.extractor = _opencv_extractor(name) if name in ("orb", "brisk", "sift") else None
        self.net: torch.nn.Module | None = None
        if name == "patch_sift":
            from kornia.feature import SIFTDescriptor

            self.net = SIFTDescriptor(self.conf["patch_size"], rootsift=True).to(self.device)
        elif name == "hardnet":
            if not self.conf["weights"]:
                raise OptionError("the hardnet descriptor needs a weights file (weights=PATH, a HardNet state dict)")
            self.net = load_hardnet(self.conf["weights"], self.device)

    @property
    def name(self) -> str:
        return self.conf["descriptor"]

    def __call__(self, image: np.ndarray, kps: Keypoints) -> Descriptors:
        """Describe ``kps`` in ``image`` ((H, W) or (H, W, 3) uint8)."""
        if len(kps) == 0:
            empty = torch.zeros(0, 32 if self.binary else 128, dtype=torch.uint8 if self.binary else torch.float32)
            return Descriptors(np.zeros(0, np.int64), empty.to(self.device), self.binary)
        if self.extractor is not None:
            return self._opencv(image, kps)
        return self._patches(image, kps)

    def angles(self, grey: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """(N,) degrees: each point's intensity-centroid orientation, or zeros when not ``oriented``."""
        if not self.conf["oriented"]:
            return np.zeros(len(xy), np.float32)
        return intensity_centroid_angles(grey, xy)

    def _opencv(self, image: np.ndarray, kps: Keypoints) -> Descriptors:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        arr = kps.numpy()
        angles = self.angles(grey, arr[:, :2])
        cv_kps = [cv2.KeyPoint(float(x), float(y), float(kps.size_multiplier * s), float(a), float(r), 0, i)
                  for i, ((x, y, s, r), a) in enumerate(zip(arr, angles))]
        kept, desc = self.extractor.compute(grey, cv_kps)
        index = np.array([k.class_id for k in kept], np.int64) if kept else np.zeros(0, np.int64)
        if desc is None:
            desc = np.zeros((0, self.extractor.descriptorSize()), np.uint8 if self.binary else np.float32)
        data = torch.from_numpy(desc)
        if not self.binary:
            data = torch.nn.functional.normalize(data.float(), dim=1)
        return Descriptors(index, data.to(self.device), self.binary)

    @torch.inference_mode()
    def _patches(self, image: np.ndarray, kps: Keypoints) -> Descriptors:
        from kornia.feature import extract_patches_from_pyramid

        x = to_grey_tensor(image, self.device)
        angles = torch.from_numpy(self.angles(x[0, 0].cpu().numpy(), kps.numpy()[:, :2]))  # the grey made above
        lafs = kps.to(self.device).to_laf(angles.to(self.device))
        patches = extract_patches_from_pyramid(x, lafs, self.conf["patch_size"])[0]
        desc = torch.nn.functional.normalize(self.net(patches), dim=1)
        return Descriptors(np.arange(len(kps)), desc, False)
