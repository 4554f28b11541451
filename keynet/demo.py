"""The bundled demo: a procedurally generated target and a rendered hand-held sequence with ground truth.

Nothing is downloaded or copied: ``make_target`` draws a textured poster from a seed, ``render_sequence`` moves
it along a smooth camera path (perspective tilt, rotation, zoom) with motion blur, sensor noise, lighting changes
and a passing occluder, and writes the frames (uncompressed BMP: read 12x faster than PNG, as a camera's frames
arrive decoded) with their ground-truth homographies (target -> frame, JSON).
``demo_sequence()`` renders the default sequence once into a cache folder and reuses it (offline, deterministic).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .files import atomic_path, atomic_write_json
from .progress import Progress, report

FRAME_SIZE = (640, 480)
NUM_FRAMES = 150
VERSION = 3  # 3: frames in BMP
FRAME_SUFFIX = ".bmp"  # lossless; 0.7 ms to read at 640x480 against 9 ms for PNG, which the app spent 0.3 cores on


def cache_dir() -> Path:
    """Where rendered demo sequences live: ``$KEYNET_CACHE`` or ``~/.cache/keynet-live``."""
    return Path(os.environ.get("KEYNET_CACHE", Path.home() / ".cache" / "keynet-live"))


def _noise_texture(rng: np.random.Generator, size: tuple[int, int], octaves: int = 5) -> np.ndarray:
    """(H, W, 3) float32 in 0..1: coloured multi-octave value noise."""
    w, h = size
    out = np.zeros((h, w, 3), np.float32)
    for o in range(octaves):
        cells = 4 * 2 ** o
        grid = rng.random((cells * h // w + 2, cells + 2, 3)).astype(np.float32)
        out += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) / 2 ** o
    out -= out.min()
    return out / max(out.max(), 1e-6)


def make_target(size: tuple[int, int] = (400, 300), seed: int = 7) -> np.ndarray:
    """A textured poster, (H, W, 3) uint8 BGR: noise, shapes, lines and text, different everywhere."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = (_noise_texture(rng, size) * 120 + 60).astype(np.uint8)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.circle(img, (cx, cy), int(rng.integers(4, 30)), colour, int(rng.choice([-1, 2])), cv2.LINE_AA)
        elif kind == 1:
            dx, dy = (int(v) for v in rng.integers(6, 50, 2))
            cv2.rectangle(img, (cx, cy), (cx + dx, cy + dy), colour, int(rng.choice([-1, 2])))
        else:
            pts = rng.integers(0, [w, h], (3, 2)).astype(np.int32)
            cv2.polylines(img, [pts], True, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    for i, word in enumerate(["KEYNET", "LIVE", "planar", "AR 2019", "tracking"]):
        org = (int(rng.integers(5, w - 150)), int(30 + i * (h - 40) / 5))
        cv2.putText(img, word, org, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.7, 1.3)), (20, 20, 20), 2,
                    cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (30, 30, 30), 3)
    return img


def camera_path(t: float, target_size: tuple[int, int], frame_size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """3x3 homography target -> frame at time ``t`` in [0, 1]: a smooth hand-held sweep (zoom, roll, tilt)."""
    w, h = target_size
    fw, fh = frame_size
    a = 2 * np.pi * t
    scale = 1.0 + 0.25 * np.sin(a)                       # zoom in and out
    roll = np.radians(18) * np.sin(2 * a + 0.3)          # rotation in the image plane
    tilt_x, tilt_y = 0.00045 * np.sin(a + 1.0), 0.00035 * np.cos(3 * a)  # perspective
    cx, cy = fw / 2 + 50 * np.sin(3 * a), fh / 2 + 35 * np.sin(2 * a + 0.5)
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [tilt_x, tilt_y, 1]])
    c, s = np.cos(roll), np.sin(roll)
    rot = np.array([[scale * c, -scale * s, 0], [scale * s, scale * c, 0], [0, 0, 1]])
    move = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
    hm = move @ rot @ persp @ centre
    return hm / hm[2, 2]


@dataclass
class DemoSequence:
    """A rendered sequence: ``frames`` folder, ``target`` image path, ``homographies`` (N, 3, 3) target -> frame."""

    folder: Path
    frames: Path
    target: Path
    homographies: np.ndarray


def render_sequence(folder: str | Path, target: np.ndarray, num_frames: int = NUM_FRAMES, seed: int = 0,
                    frame_size: tuple[int, int] = FRAME_SIZE, blur_samples: int = 4,
                    progress: Progress | None = None) -> DemoSequence:
    """Render ``target`` along ``camera_path`` into ``folder`` (frames/NNNN.bmp, target.png, homographies.json);
    ``progress(done, num_frames)`` after each frame.

    Each frame averages ``blur_samples`` warps over half a frame interval centred on the frame's time, the time
    of its ground truth (motion blur), over a low-contrast
    background, with a slow lighting change (gain and a gradient), Gaussian noise (sigma 3) and a grey occluder
    that crosses part of the target in frames 60-90.
    """
    folder = Path(folder)
    frames = folder / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fw, fh = frame_size
    size = (target.shape[1], target.shape[0])
    background = (_noise_texture(rng, frame_size, 3) * 60 + 90).astype(np.float32)
    ramp = np.linspace(-1, 1, fw, dtype=np.float32)[None, :, None]
    homographies = []
    for i in range(num_frames):
        acc = np.zeros((fh, fw, 3), np.float32)
        for k in range(blur_samples):
            offset = 0.5 * (k / (blur_samples - 1) - 0.5) if blur_samples > 1 else 0.0
            hk = camera_path((i + offset) / num_frames, size, frame_size)
            warped = cv2.warpPerspective(target, hk, frame_size, flags=cv2.INTER_LINEAR).astype(np.float32)
            mask = cv2.warpPerspective(np.ones(target.shape[:2], np.float32), hk, frame_size)[..., None]
            acc += warped * mask + background * (1 - mask)
        hm = camera_path(i / num_frames, size, frame_size)
        homographies.append(hm)
        image = acc / blur_samples
        gain = 1.0 + 0.25 * np.sin(2 * np.pi * i / num_frames * 1.5)
        image = image * gain * (1 + 0.15 * np.sin(2 * np.pi * i / num_frames) * ramp)
        if 60 <= i < 90:
            x = int(fw * (i - 60) / 30 * 0.6)
            cv2.rectangle(image, (x, int(fh * 0.55)), (x + 110, fh), (70, 80, 95), -1)
        image += rng.normal(0, 3, image.shape).astype(np.float32)
        with atomic_path(frames / f"{i:04d}{FRAME_SUFFIX}") as tmp:
            cv2.imwrite(str(tmp), np.clip(image, 0, 255).astype(np.uint8))
        report(progress, i + 1, num_frames)
    with atomic_path(folder / "target.png") as tmp:
        cv2.imwrite(str(tmp), target)
    atomic_write_json({"target_size": list(size), "frame_size": list(frame_size),
                                                     "homographies": [hm.tolist() for hm in homographies]},
                      folder / "homographies.json")
    return DemoSequence(folder, frames, folder / "target.png", np.array(homographies))


def load_sequence(folder: str | Path) -> DemoSequence:
    """A sequence written by ``render_sequence``."""
    folder = Path(folder)
    data = json.loads((folder / "homographies.json").read_text())
    return DemoSequence(folder, folder / "frames", folder / "target.png", np.array(data["homographies"]))


def demo_sequence(folder: str | Path | None = None, progress: Progress | None = None) -> DemoSequence:
    """The bundled demo, rendered into ``folder`` (default: the cache) on first use, with ``progress(done, total)``
    over its frames then (nothing is reported when it is cached)."""
    default = folder is None
    folder = cache_dir() / f"demo-v{VERSION}" if default else Path(folder)
    if not (folder / "homographies.json").is_file():
        render_sequence(folder, make_target(), progress=progress)
        if default:  # the renders of earlier versions are not read again
            for old in cache_dir().glob("demo-v*"):
                if old.name != folder.name and old.name.removeprefix("demo-v").isdigit():
                    shutil.rmtree(old, ignore_errors=True)
    return load_sequence(folder)

