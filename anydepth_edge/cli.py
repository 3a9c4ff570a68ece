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
