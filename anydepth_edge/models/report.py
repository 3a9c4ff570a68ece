"""`anydepth-edge info`: what one model is (parameters, GFLOPs, taken layers, input rules), as a
record for programs and tables for people."""

from typing import Any, Callable, Dict, List, Optional, Tuple

from anydepth_edge.specs import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_DEPTH,
    PATCH_SIZE,
)


def model_info(checkpoint: Optional[str], encoder: str, decoder: str, res: Tuple[int, int],
               warn: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    from anydepth_edge.models.factory import resolve_model
    from anydepth_edge.models.flops import count_gflops, count_params

    model, report = resolve_model(checkpoint, encoder, decoder, warn=warn)
    return {
        "encoder": model.config.encoder,
        "decoder": model.config.decoder,
        "res": list(res),
        "params": count_params(model),
        "gflops": {k: round(v, 3) for k, v in count_gflops(model, res).items()},
        "taken_layers": list(model.config.layers),
        "input": {"layout": "NCHW float32, RGB, ImageNet-normalised", "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD), "multiple_of": PATCH_SIZE},
        "output": f"affine-invariant depth (1, 1, H, W) = relu(x) + {MIN_DEPTH}",
        "checkpoint": report.ref.to_dict(),
    }


def info_tables(record: Dict[str, Any]) -> List[Any]:
    from rich.table import Table

    label = ENCODERS[record["encoder"]].label
    h, w = record["res"]
    t = Table(title=f"AnyDepth {label} + {record['decoder'].upper()} at {h}x{w}")
    t.add_column("part")
    t.add_column("parameters", justify="right")
    t.add_column("GFLOPs", justify="right")
    params, gflops = record["params"], record["gflops"]
    for part in ("encoder", "decoder", "total"):
        t.add_row(part, f"{params[part] / 1e6:.3f} M ({params[part]:,})", f"{gflops[part]:.2f}")
    return [t, f"taken encoder layers (0-based blocks): {record['taken_layers']}",
            f"input: RGB, ImageNet mean/std, (1, 3, H, W), H and W multiples of {PATCH_SIZE}",
            "GFLOPs = 2 x multiply-accumulates of matmuls, convolutions and attention"]
