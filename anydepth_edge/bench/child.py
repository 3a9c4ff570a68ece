"""One benchmark configuration, run in its own process so memory figures do not bleed.

`python -m anydepth_edge.bench.child SPEC.json RESULT.json`: reads the spec, opens the backend
(`engines.open_backend` on the spec's BackendSpec, the factory `run` uses too),
warms up, times `iters` inferences and `e2e_iters` camera-frame round trips, measures peak memory
by the method that fits the backend, writes the result atomically. Progress goes to stderr as
`ITER <done> <total>` lines for the parent's progress bar. Torch-free unless the PyTorch backend
is benchmarked.
"""

import functools
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from anydepth_edge.bench.tegrastats import TegrastatsSampler
from anydepth_edge.bench.stats import latency_stats
from anydepth_edge.engines import BackendSpec, open_backend
from anydepth_edge.engines.base import Backend
from anydepth_edge.host_memory import process_memory, reset_peak_rss

_PARENT = os.getppid()


def _progress(done: int, total: int) -> None:
    if os.getppid() != _PARENT:  # the benchmark was killed (SIGKILL leaves no time to stop us): stop too
        sys.exit(3)
    sys.stderr.write(f"ITER {done} {total}\n")
    sys.stderr.flush()


def cached_peak_flops(kind: str, device: str, threads=None) -> Dict[str, Any]:
    """The reference rate of this host, measured once and kept in ~/.cache/anydepth-edge: measured
    again in every run it swung with the machine's load (100.9% to 28.2% of it between runs)."""
    import platform

    from anydepth_edge.fileio import read_json, write_json_atomic

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anydepth-edge" / "peak-flops.json"
    key = f"{platform.node()}|{kind}|{device}|{threads or 'all'}|v2"  # v2: GEMM and convolution
    known = read_json(cache) or {}
    if key in known:
        return {**known[key], "cached": str(cache)}
    measured = measure_peak_flops(kind, device)
    if measured:
        try:
            write_json_atomic(cache, {**known, key: measured})
        except OSError:
            pass  # a read-only home: measured each time, as before
    return measured


def measure_peak_flops(kind: str, device: str) -> Dict[str, Any]:
    """The achievable GEMM rate in this process: the denominator of the utilisation figure on
    hosts without a known device peak."""
    if device == "cpu":
        # The best rate over a few square GEMM sizes (one size can sit on a bad blocking point).
        rates, engine = [], "numpy float32 GEMM"
        for n in (1024, 2048, 3072):
            a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
            run = _ort_matmul(a) if kind == "onnxruntime" else None
            if run is None:
                run = functools.partial(np.matmul, a, a)
            else:
                engine = "ONNX Runtime MatMul FP32 (the model's own CPU kernels)"
            run()  # warm-up (thread pool start)
            rates.append(2 * n ** 3 / min(_timed(run) for _ in range(3)))
        method = f"{engine}, best of 1024^3 / 2048^3 / 3072^3, best of 3 each"
        conv = _ort_conv() if kind == "onnxruntime" else None
        if conv is not None:
            # ONNX Runtime's blocked (NCHWc) 3x3 convolution beats its MatMul here (~300 vs ~190 GFLOP/s
            # on a 2-core Xeon): without it the decoders showed 130% of the reference.
            run, flops = conv
            run()
            rates.append(flops / min(_timed(run) for _ in range(3)))
            method += "; and a 3x3 convolution, 256 channels at 128x128"
        return {"method": method, "flops": max(rates)}
    if kind == "torch":
        import torch

        n = 8192
        out = {}
        for dtype in (torch.float16, torch.float32):
            a = torch.randn(n, n, device="cuda", dtype=dtype)
            (a @ a).sum().item()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(5):
                a @ a
            end.record()
            torch.cuda.synchronize()
            out[str(dtype).split(".")[-1]] = 5 * 2 * n ** 3 / (start.elapsed_time(end) / 1000)
        return {"method": f"torch GEMM {n}^3 on the GPU (fp16 tensor cores / fp32)", "flops_fp16": out["float16"],
                "flops_fp32": out["float32"]}
    return {}


def _ort_matmul(a: np.ndarray):
    """A one-MatMul ONNX Runtime session on `a` x `a`; None without the onnx package."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    n = a.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"a": a, "b": a})


def _ort_conv():
    """A one-Conv (3x3, 256 -> 256, 128x128) ONNX Runtime session and its FLOPs; None without onnx."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    c, hw = 256, 128
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((c, c, 3, 3), dtype=np.float32) * 0.01, "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    return (lambda: sess.run(None, {"x": x})), 2 * c * c * 9 * hw * hw


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(spec: Dict[str, Any]) -> Dict[str, Any]:
    res = tuple(spec["res"])
    b = BackendSpec.from_dict(spec["backend"])
    sampler = None
    if spec.get("tegrastats"):
        try:
            sampler = TegrastatsSampler(interval_ms=spec.get("tegrastats_ms", 100))
            sampler.wait_for_sample()
        except FileNotFoundError:
            sampler = None
    # Idle baseline: this process with its libraries imported, before the model exists.
    if b.kind == "onnxruntime":
        import onnxruntime  # noqa: F401
    elif b.kind == "torch":
        import anydepth_edge.models  # noqa: F401  (torch + timm: library memory, not the model's)
    elif b.kind == "custom" and b.factory:
        importlib.import_module(b.factory.partition(":")[0])  # the backend's own libraries
    reset_peak_rss()
    baseline = process_memory()

    t0 = time.perf_counter()
    backend = open_backend(b)
    load_s = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal(backend.input_shape).astype(np.float32)
    total = spec["warmup"] + spec["iters"]
    for i in range(spec["warmup"]):
        backend.infer(x)
        _progress(i + 1, total)
    latencies = []
    for i in range(spec["iters"]):
        t = time.perf_counter()
        backend.infer(x)
        latencies.append((time.perf_counter() - t) * 1000.0)
        _progress(spec["warmup"] + i + 1, total)

    e2e = _end_to_end(backend, res, spec)
    memory = backend.memory()
    peak = process_memory()
    memory.update({
        "rss_baseline_bytes": baseline["rss_bytes"],
        "rss_peak_bytes": peak["peak_rss_bytes"],
        "rss_peak_over_baseline_bytes": max(0, peak["peak_rss_bytes"] - baseline["rss_bytes"]),
    })
    if sampler is not None:
        memory["tegrastats"] = sampler.stop()
    result = {
        "latencies_ms": latencies,
        "latency": latency_stats(latencies),
        "end_to_end": e2e,
        "memory": memory,
        "backend": backend.describe(),
        "load_seconds": load_s,
        "peak_flops": cached_peak_flops(b.kind, b.device, b.threads) if spec.get("measure_peak") else {},
    }
    backend.close()
    return result


def _end_to_end(backend: Backend, res, spec) -> Dict[str, Any]:
    """Camera frame (BGR uint8, `frame_hw`) -> preprocess -> infer -> depth at frame size + colour map."""
    n = spec.get("e2e_iters", 0)
    if n <= 0:
        return {}
    try:
        from anydepth_edge.runtime.processing import Postprocessor, Preprocessor

        pre, post = Preprocessor(res, spec.get("resize_policy", "stretch")), Postprocessor(spec.get("resize_policy", "stretch"))
    except Exception as e:  # no OpenCV in this image
        return {"skipped": str(e)}
    fh, fw = spec.get("frame_hw", (480, 640))
    frame = np.random.default_rng(1).integers(0, 255, (fh, fw, 3), dtype=np.uint8)
    stages = {"preprocess_ms": [], "infer_ms": [], "postprocess_ms": []}
    totals = []
    for _ in range(n):
        t0 = time.perf_counter()
        x = pre(frame)
        t1 = time.perf_counter()
        depth = backend.infer(x)
        t2 = time.perf_counter()
        post.colourise(post.to_frame(depth, (fh, fw), pre.geometry))
        t3 = time.perf_counter()
        stages["preprocess_ms"].append((t1 - t0) * 1e3)
        stages["infer_ms"].append((t2 - t1) * 1e3)
        stages["postprocess_ms"].append((t3 - t2) * 1e3)
        totals.append((t3 - t0) * 1e3)
    out = latency_stats(totals)
    out.update({k: sum(v) / len(v) for k, v in stages.items()})
    out["frame"] = [fh, fw]
    out["resize_policy"] = spec.get("resize_policy", "stretch")
    return out


def main(argv=None) -> int:
    from anydepth_edge.fileio import write_json_atomic

    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = argv
    with open(spec_path) as fh:
        spec = json.load(fh)
    try:
        result = run(spec)
    except Exception as e:  # reported by the parent as one line for this configuration
        write_json_atomic(result_path, {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
        return 1
    write_json_atomic(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
