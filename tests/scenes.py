"""Rendered scenes with exact depth, for the metric and eval tests: a pinhole camera at a known
height, pitch and roll above a floor, with boxes, walls, a ramp or stairs, ray-cast to the true
z-depth of every pixel; and "model outputs" made from that truth by a known affine (in depth or in
disparity) plus noise and outliers.

The camera's rotation is built here from rotation matrices, independently of floor.py's gravity
formula, so a wrong sign convention there fails the tests. World: X right, Y down (gravity), Z
forward along the floor; the camera at the origin, the floor at Y = height.
"""

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from anydepth_edge.runtime.camera import Intrinsics


@dataclass
class Patch:
    """A planar piece of the scene: points X with n . X = d inside the box lo <= X <= hi."""
    n: Tuple[float, float, float]
    d: float
    lo: Tuple[float, float, float] = (-np.inf, -np.inf, -np.inf)
    hi: Tuple[float, float, float] = (np.inf, np.inf, np.inf)
    floor: bool = False


@dataclass
class Scene:
    height: float = 1.0
    pitch_deg: float = 15.0
    roll_deg: float = 0.0
    hw: Tuple[int, int] = (240, 320)
    hfov_deg: float = 70.0
    patches: List[Patch] = field(default_factory=list)

    @property
    def intrinsics(self) -> Intrinsics:
        h, w = self.hw
        f = (w / 2) / math.tan(math.radians(self.hfov_deg) / 2)
        return Intrinsics.pinhole(w, h, f, f, (w - 1) / 2, (h - 1) / 2)

    def rotation(self) -> np.ndarray:
        """Camera -> world: roll about the optical axis, then pitch down about the camera's x axis."""
        p, r = math.radians(self.pitch_deg), math.radians(self.roll_deg)
        pitch = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
        roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        return pitch @ roll

    def render(self) -> Tuple[np.ndarray, np.ndarray]:
        """(z-depth in metres, floor mask) per pixel; inf where nothing is hit."""
        h, w = self.hw
        fx, fy, cx, cy = self.intrinsics.focal_centre
        u, v = np.meshgrid((np.arange(w) - cx) / fx, (np.arange(h) - cy) / fy)
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ self.rotation().T  # world directions, camera z = 1
        depth = np.full((h, w), np.inf)
        floor = np.zeros((h, w), bool)
        for patch in self.patches:
            n = np.array(patch.n, float)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = patch.d / (rays @ n)
            points = rays * t[..., None]
            inside = (t > 1e-6) & np.all((points >= np.array(patch.lo) - 1e-9) & (points <= np.array(patch.hi) + 1e-9), -1)
            nearer = inside & (t < depth)
            depth = np.where(nearer, t, depth)
            floor = np.where(nearer, patch.floor, floor)
        return depth, floor


def flat_floor(scene: Scene, until: float = np.inf) -> Patch:
    return Patch((0, 1, 0), scene.height, hi=(np.inf, np.inf, until), floor=True)


def wall(z: float) -> Patch:
    return Patch((0, 0, 1), z)


def box(scene: Scene, x0: float, x1: float, z0: float, z1: float, height: float) -> List[Patch]:
    top = scene.height - height
    lo, hi = (x0, top, z0), (x1, scene.height, z1)
    return [Patch((0, 0, 1), z0, lo, hi), Patch((0, 1, 0), top, lo, hi), Patch((1, 0, 0), x0, lo, hi),
            Patch((1, 0, 0), x1, lo, hi)]


def ramp(scene: Scene, start: float, slope_deg: float) -> Patch:
    """The floor rising (slope > 0) from Z = start: Y = height - tan(slope) (Z - start)."""
    k = math.tan(math.radians(slope_deg))
    n = np.array([0.0, 1.0, k])
    return Patch(tuple(n), scene.height + k * start, lo=(-np.inf, -np.inf, start), floor=True)


def stairs(scene: Scene, start: float, rise: float, tread: float, steps: int) -> List[Patch]:
    patches = []
    for k in range(steps):
        z0, y = start + k * tread, scene.height - k * rise
        patches.append(Patch((0, 0, 1), z0, (-np.inf, y - rise, z0), (np.inf, y, z0)))  # riser
        patches.append(Patch((0, 1, 0), y - rise, (-np.inf, -np.inf, z0), (np.inf, np.inf, z0 + tread), floor=True))
    return patches


def room(scene: Scene, boxes: Sequence[Tuple[float, float, float, float, float]] = (), back: float = 12.0) -> Scene:
    """A floor to a back wall, with boxes (x0, x1, z0, z1, height)."""
    scene.patches = [flat_floor(scene), wall(back)] + [p for b in boxes for p in box(scene, *b)]
    return scene


def model_output(depth: np.ndarray, space: str = "depth", scale: float = 0.37, shift: float = 0.8,
                 noise: float = 0.01, outliers: float = 0.0, seed: int = 0) -> np.ndarray:
    """What an affine-invariant model would give: the depth with a relative error N(0, noise), then
    scale * depth + shift (space depth) or scale / depth + shift (disparity), with a share
    `outliers` of the pixels replaced by uniform values over the output's range."""
    rng = np.random.default_rng(seed)
    seen = depth * (1.0 + noise * rng.standard_normal(depth.shape))
    out = base = scale * (seen if space == "depth" else 1.0 / seen) + shift
    if outliers:
        pick = rng.random(depth.shape) < outliers
        out = np.where(pick, rng.uniform(base.min(), base.max(), depth.shape), out)
    return out.astype(np.float32)


def abs_rel_delta1(estimate: np.ndarray, truth: np.ndarray, mask: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """AbsRel and delta1 (share within 1.25x) over the pixels with finite truth and estimate."""
    valid = np.isfinite(truth) & np.isfinite(estimate) & (truth > 0) & (estimate > 0)
    if mask is not None:
        valid &= mask
    e, t = estimate[valid].astype(np.float64), truth[valid].astype(np.float64)
    return float(np.mean(np.abs(e - t) / t)), float(np.mean(np.maximum(e / t, t / e) < 1.25))
