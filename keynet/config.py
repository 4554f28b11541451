"""The tracker's configuration: the single source of every default the tracker, the command line, the app's
settings panel and the benchmarks use.

``TrackerConfig`` has one named part per stage (``detector``, ``matching``, ``targets``, ``geometry``,
``alignment``, ``smoothing``). Field names are unique across the parts, so ``config.replace(ratio=0.8,
nms_size=11)`` finds each field in its part; a part can also be given whole (``smoothing={"beta": 0.1}`` or a
``SmoothingConfig``). Unknown names raise ``OptionError``.

    >>> from keynet.config import TrackerConfig
    >>> TrackerConfig().replace(ratio=0.8).matching.ratio
    0.8
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import OptionError, check_options, check_share


@dataclass(frozen=True)
class DetectorConfig:
    """The real-time detector (``KeyNetDetector`` options): fast mode, one scale, sub-pixel maxima, 500 keypoints
    with a 9 px NMS window (dense enough for the photometric alignment).

    ``regions``: while every target is tracked, detect only around where each is predicted (its last corners'
    box grown by ``region_margin`` of its size and the guided matching's radius), with a full-frame pass every
    ``full_frame_every`` frames (re-detection, new tracks elsewhere); a region box over ``max_region_share`` of
    the frame is detected as the full frame.
    """

    mode: str = "fast"
    multi_scale: bool = False
    subpixel: bool = True
    nms_size: int = 9
    num_keypoints: int = 500
    device: str = "auto"
    regions: bool = True
    region_margin: float = 0.15
    full_frame_every: int = 10
    max_region_share: float = 0.6

    def detector_options(self) -> dict[str, Any]:
        """The ``KeyNetDetector`` keyword arguments (the region settings are the tracker's)."""
        options = asdict(self)
        for key in ("regions", "region_margin", "full_frame_every", "max_region_share"):
            del options[key]
        return options


@dataclass(frozen=True)
class MatchingConfig:
    """Descriptor, target matching and frame-to-frame tracks.

    ``ratio``: ratio test threshold, in (0, 1] (1: no test); ``guide_radius``: guided matching's largest distance of
    a match from its prediction (px); ``guided_keep_share``: a guided estimate with fewer inliers than this share of
    the last frame's is checked against matching over the whole frame, and the one with more inliers is taken (a
    target that moved beyond the guide between two processed frames is not locked onto a few chance matches);
    ``track_radius``: frame-to-frame tracks' largest motion between frames (px); ``coherent_*``:
    ``keynet.match.coherent_motion``'s limits for a track to continue.
    """

    descriptor: str = "orb"
    ratio: float = 0.9
    guide_radius: float = 40.0
    guided_keep_share: float = 0.5
    track_radius: float = 40.0
    coherent_neighbours: int = 8
    coherent_min_px: float = 3.0
    coherent_share: float = 0.3
    coherent_gradient: float = 0.1

    def __post_init__(self) -> None:
        check_share("ratio", self.ratio, zero_allowed=False)
        check_share("guided_keep_share", self.guided_keep_share)


@dataclass(frozen=True)
class TargetConfig:
    """How a target is described: ``target_keypoints`` per level of its pyramid at ``target_scales`` (closer,
    farther); a target with fewer than ``min_target_keypoints`` is refused; ``quality_warps`` synthetic warps
    rate its stability."""

    target_keypoints: int = 1000
    target_scales: tuple[float, ...] = (1.4142, 1.0, 0.7071, 0.5)
    min_target_keypoints: int = 30
    quality_warps: int = 3


@dataclass(frozen=True)
class GeometryConfig:
    """Estimation, plausibility and the tracking state machine.

    ``ransac_threshold``: MAGSAC threshold (px); ``min_inliers``: fewer is a miss; ``lost_after``: misses in a row
    before ``tracking`` becomes ``lost``; ``min_area`` (px²), ``min_side`` (px), ``max_area_ratio`` and
    ``min_singular_ratio``: ``keynet.geometry.implausible``'s limits; ``fov_deg``: the camera's horizontal field of
    view when no calibration is given.
    """

    ransac_threshold: float = 3.0
    min_inliers: int = 12
    lost_after: int = 3
    min_area: float = 100.0
    min_side: float = 4.0
    max_area_ratio: float = 50.0
    min_singular_ratio: float = 1e-3
    fov_deg: float = 60.0


@dataclass(frozen=True)
class AlignmentConfig:
    """Photometric refinement of each homography (``keynet.align.align_homography``).

    ``align``: on or off; ``align_points``: besides the inliers, align at this many keypoints of the target's
    nearest level, ``align_margin`` px inside the frame; ``align_window``: Lucas-Kanade window (px);
    ``align_passes``; ``align_max_shift``: largest shift a point may move in a pass (px); ``align_iterations``
    and ``align_epsilon``: Lucas-Kanade's stopping criteria; ``align_levels``: its pyramid levels above the
    image; ``align_cell``: the cell (px) of the local lighting match; ``align_cutoff``: the robust refit's outlier
    cut-off (robust standard deviations); ``align_fit_iterations``: its Gauss-Newton iterations;
    ``align_weight_step``: the points' structure tensors (the refit's weights) are measured on the image reduced
    this many times; ``align_converged_px``: a pass that moved no corner this far (px) is the last.
    """

    align: bool = True
    align_points: int = 200
    align_margin: float = 8.0
    align_window: int = 31
    align_passes: int = 2
    align_max_shift: float = 2.0
    align_iterations: int = 20
    align_epsilon: float = 0.01
    align_levels: int = 1
    align_cell: int = 16
    align_cutoff: float = 2.5
    align_fit_iterations: int = 6
    align_weight_step: int = 2
    align_converged_px: float = 1.0


@dataclass(frozen=True)
class SmoothingConfig:
    """How the shown corners are smoothed.

    ``method``: "kalman" (constant-velocity Kalman filter) or "one_euro" (the One-Euro filter, Casiez et al.,
    CHI 2012). Kalman: ``process_noise`` the spectral density of the corners' random acceleration (px² / s³;
    larger follows changes of speed sooner and smooths less; small, as the maneuver gate follows real changes),
    ``default_sigma_px`` the estimate's corner standard deviation (px) when the tracker gives none,
    ``min_sigma_px`` the least standard deviation it is taken as (the estimate's own figure leaves out its
    systematic errors, and a tiny one would switch the smoothing off), ``maneuver_gate`` the mean normalised
    innovation squared above which the prediction's covariance is inflated by the excess. One-Euro:
    ``min_cutoff`` (Hz) at rest, ``beta`` how fast the cutoff grows with speed, ``d_cutoff`` (Hz) for the speed.
    """

    method: str = "kalman"
    process_noise: float = 0.05
    default_sigma_px: float = 0.1
    min_sigma_px: float = 0.05
    maneuver_gate: float = 2.0
    min_cutoff: float = 2.0
    beta: float = 0.2
    d_cutoff: float = 1.0


PARTS: dict[str, type] = {"detector": DetectorConfig, "matching": MatchingConfig, "targets": TargetConfig,
                          "geometry": GeometryConfig, "alignment": AlignmentConfig, "smoothing": SmoothingConfig}


@dataclass(frozen=True)
class TrackerConfig:
    """Every setting of ``PlanarTracker``, by stage; ``keep_response`` returns each frame's Key.Net response
    (heatmap views); ``default_fps`` dates frames given without a time stamp (index / fps seconds)."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    keep_response: bool = False
    default_fps: float = 30.0

    def replace(self, **overrides: Any) -> TrackerConfig:
        """A copy with ``overrides``: field names of any part (unique across parts), a part's name with a dict of
        its fields or a part instance, or ``keep_response`` / ``default_fps``.

        Raises:
            OptionError: an unknown name.
        """
        check_options(overrides, known_options(), "tracker")
        top: dict[str, Any] = {}
        per_part: dict[str, dict[str, Any]] = {}
        for name, value in overrides.items():
            if name in PARTS:
                if isinstance(value, PARTS[name]):
                    top[name] = value
                elif isinstance(value, dict):
                    check_options(value, _field_names(PARTS[name]), name)
                    per_part.setdefault(name, {}).update(value)
                else:
                    raise OptionError(f"tracker option {name!r}: expected a dict of {name} fields or a "
                                      f"{PARTS[name].__name__}; got {type(value).__name__}")
            elif name in ("keep_response", "default_fps"):
                top[name] = value
            else:
                per_part.setdefault(_OWNER[name], {})[name] = value
        for part, values in per_part.items():
            top[part] = replace(top.get(part, getattr(self, part)), **values)
        return replace(self, **top)

    def flat(self) -> dict[str, Any]:
        """Every field by its (unique) name: the flat view the command line and the settings panel use."""
        out: dict[str, Any] = {}
        for part in PARTS:
            out.update(asdict(getattr(self, part)))
        out.update(keep_response=self.keep_response, default_fps=self.default_fps)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Nested plain values (JSON-ready; tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackerConfig:
        """The inverse of ``to_dict`` (missing values keep their defaults)."""
        config = cls().replace(**data)
        scales = config.targets.target_scales
        return config.replace(target_scales=tuple(float(s) for s in scales))


def _field_names(part: type) -> list[str]:
    return [f.name for f in fields(part)]


_OWNER: dict[str, str] = {name: part for part, cls in PARTS.items() for name in _field_names(cls)}
if len(_OWNER) != sum(len(fields(cls)) for cls in PARTS.values()):
    raise RuntimeError("TrackerConfig's parts share a field name")  # pragma: no cover (a programming error)


def known_options() -> list[str]:
    """Every name ``TrackerConfig.replace`` takes."""
    return sorted([*PARTS, *_OWNER, "keep_response", "default_fps"])


def default_config() -> TrackerConfig:
    """The defaults (a new, immutable ``TrackerConfig``)."""
    return TrackerConfig()


__all__ = ["TrackerConfig", "DetectorConfig", "MatchingConfig", "TargetConfig", "GeometryConfig", "AlignmentConfig",
           "SmoothingConfig", "PARTS", "known_options", "default_config", "OptionError"]
