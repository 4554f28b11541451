"""From Key.Net responses to keypoints: non-maxima suppression, borders, threshold, top-K, single and multi-scale.

Single-scale (TI) detection runs the response once on the image. Multi-scale (SI) detection runs it on an image
pyramid as the authors' extraction does: ``up_levels`` levels upsampled by ``scale_factor`` and the image with
``pyramid_levels`` levels below it, each blurred and downsampled by ``scale_factor`` (sqrt 2). The keypoint budget
is shared out over the levels in proportion to their area, and a level that finds fewer maxima than its share
hands the rest to the next one. A keypoint found on a level keeps that level's integer pixel, mapped back to the
image by the level's size ratio, and the level's nominal scale (1 at the image, sqrt 2 one level down, ...).

NMS: a point is kept when it is strictly greater than the rest of its ``nms_size`` window (as kornia's NMS; the
authors' ``==`` test also keeps every pixel of a flat region) and exceeds ``score_threshold``; the border strip is
removed after the suppression, so a strong response inside the strip still suppresses a weaker one
beside it (removing it first would turn the strip's inner edge into false maxima).

Example:
    >>> detector = KeyNetDetector(model, num_keypoints=1000)
    >>> kps = detector.detect(cv2.imread("image.png"))[0]
    >>> kps.xy.shape, kps.scale.shape, kps.score.shape  # (N, 2), (N,), (N,)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .image import to_grey_tensor
from .inference import response_function
from .model import MIN_IMAGE_SIDE, KeyNet, pyramid_down


@dataclass
class Keypoints:
    """Keypoints of one image, sorted by score (descending).

    Attributes:
        xy: (N, 2) float32 pixel coordinates (x right, y down) in the input image.
        scale: (N,) float32 nominal scale of the pyramid level the point was found on (1 = the input image).
        score: (N,) float32 Key.Net response at the point.
        size_multiplier: region diameter in pixels of a scale-1 keypoint, used by ``sizes``, OpenCV and LAFs.
    """

    xy: torch.Tensor
    scale: torch.Tensor
    score: torch.Tensor
    size_multiplier: float = 22.0

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def sizes(self) -> torch.Tensor:
        """(N,) region diameters in pixels: ``size_multiplier * scale``."""
        return self.size_multiplier * self.scale

    def numpy(self) -> np.ndarray:
        """(N, 4) float32 array of x, y, scale, score (the layout of the authors' keypoint files)."""
        return torch.cat([self.xy, self.scale[:, None], self.score[:, None]], 1).detach().cpu().float().numpy()

    def to(self, device: str | torch.device) -> Keypoints:
        return Keypoints(self.xy.to(device), self.scale.to(device), self.score.to(device), self.size_multiplier)

    def top(self, k: int) -> Keypoints:
        """The ``k`` best keypoints (all of them when there are fewer)."""
        return Keypoints(self.xy[:k], self.scale[:k], self.score[:k], self.size_multiplier)

    def to_cv2(self) -> list[cv2.KeyPoint]:
        """OpenCV keypoints: ``pt`` = xy, ``size`` = region diameter, ``response`` = score, ``octave`` = level."""
        arr = self.numpy()
        return [
            cv2.KeyPoint(float(x), float(y), float(self.size_multiplier * s), -1.0, float(r), int(round(math.log2(s) * 2)))
            for x, y, s, r in arr
        ]

    def to_laf(self) -> torch.Tensor:
        """kornia local affine frames, (1, N, 2, 3): upright, isotropic, with kornia's scale = region diameter."""
        from kornia.feature import laf_from_center_scale_ori

        s = self.sizes.view(1, -1, 1, 1)
        return laf_from_center_scale_ori(self.xy[None], s, torch.zeros_like(s[..., 0]))


def empty_keypoints(device: torch.device | str = "cpu", size_multiplier: float = 22.0) -> Keypoints:
    """A Keypoints with no points."""
    z = torch.zeros(0, device=device)
    return Keypoints(torch.zeros(0, 2, device=device), z, z.clone(), size_multiplier)


def neighbourhood_max(response: torch.Tensor, window: int) -> torch.Tensor:
    """The maximum over each ``window`` x ``window`` neighbourhood, the centre itself excluded.

    Args:
        response: (B, 1, H, W).
        window: odd window side, >= 3.

    Returns:
        (B, 1, H, W); outside the image counts as -inf.
    """
    r = window // 2
    h, w = response.shape[-2:]
    padded = F.pad(response, (r, r, r, r), value=float("-inf"))
    rows = F.max_pool2d(padded, (1, window), stride=1)  # (B, 1, H + 2r, W): whole window width, every row
    row_runs = F.max_pool2d(rows, (r, 1), stride=1)  # runs of r rows: index i covers padded rows i .. i + r - 1
    above, below = row_runs[..., :h, :], row_runs[..., r + 1 : r + 1 + h, :]
    centre_row = padded[..., r : r + h, :]
    col_runs = F.max_pool2d(centre_row, (1, r), stride=1)
    left, right = col_runs[..., :w], col_runs[..., r + 1 : r + 1 + w]
    return torch.maximum(torch.maximum(above, below), torch.maximum(left, right))


def nms_maxima(response: torch.Tensor, nms_size: int, border: int, threshold: float) -> torch.Tensor:
    """Scores of the strict local maxima, zero elsewhere.

    A point is kept when it is strictly greater than every other response in its ``nms_size`` window and exceeds
    ``threshold``. Strictness matters: a flat region (a saturated sky, a black frame) has a constant response, and
    a ``==`` test would report every pixel of it as a maximum.

    Args:
        response: (B, 1, H, W) response.
        nms_size: odd window side of the suppression (1 keeps every point above the threshold).
        border: width of the strip along each side where no keypoint is kept.
        threshold: a maximum must exceed it.

    Returns:
        (B, 1, H, W) map holding the response at kept maxima and 0 elsewhere.
    """
    if nms_size < 1 or nms_size % 2 == 0:
        raise ValueError(f"nms_size must be a positive odd number; got {nms_size}")
    keep = response > threshold
    if nms_size > 1:
        keep &= response > neighbourhood_max(response, nms_size)
    h, w = response.shape[-2:]
    if border > 0:
        inside = torch.zeros(h, w, dtype=torch.bool, device=response.device)
        inside[border : h - border, border : w - border] = True
        keep &= inside
    return torch.where(keep, response, torch.zeros((), dtype=response.dtype, device=response.device))


def top_maxima(maxima: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` strongest non-zero entries of one (H, W) maxima map: (n, 2) integer xy and (n,) scores, n <= k."""
    flat = maxima.reshape(-1)
    k = min(k, int(flat.numel()))
    if k <= 0:
        return torch.zeros(0, 2, dtype=torch.long, device=maxima.device), flat[:0]
    scores, idx = torch.topk(flat, k)
    valid = scores > 0
    scores, idx = scores[valid], idx[valid]
    w = maxima.shape[-1]
    return torch.stack([idx % w, idx // w], 1), scores


def level_budgets(num_keypoints: int, num_levels: int, up_levels: int, scale_factor: float) -> list[int]:
    """The authors' share of the keypoint budget per level, in proportion to level area (finest level first)."""
    area = scale_factor**2
    weights = [area ** (-(i - up_levels)) for i in range(num_levels)]
    total = sum(weights)
    return [int(num_keypoints * w / total) for w in weights]


class KeyNetDetector:
    """Key.Net keypoint detector: a model, an inference mode and the extraction settings.

    Args:
        model: a ``KeyNet`` or ``TinyKeyNet`` with trained weights.
        **conf: overrides of ``default_conf``.
    """

    default_conf: dict[str, Any] = {
        "num_keypoints": 1000,
        "nms_size": 15,
        "border": 15,
        "score_threshold": 0.0,
        "multi_scale": True,
        "pyramid_levels": 4,
        "up_levels": 1,
        "scale_factor": math.sqrt(2),
        "size_multiplier": 22.0,
        "mode": "exact",
        "device": "cpu",
    }

    def __init__(self, model: KeyNet, **conf: Any) -> None:
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown detector option(s) {sorted(unknown)}; known: {sorted(self.default_conf)}")
        self.conf = {**self.default_conf, **conf}
        if self.conf["device"] == "auto":
            self.conf["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(self.conf["device"])
        if int(self.conf["num_keypoints"]) < 0:
            raise ValueError(f"num_keypoints must be >= 0; got {self.conf['num_keypoints']}")
        self.model = model
        self.response: Callable[[torch.Tensor], torch.Tensor] = response_function(model, self.conf["mode"], self.device)

    @property
    def min_image_side(self) -> int:
        """The smallest image side detection accepts: the first level must be larger than its two borders."""
        return max(MIN_IMAGE_SIDE, 2 * int(self.conf["border"]) + 2)

    def prepare(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Convert and check an image or batch; returns (B, 1, H, W) float32 on the detector's device."""
        x = to_grey_tensor(image, self.device)
        h, w = x.shape[-2:]
        if min(h, w) < self.min_image_side:
            raise ValueError(
                f"image is {w}x{h} pixels; Key.Net detection needs at least {self.min_image_side} pixels per side"
            )
        return x

    def detect(self, image: np.ndarray | torch.Tensor, num_keypoints: int | None = None) -> list[Keypoints]:
        """Detect keypoints in an image or a batch.

        Args:
            image: see ``keynet.image.to_grey_tensor`` for the accepted arrays and tensors.
            num_keypoints: overrides ``conf["num_keypoints"]``.

        Returns:
            One ``Keypoints`` per image, sorted by score.
        """
        x = self.prepare(image)
        k = int(self.conf["num_keypoints"] if num_keypoints is None else num_keypoints)
        if self.conf["multi_scale"]:
            return self._detect_multi_scale(x, k)
        maxima = self._maxima(x)
        return [self._keypoints([top_maxima(m[0], k)], [(1.0, 1.0)], [1.0]) for m in maxima]

    def _maxima(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conf
        return nms_maxima(self.response(x).float(), c["nms_size"], c["border"], c["score_threshold"])

    def _keypoints(
        self, found: list[tuple[torch.Tensor, torch.Tensor]], factors: list[tuple[float, float]], scales: list[float]
    ) -> Keypoints:
        """Merge per-level (xy, score) into one Keypoints in image coordinates, sorted by score."""
        xy = [p.float() * torch.tensor(f, device=p.device) for (p, _), f in zip(found, factors)]
        scale = [torch.full((len(s),), sc, device=s.device) for (_, s), sc in zip(found, scales)]
        score = torch.cat([s for _, s in found])
        order = torch.argsort(score, descending=True, stable=True)
        return Keypoints(torch.cat(xy)[order], torch.cat(scale)[order], score[order], float(self.conf["size_multiplier"]))

    def _detect_multi_scale(self, x: torch.Tensor, k: int) -> list[Keypoints]:
        c = self.conf
        f, ups, downs = float(c["scale_factor"]), int(c["up_levels"]), int(c["pyramid_levels"])
        b, _, h, w = x.shape
        levels: list[tuple[torch.Tensor, float]] = []  # (image of the level, nominal scale), finest first
        for i in range(ups):
            up = f ** (1 + i)
            levels.insert(0, (F.interpolate(x, size=(int(h * up), int(w * up)), mode="bilinear", align_corners=False), 1 / up))
        level = x
        for i in range(downs + 1):
            if i > 0:
                level = pyramid_down(level, f)
            if min(level.shape[-2:]) < self.min_image_side:
                break
            levels.append((level, f**i))
        budgets = level_budgets(k, ups + downs + 1, ups, f)[: len(levels)]
        found: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(b)]
        for idx, (image, _) in enumerate(levels):
            maxima = self._maxima(image)
            for j in range(b):
                wanted = sum(budgets[: idx + 1]) - sum(len(s) for _, s in found[j])
                found[j].append(top_maxima(maxima[j, 0], wanted))
        factors = [(w / im.shape[-1], h / im.shape[-2]) for im, _ in levels]
        scales = [s for _, s in levels]
        return [self._keypoints(found[j], factors, scales) for j in range(b)]
