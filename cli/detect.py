"""``python main.py detect IMAGE``: Key.Net keypoints of one image, printed as JSON and/or drawn to an image."""

from __future__ import annotations

import argparse
import json

import cv2

from keynet.config import DetectorConfig
from keynet.detect import KeyNetDetector, Keypoints
from keynet.errors import InputError, OutputError
from keynet.files import atomic_path, check_output_path
from keynet.image import bgr_canvas, read_image
from keynet.inference import MODES
from keynet.render import draw_keypoints
from keynet.weights import load_model, resolve_weights

from .errors import reporting_errors
from .options import add_architecture_option, add_device_option, add_weights_option, count


def keypoints_json(kps: Keypoints, image_path: str) -> dict:
    """A JSON-ready dict: the image, the count and each keypoint's x, y, scale and score."""
    return {
        "image": image_path,
        "count": len(kps),
        "keypoints": [dict(x=float(x), y=float(y), scale=float(s), score=float(r)) for x, y, s, r in kps.numpy()],
    }


@reporting_errors
def run_detect(args: argparse.Namespace) -> int:
    if args.out:
        check_output_path(args.out, "--out")
        if not cv2.haveImageWriter(args.out):
            raise InputError(f"--out {args.out}: OpenCV writes no image format with that extension (use .png or .jpg)")
    image = read_image(args.image)
    model = load_model(resolve_weights(args.weights, args.architecture), args.architecture)
    detector = KeyNetDetector(model, num_keypoints=args.num, mode=args.mode, multi_scale=not args.single_scale,
                              device=args.device)
    kps = detector.detect(image)[0]
    if args.json:
        print(json.dumps(keypoints_json(kps, args.image)))
    if args.out:
        canvas = bgr_canvas(image)
        draw_keypoints(canvas, kps.numpy(), by="rank")
        with atomic_path(args.out) as tmp:
            try:
                written = cv2.imwrite(str(tmp), canvas)
            except cv2.error:
                written = False
            if not written:
                raise OutputError(f"cannot write {args.out}: OpenCV could not write the image (a full disk, or a "
                                  "file size limit); the previous file is kept")
    if not args.json:
        print(f"{len(kps)} keypoints" + (f", drawn to {args.out}" if args.out else ""))
    return 0


def add_detect_command(commands: argparse._SubParsersAction) -> None:
    """The ``detect`` command: the full-quality detector (``KeyNetDetector``'s defaults: a pyramid, 1000 points),
    in the real-time inference mode."""
    detector = KeyNetDetector.default_conf
    mode = DetectorConfig().mode
    p = commands.add_parser("detect", help="detect Key.Net keypoints in an image")
    p.add_argument("image", help="image file (PNG, JPEG, PPM, PGM, ...)")
    p.add_argument("--out", help="write the image with its keypoints drawn (PNG, JPEG)")
    add_weights_option(p)
    add_architecture_option(p)
    p.add_argument("--num", type=count, default=detector["num_keypoints"],
                   help=f"number of keypoints (default {detector['num_keypoints']})")
    p.add_argument("--json", action="store_true", help="print the keypoints as JSON on stdout")
    p.add_argument("--mode", default=mode, choices=MODES, help=f"inference mode (default {mode})")
    p.add_argument("--single-scale", action="store_true", help="detect on the image only (TI), not a pyramid (SI)")
    add_device_option(p)
    p.set_defaults(run=run_detect)
