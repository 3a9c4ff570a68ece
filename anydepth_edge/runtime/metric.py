"""Metric depth from the affine-invariant prediction: fit depth_m ~= scale * pred + shift to the
sensor's valid pixels each frame, robustly (Huber-weighted least squares, scale from the MAD),
and report how well it fits. numpy only, Python 3.8."""

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

    def apply(self, pred: np.ndarray) -> np.ndarray:
        return np.maximum(pred * self.scale + self.shift, 0.0).astype(np.float32)

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


def fit_scale_shift(pred: np.ndarray, sensor_m: np.ndarray, min_depth: float = 0.1, max_depth: float = 10.0,
                    max_points: int = 20000, iters: int = 6, min_points: int = 50) -> Optional[MetricFit]:
    """Robust fit on pixels where the sensor has a reading in [min_depth, max_depth]; None when
    too few are valid (sensor blind, lens covered)."""
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
    rmse = float(np.sqrt(np.mean(r[inliers] ** 2)))
    abs_rel = float(np.mean(np.abs(r[inliers]) / y[inliers]))
    return MetricFit(float(coef[0]), float(coef[1]), rmse, abs_rel, float(inliers.mean()), int(x.size))
