"""The `anydepth-edge` command line: one verb per job.

Heavy imports (torch, onnx, tensorrt, cv2) happen inside the verbs that need them, so
`anydepth-edge --help` and the on-robot verbs start without PyTorch. Python 3.8 compatible
(JetPack 5): typer evaluates these annotations, so they use typing.List / Optional.
"""

import json
import sys
from typing import List, Optional

import typer

from anydepth_edge import __version__
from anydepth_edge.console import error_line, out, warn
from anydepth_edge.errors import HardwareMissing, UserError

app = typer.Typer(
    name="anydepth-edge",
    help=(
        "AnyDepth monocular depth (DINOv3 + SDT decoder, DPT as baseline) from PyTorch to a TensorRT "
        "FP16 engine on a Jetson Orin Nano: export, build, bench, run.\n\n"
        "Typical robot session:  anydepth-edge export --res 256  ->  anydepth-edge bench --device orin-nano  "
        "->  anydepth-edge run --source 0 --serve 8080"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ENCODER_HELP = "DINOv3 encoder size: vits (ViT-S, 21.6M), vitb (ViT-B), vitl (ViT-L)."
RES_HELP = "Input size: one side (256) or HEIGHTxWIDTH (256x320); multiples of 16."
CKPT_HELP = (
    "Weights: an official AnyDepth checkpoint, a Meta DINOv3 backbone (decoder stays random) or an "
    "anydepth-edge .safetensors. Without one, random weights (timings valid, depth not)."
)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"anydepth-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    pass


@app.command()
def info(
    encoder: str = typer.Option("vits", "--encoder", "-e", help=ENCODER_HELP),
    decoder: str = typer.Option("sdt", "--decoder", "-d", help="Decoder: sdt (AnyDepth) or dpt (baseline)."),
    res: str = typer.Option("256", "--res", "-r", help=RES_HELP),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Parameter counts, GFLOPs at a resolution, taken encoder layers and input rules of one model."""
    from anydepth_edge.resolution import parse_res
    from anydepth_edge.specs import check_decoder, encoder_spec

    spec = encoder_spec(encoder)
    decoder = check_decoder(decoder)
    resolution = parse_res(res)

    from anydepth_edge.models.checkpoints import resolve_model
    from anydepth_edge.models.flops import count_gflops, count_params

    model, report = resolve_model(checkpoint, spec.name, decoder, warn=warn)
    params = count_params(model)
    gflops = count_gflops(model, resolution)
    record = {
        "encoder": model.config.encoder,
        "decoder": model.config.decoder,
        "res": list(resolution),
        "params": params,
        "gflops": {k: round(v, 3) for k, v in gflops.items()},
        "taken_layers": list(model.config.layers),
        "input": {
            "layout": "NCHW float32, RGB, ImageNet-normalised",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "multiple_of": 16,
        },
        "output": "affine-invariant depth (1, 1, H, W) = relu(x) + 0.001",
        "checkpoint": report.describe(),
    }
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    from rich.table import Table

    t = Table(title=f"AnyDepth {spec.label} + {decoder.upper()} at {resolution[0]}x{resolution[1]}")
    t.add_column("part")
    t.add_column("parameters", justify="right")
    t.add_column("GFLOPs", justify="right")
    for part in ("encoder", "decoder", "total"):
        t.add_row(part, f"{params[part] / 1e6:.3f} M ({params[part]:,})", f"{gflops[part]:.2f}")
    out.print(t)
    out.print(f"taken encoder layers (0-based blocks): {list(model.config.layers)}")
    out.print("input: RGB, ImageNet mean/std, (1, 3, H, W), H and W multiples of 16")
    out.print("GFLOPs = 2 x multiply-accumulates of matmuls, convolutions and attention")


DYSAMPLE_CHOICES = {"gridsample": "grid_sample", "grid_sample": "grid_sample", "gather": "gather"}


@app.command()
def export(
    res: List[str] = typer.Option(["256"], "--res", "-r", help=RES_HELP + " Repeat for several."),
    decoder: str = typer.Option("sdt", "--decoder", "-d", help="sdt, dpt or all."),
    encoder: str = typer.Option("vits", "--encoder", "-e", help=ENCODER_HELP),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    target: str = typer.Option(
        "auto", "--target", "-t",
        help="trt8.5 (JetPack 5.1: opset 16, LayerNorm decomposed), trt8.6 (JetPack 6.0), trt10 (JetPack 6.1/6.2), "
             "ort (ONNX Runtime); auto = the TensorRT installed here, else trt10. All opset 16/17, never 20.",
    ),
    out_dir: str = typer.Option("export", "--out-dir", "-o", help="Where the ONNX files and sidecars go."),
    dysample: str = typer.Option(
        "gridsample", "--dysample",
        help="gridsample: ONNX GridSample (TensorRT >= 8.5); gather: an equivalent Gather-based bilinear sampler "
             "for runtimes without GridSample.",
    ),
    fp16_check: bool = typer.Option(True, "--fp16-check/--no-fp16-check",
                                    help="Measure FP16-vs-FP32 depth agreement (emulated) with and without FP32 pins."),
    engine: str = typer.Option("auto", "--engine",
                               help="Also build the TensorRT engine: auto (when TensorRT is importable), never, always."),
    force: bool = typer.Option(False, "--force", "-f", help="Re-export even when an up-to-date file exists."),
) -> None:
    """Export AnyDepth to ONNX for TensorRT (or ONNX Runtime): static shapes, batch 1, checked and linted.

    Writes `export/anydepth-<decoder>-<encoder>-<H>x<W>-<target>.onnx` plus a .json sidecar (opset, shapes,
    mean/std, checkpoint sha256, parity vs PyTorch, FP16 figures, the nodes to keep in FP32).
    """
    from pathlib import Path

    from anydepth_edge.console import progress
    from anydepth_edge.export.targets import resolve_target
    from anydepth_edge.resolution import parse_res_list
    from anydepth_edge.specs import DECODERS, check_decoder, encoder_spec

    resolutions = parse_res_list(res)
    spec = encoder_spec(encoder)
    decoders = list(DECODERS) if decoder.lower() == "all" else [check_decoder(decoder)]
    tgt = resolve_target(target)
    sampler = DYSAMPLE_CHOICES.get(dysample.lower())
    if sampler is None:
        raise UserError(f"unknown --dysample {dysample!r}: choose gridsample or gather")
    if engine not in ("auto", "never", "always"):
        raise UserError(f"unknown --engine {engine!r}: choose auto, never or always")
    _require("torch", "export")
    from anydepth_edge.export.onnx_export import export_models

    with progress() as prog:
        results = export_models(spec.name, decoders, resolutions, tgt, Path(out_dir), checkpoint=checkpoint,
                                dysample=sampler, force=force, fp16_check=fp16_check, warn=warn, progress=prog)
    _print_exports(results)
    _maybe_build_engines(results, engine)


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"this needs {module}: pip install 'anydepth-edge[{extra}]'")


def _print_exports(results) -> None:
    from rich.table import Table

    t = Table(title="ONNX exports (FP16: emulated, with / without FP32 pins)")
    for col in ("file", "nodes", "parity", "FP16 d1", "FP16 AbsRel", "s"):
        t.add_column(col, overflow="fold")
    for r in results:
        s = r.sidecar
        fp = s.get("fp16") or {}
        d1 = f"{fp['with_pins']['delta1']:.4f} / {fp['without_pins']['delta1']:.4f}" if fp else "-"
        ar = f"{fp['with_pins']['abs_rel']:.2e} / {fp['without_pins']['abs_rel']:.2e}" if fp else "-"
        worst = max(v["rel"] for k, v in s["parity"].items() if isinstance(v, dict))
        t.add_row(r.onnx_path.name, f"{s['nodes']['before_slim']}->{s['nodes']['after_slim']}", f"{worst:.1e}",
                  d1, ar, "reused" if r.reused else f"{r.seconds:.1f}")
    out.print(t)


def _maybe_build_engines(results, engine: str) -> None:
    """`export --engine`: build each exported ONNX where TensorRT is importable."""
    if engine == "never":
        return
    from anydepth_edge.engines import tensorrt_ready

    if tensorrt_ready() is None:
        if engine == "always":
            from anydepth_edge.engines.trt_common import TENSORRT_MISSING

            raise HardwareMissing("--engine always: " + TENSORRT_MISSING)
        from anydepth_edge.console import info as info_line

        info_line("TensorRT is not importable here: ONNX only (build the engine on the robot: anydepth-edge build FILE)")
        return
    for r in results:
        if r.sidecar.get("target", "").startswith("trt"):
            _build_one(r.onnx_path, device="auto", precision="fp16", workspace=None, builder="python",
                       out_dir="engines", timing_cache=None, force=False)


def _build_one(onnx_file, device, precision, workspace, builder, out_dir, timing_cache, force) -> None:
    from pathlib import Path

    from anydepth_edge.artifacts import ensure_writable_dir
    from anydepth_edge.console import progress
    from anydepth_edge.engines.trt_build import EngineJob
    from anydepth_edge.engines.trt_build import build as build_engine
    from anydepth_edge.engines.trt_common import device_profile, import_tensorrt

    onnx_path = Path(onnx_file)
    if not onnx_path.is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    profile = device_profile(device)
    trt = import_tensorrt()
    from anydepth_edge.engines.cuda_api import load_cuda_api

    cuda = load_cuda_api()
    engines_dir = ensure_writable_dir(out_dir)
    job = EngineJob(onnx_path, engines_dir, profile, precision=precision, workspace_mib=workspace, builder=builder,
                    timing_cache=Path(timing_cache) if timing_cache else None, force=force)
    with progress() as prog:
        task = prog.add_task(f"{onnx_path.name}: TensorRT {trt.__version__}", total=None)
        path, side, reused = build_engine(job, trt=trt, cuda=cuda,
                                          notify=lambda text: prog.update(task, description=f"{onnx_path.name}: {text}"))
    for w in side.get("warnings", []):
        warn(w)
    if reused:
        out.print(f"up to date: {path}")
    else:
        out.print(f"built {path} in {side['build_seconds']} s ({side['precision_constraints']} constraints, "
                  f"{side['pinned_layers']} FP32 layers, device memory {side['device_memory_bytes']} bytes)")


@app.command()
def build(
    onnx_file: str = typer.Argument(..., help="An ONNX file from anydepth-edge export (its .json sidecar names the FP32 pins)."),
    device: str = typer.Option("auto", "--device", help="Device profile: orin-nano (4 GB: capped workspace), generic, auto (detected)."),
    precision: str = typer.Option("fp16", "--precision", help="fp16 (DySample coordinates and pinned layers stay FP32) or fp32."),
    workspace: Optional[int] = typer.Option(None, "--workspace", help="Builder workspace cap in MiB (default: the device profile's; 1024 on orin-nano)."),
    builder: str = typer.Option("python", "--builder", help="python (TensorRT Python API) or trtexec (/usr/src/tensorrt/bin/trtexec, same settings)."),
    out_dir: str = typer.Option("engines", "--out-dir", "-o", help="Where engines, sidecars, inspector JSON and build logs go."),
    timing_cache: Optional[str] = typer.Option(None, "--timing-cache", help="Persistent timing cache (default: one per TensorRT version and GPU in --out-dir)."),
    force: bool = typer.Option(False, "--force", "-f", help="Rebuild even when an up-to-date engine exists."),
) -> None:
    """Build a TensorRT engine (FP16 by default) for this GPU from an exported ONNX file.

    Writes `engines/<onnx stem>-<precision>-trt<version>-<gpu>.engine` with a sidecar (TensorRT version, GPU, JetPack, ONNX sha256, settings, build seconds), the engine inspector JSON and the build log. Engines only run on the TensorRT and GPU that built them.
    """
    if precision not in ("fp16", "fp32"):
        raise UserError(f"unknown precision {precision!r}: fp16 or fp32")
    if builder not in ("python", "trtexec"):
        raise UserError(f"unknown builder {builder!r}: python or trtexec")
    if workspace is not None and workspace <= 0:
        raise UserError("--workspace must be a positive number of MiB")
    _build_one(onnx_file, device, precision, workspace, builder, out_dir, timing_cache, force)


@app.command("check-onnx")
def check_onnx(
    onnx_file: str = typer.Argument(..., help="The ONNX file to check."),
    target: str = typer.Option("auto", "--target", "-t",
                               help="trt8.5, trt8.6 or trt10; auto = the target recorded in the file, else trt10."),
) -> None:
    """Lint an ONNX file for a TensorRT version: unsupported ops, opset range, GridSample mode and
    rank, If/Loop, dynamic shapes. Exit 1 when anything would not import as needed."""
    _require("onnx", "export")
    from anydepth_edge.export.lint import TRT_TARGETS, lint_file

    tgt = target.lower()
    if tgt == "auto":
        tgt = _recorded_target(onnx_file) or "trt10"
    if tgt not in TRT_TARGETS:
        raise UserError(f"unknown target {target!r}: choose one of {', '.join(TRT_TARGETS)}")
    problems = lint_file(onnx_file, tgt)
    if not problems:
        out.print(f"[green]ok[/]: {onnx_file} imports into {tgt} (ops, opset, GridSample, static shapes)")
        return
    from rich.table import Table

    t = Table(title=f"{onnx_file}: {len(problems)} problems for {tgt}")
    for col in ("kind", "node", "problem"):
        t.add_column(col)
    for p in problems:
        t.add_row(p.kind, p.node, p.message)
    out.print(t)
    raise typer.Exit(1)


def _recorded_target(path: str) -> Optional[str]:
    from pathlib import Path

    from anydepth_edge.artifacts import read_json

    side = read_json(Path(path).with_suffix(".json"))
    t = (side or {}).get("target")
    return t if t in ("trt8.5", "trt8.6", "trt10") else None


@app.command()
def bench(
    device: str = typer.Option("auto", "--device", help="orin-nano, cuda, cpu or auto (detected). orin-nano on another host is refused unless --allow-mismatch."),
    res: List[str] = typer.Option(["256", "512"], "--res", "-r", help=RES_HELP + " Repeat for several."),
    decoder: List[str] = typer.Option(["sdt", "dpt"], "--decoder", "-d", help="Repeat for several (default: both)."),
    encoder: str = typer.Option("vits", "--encoder", "-e", help=ENCODER_HELP),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto (TensorRT > ORT-CUDA > PyTorch-CUDA > ORT-CPU), trt, ort or torch."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp16 or fp32 (default: fp16 on GPUs, fp32 on CPUs)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed runs first (default per device: cpu 2, cuda 20, orin-nano 10)."),
    iters: Optional[int] = typer.Option(None, "--iters", help="Timed runs (default per device: cpu 10, cuda 200, orin-nano 50)."),
    e2e_iters: Optional[int] = typer.Option(None, "--e2e-iters", help="End-to-end runs with pre/post-processing of a 640x480 frame."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    out_dir: str = typer.Option("benchmarks/results", "--out-dir", "-o", help="Where the JSON, Markdown, CSV and PNG go."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Replay inference as a CUDA graph (TensorRT with cuda-python, PyTorch CUDA)."),
    dysample: str = typer.Option("gridsample", "--dysample", help="DySample export form to benchmark: gridsample or gather."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime CPU threads (default: all cores)."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Run --device orin-nano elsewhere, labelling every figure as not from an Orin Nano."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where ONNX files are found / exported."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where TensorRT engines are found / built."),
) -> None:
    """Reproduce the paper's Orin Nano table here: latency, FPS and peak memory of SDT vs DPT at 256 and 512.

    Each configuration runs in its own process. Missing ONNX files / engines are exported / built first (cached). Prints the tables with the paper's figures beside ours and writes JSON (with raw latencies), Markdown, CSV and a PNG chart to --out-dir.
    """
    from pathlib import Path

    from anydepth_edge.bench.harness import BenchOptions, run_bench
    from anydepth_edge.bench.report import console_tables, write_outputs
    from anydepth_edge.console import progress
    from anydepth_edge.resolution import parse_res_list
    from anydepth_edge.specs import check_decoder, encoder_spec

    sampler = DYSAMPLE_CHOICES.get(dysample.lower())
    if sampler is None:
        raise UserError(f"unknown --dysample {dysample!r}: choose gridsample or gather")
    opts = BenchOptions(
        device=device, resolutions=parse_res_list(res), decoders=[check_decoder(d) for d in dict.fromkeys(decoder)],
        encoder=encoder_spec(encoder).name, backend=backend, precision=precision, warmup=warmup, iters=iters,
        e2e_iters=e2e_iters, checkpoint=checkpoint, out_dir=Path(out_dir), allow_mismatch=allow_mismatch,
        cuda_graph=cuda_graph, dysample=sampler, threads=threads, export_dir=Path(export_dir),
        engines_dir=Path(engines_dir),
    )
    with progress(transient=True) as prog:
        record = run_bench(opts, warn=warn, progress=prog)
    for table in console_tables(record):
        out.print(table)
    paths = write_outputs(record, opts.out_dir)
    out.print("written: " + ", ".join(str(p) for p in paths.values()))
    if any("error" in r for r in record["results"]):
        raise typer.Exit(1)


@app.command()
def run(
    source: str = typer.Option(..., "--source", "-s", help="0 or /dev/video0 (USB), csi://0?mode=2&width=1280&height=720&fps=30 (CSI), realsense[:SERIAL][?depth=1] or a .bag recording, a video file, an image folder, rtsp://host/path."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="An .engine or .onnx file (default: the newest matching one in engines/, else export/)."),
    res: str = typer.Option("256", "--res", "-r", help="Model size to look for when --model is not given. " + RES_HELP),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto (TensorRT > ORT-CUDA > PyTorch-CUDA > ORT-CPU), trt, ort or torch."),
    display: bool = typer.Option(False, "--display/--headless", help="Show a window (needs a screen), or run headless (default)."),
    record: Optional[str] = typer.Option(None, "--record", help="Record camera | depth with the timings overlay to this .mp4."),
    save_depth: Optional[str] = typer.Option(None, "--save-depth", help="Write each depth as 16-bit PNG (mm with --metric, else normalised) and float .npy to this folder."),
    serve: Optional[str] = typer.Option(None, "--serve", help="[HOST:]PORT for the browser viewer (MJPEG + timings); binds 127.0.0.1 unless HOST is given."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after this many frames."),
    metric: bool = typer.Option(False, "--metric", help="RealSense: fit scale and shift to the sensor's depth each frame and output metres."),
    resize: str = typer.Option("stretch", "--resize", help="stretch (whole frame, aspect changes) or letterbox (aspect kept, padded)."),
    pace: str = typer.Option("native", "--pace", help="Video files: native (played like a camera at the file's FPS, frames dropped when the model is slower) or none (every frame, as fast as the model goes)."),
    reconnect_timeout: float = typer.Option(30.0, "--reconnect-timeout", help="Seconds to keep retrying a lost camera before exiting non-zero."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where to look for engines."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where to look for ONNX files."),
) -> None:
    """Run depth behind a camera: capture, inference and output overlap; latency never builds up (only the newest frame is kept).

    Ctrl-C or SIGTERM stops cleanly (recording finished, camera released) and prints the summary.
    """
    import signal

    from anydepth_edge.runtime.app import open_run_backend, print_summary
    from anydepth_edge.runtime.loop import DepthLoop, RunOptions
    from anydepth_edge.runtime.processing import POLICIES, import_cv2
    from anydepth_edge.runtime.sources import open_source, parse_source

    if resize not in POLICIES:
        raise UserError(f"unknown --resize {resize!r}: stretch or letterbox")
    if pace not in ("native", "none"):
        raise UserError(f"unknown --pace {pace!r}: native or none")
    if max_frames is not None and max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    spec = parse_source(source)
    if metric and not (spec.kind == "realsense"):
        raise UserError("--metric needs a RealSense source (its depth stream is the reference): --source realsense or a .bag")
    if metric:
        spec.options["depth"] = True
    if serve:
        from anydepth_edge.runtime.server import parse_serve

        parse_serve(serve)
    cv2 = import_cv2()
    from anydepth_edge.console import info as info_line

    be, choice_text = open_run_backend(model, res, backend, engines_dir, export_dir, warn=warn, notify=info_line)
    src = open_source(spec, cv2=cv2)
    opts = RunOptions(max_frames=max_frames, resize_policy=resize, pace=pace, display=display, record=record,
                      save_depth=save_depth, serve=serve, metric=metric, reconnect_timeout=reconnect_timeout)
    loop = DepthLoop(be, src, spec, opts, notify=info_line, cv2=cv2)
    info_line(f"{spec.describe()} -> {choice_text}; resize policy: {resize}; Ctrl-C to stop")

    def on_signal(signum, _frame):
        loop.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    summary = loop.run()
    be.close()
    print_summary(summary, out)
    if summary.error:
        raise HardwareMissing(summary.error)


@app.command()
def doctor(
    job: str = typer.Option("run", "--for", help="The job to check for: run, bench or export."),
    root: str = typer.Option("/", "--root", help="Inspect a file-system root other than / (an image, a fixture)."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where exports live (relative to the current folder, or --root)."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where engines live."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check this machine: Jetson model, JetPack, power mode, clocks, TensorRT / CUDA / ONNX Runtime / PyTorch, OpenCV GStreamer, cameras, disk and memory, exports and engines. Exit 0 when --for JOB can run."""
    from anydepth_edge.doctor import JOBS, diagnose, print_report

    if job not in JOBS:
        raise UserError(f"unknown --for {job!r}: choose one of {', '.join(JOBS)}")
    if root == "/":  # on this machine, relative folders mean the current folder (under --root otherwise)
        from pathlib import Path

        export_dir, engines_dir = str(Path(export_dir).resolve()), str(Path(engines_dir).resolve())
    report = diagnose(root, export_dir, engines_dir)
    if as_json:
        from dataclasses import asdict

        sys.stdout.write(json.dumps({"platform": report["platform"], "can": report["can"],
                                     "checks": [asdict(c) for c in report["checks"]]}) + "\n")
        raise typer.Exit(0 if report["can"][job] else 1)
    raise typer.Exit(print_report(report, job, out))


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        app(args=argv, prog_name="anydepth-edge")
    except UserError as e:
        error_line(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
