"""Turning what users hand us (arrays from OpenCV, tensors, files) into Key.Net's input.

Key.Net reads one grey channel in [0, 1] as a float tensor of shape (B, 1, H, W). ``to_grey_tensor`` converts:

- NumPy arrays (H, W), (H, W, 1), (H, W, 3) (BGR, as OpenCV reads) and (H, W, 4) (BGRA; alpha is dropped);
- uint8 (divided by 255), uint16 (divided by 65535), bool, and float arrays, which must already lie in [0, 1];
- torch tensors (H, W), (C, H, W) and (B, C, H, W) with C in {1, 3, 4} (RGB order for tensors, as torch and kornia
  use), with the same dtype rules.

Empty images, images with NaN or infinite pixels, and floats outside [0, 1] are refused with an ``InputError``
(a ``ValueError``) that says what was wrong; the model itself refuses images under ``MIN_IMAGE_SIDE`` pixels per side.
``IMAGE_SUFFIXES`` and ``VIDEO_SUFFIXES`` are the file suffixes every part of the project reads as images and videos.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import InputError

#: The suffixes (lower case) of the image files the project reads: frame folders, datasets, training photographs.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
#: The suffixes (lower case) of the video files overlays and sources are read from.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: The video formats the project writes (the CLI's ``--out``, the app's recordings), by suffix: the codec (FourCC)
#: OpenCV encodes them with.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}

# ITU-R BT.601 luma weights, the ones OpenCV's cvtColor uses.
_LUMA_RGB = (0.299, 0.587, 0.114)


#: The largest image ``read_image`` decodes (pixels): Key.Net's working memory grows with the image, and a photo
#: larger than this would need many gigabytes. Downscale larger images first.
MAX_IMAGE_PIXELS = 4096 * 4096


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it, or None when the header is not one Pillow reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def truncation(path: Path) -> str:
    """Why a JPEG or PNG file is cut short ("" when it ends as its format requires, or is another format)."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read()
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        return "the JPEG data ends before its end-of-image marker (the file is truncated)"
    if head.startswith(b"\x89PNG") and b"IEND" not in tail[-64:]:
        return "the PNG data ends before its IEND chunk (the file is truncated)"
    return ""


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file (PNG, JPEG, PPM/PGM with comments, ...) as OpenCV does, unchanged depth and channels.

    The size is checked from the header before decoding, and JPEG and PNG files must be complete.

    Raises:
        InputError: the file does not exist, is a folder, is larger than ``max_pixels``, is truncated, or is not
            an image OpenCV can decode (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {path} " + ("is a folder, not a file" if path.is_dir() else "does not exist"))
    size = image_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(f"image {path} is {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} megapixels); the "
                         f"largest image keynet reads is {max_pixels / 1e6:.1f} megapixels: downscale it first")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cut = truncation(path)
    if image is None or image.size == 0:
        raise InputError(f"{path} is not a readable image (OpenCV could not decode it{'; ' + cut if cut else ''})")
    if cut:
        raise InputError(f"image {path} is not complete: {cut}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise InputError(f"image {path} is {image.shape[1]}x{image.shape[0]}; the largest image keynet reads is "
                         f"{max_pixels / 1e6:.1f} megapixels: downscale it first")
    return image


def as_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR from a grey (H, W) or (H, W, 1), BGR or BGRA image; other dtypes are stretched to
    0..255. A uint8 BGR image is returned as it is (not copied)."""
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def bgr_canvas(image: np.ndarray) -> np.ndarray:
    """A new (H, W, 3) uint8 BGR copy of ``image`` (as ``as_bgr``) to draw on, leaving ``image`` untouched."""
    canvas = as_bgr(image)
    return canvas.copy() if canvas is image else canvas


def _scale_to_unit(values: torch.Tensor) -> torch.Tensor:
    """Map an integer, bool or float tensor to float32 in [0, 1], refusing non-finite or out-of-range floats."""
    if values.dtype == torch.bool:
        return values.float()
    if values.dtype == torch.uint8:
        return values.float() / 255.0
    if values.dtype == torch.uint16:
        return values.to(torch.int32).float() / 65535.0
    if not values.is_floating_point():
        raise TypeError(f"image dtype {values.dtype} is not supported; expected uint8, uint16, bool or float in [0, 1]")
    values = values.float()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"image has {bad} NaN or infinite pixel(s); Key.Net needs finite values in [0, 1]")
    lo, hi = float(values.min()), float(values.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"float image values span [{lo:g}, {hi:g}]; expected [0, 1] (divide 8-bit data by 255)"
        )
    return values


def _grey_from_channels(x: torch.Tensor, channel_order: str) -> torch.Tensor:
    """(B, C, H, W) with C in {1, 3, 4} -> (B, 1, H, W) luma."""
    c = x.shape[1]
    if c == 1:
        return x
    if c not in (3, 4):
        raise InputError(f"image has {c} channels; expected 1 (grey), 3 (colour) or 4 (colour and alpha)")
    weights = _LUMA_RGB if channel_order == "rgb" else _LUMA_RGB[::-1]
    w = torch.tensor(weights, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x[:, :3] * w).sum(1, keepdim=True)


def to_grey_tensor(image: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """Convert an image or a batch to a float32 grey tensor in [0, 1].

    Args:
        image: NumPy (H, W), (H, W, C) with C in {1, 3 (BGR), 4 (BGRA)}; or torch (H, W), (C, H, W),
            (B, C, H, W) with C in {1, 3 (RGB), 4 (RGBA)}.
        device: where the result lives; the input's device when None.

    Returns:
        (B, 1, H, W) float32 tensor in [0, 1] (B = 1 for a single image).
    """
    if isinstance(image, np.ndarray):
        if image.size == 0:
            raise InputError(f"image is empty (shape {image.shape}); expected a non-empty (H, W) or (H, W, C) array")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise InputError(f"image array has shape {image.shape}; expected (H, W) or (H, W, C)")
        if image.shape[2] not in (1, 3, 4):
            raise InputError(f"image has {image.shape[2]} channels; expected 1 (grey), 3 (BGR) or 4 (BGRA)")
        unit = _scale_to_unit(torch.from_numpy(np.ascontiguousarray(image))).numpy()
        if unit.shape[2] == 1:
            grey = unit[:, :, 0]
        else:  # OpenCV's own BGR(A) -> grey, the same luma weights, several times faster than a weighted sum
            grey = cv2.cvtColor(unit, cv2.COLOR_BGR2GRAY if unit.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        x = torch.from_numpy(np.ascontiguousarray(grey))[None, None]
    elif isinstance(image, torch.Tensor):
        if image.numel() == 0:
            raise InputError(f"image tensor is empty (shape {tuple(image.shape)})")
        x = image
        if x.dim() == 3 and x.shape[-1] in (1, 3, 4) and x.shape[0] not in (1, 3, 4):
            raise InputError(f"image tensor has shape {tuple(image.shape)}, channels last; torch images are "
                             "(C, H, W): pass image.permute(2, 0, 1)")
        if x.dim() == 2:
            x = x[None, None]
        elif x.dim() == 3:
            x = x[None]
        if x.dim() != 4:
            raise InputError(f"image tensor has shape {tuple(image.shape)}; expected (H, W), (C, H, W) or (B, C, H, W)")
        x = _grey_from_channels(_scale_to_unit(x), "rgb")
    else:
        raise TypeError(f"image must be a NumPy array or a torch.Tensor; got {type(image).__name__}")
    if device is not None:
        x = x.to(device)
    return x.contiguous()
