"""Verbs on models and their artifacts: info, export, build, verify, check-onnx."""

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from anydepth_edge.cli.common import (
    BenchDevice,
    Builder,
    CKPT_HELP,
    DECODER_HELP,
    Decoder,
    DecoderOrAll,
    ENCODER_HELP,
    Encoder,
    EngineMode,
    Profile,
    RES_HELP,
    Rung,
    SAMPLERS,
    SAMPLER_HELP,
    Sampler,
    Target,
    TrtTarget,
    Typing,
    _require,
    _value,
    app,
)
from anydepth_edge import views
from anydepth_edge.console import info, out, warn
from anydepth_edge.model_facts import expand_decoders
from anydepth_edge.weights import WEIGHTS_HELP, checkpoint_for


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
    from anydepth_edge.models.report import model_info

    record = model_info(checkpoint_for(checkpoint, weights), _value(encoder), _value(decoder), resolution,
                        warn=warn, say=info)
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    for item in views.model_info(record):
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
    from anydepth_edge.engines.batch import check_engine_mode, engines_after_export
    from anydepth_edge.export.onnx_export import export_models

    if tgt.tensorrt:
        check_engine_mode(engine.value)

    checkpoint = checkpoint_for(checkpoint, weights)
    with progress() as prog:
        results = export_models(_value(encoder), decoders, resolutions, tgt, Path(out_dir), checkpoint=checkpoint,
                                dysample=SAMPLERS[dysample.value], force=force, fp16_check=fp16_check, warn=warn,
                                progress=prog, say=info)
    out.print(views.export_results(results))
    if tgt.tensorrt:
        views.print_engines(engines_after_export([r.onnx_path for r in results], engine.value, Path(engines_dir),
                                                 notify=info), out)


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
    decoder: Optional[DecoderOrAll] = typer.Option(None, "--decoder", "-d", case_sensitive=False,
                                                   help="With a folder: only this decoder's exports (all: SDT and DPT only; "
                                                        "left out: every export in the folder, DAv2 included)."),
    out_dir: str = typer.Option("engines", "--out-dir", "-o", help="Where engines, sidecars, inspector JSON and build logs go."),
    timing_cache: Optional[str] = typer.Option(None, "--timing-cache", help="Persistent timing cache (default: one per TensorRT version and GPU in --out-dir)."),
    force: bool = typer.Option(False, "--force", "-f", help="Rebuild even when an up-to-date engine exists."),
) -> None:
    """Build TensorRT engines for this GPU from exported ONNX files, each checked against FP32 on the export's reference inputs before it is kept; up-to-date engines are reused.

    Writes `engines/<onnx stem>-<rung>-trt<version>-<gpu>.engine` with a sidecar (TensorRT version, GPU, JetPack, ONNX sha256, settings, the verification figures of every rung tried), the engine inspector JSON and the build log. Engines only run on the TensorRT and GPU that built them.
    """
    from anydepth_edge.console import progress
    from anydepth_edge.engines.batch import build_engines
    from anydepth_edge.resolution import parse_res_list

    with progress() as prog:  # the build's phases as they come, with the time elapsed
        task = prog.add_task("TensorRT engines", total=None)
        built = build_engines(Path(onnx), Path(out_dir), device.value, precision=precision.value, typing=typing.value,
                              builder=builder.value, workspace_mib=workspace,
                              timing_cache=Path(timing_cache) if timing_cache else None, force=force,
                              resolutions=parse_res_list(res),
                              decoders=expand_decoders([_value(decoder)]) if decoder else (),
                              notify=lambda text: prog.update(task, description=text))
    views.print_engines(built, out)


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
    from anydepth_edge.engines.verify import verify_file

    verdict, notes = verify_file(Path(file), images=Path(images) if images else None,
                                 device="cuda" if device.value == "cuda" else "cpu")
    if as_json:
        sys.stdout.write(json.dumps(verdict.to_dict(), allow_nan=False) + "\n")  # strict: figures are None, never NaN
    else:
        out.print(views.verdicts({Path(file).name: verdict}, f"{Path(file).name} vs FP32 (limits for {verdict.precision})"))
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
    from anydepth_edge.export.lint import lint_file, recorded_target

    tgt = recorded_target(onnx_file) if target.value == "auto" else target.value
    problems = lint_file(onnx_file, tgt)
    if not problems:
        out.print("[green]ok[/]: ", end="")
        out.print(f"{onnx_file} imports into {tgt} (ops, opset, GridSample, static shapes)", markup=False)
        return
    out.print(views.lint_problems(onnx_file, tgt, problems))
    raise typer.Exit(1)
