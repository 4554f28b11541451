"""Planar tracking benchmark: our Key.Net pipeline against the same tracker built on ORB and on SIFT features.

Sequences (all at 640x480):
- ``demo``: the bundled rendered sequence (keynet.demo), ground truth homographies;
- ``photo-*``: the same renderer applied to ``../shared/data/eval_sequences/*/1.png`` (centre crop 400x300), each of
  the 11 distinct photos once;
- ``visp_postcard_a``, ``visp_postcard_b`` (first ``--real-frames`` frames) and ``freiburg``: real clips without
  ground truth; the target is a rectangle of the first frame, as a user would drag it: the postcard's bounding box
  (``CLIP_ROIS``, picked by eye) in the postcard clips, the centre 50% x 50% in freiburg (a desk, not a plane).

Per pipeline and sequence: share of frames tracked, corner alignment error of the estimated homography before
the One-Euro display smoothing (RMS of the four corner distances, mean over tracked frames) and precision at 5 px (share of all frames with error <= 5 px), inlier ratio and
reprojection error of the inliers, frames per second end to end, and each stage's mean time (both after the first
``WARMUP_FRAMES`` frames of each run, which pay the one-off set-up of oneDNN's kernels for a new image size).
Tiny-Key.Net uses assets/weights/tiny_keynet.pt when present; otherwise it is timed with random weights and
labelled "speed only, untrained weights".

    python -m bench.tracking --weights ../shared/reference/keynet_official/keynet_pytorch.pth
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from keynet.demo import VERSION as DEMO_VERSION
from keynet.demo import cache_dir, corner_errors, demo_sequence, render_sequence
from keynet.describe import Describer
from keynet.detect import Keypoints
from keynet.files import atomic_write_json, atomic_write_text
from keynet.geometry import project
from keynet.runtime import keep_freed_memory
from keynet.model import build_model
from keynet.sources import open_source
from keynet.tracker import TRACKING, PlanarTracker, tracking_detector
from keynet.weights import default_weights, load_model

from .machine import describe_machine, machine_line

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
FRAME = (640, 480)
WARMUP_FRAMES = 3  # the first frames of each run are tracked and scored but not timed (one-off kernel set-up)
CLIP_ROIS = {"visp_postcard_a": (64, 80, 250, 250), "visp_postcard_b": (224, 128, 328, 328)}  # x, y, w, h at 640x480


class OpenCVDetector:
    """ORB or SIFT keypoints as ``Keypoints`` (scale = size / 22), so the tracker runs unchanged on them."""

    def __init__(self, name: str, num_keypoints: int = 500) -> None:
        self.name, self.num = name, num_keypoints
        self.cv = cv2.ORB_create(num_keypoints) if name == "orb" else cv2.SIFT_create(num_keypoints)
        self.device = torch.device("cpu")
        self.min_image_side = 32

    def detect(self, image: np.ndarray, num_keypoints: int | None = None) -> list[Keypoints]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        self.cv.setMaxFeatures(num_keypoints or self.num) if self.name == "orb" else None
        kps = sorted(self.cv.detect(grey, None), key=lambda k: -k.response)[: num_keypoints or self.num]
        xy = torch.tensor([k.pt for k in kps], dtype=torch.float32).reshape(-1, 2)
        scale = torch.tensor([k.size / 22 for k in kps], dtype=torch.float32)
        score = torch.tensor([k.response for k in kps], dtype=torch.float32)
        return [Keypoints(xy, scale, score)]


def photo_sequences(count: int, frames: int) -> list[tuple[str, Path]]:
    """Render ``count`` eval photos (centre 400x300 crops of their 1.png, each photo once: an ``i_`` and a ``v_``
    sequence may start from the same one), evenly spread over them, along the demo's camera path."""
    photos: dict[bytes, Path] = {}
    for folder in sorted((SHARED / "eval_sequences").iterdir()):
        if (folder / "1.png").is_file():
            photos.setdefault(hashlib.sha1((folder / "1.png").read_bytes()).digest(), folder)
    unique = list(photos.values())
    out = []
    for folder in unique[:: max(1, len(unique) // count)][:count]:
        image = cv2.imread(str(folder / "1.png"))
        if image is None:
            continue
        h, w = image.shape[:2]
        s = max(400 / w, 300 / h)
        image = cv2.resize(image, (round(w * s) + 1, round(h * s) + 1), interpolation=cv2.INTER_AREA)
        y0, x0 = (image.shape[0] - 300) // 2, (image.shape[1] - 400) // 2
        target = image[y0:y0 + 300, x0:x0 + 400].copy()
        dest = cache_dir() / "bench" / f"{folder.name}-{frames}-v{DEMO_VERSION}"
        if not (dest / "homographies.json").is_file():
            render_sequence(dest, target, frames)
        out.append((f"photo-{folder.name.split('_', 1)[-1]}", dest))  # the photo, not the i_/v_ sequence
    return out


def real_clip(name: str, path: Path, frames: int) -> Path:
    """The first ``frames`` frames of a clip, resized to 640x480, in a cache folder."""
    dest = cache_dir() / "bench" / f"{name}-{frames}"
    if not dest.is_dir() or len(list(dest.glob("*.png"))) == 0:
        dest.mkdir(parents=True, exist_ok=True)
        with open_source(path) as source:
            for i, frame, _ in source:
                if i >= frames:
                    break
                cv2.imwrite(str(dest / f"{i:04d}.png"), cv2.resize(frame, FRAME, interpolation=cv2.INTER_AREA))
    return dest


def run_sequence(tracker: PlanarTracker, frames: Path, target: np.ndarray | tuple[int, int, int, int] | None,
                 truth: np.ndarray | None) -> dict:
    """Track ``target`` (an image, an x, y, w, h rectangle of the first frame, or None: its centre 50% x 50%)."""
    tracker.clear_targets()
    tracker.reset()
    errs, tracked, ratios, reproj, stage = [], 0, [], [], {}
    n, timed, elapsed = 0, 0, 0.0
    size = None
    for i, frame, stamp in open_source(frames):
        if i == 0:
            if isinstance(target, np.ndarray):
                tracker.add_target(target, "target")
            else:
                h, w = frame.shape[:2]
                tracker.add_target_roi(frame, target or (w // 4, h // 4, w // 2, h // 2), "roi")
            size = tracker.targets[0].size
        t0 = time.perf_counter()
        r = tracker.process(frame, i, stamp)
        if i >= WARMUP_FRAMES:
            elapsed += time.perf_counter() - t0
            timed += 1
            for k, v in r.timings_ms.items():
                stage[k] = stage.get(k, 0.0) + v
        n += 1
        t = r.targets[0]
        if t.state != TRACKING or t.raw_homography is None:
            if truth is not None:
                errs.append(np.inf)
            continue
        tracked += 1
        ratios.append(t.num_inliers / max(1, len(t.matches)))
        m = t.matches[t.inliers]
        pts = project(t.raw_homography, tracker.targets[0].xy[m[:, 1]])
        reproj.append(float(np.linalg.norm(pts - r.keypoints[m[:, 0], :2], axis=1).mean()))
        if truth is not None:
            e = corner_errors(t.raw_homography, truth[i], size)
            errs.append(float(np.sqrt(np.mean(e ** 2))))
    res = {"frames": n, "tracked_share": tracked / max(1, n), "fps": timed / elapsed if elapsed else 0.0,
           "stage_ms": {k: v / max(1, timed) for k, v in stage.items()},
           "inlier_ratio": float(np.mean(ratios)) if ratios else 0.0,
           "inlier_reprojection_px": float(np.mean(reproj)) if reproj else None}
    if truth is not None:
        e = np.array(errs)
        finite = e[np.isfinite(e)]
        res["corner_rms_px"] = float(finite.mean()) if len(finite) else None
        res["precision_5px"] = float((e <= 5).mean())
    return res


def pipelines(weights: Path, num: int) -> dict[str, tuple[PlanarTracker, str]]:
    """The trackers compared: Key.Net with ``weights`` (and with our shipped weights when they exist), ORB, SIFT
    and Tiny-Key.Net, all on the same tracker."""
    keynet = tracking_detector(load_model(weights), num_keypoints=num)
    tiny_path = default_weights("tiny_keynet")
    tiny_model = load_model(tiny_path, "tiny_keynet") if tiny_path else build_model("tiny_keynet").eval()
    tiny_label = "our shipped weights" if tiny_path else "speed only, untrained weights"
    tiny = tracking_detector(tiny_model, num_keypoints=num)
    ours = default_weights("keynet")
    extra = {} if ours is None or ours.resolve() == weights.resolve() else {"keynet-ours+orb": (
        PlanarTracker(tracking_detector(load_model(ours), num_keypoints=num), Describer(descriptor="orb")),
        f"Key.Net fast with our shipped weights ({ours.name}), single scale, ORB")}
    return {
        "keynet+orb": (PlanarTracker(keynet, Describer(descriptor="orb")),
                       f"Key.Net fast with {weights.name}, single scale, ORB"),
        **extra,
        "orb": (PlanarTracker(OpenCVDetector("orb", num), Describer(descriptor="orb")), "cv2.ORB detect+describe"),
        "sift": (PlanarTracker(OpenCVDetector("sift", num), Describer(descriptor="sift")), "cv2.SIFT detect+describe"),
        "tiny+orb": (PlanarTracker(tiny, Describer(descriptor="orb")), f"Tiny-Key.Net fast ({tiny_label}), ORB"),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(results: dict) -> str:
    lines = [f"# Planar tracking benchmark\n\nMachine: {machine_line(results['machine'])}. "
             f"Load average at start: {results['load_average']}; other helpers' processes may have been running, "
             "so the fps are lower bounds.\n",
             "Real clips (no ground truth): the target is a rectangle of the first frame, the postcard's bounding "
             f"box in the postcard clips ({CLIP_ROIS}, x, y, w, h) and the centre 50% x 50% in freiburg. Corner RMS: the "
             "estimated homography before display smoothing, mean over tracked frames; P@5px: share of all frames "
             "with corner RMS <= 5 px.\n",
             "| sequence | pipeline | tracked | corner RMS px | P@5px | inlier ratio | inlier reproj px | fps | "
             "stages ms |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for seq, per in results["sequences"].items():
        for name, r in per.items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items())
            lines.append(f"| {seq} | {name} | {r['tracked_share']:.1%} | {fmt(r.get('corner_rms_px'))} | "
                         f"{fmt(r.get('precision_5px'))} | {r['inlier_ratio']:.2f} | {fmt(r['inlier_reprojection_px'])} | "
                         f"{r['fps']:.1f} | {stages} |")
    lines.append("\nPipelines: " + "; ".join(f"**{k}**: {v}" for k, v in results["pipelines"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO.parent / "shared/reference/keynet_official/keynet_pytorch.pth"))
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--photos", type=int, default=11, help="rendered eval photos (default 11: each one)")
    parser.add_argument("--photo-frames", type=int, default=60)
    parser.add_argument("--real-frames", type=int, default=120)
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()
    keep_freed_memory()  # as the app and the CLI: no page faults on fresh memory every frame, for every pipeline
    sequences: list[tuple[str, Path, np.ndarray | tuple[int, int, int, int] | None, np.ndarray | None]] = []
    demo = demo_sequence()
    sequences.append(("demo", demo.frames, cv2.imread(str(demo.target)), demo.homographies))
    for name, folder in photo_sequences(args.photos, args.photo_frames):
        seq = demo_sequence(folder)
        sequences.append((name, seq.frames, cv2.imread(str(seq.target)), seq.homographies))
    for name in ("visp_postcard_a", "visp_postcard_b"):
        path = SHARED / "video" / name / "video-postcard.mp4"
        if path.is_file():
            sequences.append((name, real_clip(name, path, args.real_frames), CLIP_ROIS[name], None))
    if (SHARED / "video" / "freiburg").is_dir():
        sequences.append(("freiburg", real_clip("freiburg", SHARED / "video" / "freiburg", args.real_frames),
                          None, None))
    runs = pipelines(Path(args.weights), args.num)
    results = {"machine": describe_machine(), "load_average": [
        float(v) for v in Path("/proc/loadavg").read_text().split()[:3]], "num_keypoints": args.num,
        "pipelines": {k: v[1] for k, v in runs.items()}, "sequences": {}}
    for name, frames, target, truth in tqdm(sequences, desc="sequences"):
        per = {}
        for pname, (tracker, _) in runs.items():
            if pname.startswith("tiny") and name != "demo":
                continue
            per[pname] = run_sequence(tracker, frames, target, truth)
        results["sequences"][name] = per
        print(name, {k: (round(v["tracked_share"], 3), v.get("corner_rms_px"), round(v["fps"], 1))
                     for k, v in per.items()}, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, RESULTS / f"tracking-{args.tag}.json")
    atomic_write_text(markdown(results), RESULTS / f"tracking-{args.tag}.md")
    print(markdown(results))


if __name__ == "__main__":
    main()
