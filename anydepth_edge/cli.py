"""The `anydepth-edge` command line: one verb per job. Verbs parse options (choices are enums, so
`--help` lists them) and call the stage packages, which do the work.

Heavy imports (torch, onnx, tensorrt, cv2) happen inside the verbs that need them, so
`anydepth-edge --help` and the on-robot verbs start without PyTorch. Python 3.8 compatible
(JetPack 5): typer evaluates these annotations, so they use typing.List / Optional.
"""

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from anydepth_edge import __version__
from anydepth_edge.console import error_line, info, interrupt_on_sigterm, out, warn
from anydepth_edge.engines.base import TORCH_LAYOUTS
from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.weights import WEIGHTS_HELP, checkpoint_for
from anydepth_edge.specs import DECODERS, expand_decoders
from anydepth_edge.targets import SAMPLERS as SAMPLER_FORMS
from anydepth_edge.targets import TARGET_CHOICES
from anydepth_edge.runtime.metric import METRIC_MODES
from anydepth_edge.evaluation.datasets import DATASETS

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


def _choices(name: str, values) -> type:
    """A str Enum of `values` (names may hold dots: 'trt8.5'), so typer validates and lists them."""
    return Enum(name, {v: v for v in values}, type=str)


Encoder = _choices("Encoder", ("vits", "vitb", "vitl"))
Decoder = _choices("Decoder", DECODERS)
DecoderOrAll = _choices("DecoderOrAll", DECODERS + ("all",))
Target = _choices("Target", TARGET_CHOICES)
TrtTarget = _choices("TrtTarget", ("auto", "trt8.5", "trt8.6", "trt10"))
# --dysample choices: auto (the target's measured form, None) and each export form without '_'.
SAMPLERS = {"auto": None, **{form.replace("_", ""): form for form in SAMPLER_FORMS}}
Sampler = _choices("Sampler", SAMPLERS)
Layout = _choices("Layout", TORCH_LAYOUTS)
EngineMode = _choices("EngineMode", ("auto", "never", "always"))
Precision = _choices("Precision", ("fp16", "fp32"))
Rung = _choices("Rung", ("auto", "fp16", "fp16-wide", "fp32"))
Typing = _choices("Typing", ("auto", "strong", "weak"))
Builder = _choices("Builder", ("python", "trtexec"))
Profile = _choices("Profile", ("auto", "orin-nano", "generic"))
BenchDevice = _choices("BenchDevice", ("auto", "orin-nano", "cpu", "cuda"))
BackendName = _choices("BackendName", ("auto", "trt", "ort", "torch"))
Resize = _choices("Resize", ("stretch", "letterbox"))
Pace = _choices("Pace", ("native", "none"))
Job = _choices("Job", ("run", "bench", "export", "ros2"))
DepthSize = _choices("DepthSize", ("model", "frame"))
Reliability = _choices("Reliability", ("reliable", "best_effort"))
ROS_PANEL = "ROS 2 (--ros2, --record-bag, --source ros:TOPIC; docs/ros2.md)"
METRIC_PANEL = "Metric depth (--metric; docs/metric.md)"
MetricMode = _choices("MetricMode", METRIC_MODES)
EvalDataset = _choices("EvalDataset", DATASETS)
SAMPLER_HELP = ("DySample form: gridsample (ONNX GridSample, TensorRT >= 8.5), gather (the same bilinear sampling "
                "from Gather + arithmetic, 2x faster on ONNX Runtime CPU); auto = the target's default: gather for ort, "
                "gridsample for TensorRT.")

ENCODER_HELP = ("Encoder size: vits (ViT-S, 21.6M), vitb (ViT-B), vitl (ViT-L). Default: the checkpoint's, "
                "else vits (DINOv3, random weights).")
DECODER_HELP = ("sdt (AnyDepth), dpt (the paper's baseline) or dav2 (Depth Anything V2's DPT head). Default: the "
                "checkpoint's, else sdt.")
RES_HELP = ("Input size: one side (256) or HEIGHTxWIDTH (256x320); multiples of the model's patch: 16 (DINOv3), "
            "14 (DINOv2 weights: e.g. 266, or 518, their native size).")
CKPT_HELP = (
    "Weights file: a released Depth Anything V2 layout file (dav2_sdt_vitb.pth, depth_anything_v2_vits.pth, ...), "
    "an official AnyDepth checkpoint, a Meta DINOv3 backbone (decoder stays random) or an anydepth-edge "
    ".safetensors; the architecture is read from it. Without one, random weights (timings valid, depth not)."
)
BACKEND_HELP = "auto (TensorRT > ORT-CUDA > PyTorch-CUDA > ORT-CPU), trt, ort or torch."


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"anydepth-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    pass


def _value(choice: Optional[Enum]) -> Optional[str]:
    return choice.value if choice is not None else None


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"this needs {module}: pip install 'anydepth-edge[{extra}]'")


@app.command("info")
def info_verb(
    encoder: Optional[Encoder] = typer.Option(None, "--encoder", "-e", case_sensitive=False, help=ENCODER_HELP),
    decoder: Optional[Decoder] = typer.Option(None, "--decoder", "-d", case_sensitive=False, help=DECODER_HELP),
    res: Optional[str] = typer.Option(None, "--res", "-r", help=RES_HELP + " Default: 256, or 266 on 14-px models."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help=WEIGHTS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Parameter counts, GFLOPs at a resolution, taken encoder layers and input rules of one model."""
    from anydepth_edge.resolution import parse_res

    resolution = parse_res(res, multiple=None) if res else None
    _require("torch", "export")
    from anydepth_edge.models.report import info_tables, model_info

    record = model_info(checkpoint_for(checkpoint, weights), _value(encoder), _value(decoder), resolution,
                        warn=warn, say=info)
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    for item in info_tables(record):
        out.print(item)


@app.command()
def export(
    res: List[str] = typer.Option([], "--res", "-r", help=RES_HELP + " Repeat for several. Default: 256, or 266 "
                                                                   "on 14-px models (the first multiple of 14 above 256)."),
    decoder: Optional[DecoderOrAll] = typer.Option(None, "--decoder", "-d", case_sensitive=False,
                                                   help=DECODER_HELP + " all: sdt and dpt (random weights)."),
    encoder: Optional[Encoder] = typer.Option(None, "--encoder", "-e", case_sensitive=False, help=ENCODER_HELP),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help=WEIGHTS_HELP),
    target: Target = typer.Option(
        "auto", "--target", "-t", case_sensitive=False,
        help="trt8.5 (JetPack 5.1: opset 16, LayerNorm decomposed), trt8.6 (JetPack 6.0), trt10 (JetPack 6.1/6.2 and 7.2), "
             "ort (ONNX Runtime); auto = the TensorRT installed here, else trt10. All opset 16/17, never 20.",
    ),
    out_dir: str = typer.Option("export", "--out-dir", "-o", help="Where the ONNX files and sidecars go."),
    dysample: Sampler = typer.Option("auto", "--dysample", case_sensitive=False, help=SAMPLER_HELP),
    fp16_check: bool = typer.Option(True, "--fp16-check/--no-fp16-check",
                                    help="Measure FP16-vs-FP32 depth agreement (emulated) with and without FP32 pins."),
    engine: EngineMode = typer.Option("auto", "--engine", case_sensitive=False,
                                      help="Also build the TensorRT engine: auto (when TensorRT is importable), never, always."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where engines go with --engine."),
    force: bool = typer.Option(False, "--force", "-f", help="Re-export even when an up-to-date file exists."),
) -> None:
    """Export AnyDepth to ONNX for TensorRT (or ONNX Runtime): static shapes, batch 1, checked and linted.

    Writes `export/anydepth-<decoder>-<encoder>-<H>x<W>-<target>.onnx` plus a .json sidecar (opset, shapes,
    mean/std, checkpoint sha256, parity vs PyTorch, FP16 figures, the nodes to keep in FP32).
    """
    from anydepth_edge.console import progress
    from anydepth_edge.resolution import parse_res_list
    from anydepth_edge.targets import resolve_target

    resolutions = parse_res_list(res, multiple=None)  # checked against the model's patch once it is loaded
    decoders = expand_decoders([_value(decoder)])
    tgt = resolve_target(target.value)
    _require("torch", "export")
    from anydepth_edge.engines.ensure import check_engine_mode, engines_after_export
    from anydepth_edge.export.onnx_export import export_models, results_table

    if tgt.tensorrt:
        check_engine_mode(engine.value)

    checkpoint = checkpoint_for(checkpoint, weights)
    with progress() as prog:
        results = export_models(_value(encoder), decoders, resolutions, tgt, Path(out_dir), checkpoint=checkpoint,
                                dysample=SAMPLERS[dysample.value], force=force, fp16_check=fp16_check, warn=warn,
                                progress=prog, say=info)
    out.print(results_table(results))
    if tgt.tensorrt:
        for line in engines_after_export([r.onnx_path for r in results], engine.value, Path(engines_dir), notify=info):
            out.print(line, markup=False)


@app.command()
def build(
    onnx: str = typer.Argument(..., help="An ONNX file from anydepth-edge export, or a folder of them (every export "
                                         "made for this TensorRT's target)."),
    device: Profile = typer.Option("auto", "--device", case_sensitive=False,
                                   help="Device profile: orin-nano (4 GB: capped workspace), generic, auto (detected)."),
    precision: Rung = typer.Option(
        "auto", "--precision", case_sensitive=False,
        help="auto: the precision ladder, FP16 with the default FP32 pins -> FP16 with the wide set (LayerNorm, "
             "attention, residual adds) -> FP32, keeping the first engine whose output agrees with FP32; "
             "fp16, fp16-wide or fp32 force one rung (still verified)."),
    typing: Typing = typer.Option(
        "auto", "--typing", case_sensitive=False,
        help="strong: an FP16 graph with explicit Casts, no precision flags (TensorRT >= 10); weak: the FP16 flag "
             "and per-layer FP32 pins (TensorRT 8.5 / 8.6); auto: strong from TensorRT 10.12 (weak typing is "
             "deprecated there), else weak."),
    workspace: Optional[int] = typer.Option(None, "--workspace", min=1,
                                            help="Builder workspace cap in MiB (default: the device profile's; 1024 on orin-nano)."),
    builder: Builder = typer.Option("python", "--builder", case_sensitive=False,
                                    help="python (TensorRT Python API) or trtexec (/usr/src/tensorrt/bin/trtexec, same settings)."),
    res: List[str] = typer.Option([], "--res", "-r", help="With a folder: only these sizes. " + RES_HELP),
    out_dir: str = typer.Option("engines", "--out-dir", "-o", help="Where engines, sidecars, inspector JSON and build logs go."),
    timing_cache: Optional[str] = typer.Option(None, "--timing-cache", help="Persistent timing cache (default: one per TensorRT version and GPU in --out-dir)."),
    force: bool = typer.Option(False, "--force", "-f", help="Rebuild even when an up-to-date engine exists."),
) -> None:
    """Build TensorRT engines for this GPU from exported ONNX files, each checked against FP32 on the export's reference inputs before it is kept; up-to-date engines are reused.

    Writes `engines/<onnx stem>-<rung>-trt<version>-<gpu>.engine` with a sidecar (TensorRT version, GPU, JetPack, ONNX sha256, settings, the verification figures of every rung tried), the engine inspector JSON and the build log. Engines only run on the TensorRT and GPU that built them.
    """
    from anydepth_edge.console import progress
    from anydepth_edge.engines.ensure import build_engines
    from anydepth_edge.resolution import parse_res_list

    with progress() as prog:  # the build's phases as they come, with the time elapsed
        task = prog.add_task("TensorRT engines", total=None)
        items = build_engines(Path(onnx), Path(out_dir), device.value, precision=precision.value, typing=typing.value,
                              builder=builder.value, workspace_mib=workspace,
                              timing_cache=Path(timing_cache) if timing_cache else None, force=force,
                              resolutions=parse_res_list(res),
                              notify=lambda text: prog.update(task, description=text))
    for item in items:
        out.print(item, markup=False) if isinstance(item, str) else out.print(item)


@app.command()
def verify(
    file: str = typer.Argument(..., help="An engine (.engine), an export (.onnx) or its strongly typed FP16 form (.fp16.onnx)."),
    images: Optional[str] = typer.Option(None, "--images", help="Compare on these images (a folder) against the FP32 "
                                                                 "ONNX on ONNX Runtime CPU, instead of the export's reference bundle."),
    device: BenchDevice = typer.Option("cpu", "--device", case_sensitive=False,
                                       help="ONNX files: cpu or cuda (ONNX Runtime's provider)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Check that an engine or ONNX file gives the FP32 export's depth: NaN/Inf, max abs error, AbsRel and delta1 after a scale-and-shift fit, RMSE over the reference's spread. Exit 1 when it does not agree. An engine's verdict is recorded, so run and bench use it (or not) afterwards."""
    from anydepth_edge.agreement import verdict_table
    from anydepth_edge.engines.verify import verify_file

    verdict, notes = verify_file(Path(file), images=Path(images) if images else None,
                                 device="cuda" if device.value == "cuda" else "cpu")
    if as_json:
        sys.stdout.write(json.dumps(verdict.to_dict(), allow_nan=False) + "\n")  # strict: figures are None, never NaN
    else:
        out.print(verdict_table({Path(file).name: verdict}, f"{Path(file).name} vs FP32 (limits for {verdict.precision})"))
        for note in notes:
            out.print(note, markup=False)
    if not verdict.passed:
        raise typer.Exit(1)


@app.command("check-onnx")
def check_onnx(
    onnx_file: str = typer.Argument(..., help="The ONNX file to check."),
    target: TrtTarget = typer.Option("auto", "--target", "-t", case_sensitive=False,
                                     help="trt8.5, trt8.6 or trt10; auto = the target recorded in the file, else trt10."),
) -> None:
    """Lint an ONNX file for a TensorRT version: unsupported ops, opset range, GridSample mode and
    rank, If/Loop, dynamic shapes. Exit 1 when anything would not import as needed."""
    _require("onnx", "export")
    from anydepth_edge.export.lint import lint_file, problems_table, recorded_target

    tgt = recorded_target(onnx_file) if target.value == "auto" else target.value
    problems = lint_file(onnx_file, tgt)
    if not problems:
        out.print("[green]ok[/]: ", end="")
        out.print(f"{onnx_file} imports into {tgt} (ops, opset, GridSample, static shapes)", markup=False)
        return
    out.print(problems_table(onnx_file, tgt, problems))
    raise typer.Exit(1)


@app.command()
def bench(
    device: BenchDevice = typer.Option("auto", "--device", case_sensitive=False,
                                       help="orin-nano, cuda, cpu or auto (detected). orin-nano on another host is refused unless --allow-mismatch."),
    res: List[str] = typer.Option(["256", "512"], "--res", "-r", help=RES_HELP + " Repeat for several."),
    decoder: List[DecoderOrAll] = typer.Option(["all"], "--decoder", "-d", case_sensitive=False,
                                               help="sdt, dpt or dav2 (Depth Anything V2's head); repeat for several; "
                                                    "all: sdt and dpt, the paper's pair (the default)."),
    encoder: Encoder = typer.Option("vits", "--encoder", "-e", case_sensitive=False, help=ENCODER_HELP),
    backend: BackendName = typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    precision: Optional[Precision] = typer.Option(None, "--precision", case_sensitive=False,
                                                  help="fp16 or fp32 (default: fp16 on GPUs, fp32 on CPUs)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed runs first (default per device: cpu 2, cuda 20, orin-nano 10)."),
    iters: Optional[int] = typer.Option(None, "--iters", help="Timed runs (default per device: cpu 10, cuda 200, orin-nano 50)."),
    e2e_iters: Optional[int] = typer.Option(None, "--e2e-iters", help="End-to-end runs with pre/post-processing of a 640x480 frame."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    out_dir: str = typer.Option("benchmarks/runs", "--out-dir", "-o", help="Where the JSON, Markdown, CSV and PNG go "
                                                                            "(benchmarks/runs is yours and untracked; the committed references are in benchmarks/results)."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Replay inference as a CUDA graph (TensorRT with cuda-python, PyTorch CUDA)."),
    dysample: Sampler = typer.Option("auto", "--dysample", case_sensitive=False, help=SAMPLER_HELP),
    layout: Layout = typer.Option("auto", "--layout", case_sensitive=False,
                                  help="PyTorch memory layout: nchw, channels-last, or auto (time both on the first "
                                       "runs of each configuration and keep the faster; the report says which)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime CPU threads (default: all cores)."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Run --device orin-nano elsewhere, labelling every figure as not from an Orin Nano."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where ONNX files are found / exported."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where TensorRT engines are found / built."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified", help="Benchmark a TensorRT engine even when no "
                                                                            "rung of the precision ladder agreed with FP32."),
) -> None:
    """Reproduce the paper's Orin Nano table here: latency, FPS and peak memory of SDT vs DPT at 256 and 512.

    Each configuration runs in its own process. Missing ONNX files / engines are exported / built first (cached). Prints the tables with the paper's figures beside ours and writes JSON (with raw latencies), Markdown, CSV and a PNG chart to --out-dir.
    """
    from anydepth_edge.bench.harness import BenchOptions, run_bench
    from anydepth_edge.bench.report import console_tables, write_outputs
    from anydepth_edge.console import progress
    from anydepth_edge.resolution import parse_res_list

    opts = BenchOptions(
        # with a checkpoint, sizes are checked against its patch (14 px for DINOv2 weights) once it is loaded
        device=device.value, resolutions=parse_res_list(res, multiple=None if checkpoint else 16),
        decoders=expand_decoders(d.value for d in decoder),
        encoder=encoder.value, backend=backend.value, precision=precision.value if precision else None, warmup=warmup,
        iters=iters, e2e_iters=e2e_iters, checkpoint=checkpoint, out_dir=Path(out_dir), allow_mismatch=allow_mismatch,
        cuda_graph=cuda_graph, dysample=SAMPLERS[dysample.value], layout=layout.value, threads=threads,
        export_dir=Path(export_dir), engines_dir=Path(engines_dir), allow_unverified=allow_unverified,
    )
    started = time.monotonic()
    if not opts.checkpoint:  # as export and info say it
        from anydepth_edge.models.factory import RANDOM_WEIGHTS_WARNING

        warn(RANDOM_WEIGHTS_WARNING)
    with progress(transient=True) as prog:
        record = run_bench(opts, warn=warn, progress=prog)
    for table in console_tables(record):
        out.print(table)
    paths = write_outputs(record, opts.out_dir)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    out.print(f"written in {minutes} min {seconds:02d} s: " + ", ".join(str(p) for p in paths.values()), markup=False)
    if any("error" in r for r in record["results"]):
        raise typer.Exit(1)


@app.command()
def run(
    source: str = typer.Option(..., "--source", "-s", help="0 or /dev/video0 (USB), csi://0?mode=2&width=1280&height=720&fps=30 (CSI), realsense[:SERIAL][?depth=1] or a .bag recording, a video file, an image folder, rtsp://host/path, ros:/TOPIC (a ROS 2 image topic; .../compressed for CompressedImage)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="An .engine or .onnx file (default: the newest matching one in engines/, else export/)."),
    res: str = typer.Option("256", "--res", "-r", help="Model size to look for when --model is not given. " + RES_HELP),
    backend: BackendName = typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    display: bool = typer.Option(False, "--display/--headless", help="Show a window (needs a screen), or run headless (default)."),
    record: Optional[str] = typer.Option(None, "--record", help="Record camera | depth with the timings overlay to this .mp4."),
    save_depth: Optional[str] = typer.Option(None, "--save-depth", help="Write each depth as 16-bit PNG (mm with --metric, else normalised) and float .npy (metres with --metric) to this folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --record file and write into a non-empty --save-depth folder (refused otherwise)."),
    min_free_mb: float = typer.Option(200.0, "--min-free-mb", min=0, help="Refuse to start --record / --save-depth with less free space than this (MB)."),
    serve: Optional[str] = typer.Option(None, "--serve", help="[HOST:]PORT for the browser viewer (MJPEG + timings); binds 127.0.0.1 unless HOST is given."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    metric: Optional[MetricMode] = typer.Option(None, "--metric", case_sensitive=False, rich_help_panel=METRIC_PANEL,
                                                help="Output metres: sensor (a RealSense: fit to its depth stream each frame) or floor "
                                                     "(no depth sensor: fit to the floor; needs --camera-height, --camera-pitch and the intrinsics: "
                                                     "--camera-info or --camera-hfov). A frame that cannot be fitted has NaN depth, counted."),
    camera_height: Optional[float] = typer.Option(None, "--camera-height", rich_help_panel=METRIC_PANEL,
                                                  help="--metric floor (required): the lens's height above the floor, metres (0.02-20)."),
    camera_pitch: float = typer.Option(0.0, "--camera-pitch", rich_help_panel=METRIC_PANEL,
                                       help="--metric floor: degrees the camera looks down (negative: up). Get it right: "
                                            "1 degree off moves metres by several %, see docs/metric.md."),
    camera_roll: float = typer.Option(0.0, "--camera-roll", rich_help_panel=METRIC_PANEL,
                                      help="--metric floor: degrees the image is turned about the lens's axis (right side down)."),
    camera_hfov: Optional[float] = typer.Option(None, "--camera-hfov", min=1.0, max=179.0, rich_help_panel=METRIC_PANEL,
                                                help="--metric floor without a calibration: the horizontal field of view, "
                                                     "degrees (a pinhole centred in the frame); --camera-info is better."),
    resize: Resize = typer.Option("stretch", "--resize", case_sensitive=False,
                                  help="stretch (whole frame, aspect changes) or letterbox (aspect kept, padded)."),
    pace: Pace = typer.Option("native", "--pace", case_sensitive=False,
                              help="Video files: native (played like a camera at the file's FPS, frames dropped when the model is slower) or none (every frame, as fast as the model goes)."),
    reconnect_timeout: float = typer.Option(30.0, "--reconnect-timeout", help="Seconds to keep retrying a lost camera before exiting non-zero."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where to look for engines."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where to look for ONNX files."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified", help="Use a TensorRT engine whose output was "
                                                                            "not (or not successfully) checked against FP32."),
    ros2: bool = typer.Option(False, "--ros2", rich_help_panel=ROS_PANEL,
                              help="Publish on a ROS 2 node: ~/depth (32FC1: relative depth, metres with --metric), ~/depth/camera_info, ~/points, /diagnostics. Needs a sourced ROS 2 (rclpy)."),
    record_bag: Optional[str] = typer.Option(None, "--record-bag", rich_help_panel=ROS_PANEL,
                                             help="Write the same ROS 2 messages to this .mcap bag (ros2 bag play, Foxglove); no ROS needed."),
    camera_info: Optional[str] = typer.Option(None, "--camera-info", rich_help_panel=ROS_PANEL,
                                              help="Camera calibration, a ROS camera_info YAML (default: the RealSense's, or the ros: source's camera_info topic); also for --metric floor."),
    frame_id: str = typer.Option("", "--frame-id", rich_help_panel=ROS_PANEL,
                                 help="header.frame_id (default: the ros: source's; camera_color_optical_frame for a RealSense; else camera_optical_frame)."),
    depth_size: DepthSize = typer.Option("model", "--depth-size", case_sensitive=False, rich_help_panel=ROS_PANEL,
                                         help="model (the model's grid, letterbox padding cropped; intrinsics follow) or frame (the camera frame's size)."),
    points_decimation: int = typer.Option(4, "--points-decimation", min=0, rich_help_panel=ROS_PANEL,
                                          help="~/points from every n-th pixel of every n-th row; 0: no cloud."),
    colored: bool = typer.Option(False, "--colored", rich_help_panel=ROS_PANEL, help="Also publish ~/depth/colored (bgr8)."),
    node_name: str = typer.Option("anydepth_edge", "--node-name", rich_help_panel=ROS_PANEL, help="ROS 2 node name."),
    namespace: str = typer.Option("", "--namespace", rich_help_panel=ROS_PANEL, help="ROS 2 namespace, e.g. /robot."),
    reliability: Reliability = typer.Option("reliable", "--reliability", case_sensitive=False, rich_help_panel=ROS_PANEL,
                                            help="QoS of the published topics: reliable (REP 2003) or best_effort."),
    ros_args: str = typer.Option("", "--ros-args", rich_help_panel=ROS_PANEL,
                                 help='ROS arguments for the node, e.g. "-p points_decimation:=2 -r __ns:=/robot".'),
) -> None:
    """Run depth behind a camera: capture, inference and output overlap; latency never builds up (only the newest frame is kept).

    Ctrl-C or SIGTERM stops cleanly (recording finished, camera released) and prints the summary.
    """
    from anydepth_edge.runtime.app import floor_settings, run_depth
    from anydepth_edge.runtime.loop import RunOptions

    opts = RunOptions(max_frames=max_frames, resize_policy=resize.value, pace=pace.value, display=display,
                      record=record, save_depth=save_depth, serve=serve, metric=_value(metric) or "",
                      floor=floor_settings(_value(metric), camera_height, camera_pitch, camera_roll, camera_hfov),
                      camera_info=camera_info, camera_hfov=camera_hfov,
                      reconnect_timeout=reconnect_timeout, overwrite=overwrite, min_free_mb=min_free_mb)
    if ros2 or record_bag or source.strip().lower().startswith("ros:"):
        from anydepth_edge.ros2.app import RosOptions, run_ros
        from anydepth_edge.ros2.publisher import PublishSettings

        ros = RosOptions(publish=ros2, record_bag=record_bag, camera_info=camera_info, node_name=node_name,
                         namespace=namespace, ros_args=ros_args, reliability=reliability.value,
                         settings=PublishSettings(frame_id=frame_id, depth_size=depth_size.value,
                                                  points_decimation=points_decimation, colored=colored))
        summary = run_ros(source, model, res, backend.value, opts, ros, engines_dir, export_dir, console=out,
                          warn=warn, notify=info, allow_unverified=allow_unverified)
    else:
        given = [flag for flag, value, default in (
            ("--camera-info", camera_info if opts.metric != "floor" else None, None), ("--frame-id", frame_id, ""), ("--depth-size", depth_size.value, "model"),
            ("--points-decimation", points_decimation, 4), ("--colored", colored, False),
            ("--node-name", node_name, "anydepth_edge"), ("--namespace", namespace, ""),
            ("--reliability", reliability.value, "reliable"), ("--ros-args", ros_args, "")) if value != default]
        if given:  # said, not silently ignored (an invalid --camera-info too)
            raise UserError(f"{', '.join(given)}: ROS 2 options, used only with --ros2, --record-bag or a ros: source")
        summary = run_depth(source, model, res, backend.value, opts, engines_dir, export_dir, console=out, warn=warn,
                            notify=info, allow_unverified=allow_unverified)
    if summary.error:
        raise HardwareMissing(summary.error)


@app.command()
def doctor(
    job: Job = typer.Option("run", "--for", case_sensitive=False, help="The job to check for: run, bench, export or ros2."),
    root: str = typer.Option("/", "--root", help="Inspect a file-system root other than / (an image, a copied tree)."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where exports live (relative to the current folder, or --root)."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where engines live."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check this machine: Jetson model, JetPack, power mode, clocks, TensorRT / CUDA / ONNX Runtime / PyTorch, OpenCV GStreamer, cameras, disk and memory, exports and engines. Exit 0 when --for JOB can run."""
    from anydepth_edge.doctor import diagnose, print_report, report_json

    if root == "/":  # on this machine, relative folders mean the current folder (under --root otherwise)
        export_dir, engines_dir = str(Path(export_dir).resolve()), str(Path(engines_dir).resolve())
    report = diagnose(root, export_dir, engines_dir)
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
        raise typer.Exit(0 if report["can"][job.value] else 1)
    raise typer.Exit(print_report(report, job.value, out))


def _readable_metavars() -> None:
    """TEXT / N / NUMBER in `--help` instead of typer's <str> / <int> / <float>, and nothing after
    a flag (typer prints <bool>); choices (enums) keep their lists."""
    import inspect

    names = {str: "TEXT", int: "N", float: "NUMBER", Optional[str]: "TEXT", Optional[int]: "N",
             Optional[float]: "NUMBER", List[str]: "TEXT", bool: " "}
    for command in app.registered_commands + ([app.registered_callback] if app.registered_callback else []):
        for p in inspect.signature(command.callback).parameters.values():
            info = p.default
            if isinstance(info, (typer.models.OptionInfo, typer.models.ArgumentInfo)) and info.metavar is None:
                info.metavar = names.get(p.annotation)


def _click_exceptions():
    """(UsageError, ClickException, Abort) of the click typer runs on (newer typer vendors its own)."""
    mro = typer.BadParameter.__mro__
    usage = next(c for c in mro if c.__name__ == "UsageError")
    return usage, next(c for c in mro if c.__name__ == "ClickException"), typer.Abort


@app.command("eval")
def eval_(
    data: str = typer.Option(..., "--data", "-d", help="NYUv2's nyu_depth_v2_labeled.mat (splits.mat beside it), a KITTI root with --split eigen_test_files_with_gt.txt, or a folder of rgb/NAME.png + depth/NAME.png (16-bit) pairs."),
    dataset: EvalDataset = typer.Option("auto", "--dataset", case_sensitive=False, help="nyu (NYUv2, Eigen crop, 10 m), kitti (KITTI Eigen, Garg crop, 80 m), folder (no crop, 80 m); auto: by what --data is."),
    split: Optional[str] = typer.Option(None, "--split", help="NYUv2: splits.mat or a list of 1-based indices (default: splits.mat beside the .mat; 'all': every image). KITTI: the test list."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The engine or ONNX export to evaluate (default: the newest matching one in engines/, else export/)."),
    res: str = typer.Option("256", "--res", "-r", help="Model size to look for when --model is not given. " + RES_HELP),
    backend: BackendName = typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    against: Optional[str] = typer.Option(None, "--against", help="Also run fp32 (--model's FP32 export on ONNX Runtime) or another model file on the same images: both metric sets, their difference, the worst images."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N test images (a quick run on the robot)."),
    depth_scale: float = typer.Option(0.001, "--depth-scale", min=1e-9, help="Folder datasets: metres per unit of the 16-bit depth PNGs (0.001: millimetres)."),
    out_dir: str = typer.Option("eval", "--out-dir", "-o", help="Where the record goes (JSON, Markdown, PNG)."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where to look for engines."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where to look for ONNX files."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified", help="Evaluate a TensorRT engine whose output was not checked against FP32."),
) -> None:
    """Accuracy of the deployed model: AbsRel, RMSE, delta1-3 on NYUv2, KITTI or your own RGB + depth pairs, with the zero-shot affine-invariant protocol (scale and shift fitted per image); --against fp32 shows what the deployment lost. docs/eval.md."""
    from anydepth_edge.evaluation.app import EvalOptions, print_record, run_eval

    opts = EvalOptions(data=data, dataset=dataset.value, split=split, depth_scale=depth_scale, limit=limit, model=model,
                       res=res, backend=backend.value, against=against, engines_dir=engines_dir, export_dir=export_dir,
                       out_dir=out_dir, allow_unverified=allow_unverified)
    record, paths = run_eval(opts, out, warn=warn, notify=info)
    print_record(record, paths, out)


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user errors and bad options become one line on stderr and a non-zero exit."""
    usage_error, click_exception, abort = _click_exceptions()
    interrupt_on_sigterm()
    _readable_metavars()
    try:
        code = app(args=argv, prog_name="anydepth-edge", standalone_mode=False)
    except UserError as e:
        error_line(str(e))
        sys.exit(e.exit_code)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help was printed
        verb = e.ctx.command_path if getattr(e, "ctx", None) is not None else "anydepth-edge"
        error_line(f"{e.format_message().replace('Value error, ', '')} (see {verb} --help)")
        sys.exit(2)
    except click_exception as e:
        error_line(e.format_message())
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, abort):
        error_line("interrupted")
        sys.exit(130)
    except MemoryError:
        error_line("out of memory: use a smaller --res, or close other programs")
        sys.exit(1)
    except OSError as e:  # a full disk, a permission, a vanished file: say which, no traceback
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        error_line(f"{e.strerror or e}{where}")
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
