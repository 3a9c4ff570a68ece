"""Metric depth from the affine-invariant prediction: the one fitting module of both metric modes.
A reference depth in metres (a RealSense's depth stream, or the floor's from the camera's mounting:
floor.py) is matched per frame by depth_m ~= scale * pred + shift, robustly, and the fit reports how
well it fits. numpy only, Python 3.8.

- `fit_scale_shift`: Huber-weighted least squares (scale from the MAD), for a dense sensor depth
  whose few bad pixels are outliers in value.
- `fit_ransac`: two-point RANSAC then relative-error least squares on the inliers, for a reference
  valid only on part of the frame (the floor) that the rest (boxes, walls) contradicts wholesale.

A disparity model (Depth Anything V2's head) is affine-invariant in *inverse* depth, so it is fit
in its own space: 1 / depth_m ~= scale * pred + shift, and metres are 1 / (scale * pred + shift).
`MetricTracker` keeps the per-frame verdicts (fitted, refused and why) that the views, stats.json,
the diagnostics and the summary show; `SensorMetric` is the RealSense mode on it."""

import collections
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

HUBER_K = 1.345
METRIC_MODES = ("sensor", "floor")  # --metric: a RealSense's depth stream, or the floor from the camera's mounting


@dataclass
class MetricFit:
    scale: float
    shift: float
    rmse_m: float  # on inliers
    abs_rel: float  # on inliers
    inlier_fraction: float
    points: int
    space: str = "depth"  # the model's output: depth, or disparity (fit in inverse depth)

    def apply(self, pred: np.ndarray) -> np.ndarray:
        affine = pred * self.scale + self.shift
        if self.space == "disparity":
            with np.errstate(divide="ignore", invalid="ignore"):
                # no positive inverse depth: beyond any range, so infinitely far (REP 118: +Inf)
                return np.where(affine > 0, 1.0 / np.maximum(affine, 1e-12), np.inf).astype(np.float32)
        return np.maximum(affine, 0.0).astype(np.float32)

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


def fit_scale_shift(pred: np.ndarray, sensor_m: np.ndarray, min_depth: float = 0.1, max_depth: float = 10.0,
                    max_points: int = 20000, iters: int = 6, min_points: int = 50,
                    space: str = "depth") -> Optional[MetricFit]:
    """Robust fit on pixels where the sensor has a reading in [min_depth, max_depth]; None when
    too few are valid (sensor blind, lens covered). `space` disparity: fit inverse depth."""
    if pred.shape != sensor_m.shape:
        raise ValueError(f"prediction {pred.shape} and sensor depth {sensor_m.shape} differ in size")
    x = pred.reshape(-1).astype(np.float64)
    y = sensor_m.reshape(-1).astype(np.float64)
    valid = np.isfinite(x) & np.isfinite(y) & (y >= min_depth) & (y <= max_depth)
    idx = np.flatnonzero(valid)
    if idx.size < min_points:
        return None
    if idx.size > max_points:  # an even subsample keeps the fit cheap at any resolution
        idx = idx[:: int(np.ceil(idx.size / max_points))]
    x, y = x[idx], y[idx]
    if space == "disparity":
        y = 1.0 / y
    a = np.stack([x, np.ones_like(x)], axis=1)
    w = np.ones_like(x)
    coef = np.zeros(2)
    sigma = 1.0
    for _ in range(iters):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
        r = y - a @ coef
        sigma = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-6)
        ar = np.abs(r) / sigma
        w = np.where(ar <= HUBER_K, 1.0, HUBER_K / np.maximum(ar, 1e-12))
    r = y - a @ coef
    inliers = np.abs(r) <= 3.0 * sigma
    if not inliers.any():
        return None
    fit = MetricFit(float(coef[0]), float(coef[1]), 0.0, 0.0, float(inliers.mean()), int(x.size), space)
    metres = 1.0 / y[inliers] if space == "disparity" else y[inliers]
    err = fit.apply(x[inliers]).astype(np.float64) - metres  # quality in metres, whatever the space
    fit.rmse_m = float(np.sqrt(np.mean(err ** 2)))
    fit.abs_rel = float(np.mean(np.abs(err) / metres))
    return fit


def _in_space(depth_m: np.ndarray, space: str) -> np.ndarray:
    return 1.0 / depth_m if space == "disparity" else depth_m


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Tuple[float, float]:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], axis=1) * sw[:, None], y * sw, rcond=None)
    return float(coef[0]), float(coef[1])


def fit_ransac(pred: np.ndarray, ref_m: np.ndarray, space: str = "depth", tolerance: float = 0.06,
               hypotheses: int = 64, score_points: int = 2000, refine: int = 3, min_points: int = 50,
               seed: int = 0) -> Optional[Tuple[MetricFit, np.ndarray]]:
    """(fit, inlier mask over the given points): the affine with the most points within `tolerance`
    relative depth error, from `hypotheses` two-point samples scored on up to `score_points`
    points, then refined `refine` times by least squares on its inliers in the model's space,
    weighted so each residual counts as a relative depth error. None: too few points, or no sample
    gave a positive scale (depth farther for larger depth outputs, nearer for larger disparity).
    Both arrays are flat and finite; ref_m > 0."""
    x = pred.astype(np.float64).ravel()
    z = ref_m.astype(np.float64).ravel()
    if x.size < min_points:
        return None
    y = _in_space(z, space)
    # relative depth error from a residual in the model's space: dz/z = dy/z (depth), z*dy (disparity)
    weight = 1.0 / z ** 2 if space == "depth" else z ** 2
    rng = np.random.default_rng(seed)
    score = np.linspace(0, x.size - 1, min(score_points, x.size)).astype(np.int64)
    i, j = rng.integers(0, x.size, size=(2, hypotheses))
    dx = x[i] - x[j]
    ok = np.abs(dx) > 1e-9 * (np.abs(x[i]) + np.abs(x[j]) + 1e-12)
    s = np.where(ok, (y[i] - y[j]) / np.where(ok, dx, 1.0), 0.0)
    t = y[i] - s * x[i]
    keep = ok & (s > 0)
    if not keep.any():
        return None
    s, t = s[keep], t[keep]

    def inliers_of(scale, shift, points):
        with np.errstate(divide="ignore", invalid="ignore"):
            affine = np.multiply.outer(scale, x[points]) + np.expand_dims(shift, -1)
            metres = np.where(affine > 0, 1.0 / affine, np.inf) if space == "disparity" else affine
            return np.abs(metres - z[points]) <= tolerance * z[points]

    # Nearer points count more (1 / depth): where two planes both fit (a ramp ahead of the floor
    # the robot stands on: in disparity both are affine), the nearer one is the floor under the robot.
    best = int(np.argmax(inliers_of(s, t, score) @ (1.0 / z[score])))
    scale, shift = float(s[best]), float(t[best])
    everything = np.arange(x.size)
    inliers = inliers_of(scale, shift, everything)
    for _ in range(refine):
        if inliers.sum() < 2:
            return None
        scale, shift = _weighted_line(x[inliers], y[inliers], weight[inliers])
        if scale <= 0:
            return None
        inliers = inliers_of(scale, shift, everything)
    if inliers.sum() < min_points:
        return None
    fit = MetricFit(scale, shift, 0.0, 0.0, float(inliers.mean()), int(x.size), space)
    err = fit.apply(x[inliers]).astype(np.float64) - z[inliers]
    fit.rmse_m = float(np.sqrt(np.mean(err ** 2)))
    fit.abs_rel = float(np.mean(np.abs(err) / z[inliers]))
    return fit, inliers


class MetricTracker:
    """The per-frame verdicts of a metric mode: frames fitted, frames refused (and the last reason),
    and the last accepted fit's figures. `stats()` is what the views, stats.json, the ROS 2
    diagnostics and the summary show. A refused frame carries no metric depth (NaN, REP 117)."""

    mode = "metric"

    def __init__(self):
        self.fitted = 0
        self.refused = 0
        self.refusals: Dict[str, int] = collections.Counter()
        self.last_refusal = ""
        self.last: Dict[str, Any] = {}  # figures of the last frame, fitted or refused
        self.last_fit: Optional[MetricFit] = None

    def accept(self, fit: MetricFit, **figures: float) -> MetricFit:
        self.fitted += 1
        self.last_fit = fit
        self.last = {**fit.to_dict(), **figures, "refused_now": ""}
        return fit

    def refuse(self, why: str, **figures: float) -> None:
        self.refused += 1
        self.refusals[why.split(":")[0]] += 1
        self.last_refusal = why
        self.last = {**{k: v for k, v in self.last.items() if k not in figures}, **figures, "refused_now": why}

    def stats(self) -> Dict[str, Any]:
        return {"mode": self.mode, "fitted": self.fitted, "refused": self.refused, "last_refusal": self.last_refusal,
                "refusals": dict(self.refusals), **self.last}

    def overlay(self) -> str:
        """One line for the views."""
        if self.last.get("refused_now"):
            return f"metric {self.mode}: REFUSED ({self.last['refused_now']})"
        if self.last_fit is None:
            return f"metric {self.mode}: no fit yet"
        return f"metric {self.mode}: rmse {self.last['rmse_m'] * 100:.1f} cm" + self._overlay_extra()

    def _overlay_extra(self) -> str:
        return ""

    def fit(self, frame: Any, depth_frame: np.ndarray) -> Optional[MetricFit]:
        raise NotImplementedError


class SensorMetric(MetricTracker):
    """--metric sensor: the RealSense's aligned depth stream is the reference, every frame."""

    mode = "sensor"

    def __init__(self, space: str = "depth"):
        super().__init__()
        self.space = space

    def fit(self, frame: Any, depth_frame: np.ndarray) -> Optional[MetricFit]:
        if frame.aux_depth is None:
            self.refuse("no sensor depth with this frame")
            return None
        fit = fit_scale_shift(depth_frame, frame.aux_depth, space=self.space)
        if fit is None:
            self.refuse("too few valid sensor pixels (sensor blind or covered?)")
            return None
        return self.accept(fit)

    def _overlay_extra(self) -> str:
        return f", inliers {self.last['inlier_fraction']:.0%}"
