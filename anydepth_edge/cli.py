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
from anydepth_edge.errors import UserError

app = typer.Typer(
    name="anydepth-edge",
    help=(
        "AnyDepth monocular depth (DINOv3 + SDT decoder, DPT as baseline) from PyTorch to a TensorRT "
        "FP16 engine on a Jetson Orin Nano: export, build, bench, run.\n\n"
        "Typical robot session:  anydepth-edge export --res 256  ->  anydepth-edge bench --device orin-nano  "
        "->  anydepth-edge run --source 0 --serve 8080"
    ),
    no_args_is_help=True,
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

    Writes export/anydepth-<decoder>-<encoder>-<H>x<W>-<target>.onnx plus a .json sidecar (opset, shapes,
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

    t = Table(title="ONNX exports")
    for col in ("file", "nodes (slim)", "parity rel", "FP16 d1 pins/none", "FP16 AbsRel pins/none", "s"):
        t.add_column(col)
    for r in results:
        s = r.sidecar
        fp = s.get("fp16") or {}
        d1 = f"{fp['with_pins']['delta1']:.4f} / {fp['without_pins']['delta1']:.4f}" if fp else "-"
        ar = f"{fp['with_pins']['abs_rel']:.2e} / {fp['without_pins']['abs_rel']:.2e}" if fp else "-"
        worst = max(v["rel"] for k, v in s["parity"].items() if isinstance(v, dict))
        t.add_row(str(r.onnx_path), f"{s['nodes']['before_slim']} -> {s['nodes']['after_slim']}", f"{worst:.1e}",
                  d1, ar, "reused" if r.reused else f"{r.seconds:.1f}")
    out.print(t)


def _maybe_build_engines(results, engine: str) -> None:
    """Placeholder until the engine stage lands: TensorRT is never importable on this host."""
    if engine == "never":
        return
    from anydepth_edge.export.targets import installed_tensorrt_version

    if installed_tensorrt_version() is None:
        if engine == "always":
            raise UserError("--engine always: TensorRT is not installed here")
        from anydepth_edge.console import info as info_line

        info_line("TensorRT not importable here: skipping the engine build (run anydepth-edge build on the robot)")


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
