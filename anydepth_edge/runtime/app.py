"""`run` glue: pick and open the backend for --model / --res / --backend, print the summary.
Torch-free unless the PyTorch backend is asked for."""

from pathlib import Path
from typing import Callable, Optional

from anydepth_edge.engines import choose_backend, open_backend
from anydepth_edge.errors import UserError


def _engine_for_onnx(onnx: Path, engines_dir: Path, notify: Callable[[str], None]) -> Path:
    """The engine for exactly this ONNX on this TensorRT and GPU: `build` reuses an up-to-date one
    (from `anydepth-edge build`, `bench` or an earlier run) and builds it otherwise (once)."""
    from anydepth_edge.engines.trt_build import EngineJob, build
    from anydepth_edge.engines.trt_common import device_profile

    notify(f"engine for {onnx.name}: reused when up to date, else built once (minutes on an Orin Nano)")
    path, _, _ = build(EngineJob(onnx, Path(engines_dir), device_profile("auto")), notify=notify)
    return path


def open_run_backend(model: Optional[str], res: str, backend: str, engines_dir: str, export_dir: str,
                     warn: Callable[[str], None], notify: Callable[[str], None] = lambda s: None):
    """(backend, one-line description of what was chosen and why)."""
    from anydepth_edge.resolution import parse_res
    from anydepth_edge.runtime.models import find_model

    choice = choose_backend(backend)
    if model is None:
        gpu = None
        if choice.kind == "tensorrt":
            from anydepth_edge.engines.cuda_api import load_cuda_api

            gpu = load_cuda_api().device_name()
        from anydepth_edge.export.targets import installed_tensorrt_version

        trt = installed_tensorrt_version() if choice.kind == "tensorrt" else None
        path = find_model(parse_res(res), Path(engines_dir), Path(export_dir), trt, gpu)
    else:
        path = Path(model)
        if not path.is_file():
            raise UserError(f"--model {model}: file not found")
    if path.suffix == ".engine":
        if choice.kind != "tensorrt":
            choice = choose_backend("trt")  # an engine needs TensorRT; a clear error if absent
        be = open_backend(choice, engine_path=path)
    elif path.suffix == ".onnx":
        if choice.kind == "tensorrt":
            be = open_backend(choice, engine_path=_engine_for_onnx(path, Path(engines_dir), notify))
        else:
            be = open_backend(choice, onnx_path=path, warn=warn)
    else:
        raise UserError(f"--model {path}: expected an .engine or .onnx file")
    return be, f"{choice.label} on {path.name} ({choice.reason})"


def print_summary(summary, console) -> None:
    from rich.table import Table

    console.print(f"run summary: {summary.frames} frames in {summary.wall_s:.1f} s, stopped by {summary.stopped_by}")
    t = Table(title="per-stage timings")
    t.add_column("stage")
    t.add_column("mean ms", justify="right")
    t.add_column("p50 ms", justify="right")
    t.add_column("p90 ms", justify="right")
    for name, s in summary.stages.items():
        cells = ["-" if s[k] is None else f"{s[k]:.1f}" for k in ("mean", "p50", "p90")]
        t.add_row(name.replace("_", " "), *cells)
    console.print(t)
    fps = "-" if summary.loop_fps is None else f"{summary.loop_fps:.2f}"
    inf = "-" if summary.inference_fps is None else f"{summary.inference_fps:.2f}"
    console.print(f"loop {fps} FPS (inference alone {inf} FPS); captured {summary.captured}, "
                  f"dropped {summary.dropped}, reconnects {summary.reconnects}")
    if summary.metric:
        m = summary.metric
        console.print(f"metric fit (last frame): depth_m = {m['scale']:.4f} x pred {m['shift']:+.4f}; "
                      f"rmse {m['rmse_m']:.3f} m, AbsRel {m['abs_rel']:.3f}, inliers {m['inlier_fraction']:.0%}")
    for o in summary.outputs:
        console.print(f"wrote {o}")
