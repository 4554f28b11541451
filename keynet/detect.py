"""From Key.Net responses to keypoints: non-maxima suppression, borders, threshold, top-K, single and multi-scale.

Single-scale (TI) detection runs the response once on the image. Multi-scale (SI) detection runs it on an image
pyramid as the authors' extraction does: ``up_levels`` levels upsampled by ``scale_factor`` and the image with
``pyramid_levels`` levels below it, each blurred and downsampled by ``scale_factor`` (sqrt 2). The keypoint budget
is shared out over the levels in proportion to their area, and a level that finds fewer maxima than its share
hands the rest to the next one. A keypoint found on a level keeps that level's integer pixel, mapped back to the
image by the level's size ratio, and the level's nominal scale (1 at the image, sqrt 2 one level down, ...).

NMS and sub-pixel refinement are in ``keynet.maxima``.

Example:
    >>> detector = KeyNetDetector(model, num_keypoints=1000)
    >>> kps = detector.detect(cv2.imread("image.png"))[0]
    >>> kps.xy.shape, kps.scale.shape, kps.score.shape  # (N, 2), (N,), (N,)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from .devices import resolve_device
from .errors import InputError, OptionError, check_options
from .image import to_grey_tensor
from .inference import pyramid_down_opencv, resize_bilinear, response_function
from .maxima import local_maxima, subpixel_peaks
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


def top_up(found: list[tuple[torch.Tensor, torch.Tensor]], spare: list[tuple[torch.Tensor, torch.Tensor]],
           k: int) -> None:
    """Fill ``found`` (per level: xy, score) up to ``k`` points with the best-scoring ``spare`` maxima of any
    level, in place: the per-level budgets round down, and a level may hold fewer maxima than its share."""
    missing = k - sum(len(s) for _, s in found)
    scores = torch.cat([s for _, s in spare]) if spare else torch.zeros(0)
    if missing <= 0 or len(scores) == 0:
        return
    level = torch.cat([torch.full((len(s),), i, device=s.device) for i, (_, s) in enumerate(spare)])
    best = torch.argsort(scores, descending=True, stable=True)[:missing]
    offsets = [0]
    for _, s in spare:
        offsets.append(offsets[-1] + len(s))
    for i, (xy, score) in enumerate(spare):
        rows = best[level[best] == i] - offsets[i]
        if len(rows):
            found[i] = (torch.cat([found[i][0], xy[rows]]), torch.cat([found[i][1], score[rows]]))


Box = tuple[int, int, int, int]
#: Pixels around a region that region detection computes the response on: Key.Net's receptive field (the 5x5
#: derivatives, three 5x5 learned blocks and the 5x5 last convolution, on levels down to 1/1.44) and the NMS window.
REGION_MARGIN = 24
#: Region boxes start on multiples of this, so that the pyramid levels of a region (1/1.2, 1/1.44) sample the
#: image on the full image's grid.
REGION_GRID = 36


def merged_boxes(regions: Sequence[Box], size: tuple[int, int], margin: int, min_side: int) -> list[Box]:
    """``regions`` grown by ``margin``, their origin snapped down to ``REGION_GRID``, clipped to the ``size`` =
    (w, h) image, at least ``min_side`` a side, and merged until no two overlap."""
    w, h = size
    boxes = []
    for x0, y0, x1, y1 in regions:
        gx0 = max(0, int(x0) - margin) // REGION_GRID * REGION_GRID
        gy0 = max(0, int(y0) - margin) // REGION_GRID * REGION_GRID
        gx1, gy1 = min(w, math.ceil(x1) + margin), min(h, math.ceil(y1) + margin)
        gx1, gy1 = min(w, max(gx1, gx0 + min_side)), min(h, max(gy1, gy0 + min_side))
        gx0, gy0 = max(0, min(gx0, gx1 - min_side)), max(0, min(gy0, gy1 - min_side))
        if gx1 > gx0 and gy1 > gy0:
            boxes.append((gx0, gy0, gx1, gy1))
    i = 0
    while i < len(boxes):
        a = boxes[i]
        other = next((j for j in range(len(boxes)) if j != i and a[0] < boxes[j][2] and boxes[j][0] < a[2]
                      and a[1] < boxes[j][3] and boxes[j][1] < a[3]), None)
        if other is None:
            i += 1
            continue
        b = boxes.pop(other)
        boxes[i if other > i else i - 1] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        i = 0
    return boxes


def inside_any(xy: torch.Tensor, regions: Sequence[Box], inner: Box) -> torch.Tensor:
    """(N,) whether each of ``xy`` (N, 2) lies in one of ``regions`` and inside the ``inner`` box of the image."""
    x, y = xy[:, 0], xy[:, 1]
    keep = torch.zeros(len(xy), dtype=torch.bool, device=xy.device)
    for x0, y0, x1, y1 in regions:
        keep |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return keep & (x >= inner[0]) & (x < inner[2]) & (y >= inner[1]) & (y < inner[3])


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

    def detect_in_regions(self, image: np.ndarray | torch.Tensor, regions: Sequence[Box],
                          num_keypoints: int | None = None) -> Keypoints:
        """Single-scale detection of one image inside ``regions`` only: the response is computed on each region
        grown by ``REGION_MARGIN`` pixels (what Key.Net's receptive field needs to see), so inside a region it is
        the full image's response up to the pyramid levels' resampling; maxima outside the regions, or in the
        ``border`` strip of the image, are dropped.

        Args:
            image: one image (see ``keynet.image.to_grey_tensor``).
            regions: (x0, y0, x1, y1) pixel boxes; clipped to the image, overlapping ones computed once.
            num_keypoints: overrides ``conf["num_keypoints"]``: the best of all regions together.

        Returns:
            ``Keypoints`` in image coordinates, sorted by score.
        """
        if self.conf["multi_scale"]:
            raise OptionError("detect_in_regions is single-scale: make the detector with multi_scale=False")
        x = self.prepare(image)
        if x.shape[0] != 1:
            raise InputError(f"detect_in_regions takes one image; got a batch of {x.shape[0]}")
        k = self.conf["num_keypoints"] if num_keypoints is None else check_count(num_keypoints, "num_keypoints")
        h, w = x.shape[-2:]
        b = self.conf["border"]
        xys, scores = [], []
        for gx0, gy0, gx1, gy1 in merged_boxes(regions, (w, h), REGION_MARGIN, self.min_image_side):
            response = self.response(x[..., gy0:gy1, gx0:gx1]).float()
            xy, score = self._maxima(response, border=0)[0]
            xy = xy.float() + torch.tensor([gx0, gy0], dtype=torch.float32, device=xy.device)
            keep = inside_any(xy, regions, (b, b, w - b, h - b))
            xys.append(xy[keep])
            scores.append(score[keep])
        if not xys:
            return empty_keypoints(self.device, float(self.conf["size_multiplier"]))
        xy, score = torch.cat(xys), torch.cat(scores)
        order = torch.argsort(score, descending=True, stable=True)[:k]
        return Keypoints(xy[order], torch.ones(len(order), device=xy.device), score[order],
                         float(self.conf["size_multiplier"]))

    def _maxima(self, response: torch.Tensor, border: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        c = self.conf
        found = local_maxima(response, c["nms_size"], c["border"] if border is None else border, c["score_threshold"])
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
        spare: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(b)]
        image_response = x
        for idx, (image, scale) in enumerate(levels):
            response = self.response(image).float()
            if scale == 1:
                image_response = response
            for j, (xy, score) in enumerate(self._maxima(response)):
                wanted = max(0, sum(budgets[: idx + 1]) - sum(len(s) for _, s in found[j]))
                found[j].append((xy[:wanted], score[:wanted]))
                spare[j].append((xy[wanted:], score[wanted:]))
        for j in range(b):
            top_up(found[j], spare[j], k)
        factors = [(w / im.shape[-1], h / im.shape[-2]) for im, _ in levels]
        scales = [s for _, s in levels]
        return [self._keypoints(found[j], factors, scales) for j in range(b)], image_response
