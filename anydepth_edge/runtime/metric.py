"""Metric depth from the affine-invariant prediction: fit depth_m ~= scale * pred + shift to the
sensor's valid pixels each frame, robustly (Huber-weighted least squares, scale from the MAD),
and report how well it fits. numpy only, Python 3.8.

A disparity model (Depth Anything V2's head) is affine-invariant in *inverse* depth, so it is fit
in its own space: 1 / depth_m ~= scale * pred + shift, and metres are 1 / (scale * pred + shift)."""

from dataclasses import asdict, dataclass
from typing import Dict, Optional

import numpy as np

HUBER_K = 1.345


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
