"""The figures a benchmark result is reported with: peak memory (and its method), the Orin Nano's
memory and compute floors, utilisation against a reference peak, SDT/DPT ratios, and the
environment the run was made in. Torch-free."""

import platform as _platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from anydepth_edge import __version__
from anydepth_edge.bench.stats import is_noisy, paper_figures, ratio
from anydepth_edge.engines import BackendChoice
from anydepth_edge.platform_info import PlatformInfo
from anydepth_edge.resolution import res_tag


def peak_memory(result: Dict[str, Any], choice: BackendChoice) -> Dict[str, Any]:
    """The peak-memory figure for a result, and the method it came from."""
    mem = result.get("memory") or {}
    teg = mem.get("tegrastats") or {}
    if teg.get("peak_mb") is not None:
        return {"peak_mb": teg["peak_mb"] - teg["baseline_mb"],
                "method": "tegrastats RAM (CPU+GPU shared), peak minus baseline before load"}
    if "max_allocated_bytes" in mem:
        return {"peak_mb": mem["max_allocated_bytes"] / 2 ** 20, "method": "torch.cuda.max_memory_allocated"}
    if "cuda_meminfo_delta_bytes" in mem:
        return {"peak_mb": mem["cuda_meminfo_delta_bytes"] / 2 ** 20,
                "method": "cudaMemGetInfo delta over engine load (weights + context + buffers)",
                "engine_device_memory_mb": (mem.get("engine_device_memory_bytes") or 0) / 2 ** 20}
    return {"peak_mb": mem.get("rss_peak_over_baseline_bytes", 0) / 2 ** 20,
            "method": "peak RSS of the benchmark process over its idle baseline"}


def engine_traffic(traffic: Dict[str, Any]) -> Tuple[int, int]:
    """(fused, unfused) bytes one inference of an engine moves: a Gather-form export's counts with
    its samplers as TensorRT's GridSample (export/traffic.tensorrt_form_traffic) when recorded."""
    return (traffic.get("tensorrt_form_fused_bytes", traffic.get("fused_bytes", traffic.get("bytes", 0))),
            traffic.get("tensorrt_form_bytes", traffic.get("bytes", 0)))


def orin_nano_bounds(traffic_bytes: float, gflops: Optional[float]) -> Dict[str, Optional[float]]:
    """Estimated floors of one FP16 inference on the Orin Nano, in ms: moving the bytes (half of the
    FP32 graph's fused traffic) at its memory bandwidth, and the FLOPs at its dense FP16 peak."""
    from anydepth_edge.engines.trt_common import DEVICE_PROFILES

    p = DEVICE_PROFILES["orin-nano"]
    return {"orin_nano_memory_bound_ms": traffic_bytes / 2 / p.memory_bandwidth * 1e3,
            "orin_nano_compute_bound_ms": gflops * 1e9 / p.peak_fp16_flops * 1e3 if gflops else None}


def utilisation(gflops: Optional[float], mean_ms: float, peak_flops: Dict[str, Any], profile: str, precision: str):
    if not gflops or mean_ms <= 0:
        return None, None, None
    achieved = gflops / (mean_ms / 1000.0)  # GFLOP/s
    peak, source = None, None
    if profile == "orin-nano":
        from anydepth_edge.engines.trt_common import DEVICE_PROFILES

        p = DEVICE_PROFILES["orin-nano"]
        peak = p.peak_fp16_flops if precision == "fp16" else p.peak_fp32_flops
        source = f"Orin Nano 4GB dense {precision.upper()} peak (datasheet)"
    elif "flops" in peak_flops:
        peak, source = peak_flops["flops"], peak_flops["method"]
    elif f"flops_{precision}" in peak_flops:
        peak, source = peak_flops[f"flops_{precision}"], peak_flops["method"]
    return achieved, (achieved * 1e9 / peak if peak else None), source


def environment(info: PlatformInfo) -> Dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("tensorrt", "onnxruntime", "onnxruntime-gpu", "torch", "timm", "numpy", "opencv-python",
                 "opencv-python-headless", "cuda-python", "pycuda"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return {
        "platform": info.to_dict(),
        "python": _platform.python_version(),
        "versions": versions,
        "git_commit": _git_commit(),
        "hostname": _platform.node(),
        "toolkit_version": __version__,
    }


def _git_commit() -> Optional[str]:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def sdt_dpt_ratios(results: List[Dict[str, Any]]) -> Dict[str, Dict[str, Optional[float]]]:
    by = {(tuple(r["res"]), r["decoder"]): r for r in results if "error" not in r}
    out = {}
    for res in sorted({tuple(r["res"]) for r in results}):
        sdt, dpt = by.get((res, "sdt")), by.get((res, "dpt"))
        if not (sdt and dpt):
            continue
        p_sdt, p_dpt = paper_figures(res, "sdt"), paper_figures(res, "dpt")
        out[res_tag(res)] = {
            "latency_sdt_over_dpt": ratio(sdt["latency"]["mean_ms"], dpt["latency"]["mean_ms"]),
            "paper_latency_sdt_over_dpt": ratio(p_sdt["latency_ms"], p_dpt["latency_ms"]),
            "memory_sdt_over_dpt": ratio(sdt["peak_memory"]["peak_mb"], dpt["peak_memory"]["peak_mb"]),
            "paper_memory_sdt_over_dpt": ratio(p_sdt["memory_mb"], p_dpt["memory_mb"]),
            "noisy": any(is_noisy(r) for r in (sdt, dpt)),  # the latency ratio is not to be trusted
        }
    return out
