"""Does a model's depth agree with the FP32 reference? The reference bundle written at export,
the metrics, the thresholds per precision and the verdict. numpy only (the robot has no PyTorch),
Python 3.8.

The depth is affine-invariant, so each prediction is first fitted to the reference by least-squares
scale and shift; then AbsRel, delta1 and the error RMSE over the reference's standard deviation
(a flat or noisy map cannot pass it: it is 1 for a constant prediction) are computed, along with
the NaN/Inf count and the largest raw difference.

Thresholds (why these numbers). Measured on ViT-S 256 exports (random weights, the photo):
FP16 emulated (every op rounded to FP16, FP32 inside the pins) AbsRel 1.1e-3 (SDT) / 1.7e-3 (DPT),
RMSE/std 0.008 / 0.0035; the strongly typed FP16 graph on ONNX Runtime CPU 1.3e-5 / 4.2e-4 (ORT's
CPU provider computes most FP16 nodes in FP32 behind inserted Casts, so it is the optimistic
bound). Real FP16 on an H100 gave up to 1.5x the emulated error (DPT AbsRel 7.1e-3), and
TensorRT's kernels may differ again. The FP16 limits leave ~3x over the worst real figure:
AbsRel 0.02, delta1 0.98, RMSE/std 0.15. The FP32 rung is built without TF32 (true FP32), so its
limits are five times tighter. The known TensorRT failures are far outside both: NaN, a cosine of
0.02 to PyTorch (#4742), a mean abs error of 0.42 on a map of std ~0.3 (#4558).
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from anydepth_edge.errors import UserError

FLOOR_FRACTION = 0.05  # AbsRel and delta1 count pixels whose reference is >= 5% of its median


@dataclass(frozen=True)
class Limits:
    abs_rel: float
    delta1: float
    rmse_over_std: float


LIMITS: Dict[str, Limits] = {
    "fp32": Limits(abs_rel=4e-3, delta1=0.996, rmse_over_std=0.03),
    "fp16": Limits(abs_rel=2e-2, delta1=0.98, rmse_over_std=0.15),
}


@dataclass
class Bundle:
    names: List[str]
    inputs: np.ndarray  # (N, 3, H, W) float32, normalised
    outputs: np.ndarray  # (N, 1, H, W) float32, FP32 ONNX Runtime depth

    def write(self, path) -> Path:
        import io

        from anydepth_edge.fileio import write_bytes_atomic

        buf = io.BytesIO()
        np.savez_compressed(buf, names=np.array(self.names), inputs=self.inputs.astype(np.float32),
                            outputs=self.outputs.astype(np.float32))
        return write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def read(cls, path) -> "Bundle":
        """numpy alone, no pickle (allow_pickle=False). Anything but >= 2 named float inputs with finite,
        non-flat depth of their size is refused: a bundle that cannot fail an engine checks nothing."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reference bundle {path.name} not found beside the export: re-export it "
                            "(anydepth-edge export ... --force) to get one")
        try:
            with np.load(path, allow_pickle=False) as z:
                names, inputs, outputs = z["names"], z["inputs"], z["outputs"]
        except (ValueError, KeyError, OSError, EOFError) as e:
            raise UserError(f"reference bundle {path} is unreadable ({e}): re-export") from None
        problem = bundle_problem(names, inputs, outputs)
        if problem:
            raise UserError(f"reference bundle {path} {problem}: re-export")
        return cls([str(n) for n in names], inputs, outputs)


MIN_INPUTS = 2  # one input cannot show that an engine's depth follows its input
# References must differ from each other by this many times the RMSE/std limit: an engine's depth
# within the limit of its own reference is then far from every other (measured on random-weight
# ViT-S exports at 64 and 256 px: 0.62 to 0.86, over twice the 0.3 this asks at FP16)
SEPARATION_FACTOR = 2.0


def bundle_problem(names: np.ndarray, inputs: np.ndarray, outputs: np.ndarray) -> str:
    """Why these arrays are not a usable bundle ("" when they are)."""
    if names.ndim != 1 or names.dtype.kind not in "US":
        return f"has names of shape {names.shape} ({names.dtype}), not a list of strings"
    if len(names) < MIN_INPUTS:
        return f"has {len(names)} input(s): at least {MIN_INPUTS} are needed"
    if len(set(names.tolist())) != len(names):
        return f"has duplicate input names ({', '.join(map(str, names))})"
    if inputs.dtype.kind != "f" or outputs.dtype.kind != "f":
        return f"holds {inputs.dtype} inputs / {outputs.dtype} depth, not floating point"
    if inputs.ndim != 4 or inputs.shape[:2] != (len(names), 3):
        return f"has inputs of shape {inputs.shape}, not ({len(names)}, 3, H, W)"
    if outputs.shape != (len(names), 1) + inputs.shape[2:]:
        return f"has depth of shape {outputs.shape} for inputs of shape {inputs.shape}"
    with np.errstate(all="ignore"):
        if not (np.isfinite(inputs).all() and np.isfinite(outputs.astype(np.float64)).all()):
            return "holds NaN or Inf"
        flat = [str(n) for n, o in zip(names, outputs) if not o.std() > 0]
    if flat:
        return f"has a flat reference depth for {', '.join(flat)}"
    return ""


def fit_affine(pred: np.ndarray, ref: np.ndarray):
    """Least-squares scale s and shift t minimising |s * pred + t - ref| over finite pixels."""
    p, r = pred.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(r)
    if ok.sum() < 2:
        return 1.0, 0.0
    a = np.stack([p[ok], np.ones(int(ok.sum()))], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, r[ok], rcond=None)
    return float(s), float(t)


def _finite(x: float) -> Optional[float]:
    """Strict-JSON figures: NaN and Inf become None (and count as failures)."""
    return float(x) if np.isfinite(x) else None


def depth_metrics(pred: np.ndarray, ref: np.ndarray) -> Dict[str, Any]:
    pred, ref = np.asarray(pred, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    if pred.size != ref.size:
        raise UserError(f"depth of {pred.size} pixels compared with a reference of {ref.size}")
    non_finite = int(np.size(pred) - np.isfinite(pred).sum())
    out: Dict[str, Any] = {"non_finite": non_finite}
    if non_finite:
        return {**out, "max_abs": None, "abs_rel": None, "delta1": None, "rmse_over_std": None}
    with np.errstate(all="ignore"):
        s, t = fit_affine(pred, ref)
        fitted = s * pred + t
        std = float(ref.std())
        rmse = float(np.sqrt(np.mean((fitted - ref) ** 2)))
        # Relative figures over pixels with depth: those at the ReLU floor (0.001) carry none, and a
        # 1e-3 absolute difference there would read as 100% relative error.
        valid = ref >= FLOOR_FRACTION * float(np.median(ref))
        r, f = ref[valid], np.maximum(fitted[valid], 1e-6)
        ratio = np.maximum(f / r, r / f)
        figures = {"max_abs": np.abs(pred - ref).max(), "abs_rel": np.mean(np.abs(f - r) / r) if r.size else np.nan,
                   "delta1": np.mean(ratio < 1.25) if r.size else np.nan,
                   "rmse_over_std": rmse / std if std > 0 else np.nan, "scale": s, "shift": t}
    return {**out, **{k: _finite(v) for k, v in figures.items()}}


def separation(outputs: np.ndarray) -> Optional[float]:
    """How far apart a bundle's references are: the smallest RMSE/std of one reference fitted to
    another. An engine is only shown to follow its input when this is well above the limits."""
    values = [depth_metrics(outputs[i], outputs[j])["rmse_over_std"]
              for i in range(len(outputs)) for j in range(len(outputs)) if i != j]
    return None if not values or any(v is None for v in values) else min(values)


@dataclass
class Verdict:
    precision: str  # the limits used (fp16 / fp32)
    limits: Dict[str, float]
    per_input: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    passed: bool = False
    why: str = ""
    separation: Optional[float] = None  # of the bundle's references (RMSE/std); see separation()

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def worst(self, key: str) -> Optional[float]:
        values = [m.get(key) for m in self.per_input.values()]
        if any(v is None for v in values):
            return None
        return (min if key == "delta1" else max)(values) if values else None


def _beyond(value: Optional[float], limit: float, at_least: bool = False) -> bool:
    """True when `value` fails its limit; a missing (None/NaN) figure always fails."""
    return not (value is not None and (value >= limit if at_least else value <= limit))


def limits_for(precision: str) -> Limits:
    return LIMITS["fp16" if precision.startswith("fp16") else "fp32"]


def judge(per_input: Dict[str, Dict[str, Any]], precision: str, bundle_problems: Sequence[str] = ()) -> Verdict:
    limits = limits_for(precision)
    v = Verdict(precision, asdict(limits), per_input)
    problems = list(bundle_problems) or (["no inputs to check"] if not per_input else [])
    for name, m in per_input.items():
        if m["non_finite"]:
            problems.append(f"{name}: {m['non_finite']} NaN/Inf pixels")
            continue
        if m.get("closer_to"):  # first: it explains the figures that follow
            problems.append(f"{name}: its depth matches the reference of {m['closer_to']} better than its own "
                            "(the engine does not follow its input)")
        if m.get("scale") is not None and m["scale"] < 0:
            problems.append(f"{name}: depth inverted (near and far swapped: fitted scale {m['scale']:.3g})")
        if _beyond(m["abs_rel"], limits.abs_rel):
            problems.append(f"{name}: AbsRel {_fmt(m['abs_rel'], '.2e')} > {limits.abs_rel:.0e}")
        if _beyond(m["delta1"], limits.delta1, at_least=True):
            problems.append(f"{name}: delta1 {_fmt(m['delta1'], '.4f')} < {limits.delta1}")
        if _beyond(m["rmse_over_std"], limits.rmse_over_std):
            problems.append(f"{name}: RMSE/std {_fmt(m['rmse_over_std'], '.3f')} > {limits.rmse_over_std}")
    v.passed = not problems
    v.why = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") if problems else "within the limits"
    return v


def _fmt(value: Optional[float], spec: str) -> str:
    return "undefined" if value is None else format(value, spec)


def verify_backend(backend, bundle: Bundle, precision: str) -> Verdict:
    """Run `backend` on every bundle input and judge its depth against the FP32 reference; each
    depth must also be closer to its own input's reference than to any other's."""
    per_input, preds = {}, []
    for name, x, ref in zip(bundle.names, bundle.inputs, bundle.outputs):
        pred = np.array(backend.infer(x[None].astype(np.float32)), dtype=np.float32, copy=True).reshape(ref.shape)
        per_input[name] = depth_metrics(pred, ref)
        preds.append(pred)
    for i, (name, pred) in enumerate(zip(bundle.names, preds)):
        own = per_input[name]["rmse_over_std"]
        for j, other in enumerate(bundle.names):
            theirs = depth_metrics(pred, bundle.outputs[j])["rmse_over_std"] if j != i else None
            if theirs is not None and (own is None or theirs < own):
                per_input[name]["closer_to"] = other
                break
    separated, limit = separation(bundle.outputs), SEPARATION_FACTOR * limits_for(precision).rmse_over_std
    weak = [] if not _beyond(separated, limit, at_least=True) else [
        f"the bundle's references are too alike (RMSE/std {_fmt(separated, '.3f')} between them, < {limit:.2f}) to show "
        "that the engine follows its input: re-export, or verify --images DIR with distinct photos"]
    verdict = judge(per_input, precision, weak + ([] if len(bundle.names) >= MIN_INPUTS else
                                                  [f"{len(bundle.names)} input(s): at least {MIN_INPUTS} are needed"]))
    verdict.separation = separated
    return verdict
