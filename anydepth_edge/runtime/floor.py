"""Metric depth without a depth sensor (`run --metric floor`): the floor's true depth follows from
the camera's height above it, its pitch and roll and its intrinsics (ray-plane intersection); the
model's affine-invariant output is fitted to it on the pixels that are floor, in the model's own
space (metric.fit_ransac), and the fit is applied to the whole frame. Reference section 12; the
idea is DNet's (Xue et al., IROS 2020). numpy only, Python 3.8.

Conventions (REP 103 for the angles, REP 118 for the depth): pitch > 0 looks down, roll > 0 lowers
the image's right side, both in degrees; the camera's optical frame is x right, y down, z forward,
so gravity in it is g = (sin(roll) cos(pitch), cos(roll) cos(pitch), sin(pitch)) and a pixel whose ray
r = ((u - cx) / fx, (v - cy) / fy, 1) meets the floor has z-depth height / (g . r).

Per frame: candidates are the pixels whose ray meets the floor within FLOOR_RANGE_M (below the
horizon), on a grid of at most FIT_POINTS; the floor is the candidates consistent with one affine
(RANSAC, then least squares on them); the fit is refused (the frame's metric depth is NaN, counted)
when the floor covers less than `min_floor_fraction` of the frame, when its residual exceeds
`max_residual`, or when the floor spans too little depth to fix a scale and a shift. Accepted fits
are smoothed over a short window (the median over `window` frames), which restarts on a jump.
"""

import collections
import math
from dataclasses import dataclass, replace
from typing import Any, Deque, Dict, Optional, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.runtime.metric import MetricFit, MetricTracker, fit_ransac

FLOOR_RANGE_M = (0.2, 30.0)  # floor pixels considered: nearer is the robot's own body, farther is noise
FIT_POINTS = 8000  # pixels on the fit's grid at most, whatever the frame size
MIN_DEPTH_SPAN = 1.25  # the floor inliers' 90th / 10th percentile of depth: less cannot fix scale and shift
# Of the floor pixels, the share whose pixel below (on the fit's grid) is floor too. A real floor is
# a connected region (~0.9 and more); noise that happens to line up on a wall is scattered (~0.1).
MIN_COHERENCE = 0.5


@dataclass
class FloorSettings:
    height_m: float
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    min_floor_fraction: float = 0.03  # of the frame's pixels (DNet: works above ~1 %)
    max_residual: float = 0.04  # mean relative depth error of the floor inliers
    tolerance: float = 0.06  # a pixel within this relative depth error of the fit is floor
    window: int = 5  # frames of smoothing
    jump: float = 0.15  # relative change of the median floor depth that restarts the smoothing

    def check(self) -> "FloorSettings":
        if not (math.isfinite(self.height_m) and 0.02 <= self.height_m <= 20.0):
            raise UserError(f"--camera-height {self.height_m:g}: give the lens's height above the floor in metres "
                            "(0.02 to 20)")
        for name, value in (("--camera-pitch", self.pitch_deg), ("--camera-roll", self.roll_deg)):
            if not (math.isfinite(value) and -89.0 <= value <= 89.0):
                raise UserError(f"{name} {value:g}: give degrees between -89 and 89 (pitch > 0 looks down)")
        if not 0.0 < self.min_floor_fraction < 1.0 or not 0.0 < self.max_residual < 1.0:
            raise UserError("floor fit limits: the floor fraction and the residual are fractions between 0 and 1")
        if self.window < 1:
            raise UserError(f"floor smoothing window {self.window}: give 1 frame or more")
        return self


def gravity_in_camera(pitch_deg: float, roll_deg: float) -> np.ndarray:
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return np.array([math.sin(r) * math.cos(p), math.cos(r) * math.cos(p), math.sin(p)])


def pitch_roll_from_quaternion(x: float, y: float, z: float, w: float) -> Tuple[float, float]:
    """(pitch, roll) in degrees of a REP 103 body (x forward, y left, z up; an IMU's orientation or a
    TF of the camera's body frame, not its optical frame) from its orientation in a gravity-aligned
    frame: pitch > 0 nose down, roll > 0 right side down, as `--camera-pitch` and `--camera-roll`."""
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError("orientation quaternion of zero length")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    roll = math.degrees(math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x)))))
    return pitch, roll


def grid_step(hw: Tuple[int, int], points: int = FIT_POINTS) -> int:
    return max(1, int(math.ceil(math.sqrt(hw[0] * hw[1] / points))))


def floor_depth(fx: float, fy: float, cx: float, cy: float, hw: Tuple[int, int], height_m: float,
                pitch_deg: float, roll_deg: float, step: int = 1) -> np.ndarray:
    """z-depth in metres of the floor plane at each pixel of every `step`-th row and column (pixel
    centres at integer coordinates, as K has them); NaN where the ray misses the floor (at or above
    the horizon) or meets it outside FLOOR_RANGE_M."""
    g = gravity_in_camera(pitch_deg, roll_deg)
    u = (np.arange(0, hw[1], step) - cx) / fx
    v = (np.arange(0, hw[0], step) - cy) / fy
    down = g[0] * u[None, :] + g[1] * v[:, None] + g[2]  # g . r for each pixel's ray
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(down > 0, height_m / down, np.nan)
    return np.where((z >= FLOOR_RANGE_M[0]) & (z <= FLOOR_RANGE_M[1]), z, np.nan)


class FloorMetric(MetricTracker):
    """--metric floor: the per-frame fit to the floor, its verdict and its smoothing. `camera` has
    `at(hw) -> Intrinsics or None` (runtime.camera.CameraModel); `space` is the model's output kind."""

    mode = "floor"

    def __init__(self, settings: FloorSettings, camera: Any, space: str = "depth"):
        super().__init__()
        self.settings = settings.check()
        self.camera, self.space = camera, space
        self.recent: Deque[MetricFit] = collections.deque(maxlen=settings.window)
        self.resets = 0
        self._floor: Dict[Any, np.ndarray] = {}

    def set_attitude(self, pitch_deg: float, roll_deg: float) -> None:
        """New pitch and roll (an IMU, a TF, a parameter change): the floor is recomputed."""
        self.settings = replace(self.settings, pitch_deg=float(pitch_deg), roll_deg=float(roll_deg)).check()

    def floor_at(self, hw: Tuple[int, int]) -> Optional[Tuple[np.ndarray, int]]:
        """(floor depth on the fit's grid, its step) for frames of size hw; None without intrinsics."""
        intr = self.camera.at(hw)
        if intr is None:
            return None
        s = self.settings
        step = grid_step(hw)
        key = (hw, intr.focal_centre, s.height_m, s.pitch_deg, s.roll_deg)
        if key not in self._floor:
            self._floor = {key: floor_depth(*intr.focal_centre, hw, s.height_m, s.pitch_deg, s.roll_deg, step)}
        return self._floor[key], step

    def fit(self, frame: Any, depth_frame: np.ndarray) -> Optional[MetricFit]:
        hw = depth_frame.shape[:2]
        floor = self.floor_at(hw)
        if floor is None:
            self.refuse("no camera intrinsics yet")
            return None
        ref, step = floor
        pred = depth_frame[::step, ::step]
        candidates = np.isfinite(ref) & np.isfinite(pred)
        pred_c, ref_c = pred[candidates], ref[candidates]
        found = fit_ransac(pred_c, ref_c, self.space, self.settings.tolerance)
        if found is None:
            self.refuse("too little floor: no part of the frame fits the floor's geometry", floor_fraction=0.0)
            return None
        fit, inliers = found
        floor_m = ref_c[inliers]
        floor_map = np.zeros(pred.shape, bool)
        floor_map[candidates] = inliers
        figures = {"floor_fraction": float(inliers.sum()) / pred.size, "resets": self.resets,
                   "coherence": _coherence(floor_map)}
        s = self.settings
        if figures["coherence"] < MIN_COHERENCE:
            self.refuse(f"too little floor: what fits is scattered ({figures['coherence']:.0%} connected), not a floor",
                        **figures)
            return None
        if figures["floor_fraction"] < s.min_floor_fraction:
            self.refuse(f"too little floor: {figures['floor_fraction']:.1%} of the frame < {s.min_floor_fraction:.0%}",
                        **figures, inlier_fraction=fit.inlier_fraction)
            return None
        if fit.abs_rel > s.max_residual:
            self.refuse(f"floor residual {fit.abs_rel:.1%} > {s.max_residual:.0%} (not flat, or a wrong pitch?)",
                        **figures, abs_rel=fit.abs_rel)
            return None
        lo, hi = np.percentile(floor_m, (10, 90))
        if hi < MIN_DEPTH_SPAN * lo:
            self.refuse(f"the floor spans too little depth ({lo:.2f} to {hi:.2f} m) to fix a scale and a shift",
                        **figures)
            return None
        smoothed = self._smoothed(fit, float(np.median(pred_c[inliers])))
        return self.accept(smoothed, **figures, frame_abs_rel=fit.abs_rel)

    def _smoothed(self, fit: MetricFit, pred_ref: float) -> MetricFit:
        """The median scale and shift of the recent accepted fits, restarted when this frame's floor
        depth at `pred_ref` (its median floor output) moves more than `jump` from the smoothed one."""
        if self.recent:
            current = _median_fit(self.recent)
            now, before = float(fit.apply(np.array([pred_ref]))[0]), float(current.apply(np.array([pred_ref]))[0])
            if not (math.isfinite(before) and abs(now - before) <= self.settings.jump * before):
                self.recent.clear()
                self.resets += 1
        self.recent.append(fit)
        smoothed = _median_fit(self.recent)
        smoothed.rmse_m, smoothed.abs_rel, smoothed.inlier_fraction, smoothed.points = (
            fit.rmse_m, fit.abs_rel, fit.inlier_fraction, fit.points)
        return smoothed

    def _overlay_extra(self) -> str:
        return f", floor {self.last['floor_fraction']:.0%} of the frame, residual {self.last['abs_rel']:.1%}"


def _coherence(floor_map: np.ndarray) -> float:
    above = floor_map[:-1]
    return float((above & floor_map[1:]).sum()) / max(int(above.sum()), 1)


def _median_fit(fits) -> MetricFit:
    first = fits[-1]
    return MetricFit(float(np.median([f.scale for f in fits])), float(np.median([f.shift for f in fits])),
                     first.rmse_m, first.abs_rel, first.inlier_fraction, first.points, first.space)
