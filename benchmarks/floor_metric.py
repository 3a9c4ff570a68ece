"""The figures of docs/metric.md: what `--metric floor` gets right and wrong on rendered scenes with
exact depth (tests/scenes.py), what a pitch error costs, and what the fit costs per frame.

    python benchmarks/floor_metric.py            # Markdown tables on stdout

Nothing here needs a model: the "model output" is a known affine of the rendered truth (1 % noise),
so the figures are the fit's own, the floor geometry's best case. Real model error comes on top.
"""

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from scenes import Patch, Scene, abs_rel_delta1, flat_floor, model_output, ramp, room, stairs, wall  # noqa: E402

from anydepth_edge.runtime.camera import CameraModel  # noqa: E402
from anydepth_edge.runtime.floor import FloorMetric, FloorSettings  # noqa: E402

SPACES = ("depth", "disparity")


def fit_frame(scene: Scene, space: str, pitch_error: float = 0.0, seed: int = 0):
    truth, _ = scene.render()
    pred = model_output(truth, space, noise=0.01, seed=seed)
    metric = FloorMetric(FloorSettings(scene.height, scene.pitch_deg + pitch_error, scene.roll_deg),
                         CameraModel(scene.intrinsics), space)
    fit = metric.fit(None, pred)
    return (None if fit is None else fit.apply(pred)), truth, metric


def failure_modes():
    def scene_of(**kw):
        return Scene(height=1.0, pitch_deg=15.0, **kw)

    cases = []
    s = room(scene_of(), [(-0.8, 0.2, 3.0, 4.0, 0.8), (0.5, 1.5, 2.0, 2.6, 0.5)])
    cases.append(("room: floor, two boxes, wall at 12 m", s))
    s = room(scene_of(roll_deg=5.0))
    cases.append(("the same, camera rolled 5 deg", s))
    s = Scene(height=1.0, pitch_deg=0.0)
    s.patches = [flat_floor(s), wall(1.8)]
    cases.append(("too little floor: level camera, wall at 1.8 m", s))
    s = scene_of()
    s.patches = [flat_floor(s, until=2.5), *stairs(s, 2.5, 0.17, 0.28, 10), wall(12.0)]
    cases.append(("stairs up from 2.5 m", s))
    s = scene_of()
    s.patches = [flat_floor(s, until=3.0), ramp(s, 3.0, 8.0), wall(12.0)]
    cases.append(("ramp of 8 deg from 3 m", s))
    s = scene_of()
    s.patches = [ramp(s, 0.0, 5.0), wall(12.0)]
    cases.append(("robot on a 5 deg slope (= pitch 5 deg off)", s))
    print("| scene | model output | AbsRel | delta1 | floor found | verdict |")
    print("|---|---|---:|---:|---:|---|")
    for name, scene in cases:
        for space in SPACES:
            metres, truth, metric = fit_frame(scene, space)
            if metres is None:
                print(f"| {name} | {space} | - | - | - | refused: {metric.last_refusal} |")
                continue
            abs_rel, delta1 = abs_rel_delta1(metres, truth)
            print(f"| {name} | {space} | {abs_rel:.3f} | {delta1:.3f} | {metric.last['floor_fraction']:.0%} | "
                  f"metres (residual {metric.last['abs_rel']:.1%}) |")


def ray_error(height: float, distance: float, error_deg: float) -> float:
    """Relative error of one floor point's distance when the pitch is `error_deg` too far down."""
    angle = math.atan2(height, distance)
    return height / math.tan(angle + math.radians(error_deg)) / distance - 1.0


def _hits(scene: Scene, index: int) -> np.ndarray:
    """Pixels where patch `index` is what the camera sees."""
    alone = Scene(scene.height, scene.pitch_deg, scene.roll_deg, scene.hw, scene.hfov_deg, [scene.patches[index]])
    truth, _ = scene.render()
    return np.isfinite(alone.render()[0]) & np.isclose(alone.render()[0], truth)


def pitch_sensitivity():
    print("| camera height | pitch | target | floor ray at the target | fitted frame, depth model | "
          "fitted frame, disparity model |")
    print("|---:|---:|---:|---:|---:|---:|")
    for height, pitch in ((0.3, 5.0), (0.5, 10.0), (1.2, 15.0)):
        for target in (2.0, 5.0):
            cells = []
            for space in SPACES:
                s = Scene(height=height, pitch_deg=pitch)
                s.patches = [flat_floor(s), Patch((0, 0, 1), target, (-0.5, -5.0, target), (0.5, height, target))]
                s.patches += [wall(15.0)]
                truth, _ = s.render()
                face = _hits(s, 1)
                errors = []
                for sign in (1.0, -1.0):
                    metres, _, _ = fit_frame(s, space, pitch_error=sign)
                    ratio = metres[face] / truth[face] if metres is not None else np.array([np.nan])
                    errors.append(float(np.median(ratio)) - 1.0)
                cells.append(f"{errors[0]:+.1%} / {errors[1]:+.1%}")
            ray = f"{ray_error(height, target, 1.0):+.1%} / {ray_error(height, target, -1.0):+.1%}"
            print(f"| {height} m | {pitch:g} deg | {target:g} m | {ray} | {cells[0]} | {cells[1]} |")


def frame_cost():
    print("| frame | fit grid | depth model ms | disparity model ms |")
    print("|---|---:|---:|---:|")
    for hw in ((256, 256), (512, 512), (480, 640), (720, 1280)):
        cells = []
        for space in SPACES:
            s = room(Scene(height=1.0, pitch_deg=15.0, hw=hw), [(-0.8, 0.2, 3.0, 4.0, 0.8)])
            truth, _ = s.render()
            pred = model_output(truth, space)
            metric = FloorMetric(FloorSettings(1.0, 15.0), CameraModel(s.intrinsics), space)
            metric.fit(None, pred)  # the floor's geometry is made once per frame size
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                fit = metric.fit(None, pred)
                fit.apply(pred)
                times.append((time.perf_counter() - t0) * 1000.0)
            cells.append(f"{np.median(times):.1f}")
        grid = metric.floor_at(hw)[0].size
        print(f"| {hw[1]}x{hw[0]} | {grid} px | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    print("## Per failure mode (camera 1 m high, pitch 15 deg, 70 deg HFOV, 1 % model noise)\n")
    failure_modes()
    print("\n## 1 degree of pitch error (assumed +1 deg / -1 deg off): range error at the target\n")
    pitch_sensitivity()
    print("\n## Fit cost per frame (this CPU, one core busy; fit + apply, median of 20)\n")
    frame_cost()
