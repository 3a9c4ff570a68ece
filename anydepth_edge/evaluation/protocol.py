"""The zero-shot affine-invariant protocol of MiDaS (Ranftl et al., TPAMI 2022, "Towards Robust
Monocular Depth Estimation") that Depth Anything V1/V2 and AnyDepth report their NYUv2 / KITTI /
ETH3D / ScanNet / DIODE tables with. Per image:

1. the model's output is resized to the ground truth's size (bilinear);
2. the valid pixels are those with ground truth in the dataset's (min, max] depth cap, inside its
   standard crop (NYUv2: Eigen et al. 2014's, rows 45..470 and columns 41..600 of 480x640; KITTI:
   Garg et al. 2016's, rows 40.8..99.2 % and columns 3.6..96.4 % of the frame);
3. a scale s and shift t are fitted by least squares on the valid pixels in the model's own space:
   depth models `s * out + t ~= depth`; disparity models (Depth Anything V2's head)
   `s * out + t ~= 1 / depth`, the aligned disparity then clipped to >= 1 / max and inverted, as
   MiDaS' evaluation does, so errors are compared in depth;
4. the aligned depth is clipped to the cap, and AbsRel = mean |d - g| / g, RMSE = sqrt(mean (d - g)^2),
   delta_k = share with max(d / g, g / d) < 1.25^k (k = 1, 2, 3) are computed over the valid pixels.

The dataset's figures are the means of the per-image figures. numpy only, Python 3.8.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

METRICS = ("abs_rel", "rmse", "delta1", "delta2", "delta3")


def eigen_crop(hw: Tuple[int, int]) -> np.ndarray:
    """NYUv2's Eigen crop, defined on 480x640 and scaled to other sizes of the same frames."""
    h, w = hw
    mask = np.zeros(hw, bool)
    mask[round(45 * h / 480):round(471 * h / 480), round(41 * w / 640):round(601 * w / 640)] = True
    return mask


def garg_crop(hw: Tuple[int, int]) -> np.ndarray:
    h, w = hw
    mask = np.zeros(hw, bool)
    mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    return mask


def no_crop(hw: Tuple[int, int]) -> np.ndarray:
    return np.ones(hw, bool)


@dataclass(frozen=True)
class DatasetRule:
    name: str
    min_depth: float
    max_depth: float
    crop: Callable[[Tuple[int, int]], np.ndarray]
    crop_name: str


RULES: Dict[str, DatasetRule] = {
    "nyu": DatasetRule("NYUv2 (Eigen test split, 654 images)", 1e-3, 10.0, eigen_crop, "Eigen crop"),
    "kitti": DatasetRule("KITTI (Eigen test split, projected LiDAR)", 1e-3, 80.0, garg_crop, "Garg crop"),
    "folder": DatasetRule("a folder of RGB + depth pairs", 1e-3, 80.0, no_crop, "no crop"),
}


def valid_mask(gt: np.ndarray, rule: DatasetRule) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt) & (gt > rule.min_depth) & (gt <= rule.max_depth) & rule.crop(gt.shape)


def align(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, space: str, rule: DatasetRule) -> Optional[np.ndarray]:
    """The aligned depth (at gt's size), or None when fewer than 2 valid pixels or a flat output
    leave scale and shift undetermined."""
    x = pred[valid].astype(np.float64)
    y = gt[valid].astype(np.float64)
    if x.size < 2 or np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return None
    target = 1.0 / y if space == "disparity" else y
    a = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, target, rcond=None)
    aligned = pred.astype(np.float64) * s + t
    if space == "disparity":
        aligned = 1.0 / np.maximum(aligned, 1.0 / rule.max_depth)
    return np.clip(aligned, rule.min_depth, rule.max_depth)


def image_metrics(depth: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> Dict[str, float]:
    d, g = depth[valid].astype(np.float64), gt[valid].astype(np.float64)
    ratio = np.maximum(d / g, g / d)
    return {"abs_rel": float(np.mean(np.abs(d - g) / g)), "rmse": float(np.sqrt(np.mean((d - g) ** 2))),
            "delta1": float(np.mean(ratio < 1.25)), "delta2": float(np.mean(ratio < 1.25 ** 2)),
            "delta3": float(np.mean(ratio < 1.25 ** 3))}


def evaluate_image(pred: np.ndarray, gt: np.ndarray, space: str, rule: DatasetRule) -> Optional[Dict[str, float]]:
    """One image's metrics under the protocol; `pred` already at gt's size. None: nothing to score."""
    valid = valid_mask(gt, rule)
    depth = align(pred, gt, valid, space, rule)
    if depth is None:
        return None
    figures = image_metrics(depth, gt, valid)
    figures["valid_pixels"] = int(valid.sum())
    return figures


def mean_metrics(per_image) -> Dict[str, Optional[float]]:
    rows = [r for r in per_image if r is not None]
    return {k: (float(np.mean([r[k] for r in rows])) if rows else None) for k in METRICS}
