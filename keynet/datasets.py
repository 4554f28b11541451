"""Homography sequences on disk: the HPatches and the Oxford (Mikolajczyk) layouts.

HPatches layout: a folder ``<name>`` with ``1..6`` images (``.ppm``, ``.png``, ...) and ``H_1_2 .. H_1_6``; ``v_*``
folders are viewpoint changes, ``i_*`` illumination changes. Oxford layout: ``img1..img6`` (``.ppm``, ``.pgm``,
``.png``) and ``H1to2p .. H1to6p``; the change is known by the sequence's name (graf, wall, boat, bark: viewpoint
or zoom and rotation; leuven: illumination; bikes, trees: blur; ubc: compression). In both, the homography maps
image 1's pixels into image k. Images may be colour or grey, PPM/PGM with comment lines, or PNG. Every problem
with the data (a missing folder, image or homography, a file that does not parse) raises ``InputError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .image import IMAGE_SUFFIXES, read_image

OXFORD_KINDS = {"graf": "viewpoint", "wall": "viewpoint", "boat": "viewpoint", "bark": "viewpoint",
                "leuven": "illumination", "bikes": "blur", "trees": "blur", "ubc": "compression"}


@dataclass
class Sequence:
    """One reference image and its views: ``images[0]`` is image 1; ``homographies[k]`` maps it to ``images[k+1]``."""

    name: str
    kind: str  # "viewpoint", "illumination", "blur", "compression" or "unknown"
    images: list[Path]
    homographies: list[np.ndarray]

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` (0 = image 1) as OpenCV reads it."""
        return read_image(self.images[index])


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def read_homography(path: Path) -> np.ndarray:
    """A 3x3 homography from a text file of nine numbers; a clear error naming the file otherwise."""
    if not path.is_file():
        raise InputError(f"homography file {path} is missing")
    try:
        values = np.array(path.read_text(encoding="utf-8", errors="replace").split(), dtype=float)
    except ValueError:
        raise InputError(f"{path} is not a homography: expected 9 numbers") from None
    if values.size != 9 or not np.isfinite(values).all():
        raise InputError(f"{path} is not a homography: expected 9 finite numbers, found {values.size}")
    h = values.reshape(3, 3)
    if abs(np.linalg.det(h)) < 1e-12:
        raise InputError(f"{path} holds a singular homography")
    return h / h[2, 2]


def layout_of(folder: Path) -> str | None:
    """``"hpatches"`` (an image ``1.*``), ``"oxford"`` (an image ``img1.*``) or None for a folder that is neither."""
    if _find_image(folder, "1") is not None:
        return "hpatches"
    if _find_image(folder, "img1") is not None:
        return "oxford"
    return None


def read_sequence(folder: Path) -> Sequence:
    """One sequence folder in either layout; a missing image or homography is named in the error."""
    layout = layout_of(folder)
    if layout is None:
        raise InputError(
            f"{folder} is not a sequence in a known layout: expected 1.ppm..6.ppm with H_1_2..H_1_6 (HPatches) "
            "or img1..img6 with H1to2p..H1to6p (Oxford)"
        )
    stems = [str(k) if layout == "hpatches" else f"img{k}" for k in range(1, 7)]
    found = [_find_image(folder, stem) for stem in stems]
    count = next((k for k, image in enumerate(found) if image is None), len(found))
    if count < 2:
        raise InputError(f"{folder} has image {found[0].name} but no image {stems[1]} to compare it with")
    if any(image is not None for image in found[count:]):
        raise InputError(f"{folder} has no image {stems[count]} but has later images")
    images = found[:count]
    homographies = [read_homography(folder / (f"H_1_{k}" if layout == "hpatches" else f"H1to{k}p"))
                    for k in range(2, count + 1)]
    if layout == "hpatches":
        kind = {"v": "viewpoint", "i": "illumination"}.get(folder.name.split("_")[0], "unknown")
    else:
        kind = OXFORD_KINDS.get(folder.name.lower(), "unknown")
    return Sequence(folder.name, kind, images, homographies)


def find_sequences(root: str | Path) -> list[Sequence]:
    """Every sequence in ``root`` (``root`` itself, or its sub-folders, sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist")
    if layout_of(root) is not None:
        return [read_sequence(root)]
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    sequences = [read_sequence(p) for p in folders if layout_of(p) is not None]
    if not sequences:
        raise InputError(
            f"{root} holds no sequence in a known layout (HPatches: <seq>/1.ppm..6.ppm and H_1_2..H_1_6; "
            "Oxford: <seq>/img1..img6 and H1to2p..H1to6p)"
        )
    return sequences
