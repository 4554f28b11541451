"""From Key.Net responses to keypoints: non-maxima suppression, borders, threshold, top-K, single and multi-scale.

Single-scale (TI) detection runs the response once on the image. Multi-scale (SI) detection runs it on an image
pyramid as the authors' extraction does: ``up_levels`` levels upsampled by ``scale_factor`` and the image with
``pyramid_levels`` levels below it, each blurred and downsampled by ``scale_factor`` (sqrt 2). The keypoint budget
is shared out over the levels in proportion to their area, and a level that finds fewer maxima than its share
hands the rest to the next one. A keypoint found on a level keeps that level's integer pixel, mapped back to the
image by the level's size ratio, and the level's nominal scale (1 at the image, sqrt 2 one level down, ...).

NMS (``local_maxima``): a point is kept when it is strictly greater than the rest of its ``nms_size`` window (as
kornia's NMS; the authors' ``==`` test also keeps every pixel of a flat region) and exceeds ``score_threshold``; the
border strip is removed after the suppression, so a strong response inside the strip still suppresses a weaker
one beside it (removing it first would turn the strip's inner edge into false maxima).

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
import numba
import numpy as np
import torch
import torch.nn.functional as F

from .devices import resolve_device
from .errors import InputError, OptionError, check_options
from .image import to_grey_tensor
from .inference import pyramid_down_opencv, resize_bilinear, response_function
from .model import MIN_IMAGE_SIDE, KeyNet


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

    def to_laf(self, angles: torch.Tensor | None = None) -> torch.Tensor:
        """kornia local affine frames, (1, N, 2, 3): isotropic, with kornia's scale = region diameter; upright, or
        turned by ``angles`` ((N,) degrees from +x towards +y, as ``cv2.KeyPoint.angle``)."""
        from kornia.feature import laf_from_center_scale_ori

        s = self.sizes.view(1, -1, 1, 1)
        # kornia's orientation turns the other way round from OpenCV's angle (checked by matching across a turn)
        ori = torch.zeros_like(s[..., 0]) if angles is None else -angles.float().view(1, -1, 1)
        return laf_from_center_scale_ori(self.xy[None], s, ori)


def empty_keypoints(device: torch.device | str = "cpu", size_multiplier: float = 22.0) -> Keypoints:
    """A Keypoints with no points."""
    z = torch.zeros(0, device=device)
    return Keypoints(torch.zeros(0, 2, device=device), z, z.clone(), size_multiplier)


def window_max(response: torch.Tensor, window: int) -> torch.Tensor:
    """The maximum over each ``window`` x ``window`` neighbourhood (outside the image counts as -inf).

    OpenCV's dilation on the CPU (a van Herk/Gil-Werman filter, ~100x faster than ``max_pool2d`` there).

    Shape:
        (B, 1, H, W) -> (B, 1, H, W).
    """
    if response.device.type == "cpu" and response.dtype == torch.float32:
        kernel = np.ones((window, window), np.uint8)
        planes = [cv2.dilate(p.numpy(), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=float("-inf"))
                  for p in response[:, 0]]
        return torch.from_numpy(np.stack(planes))[:, None]
    return F.max_pool2d(response, window, stride=1, padding=window // 2)


def ring_max(response: torch.Tensor) -> torch.Tensor:
    """The maximum of each pixel's 8 neighbours, not the pixel itself (outside the image counts as -inf); the
    torch route of ``local_maxima`` (the CPU's numba pass tests its neighbours itself).

    Shape:
        (B, 1, H, W) -> (B, 1, H, W).
    """
    h, w = response.shape[-2:]
    padded = F.pad(response, (1, 1, 1, 1), value=float("-inf"))
    shifted = [padded[..., dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1)]
    return torch.stack(shifted).amax(0)


def _has_equal_neighbour(padded: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor, radius: int,
                         pad: int) -> torch.Tensor:
    """For each point, whether another pixel within ``radius`` (Chebyshev) has exactly its value."""
    offsets = torch.arange(-radius, radius + 1, device=padded.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    centre = dy.numel() // 2
    dy = torch.cat([dy.reshape(-1)[:centre], dy.reshape(-1)[centre + 1 :]])
    dx = torch.cat([dx.reshape(-1)[:centre], dx.reshape(-1)[centre + 1 :]])
    value = padded[b, y + pad, x + pad]
    around = padded[b[:, None], (y + pad)[:, None] + dy, (x + pad)[:, None] + dx]
    return (around == value[:, None]).any(1)


@numba.njit("void(float32[:, :], float32[:, :], int64, int64, float64, uint8[:, :])", parallel=True, cache=True,
            nogil=True)  # compiled on import, as keynet.inference's kernel
def _strict_maxima_mask(r: np.ndarray, window: np.ndarray, radius: int, border: int, threshold: float,
                        out: np.ndarray) -> None:
    """``out[y, x] = 1`` where ``r`` exceeds ``threshold``, equals its window maximum ``window`` and no other pixel
    within ``radius`` (Chebyshev, inside the map) has its value; the ``border`` strip stays 0."""
    h, w = r.shape
    for y in numba.prange(border, h - border):
        for x in range(border, w - border):
            v = r[y, x]
            if v <= threshold or v != window[y, x]:
                continue
            unique = True
            for yy in range(max(0, y - radius), min(h, y + radius + 1)):
                for xx in range(max(0, x - radius), min(w, x + radius + 1)):
                    if r[yy, xx] == v and (yy != y or xx != x):
                        unique = False
                        break
                if not unique:
                    break
            if unique:
                out[y, x] = 1


def _local_maxima_cpu(r: torch.Tensor, window: torch.Tensor, nms_size: int, border: int,
                      threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``local_maxima`` of one (H, W) CPU float32 map, given its ``window_max``: one numba pass."""
    plane = r.numpy()
    mask = np.zeros(plane.shape, np.uint8)
    _strict_maxima_mask(plane, window.numpy(), nms_size // 2, border, float(threshold), mask)
    y, x = np.nonzero(mask)
    scores = plane[y, x]
    order = np.argsort(-scores, kind="stable")
    xy = torch.from_numpy(np.stack([x[order], y[order]], 1).astype(np.int64))
    return xy, torch.from_numpy(scores[order].copy())


def local_maxima(
    response: torch.Tensor, nms_size: int, border: int, threshold: float
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Strict local maxima of each response map, strongest first.

    A point is kept when it is strictly greater than every other response in its ``nms_size`` window, exceeds
    ``threshold`` and lies outside the ``border`` strip. Strictness matters: a flat region (a saturated sky, a
    black frame) has a constant response, and an ``==`` test would report every pixel of it. The strip is removed
    after the suppression, so a strong response inside it still suppresses a weaker one beside it.

    Args:
        response: (B, 1, H, W) response.
        nms_size: odd window side of the suppression (1 keeps every point above the threshold).
        border: width of the strip along each side where no keypoint is kept.
        threshold: a maximum must exceed it.

    Returns:
        Per image: (N, 2) long xy pixel coordinates and (N,) scores, sorted by score (descending).
    """
    if nms_size < 1 or nms_size % 2 == 0:
        raise OptionError(f"nms_size must be a positive odd number; got {nms_size}")
    r = response[:, 0]
    if r.device.type == "cpu" and r.dtype == torch.float32 and nms_size > 1:
        windows = window_max(response, nms_size)[:, 0]  # OpenCV's dilation
        return [_local_maxima_cpu(plane, window, nms_size, border, threshold) for plane, window in zip(r, windows)]
    candidates = r > threshold
    if nms_size > 1:
        # strictly above the 8 neighbours (dense: a flat region would leave every pixel a candidate), and the
        # window's maximum
        candidates &= (r > ring_max(response)[:, 0]) & (r == window_max(response, nms_size)[:, 0])
    if border > 0:
        h, w = r.shape[-2:]
        candidates[:, :border] = False
        candidates[:, h - border :] = False
        candidates[:, :, :border] = False
        candidates[:, :, w - border :] = False
    b, y, x = candidates.nonzero(as_tuple=True)
    if nms_size > 3 and len(b):  # ties beyond the 8 neighbours, among the few candidates left
        pad = nms_size // 2
        padded = F.pad(r, (pad, pad, pad, pad), value=float("-inf"))
        keep = ~_has_equal_neighbour(padded, b, y, x, pad, pad)
        b, y, x = b[keep], y[keep], x[keep]
    scores = r[b, y, x]
    out = []
    for j in range(r.shape[0]):
        mine = b == j
        s, order = torch.sort(scores[mine], descending=True, stable=True)
        out.append((torch.stack([x[mine], y[mine]], 1)[order], s))
    return out


def subpixel_peaks(response: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Sub-pixel positions of maxima: the vertex of a parabola through each peak and its two neighbours, per axis
    (no shift along an axis where a neighbour lies outside the map).

    Args:
        response: (H, W) map; xy: (N, 2) long integer maxima of it.

    Returns:
        (N, 2) float32 positions, each within half a pixel of its integer maximum.
    """
    h, w = response.shape
    x, y = xy[:, 0], xy[:, 1]
    centre = response[y, x]
    offsets = []
    for lo, hi, inside in (((y, (x - 1).clamp(min=0)), (y, (x + 1).clamp(max=w - 1)), (x > 0) & (x < w - 1)),
                           (((y - 1).clamp(min=0), x), ((y + 1).clamp(max=h - 1), x), (y > 0) & (y < h - 1))):
        before, after = response[lo], response[hi]
        curvature = before + after - 2 * centre
        step = torch.where(inside & (curvature < 0), 0.5 * (before - after) / curvature.clamp(max=-1e-12), 0.0)
        offsets.append(step.clamp(-0.5, 0.5))
    return xy.float() + torch.stack(offsets, 1)


def level_budgets(num_keypoints: int, num_levels: int, up_levels: int, scale_factor: float) -> list[int]:
    """The authors' share of the keypoint budget per level, in proportion to level area (finest level first)."""
    area = scale_factor**2
    weights = [area ** (-(i - up_levels)) for i in range(num_levels)]
    total = sum(weights)
    return [int(num_keypoints * w / total) for w in weights]


def check_count(value: object, name: str) -> int:
    """``value`` as a count: an integer >= 0 (an integral float such as 500.0 is accepted).

    Raises:
        OptionError: anything else, named.
    """
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise OptionError(f"{name} must be a whole number >= 0; got {value!r}")
    return int(value)


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
        "subpixel": False,  # refine each maximum by a parabola through its 3x3 neighbourhood (tracking accuracy)
    }

    def __init__(self, model: KeyNet, **conf: Any) -> None:
        check_options(conf, self.default_conf, "detector")
        self.conf = {**self.default_conf, **conf}
        self.device = resolve_device(self.conf["device"])
        self.conf["device"] = str(self.device)
        for key in ("num_keypoints", "nms_size", "border", "pyramid_levels", "up_levels"):
            check_count(self.conf[key], key)
        if self.conf["nms_size"] < 1:
            raise OptionError(f"nms_size must be at least 1; got {self.conf['nms_size']}")
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
            raise InputError(
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
        return self.detect_with_response(image, num_keypoints)[0]

    def detect_with_response(self, image: np.ndarray | torch.Tensor,
                             num_keypoints: int | None = None) -> tuple[list[Keypoints], torch.Tensor]:
        """``detect``, and the Key.Net response of the image at its own resolution (the pyramid's scale-1 level).

        Returns:
            keypoints: one ``Keypoints`` per image; response: (B, 1, H, W) float32 on the detector's device.
        """
        x = self.prepare(image)
        k = self.conf["num_keypoints"] if num_keypoints is None else check_count(num_keypoints, "num_keypoints")
        if self.conf["multi_scale"]:
            return self._detect_multi_scale(x, k)
        response = self.response(x).float()
        kps = [self._keypoints([(xy[:k], score[:k])], [(1.0, 1.0)], [1.0]) for xy, score in self._maxima(response)]
        return kps, response

    def _maxima(self, response: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        c = self.conf
        found = local_maxima(response, c["nms_size"], c["border"], c["score_threshold"])
        if c["subpixel"]:
            found = [(subpixel_peaks(response[j, 0], xy), score) for j, (xy, score) in enumerate(found)]
        return found

    def _keypoints(
        self, found: list[tuple[torch.Tensor, torch.Tensor]], factors: list[tuple[float, float]], scales: list[float]
    ) -> Keypoints:
        """Merge per-level (xy, score) into one Keypoints in image coordinates, sorted by score."""
        xy = [p.float() * torch.tensor(f, device=p.device) for (p, _), f in zip(found, factors)]
        scale = [torch.full((len(s),), sc, device=s.device) for (_, s), sc in zip(found, scales)]
        score = torch.cat([s for _, s in found])
        order = torch.argsort(score, descending=True, stable=True)
        return Keypoints(torch.cat(xy)[order], torch.cat(scale)[order], score[order], float(self.conf["size_multiplier"]))

    def _detect_multi_scale(self, x: torch.Tensor, k: int) -> tuple[list[Keypoints], torch.Tensor]:
        c = self.conf
        f, ups, downs = float(c["scale_factor"]), int(c["up_levels"]), int(c["pyramid_levels"])
        b, _, h, w = x.shape
        levels: list[tuple[torch.Tensor, float]] = []  # (image of the level, nominal scale), finest first
        for i in range(ups):
            up = f ** (1 + i)
            levels.insert(0, (resize_bilinear(x, (int(h * up), int(w * up)), opencv=True), 1 / up))
        level = x
        for i in range(downs + 1):
            if i > 0:
                level = pyramid_down_opencv(level, f, opencv=True)
            if min(level.shape[-2:]) < self.min_image_side:
                break
            levels.append((level, f**i))
        budgets = level_budgets(k, ups + downs + 1, ups, f)[: len(levels)]
        found: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(b)]
        image_response = x
        for idx, (image, scale) in enumerate(levels):
            response = self.response(image).float()
            if scale == 1:
                image_response = response
            for j, (xy, score) in enumerate(self._maxima(response)):
                wanted = max(0, sum(budgets[: idx + 1]) - sum(len(s) for _, s in found[j]))
                found[j].append((xy[:wanted], score[:wanted]))
        factors = [(w / im.shape[-1], h / im.shape[-2]) for im, _ in levels]
        scales = [s for _, s in levels]
        return [self._keypoints(found[j], factors, scales) for j in range(b)], image_response
