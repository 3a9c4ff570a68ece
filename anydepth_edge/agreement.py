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
from typing import Any, Dict, List, Optional

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

        from anydepth_edge.artifacts import write_bytes_atomic

        buf = io.BytesIO()
        np.savez_compressed(buf, names=np.array(self.names), inputs=self.inputs.astype(np.float32),
                            outputs=self.outputs.astype(np.float32))
        return write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def read(cls, path) -> "Bundle":
        """numpy alone, no pickle (allow_pickle=False)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reference bundle {path.name} not found beside the export: re-export it "
                            "(anydepth-edge export ... --force) to get one")
        try:
            with np.load(path, allow_pickle=False) as z:
                bundle = cls([str(n) for n in z["names"]], z["inputs"], z["outputs"])
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"reference bundle {path} is unreadable ({e}): re-export") from None
        if bundle.inputs.ndim != 4 or bundle.outputs.shape[0] != bundle.inputs.shape[0]:
            raise UserError(f"reference bundle {path} has shapes {bundle.inputs.shape} / {bundle.outputs.shape}")
        return bundle


def fit_affine(pred: np.ndarray, ref: np.ndarray):
    """Least-squares scale s and shift t minimising |s * pred + t - ref| over finite pixels."""
    p, r = pred.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(r)
    if ok.sum() < 2:
        return 1.0, 0.0
    a = np.stack([p[ok], np.ones(int(ok.sum()))], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, r[ok], rcond=None)
    return float(s), float(t)


def depth_metrics(pred: np.ndarray, ref: np.ndarray) -> Dict[str, float]:
    pred, ref = np.asarray(pred, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    if pred.size != ref.size:
        raise UserError(f"depth of {pred.size} pixels compared with a reference of {ref.size}")
    non_finite = int(np.size(pred) - np.isfinite(pred).sum())
    out: Dict[str, float] = {"non_finite": non_finite}
    if non_finite:
        return {**out, "max_abs": None, "abs_rel": None, "delta1": None, "rmse_over_std": None}
    s, t = fit_affine(pred, ref)
    fitted = s * pred + t
    std = float(ref.std())
    rmse = float(np.sqrt(np.mean((fitted - ref) ** 2)))
    # Relative figures over pixels with depth: those at the ReLU floor (0.001) carry none, and a
    # 1e-3 absolute difference there would read as 100% relative error.
    valid = ref >= FLOOR_FRACTION * float(np.median(ref))
    r, f = ref[valid], np.maximum(fitted[valid], 1e-6)
    ratio = np.maximum(f / r, r / f)
    return {**out, "max_abs": float(np.abs(pred - ref).max()), "abs_rel": float(np.mean(np.abs(f - r) / r)),
            "delta1": float(np.mean(ratio < 1.25)), "rmse_over_std": rmse / std if std > 0 else float("inf"),
            "scale": s, "shift": t}


@dataclass
class Verdict:
    precision: str  # the limits used (fp16 / fp32)
    limits: Dict[str, float]
    per_input: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    passed: bool = False
    why: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def worst(self, key: str) -> Optional[float]:
        values = [m.get(key) for m in self.per_input.values()]
        if any(v is None for v in values):
            return None
        return (min if key == "delta1" else max)(values) if values else None


def judge(per_input: Dict[str, Dict[str, Any]], precision: str) -> Verdict:
    limits = LIMITS["fp16" if precision.startswith("fp16") else "fp32"]
    v = Verdict(precision, asdict(limits), per_input)
    problems = []
    for name, m in per_input.items():
        if m["non_finite"]:
            problems.append(f"{name}: {m['non_finite']} NaN/Inf pixels")
            continue
        if m["abs_rel"] > limits.abs_rel:
            problems.append(f"{name}: AbsRel {m['abs_rel']:.2e} > {limits.abs_rel:.0e}")
        if m["delta1"] < limits.delta1:
            problems.append(f"{name}: delta1 {m['delta1']:.4f} < {limits.delta1}")
        if not m["rmse_over_std"] <= limits.rmse_over_std:
            problems.append(f"{name}: RMSE/std {m['rmse_over_std']:.3f} > {limits.rmse_over_std}")
    v.passed = not problems
    v.why = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") if problems else "within the limits"
    return v


def verify_backend(backend, bundle: Bundle, precision: str) -> Verdict:
    """Run `backend` on every bundle input and judge its depth against the FP32 reference."""
    per_input = {}
    for name, x, ref in zip(bundle.names, bundle.inputs, bundle.outputs):
        pred = np.array(backend.infer(x[None].astype(np.float32)), dtype=np.float32, copy=True)
        per_input[name] = depth_metrics(pred.reshape(ref.shape), ref)
    return judge(per_input, precision)


def verdict_table(verdicts: Dict[str, Verdict], title: str):
    """Rows: rung or file x input; the figures and pass/fail (for people)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title)
    for col in ("model", "input", "NaN/Inf", "max abs", "AbsRel", "delta1", "RMSE/std", "verdict"):
        t.add_column(col, justify="left" if col in ("model", "input", "verdict") else "right")

    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    for label, verdict in verdicts.items():
        for i, (name, m) in enumerate(verdict.per_input.items()):
            t.add_row(Text(label if i == 0 else ""), Text(name), str(m["non_finite"]), f(m["max_abs"], "{:.3g}"),
                      f(m["abs_rel"], "{:.2e}"), f(m["delta1"], "{:.4f}"), f(m["rmse_over_std"], "{:.3f}"),
                      Text(("pass" if verdict.passed else "FAIL") if i == 0 else ""))
    return t
