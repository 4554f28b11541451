"""Headless command-line tools (``python main.py detect ...``); each reports bad input in one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .detect import KeyNetDetector, Keypoints
from .files import atomic_path
from .image import read_image
from .weights import WeightsError, default_weights, load_model


def resolve_weights(path: str | None, architecture: str = "keynet") -> Path:
    """The weights file to use: ``path`` if given, else the shipped one; a clear error when neither exists."""
    if path is not None:
        return Path(path)
    shipped = default_weights(architecture)
    if shipped is None:
        raise FileNotFoundError(
            f"no --weights given and no shipped weights (assets/weights/{architecture}.pt) in this checkout; "
            "pass --weights FILE, for example the authors' keynet_pytorch.pth"
        )
    return shipped


def draw_keypoints(image: np.ndarray, kps: Keypoints) -> np.ndarray:
    """A BGR copy of ``image`` with each keypoint drawn as a circle of its region size, brightest = best."""
    canvas = image.copy()
    if canvas.dtype != np.uint8:
        canvas = cv2.normalize(canvas, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if canvas.ndim == 2 or canvas.shape[2] == 1:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    elif canvas.shape[2] == 4:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGRA2BGR)
    arr = kps.numpy()
    if len(arr):
        rank = np.linspace(1.0, 0.0, len(arr))
        colours = cv2.applyColorMap((rank * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]
        for (x, y, s, _), c in zip(arr[::-1], colours[::-1]):
            cv2.circle(canvas, (int(round(x)), int(round(y))), max(2, int(round(kps.size_multiplier * s / 2))),
                       tuple(int(v) for v in c), 1, cv2.LINE_AA)
    return canvas


def keypoints_json(kps: Keypoints, image_path: str) -> dict:
    """A JSON-ready dict of keypoints: x, y, scale, score for each."""
    return {
        "image": image_path,
        "count": len(kps),
        "keypoints": [dict(x=float(x), y=float(y), scale=float(s), score=float(r)) for x, y, s, r in kps.numpy()],
    }


def run_detect(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    model = load_model(resolve_weights(args.weights, args.architecture), args.architecture)
    detector = KeyNetDetector(model, num_keypoints=args.num, mode=args.mode, multi_scale=not args.single_scale,
                              device=args.device)
    kps = detector.detect(image)[0]
    if args.json:
        print(json.dumps(keypoints_json(kps, args.image)))
    if args.out:
        with atomic_path(args.out) as tmp:
            if not cv2.imwrite(str(tmp), draw_keypoints(image, kps)):
                raise ValueError(f"cannot write {args.out}: OpenCV does not know the image format of its extension")
    if not args.json:
        print(f"{len(kps)} keypoints" + (f", drawn to {args.out}" if args.out else ""))
    return 0


def reporting_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures (bad files, bad input) into one line on stderr and exit code 2."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (FileNotFoundError, WeightsError, ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapped


def add_detect_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("detect", help="detect Key.Net keypoints in an image")
    p.add_argument("image", help="image file (PNG, JPEG, PPM, PGM, ...)")
    p.add_argument("--out", help="write the image with its keypoints drawn (PNG, JPEG)")
    p.add_argument("--weights", help="weights file (ours or the authors' keynet_pytorch.pth); default: shipped")
    p.add_argument("--architecture", default="keynet", choices=["keynet", "tiny_keynet"])
    p.add_argument("--num", type=int, default=1000, help="number of keypoints (default 1000)")
    p.add_argument("--json", action="store_true", help="print the keypoints as JSON on stdout")
    p.add_argument("--mode", default="fast", choices=["exact", "fast"], help="inference mode (default fast)")
    p.add_argument("--single-scale", action="store_true", help="detect on the image only (TI), not a pyramid (SI)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(run=reporting_errors(run_detect))

