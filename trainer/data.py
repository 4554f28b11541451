"""Synthetic training pairs from any folder of photographs (the paper's section 5.1).

Pair ``i`` of a set is made from one photograph by a generator seeded with (seed, i), so the same index always
gives the same pair, whatever the worker or process that makes it:

1. the photographs are read in colour; one whose shorter side is under twice the crop is upscaled (bicubic) to
   twice the crop, so that any image, however small, gives crops with real content around them;
2. image a is a ``crop`` x ``crop`` window of a photograph; image b is the same window after a random homography
   about the window's centre: scale in [0.5, 3.5], skew in [-0.8, 0.8], rotation in [-60°, 60°] (configurable),
   sampled from the whole photograph, so b shows real content where a's window does not reach;
3. one image of the pair, at random, gets random contrast, brightness and HSV hue changes;
4. a mask marks the pixels of a whose counterpart lies inside b (and inside the photograph);
5. textureless windows are rejected: the mean absolute response of each linear handcrafted filter (dx, dy, dxx,
   dyy of ``keynet.model.HandcraftedBlock``) on a must reach ``texture_threshold`` (0.003; on ImageNet crops
   these means are 0.015-0.022 at the median and under 0.003 for about 1 crop in 100, on a flat crop with noise
   about 0.001), and the common area must cover ``min_common_fraction`` of the window (5%: a zoom of 3.5
   leaves b seeing 1/3.5² = 8% of a). A rejected draw is drawn again.

The paper trains on a fixed set of 9,000 pairs and validates on 3,000 others; ``generate_pairs`` makes such a
set once (in parallel processes) and keeps it in memory as uint8 tensors (a 192x192 pair takes 111 KB).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from keynet.errors import InputError, check_options
from keynet.image import IMAGE_SUFFIXES
from keynet.model import HandcraftedBlock

LINEAR_FILTERS = (0, 1, 7, 8)  # dx, dy, dxx, dyy among the handcrafted block's ten maps

default_conf: dict[str, Any] = {
    "crop": 192,
    "scale": (0.5, 3.5),
    "skew": (-0.8, 0.8),
    "rotation_deg": (-60.0, 60.0),
    "contrast": (0.7, 1.3),
    "brightness": (-0.15, 0.15),
    "hue_deg": (-20.0, 20.0),
    "texture_threshold": 0.003,
    "min_common_fraction": 0.05,
    "max_tries": 50,
}


def find_images(folders: list[str | Path]) -> list[Path]:
    """Every photograph under the folders (recursive, by suffix, any case), sorted.

    Raises:
        InputError: a folder that does not exist (or is not a folder), or no photographs in any.
    """
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise InputError(f"image folder (--images) {folder} {what}")
        found += [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise InputError(f"no photographs ({', '.join(sorted(IMAGE_SUFFIXES))}) found in "
                         f"{', '.join(map(str, folders))}")
    return sorted(found)


def load_photographs(paths: list[Path], crop: int) -> list[np.ndarray]:
    """Read the photographs as BGR uint8, upscaling those whose shorter side is under 2 x crop to 2 x crop.

    Unreadable or corrupt files are skipped with one warning giving their count; none readable is an error.
    """
    images, skipped = [], []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            skipped.append(path.name)
            continue
        short = min(image.shape[:2])
        if short < 2 * crop:
            f = 2 * crop / short
            size = (max(2 * crop, round(image.shape[1] * f)), max(2 * crop, round(image.shape[0] * f)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        images.append(image)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) of {len(paths)}: {', '.join(skipped[:5])}"
                      f"{' ...' if len(skipped) > 5 else ''}", stacklevel=2)
    if not images:
        raise InputError(f"none of the {len(paths)} image files could be read")
    return images


def random_homography(rng: np.random.Generator, conf: dict[str, Any], centre: float) -> np.ndarray:
    """A homography about (centre, centre): rotation, skew and scale drawn from the configured ranges."""
    angle = math.radians(rng.uniform(*conf["rotation_deg"]))
    scale = rng.uniform(*conf["scale"])
    skew = rng.uniform(*conf["skew"])
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    shear = np.array([[1, skew, 0], [0, 1, 0], [0, 0, 1]])
    zoom = np.diag([scale, scale, 1.0])
    to_centre = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1]])
    return np.linalg.inv(to_centre) @ rotation @ shear @ zoom @ to_centre


def photometric(image: np.ndarray, rng: np.random.Generator, conf: dict[str, Any]) -> np.ndarray:
    """Random hue (HSV), contrast and brightness change of a BGR uint8 image."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + round(rng.uniform(*conf["hue_deg"]) / 2)) % 180).astype(np.uint8)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32) / 255
    out = (out - 0.5) * rng.uniform(*conf["contrast"]) + 0.5 + rng.uniform(*conf["brightness"])
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


class PairDataset(Dataset):
    """``length`` seeded pairs from the photographs; item i is (image_a, image_b, h_ab, mask_a).

    Shapes: image_a, image_b (1, crop, crop) uint8 grey; h_ab (3, 3) float32 mapping a's pixels to b's;
    mask_a (1, crop, crop) uint8, 1 where b sees a.
    """

    def __init__(self, photographs: list[np.ndarray], length: int, seed: int, **conf: Any) -> None:
        check_options(conf, default_conf, "pair")
        self.conf = {**default_conf, **conf}
        if any(min(p.shape[:2]) < self.conf["crop"] for p in photographs):
            raise InputError(f"every photograph must be at least {self.conf['crop']} px a side (load_photographs "
                             "upscales smaller ones)")
        self.photographs, self.length, self.seed = photographs, length, seed
        self.handcrafted = HandcraftedBlock()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"pair {index} of a set of {self.length}")
        rng = np.random.default_rng([self.seed, index])
        for _ in range(self.conf["max_tries"] - 1):
            pair = self._draw(rng)
            if pair is not None:
                return pair
        return self._draw(rng, accept_any=True)

    def _textured(self, grey: np.ndarray) -> bool:
        with torch.no_grad():
            maps = self.handcrafted(torch.from_numpy(grey.astype(np.float32) / 255)[None, None])
        return bool(maps[0, list(LINEAR_FILTERS)].abs().mean((1, 2)).min() >= self.conf["texture_threshold"])

    def _draw(self, rng: np.random.Generator, accept_any: bool = False):
        c = self.conf
        crop = c["crop"]
        photo = self.photographs[rng.integers(len(self.photographs))]
        h, w = photo.shape[:2]
        x0, y0 = rng.integers(0, w - crop + 1), rng.integers(0, h - crop + 1)
        h_ab = random_homography(rng, c, (crop - 1) / 2)
        photo_to_b = h_ab @ np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
        a = photo[y0 : y0 + crop, x0 : x0 + crop]
        b = cv2.warpPerspective(photo, photo_to_b, (crop, crop), flags=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            a = photometric(a, rng, c)
        else:
            b = photometric(b, rng, c)
        # a's pixels seen in b: b's pixels that come from inside the photograph, mapped back into a.
        from_photo = cv2.warpPerspective(np.ones((h, w), np.uint8), photo_to_b, (crop, crop), flags=cv2.INTER_NEAREST)
        from_photo = cv2.erode(from_photo, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        mask = cv2.warpPerspective(from_photo, np.linalg.inv(h_ab), (crop, crop), flags=cv2.INTER_NEAREST)
        ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
        if not accept_any and (mask.mean() < c["min_common_fraction"] or not self._textured(ga)):
            return None
        return (torch.from_numpy(ga)[None], torch.from_numpy(gb)[None], torch.from_numpy(h_ab.astype(np.float32)),
                torch.from_numpy(mask)[None])


@dataclass
class Pairs:
    """A set of pairs held as tensors: a, b (N, 1, S, S) uint8; h_ab (N, 3, 3) float32; mask (N, 1, S, S) uint8."""

    a: torch.Tensor
    b: torch.Tensor
    h_ab: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.a)

    def to(self, device: torch.device | str) -> Pairs:
        return Pairs(self.a.to(device), self.b.to(device), self.h_ab.to(device), self.mask.to(device))

    def batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pairs ``index`` as float: images in [0, 1] (B, 1, S, S), h_ab (B, 3, 3), mask (B, 1, S, S)."""
        return (self.a[index].float() / 255, self.b[index].float() / 255, self.h_ab[index],
                self.mask[index].float())


def generate_pairs(dataset: PairDataset, workers: int = 0, desc: str = "pairs") -> Pairs:
    """Make every pair of ``dataset`` once, ``workers`` processes in parallel, with a progress bar."""
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, persistent_workers=False)
    parts = [list(batch) for batch in tqdm(loader, desc=f"generating {len(dataset)} {desc}", unit="batch",
                                            leave=False)]
    return Pairs(*(torch.cat([p[i] for p in parts]) for i in range(4)))
