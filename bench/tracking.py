"""Planar tracking benchmark: our Key.Net pipeline against the same tracker built on ORB and on SIFT features.

Sequences (all at 640x480):
- ``demo``: the bundled rendered sequence (keynet.demo), ground truth homographies;
- ``photo-*``: the same renderer applied to ``../shared/data/eval_sequences/*/1.png`` (centre crop 400x300), each of
  the 11 distinct photos once;
- ``still-*``: the first of those photos held still (one fixed view, sensor noise of sigma ``STILL_NOISE`` grey
  levels in each frame): the shown corners' jitter;
- ``visp_postcard_a``, ``visp_postcard_b`` (first ``--real-frames`` frames) and ``freiburg``: real clips without
  ground truth; the target is a rectangle of the first frame, as a user would drag it: the postcard's bounding box
  (``CLIP_ROIS``, picked by eye) in the postcard clips, the centre 50% x 50% in freiburg (a desk, not a plane).

Per pipeline and sequence: share of frames tracked, corner alignment error of the raw estimate (before the display
smoothing; RMS of the four corner distances, ``keynet.geometry.corner_errors``, mean over tracked frames) and
precision at 5 px (share of all frames with error <= 5 px), inlier ratio and reprojection error of the inliers,
frames per second end to end, and each stage's mean time (both after the first ``WARMUP_FRAMES`` frames of each
run, which pay the one-off set-up of oneDNN's kernels for a new image size).

Display smoothing, the headline (what the user sees): the median corner RMS of the raw estimate and of the shown
(smoothed) corners, and the jitter (median over consecutive tracked frames of the four corners' mean frame-to-frame
motion), for the tracker's own shown corners and for each smoother of ``SMOOTHERS`` replayed on the same raw
corners, times and ``uncertainty_px`` (so the old and the new filter see the same estimates).
Tiny-Key.Net uses assets/weights/tiny_keynet.pt when present; otherwise it is timed with random weights and
labelled "speed only, untrained weights".

    python -m bench.tracking --weights ../shared/reference/keynet_official/keynet_pytorch.pth
    python -m bench.tracking --photos 1 --still-frames 60 --real-frames 0 --max-frames 60 \
        --pipelines keynet+orb,orb --tag smoke   # a short check of the report
    python -m bench.tracking --device cuda      # Key.Net on the GPU: results/tracking-cuda.{json,md}

Without ``../shared`` the default weights are the shipped ones and only the demo sequence is run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from keynet.baselines import pipeline_tracker
from keynet.config import SmoothingConfig, TrackerConfig
from keynet.demo import FRAME_SUFFIX, cache_dir, camera_path, demo_sequence, render_sequence
from keynet.demo import VERSION as DEMO_VERSION
from keynet.devices import DEVICE_CHOICES, resolve_device
from keynet.errors import DeviceError
from keynet.files import atomic_path, atomic_write_json, atomic_write_text
from keynet.geometry import corner_errors, corners_of, project
from keynet.model import build_model
from keynet.runtime import keep_freed_memory
from keynet.smoothing import make_smoother
from keynet.sources import open_source
from keynet.tracker import TRACKING, PlanarTracker, tracking_detector
from keynet.weights import default_weights

from .machine import ISA_LIMITS, cpu_class, describe_machine, machine_line, run_limited

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
AUTHORS_WEIGHTS = REPO.parent / "shared" / "reference" / "keynet_official" / "keynet_pytorch.pth"
RESULTS = REPO / "bench" / "results"
FRAME = (640, 480)
WARMUP_FRAMES = 3  # the first frames of each run are tracked and scored but not timed (one-off kernel set-up)
CLIP_ROIS = {"visp_postcard_a": (64, 80, 250, 250), "visp_postcard_b": (224, 128, 328, 328)}  # x, y, w, h at 640x480
STILL_NOISE = 2.0  # grey levels: the still sequence's sensor noise
STILL_VERSION = 1
SMOOTHERS = ("one_euro", "kalman")  # the previous and the present display smoothing, replayed on every run


def unique_photos() -> list[Path]:
    """The eval sequences' folders, one per distinct 1.png (an ``i_`` and a ``v_`` sequence may share one); none
    where ``../shared/data/eval_sequences`` is absent."""
    photos: dict[bytes, Path] = {}
    folders = sorted((SHARED / "eval_sequences").iterdir()) if (SHARED / "eval_sequences").is_dir() else []
    for folder in folders:
        if (folder / "1.png").is_file():
            photos.setdefault(hashlib.sha1((folder / "1.png").read_bytes()).digest(), folder)
    return list(photos.values())


def photo_target(folder: Path) -> np.ndarray | None:
    """The centre 400x300 crop of ``folder``'s 1.png (scaled to cover it), None when unreadable."""
    image = cv2.imread(str(folder / "1.png"))
    if image is None:
        return None
    h, w = image.shape[:2]
    s = max(400 / w, 300 / h)
    image = cv2.resize(image, (round(w * s) + 1, round(h * s) + 1), interpolation=cv2.INTER_AREA)
    y0, x0 = (image.shape[0] - 300) // 2, (image.shape[1] - 400) // 2
    return image[y0:y0 + 300, x0:x0 + 400].copy()


def rendered_photo(folder: Path, name: str, frames: int,
                   render: Callable[[Path, np.ndarray, int], object]) -> Path | None:
    """The cache folder ``name`` holding ``render(dest, target, frames)`` of ``folder``'s photo target
    (``photo_target``), rendered on the first call; None when the photo is unreadable."""
    target = photo_target(folder)
    if target is None:
        return None
    dest = cache_dir() / "bench" / name
    if not (dest / "homographies.json").is_file():
        render(dest, target, frames)
    return dest


def photo_sequences(count: int, frames: int) -> list[tuple[str, Path]]:
    """Render ``count`` eval photos (centre 400x300 crops of their 1.png, each photo once), evenly spread over
    them, along the demo's camera path (none for a ``count`` of 0)."""
    unique = unique_photos()
    out = []
    for folder in unique[:: max(1, len(unique) // max(1, count))][:count]:
        dest = rendered_photo(folder, f"{folder.name}-{frames}-v{DEMO_VERSION}", frames, render_sequence)
        if dest is not None:
            out.append((f"photo-{folder.name.split('_', 1)[-1]}", dest))  # the photo, not the i_/v_ sequence
    return out


def render_still(folder: Path, target: np.ndarray, frames: int, noise: float = STILL_NOISE, seed: int = 0) -> Path:
    """Render ``target`` held still at the demo path's first view (``camera_path(0)``) over a grey background,
    with fresh Gaussian noise of sigma ``noise`` grey levels in each of ``frames`` frames, into ``folder``
    (frames/NNNN.bmp, target.png, homographies.json as ``keynet.demo.render_sequence`` writes them)."""
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    size = (target.shape[1], target.shape[0])
    h = camera_path(0.0, size, FRAME)
    mask = cv2.warpPerspective(np.ones(target.shape[:2], np.float32), h, FRAME)[..., None]
    view = cv2.warpPerspective(target, h, FRAME, flags=cv2.INTER_LINEAR).astype(np.float32) * mask + 110 * (1 - mask)
    for i in range(frames):
        image = view + rng.normal(0, noise, view.shape).astype(np.float32)
        with atomic_path(folder / "frames" / f"{i:04d}{FRAME_SUFFIX}") as tmp:
            cv2.imwrite(str(tmp), np.clip(image, 0, 255).astype(np.uint8))
    with atomic_path(folder / "target.png") as tmp:
        cv2.imwrite(str(tmp), target)
    atomic_write_json({"target_size": list(size), "frame_size": list(FRAME),
                       "homographies": [h.tolist()] * frames}, folder / "homographies.json")
    return folder


def still_sequence(frames: int) -> tuple[str, Path] | None:
    """The first distinct eval photo held still for ``frames`` frames (rendered once into the cache); None
    without the eval photos."""
    for folder in unique_photos():
        dest = rendered_photo(folder, f"still-{folder.name}-{frames}-v{STILL_VERSION}", frames, render_still)
        if dest is not None:
            return f"still-{folder.name.split('_', 1)[-1]}", dest
    return None


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


def frame_jitter(corners: np.ndarray, tracked: np.ndarray) -> float | None:
    """Median over consecutive tracked frames of the four corners' mean motion (px) between them; ``corners``
    (N, 4, 2), ``tracked`` (N,) bool. None without two consecutive tracked frames."""
    both = tracked[1:] & tracked[:-1]
    if not both.any():
        return None
    motion = np.linalg.norm(np.diff(corners, axis=0), axis=2).mean(axis=1)
    return float(np.median(motion[both]))


def median_corner_rms(corners: np.ndarray, tracked: np.ndarray, truth: np.ndarray, size: tuple[int, int]) -> \
        float | None:
    """Median over tracked frames of the RMS distance (px) of ``corners`` (N, 4, 2) to the true corners of
    ``truth`` (N, 3, 3) homographies of a ``size`` = (w, h) target."""
    if not tracked.any():
        return None
    true = np.stack([project(h, corners_of(*size)) for h in truth])
    rms = np.sqrt(np.mean(np.sum((corners - true) ** 2, axis=2), axis=1))
    return float(np.median(rms[tracked]))


def replay_smoother(config: SmoothingConfig, raw: np.ndarray, tracked: np.ndarray, stamps: np.ndarray,
                    sigmas: list[float | None]) -> np.ndarray:
    """The shown corners (N, 4, 2) the smoother ``config`` makes of the raw corners (N, 4, 2) at ``stamps`` (N,)
    with the estimates' ``sigmas``, restarted where the target was not tracked (as the tracker does)."""
    smoother = make_smoother(config)
    shown = np.zeros_like(raw)
    for i in range(len(raw)):
        if tracked[i]:
            shown[i] = smoother.update(raw[i], float(stamps[i]), sigmas[i])
        else:
            smoother.reset()
    return shown


def smoothing_figures(tracker: PlanarTracker, raw: np.ndarray, shown: np.ndarray, tracked: np.ndarray,
                      stamps: np.ndarray, sigmas: list[float | None], truth: np.ndarray | None,
                      size: tuple[int, int]) -> dict:
    """Median corner RMS (with ``truth``) and jitter of the raw, the tracker's shown and each of ``SMOOTHERS``'
    replayed corners, and the tracker's smoothing method."""
    config = tracker.config.smoothing if hasattr(tracker, "config") else SmoothingConfig()
    corners = {"raw": raw, "shown": shown}
    corners |= {m: replay_smoother(replace(config, method=m), raw, tracked, stamps, sigmas) for m in SMOOTHERS}
    known = [s for s, ok in zip(sigmas, tracked) if ok and s is not None]
    figures: dict = {"method": config.method,
                     "uncertainty_px": float(np.median(known)) if known else None}
    for name, c in corners.items():
        figures[name] = {"jitter_px": frame_jitter(c, tracked),
                         "median_corner_rms_px": None if truth is None else median_corner_rms(c, tracked, truth, size)}
    return figures


def run_sequence(tracker: PlanarTracker, frames: Path, target: np.ndarray | tuple[int, int, int, int] | None,
                 truth: np.ndarray | None, max_frames: int | None = None) -> dict:
    """Track ``target`` (an image, an x, y, w, h rectangle of the first frame, or None: its centre 50% x 50%)
    through ``frames`` (the first ``max_frames`` when given) against ``truth`` ((N, 3, 3) or None)."""
    tracker.clear_targets()
    tracker.reset()
    errs, tracked, ratios, reproj, stage = [], 0, [], [], {}
    n, timed, elapsed = 0, 0, 0.0
    size = (0, 0)
    raw, shown, seen, stamps, sigmas = [], [], [], [], []
    for i, frame, stamp in open_source(frames):
        if max_frames is not None and i >= max_frames:
            break
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
        ok = t.state == TRACKING and t.raw_homography is not None and t.corners is not None
        raw_corners = getattr(t, "raw_corners", None)
        if ok and raw_corners is None:
            raw_corners = project(t.raw_homography, corners_of(*size))
        raw.append(raw_corners if ok else np.zeros((4, 2)))
        shown.append(t.corners if ok else np.zeros((4, 2)))
        seen.append(ok)
        stamps.append(r.timestamp if getattr(r, "timestamp", None) is not None else stamp)
        sigmas.append(getattr(t, "uncertainty_px", None))
        if not ok:
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
    res["smoothing"] = smoothing_figures(
        tracker, np.array(raw, np.float64).reshape(-1, 4, 2), np.array(shown, np.float64).reshape(-1, 4, 2),
        np.array(seen, bool), np.array(stamps, np.float64), sigmas, None if truth is None else truth[:n], size)
    return res


def pipelines(weights: Path, num: int, device: str = "cpu") -> dict[str, tuple[PlanarTracker, str]]:
    """The trackers compared: Key.Net with ``weights`` (and with our shipped weights when they exist), ORB, SIFT
    and Tiny-Key.Net, all on the same tracker; the Key.Net kinds run on ``device`` (ORB and SIFT on the CPU)."""
    config = TrackerConfig().replace(num_keypoints=num, device=device)
    tiny_path = default_weights("tiny_keynet")
    tiny = pipeline_tracker("tiny_keynet", config) if tiny_path else PlanarTracker(
        tracking_detector(build_model("tiny_keynet").eval(), config.detector), config=config)
    tiny_label = "our shipped weights" if tiny_path else "speed only, untrained weights"
    ours = default_weights("keynet")
    extra = {} if ours is None or ours.resolve() == weights.resolve() else {"keynet-ours+orb": (
        pipeline_tracker("keynet", config, ours), f"Key.Net fast with our shipped weights ({ours.name}), single scale, ORB")}
    return {
        "keynet+orb": (pipeline_tracker("keynet", config, weights), f"Key.Net fast with {weights.name}, single scale, ORB"),
        **extra,
        "orb": (pipeline_tracker("orb", config), "cv2.ORB detect+describe"),
        "sift": (pipeline_tracker("sift", config), "cv2.SIFT detect+describe"),
        "tiny+orb": (tiny, f"Tiny-Key.Net fast ({tiny_label}), ORB"),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def smoothing_table(results: dict) -> list[str]:
    """The display smoothing's Markdown table: each run with ground truth or a still target."""
    lines = ["| sequence | pipeline | shown px | raw px | " + " | ".join(f"{m} px" for m in SMOOTHERS)
             + " | jitter shown | jitter raw | " + " | ".join(f"jitter {m}" for m in SMOOTHERS) + " | sigma px |",
             "|---|---|" + "---:|" * (2 * len(SMOOTHERS) + 5)]
    for seq, per in results["sequences"].items():
        for name, r in per.items():
            sm = r.get("smoothing")
            if sm is None or r.get("corner_rms_px") is None:
                continue
            errors = [fmt(sm[k]["median_corner_rms_px"], 3) for k in ("shown", "raw", *SMOOTHERS)]
            jitter = [fmt(sm[k]["jitter_px"], 4) for k in ("shown", "raw", *SMOOTHERS)]
            lines.append(f"| {seq} | {name} ({sm['method']}) | " + " | ".join(errors + jitter)
                         + f" | {fmt(sm['uncertainty_px'], 3)} |")
    return lines


def markdown(results: dict) -> str:
    note = f" {results['note']}" if results.get("note") else ""
    lines = [f"# Planar tracking benchmark\n\nMachine: {machine_line(results['machine'])}. "
             f"Load average at start: {results['load_average']}; other "
             "processes may have been running, so the fps are lower bounds (the corner errors and jitter do not "
             f"depend on the load).{note}\n",
             "## Display smoothing: what the user sees\n",
             "Median over tracked frames of the corner RMS (px) against the ground truth: **shown** is the tracker's "
             "drawn and exported corners (its smoothing method in brackets), raw the estimate before smoothing, then "
             f"each smoother ({', '.join(SMOOTHERS)}) replayed on the same raw corners, times and uncertainties. "
             "Jitter: median frame-to-frame motion (px) of the corners, the mean over the four; on the still-* "
             "sequence (a photo held still, sensor noise only) it is all jitter, on the moving ones mostly motion. "
             "sigma px: the median corner uncertainty the tracker gave the smoother (- for none: the smoother's "
             "default).\n",
             *smoothing_table(results),
             "\n## Tracking\n",
             "Real clips (no ground truth): the target is a rectangle of the first frame, the postcard's bounding "
             f"box in the postcard clips ({CLIP_ROIS}, x, y, w, h) and the centre 50% x 50% in freiburg. Corner RMS: the "
             "raw estimated homography (before display smoothing), mean over tracked frames; P@5px: share of all "
             "frames with corner RMS <= 5 px.\n",
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


def benchmark_weights(given: str | None) -> Path:
    """``--weights``, or by default the authors' weights (``AUTHORS_WEIGHTS``) where they are, else our shipped
    Key.Net weights.

    Raises:
        FileNotFoundError: none of them is there.
    """
    if given:
        return Path(given)
    found = AUTHORS_WEIGHTS if AUTHORS_WEIGHTS.is_file() else default_weights("keynet")
    if found is None:
        raise FileNotFoundError(f"no Key.Net weights: neither {AUTHORS_WEIGHTS} nor assets/weights/keynet.pt; "
                                "give --weights")
    return found


def main(argv: list[str] | None = None) -> None:
    default_device = TrackerConfig().detector.device
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help=f"Key.Net weights (default {AUTHORS_WEIGHTS} where it is, else "
                        "assets/weights/keynet.pt)")
    parser.add_argument("--device", default=default_device,
                        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N: where Key.Net runs (default {default_device})")
    parser.add_argument("--num", type=int, default=TrackerConfig().detector.num_keypoints)
    parser.add_argument("--photos", type=int, default=11, help="rendered eval photos (default 11: each one)")
    parser.add_argument("--photo-frames", type=int, default=60)
    parser.add_argument("--still-frames", type=int, default=60, help="frames of the still sequence (0: none)")
    parser.add_argument("--real-frames", type=int, default=120, help="frames of each real clip (0: none)")
    parser.add_argument("--max-frames", type=int, default=None, help="track at most this many frames of each")
    parser.add_argument("--pipelines", default=None, help="comma-separated pipeline names (default: all)")
    parser.add_argument("--note", default="", help="a sentence for the results (how the machine was loaded)")
    parser.add_argument("--tag", default=None, help="results name tracking-TAG (default: the device type, cpu or "
                        "cuda)")
    parser.add_argument("--isa", choices=sorted(ISA_LIMITS),
                        help="run as on a CPU of this class: limit oneDNN, ATen and numba to it (in a child process; "
                        "give --tag to keep the results apart)")
    args = parser.parse_args(argv)
    if args.isa:
        sys.exit(run_limited("bench.tracking", args.isa, sys.argv[1:] if argv is None else argv))
    try:
        device = resolve_device(args.device)
        weights = benchmark_weights(args.weights)
    except (DeviceError, FileNotFoundError) as exc:
        parser.error(str(exc))
    tag = args.tag or device.type
    keep_freed_memory()  # as the app and the CLI: no page faults on fresh memory every frame, for every pipeline
    print(f"CPU class: {cpu_class()}", flush=True)
    sequences: list[tuple[str, Path, np.ndarray | tuple[int, int, int, int] | None, np.ndarray | None]] = []
    demo = demo_sequence()
    sequences.append(("demo", demo.frames, cv2.imread(str(demo.target)), demo.homographies))
    still = still_sequence(args.still_frames) if args.still_frames > 0 else None
    for name, folder in ([still] if still else []) + photo_sequences(args.photos, args.photo_frames):
        seq = demo_sequence(folder)
        sequences.append((name, seq.frames, cv2.imread(str(seq.target)), seq.homographies))
    for name in ("visp_postcard_a", "visp_postcard_b") if args.real_frames > 0 else ():
        path = SHARED / "video" / name / "video-postcard.mp4"
        if path.is_file():
            sequences.append((name, real_clip(name, path, args.real_frames), CLIP_ROIS[name], None))
    if args.real_frames > 0 and (SHARED / "video" / "freiburg").is_dir():
        sequences.append(("freiburg", real_clip("freiburg", SHARED / "video" / "freiburg", args.real_frames),
                          None, None))
    runs = pipelines(weights, args.num, str(device))
    if args.pipelines:
        wanted = args.pipelines.split(",")
        unknown = set(wanted) - set(runs)
        if unknown:
            parser.error(f"unknown pipelines {sorted(unknown)}; known: {', '.join(runs)}")
        runs = {k: v for k, v in runs.items() if k in wanted}
    results = {"machine": describe_machine(str(device)), "load_average": [
        float(v) for v in Path("/proc/loadavg").read_text().split()[:3]], "num_keypoints": args.num,
        "device": str(device),
        "note": args.note, "pipelines": {k: v[1] for k, v in runs.items()}, "sequences": {}}
    for name, frames, target, truth in tqdm(sequences, desc="sequences"):
        per = {}
        for pname, (tracker, _) in runs.items():
            if pname.startswith("tiny") and name != "demo":
                continue
            per[pname] = run_sequence(tracker, frames, target, truth, args.max_frames)
        results["sequences"][name] = per
        print(name, {k: (round(v["tracked_share"], 3), v.get("corner_rms_px"), round(v["fps"], 1))
                     for k, v in per.items()}, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, RESULTS / f"tracking-{tag}.json")
    atomic_write_text(markdown(results), RESULTS / f"tracking-{tag}.md")
    print(markdown(results))


if __name__ == "__main__":
    main()
