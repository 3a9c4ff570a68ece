"""Latency statistics and the paper's Orin Nano figures. Pure functions, torch-free."""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

# AnyDepth paper, Jetson Orin Nano 4GB (encoder size, precision and runtime not stated).
PAPER_LATENCY_MS = {
    (256, "dpt"): 305.65, (256, "sdt"): 213.35,
    (512, "dpt"): 1107.64, (512, "sdt"): 831.48,
}
PAPER_FPS = {(256, "dpt"): 3.3, (256, "sdt"): 4.7, (512, "dpt"): 0.9, (512, "sdt"): 1.2}
PAPER_MEMORY_MB = {(256, "dpt"): 589.5, (256, "sdt"): 395.2}  # peak GPU memory during inference


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already sorted values."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# A cell whose runs spread more than this is flagged, not trusted: quiet runs of the committed CPU
# records have CV <= 0.08 and p90/p10 <= 1.2; a run that shared the 2 cores had CV 0.70.
NOISY_CV = 0.15
NOISY_P90_OVER_P10 = 1.5


def latency_stats(samples_ms: Sequence[float]) -> Dict[str, float]:
    """mean, std (sample), min, max, p10, p50, p90, p99 in ms, and FPS = 1000 / mean."""
    values = sorted(float(v) for v in samples_ms)
    n = len(values)
    if n == 0:
        raise ValueError("no latency samples")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {
        "n": n, "mean_ms": mean, "std_ms": std, "min_ms": values[0], "max_ms": values[-1],
        "p10_ms": percentile(values, 10), "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90), "p99_ms": percentile(values, 99),
        "fps": 1000.0 / mean if mean > 0 else float("inf"),
    }


def spread(latency: Dict[str, float]) -> Dict[str, Any]:
    """How far a cell's runs spread (CV = std / mean, p90 / p10) and whether that is too far to trust."""
    cv = latency["std_ms"] / latency["mean_ms"] if latency["mean_ms"] > 0 else 0.0
    p10 = latency.get("p10_ms", latency["min_ms"])
    tail = latency["p90_ms"] / p10 if p10 > 0 else 1.0
    return {"cv": cv, "p90_over_p10": tail, "noisy": cv > NOISY_CV or tail > NOISY_P90_OVER_P10,
            "limits": {"cv": NOISY_CV, "p90_over_p10": NOISY_P90_OVER_P10}}


def is_noisy(result: Dict[str, Any]) -> bool:
    """Whether a benchmark result row was flagged by `spread` (older records have no spread)."""
    return bool((result.get("spread") or {}).get("noisy"))


def paper_figures(res: Tuple[int, int], decoder: str) -> Dict[str, Optional[float]]:
    side = res[0] if res[0] == res[1] else None
    key = (side, decoder)
    return {"latency_ms": PAPER_LATENCY_MS.get(key), "fps": PAPER_FPS.get(key), "memory_mb": PAPER_MEMORY_MB.get(key)}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b not in (None, 0) else None
