"""`anydepth-edge info`: what one model is (family, parameters, GFLOPs, taken layers, input rules,
output meaning), as a record for programs and tables for people."""

from typing import Any, Callable, Dict, Optional, Tuple

from anydepth_edge.model_facts import IMAGENET_MEAN, IMAGENET_STD


def model_info(checkpoint: Optional[str], encoder: Optional[str], decoder: Optional[str],
               res: Optional[Tuple[int, int]], warn: Optional[Callable[[str], None]] = None,
               say: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    from anydepth_edge.export.onnx_export import OUTPUT_MEANING, model_label
    from anydepth_edge.models.factory import resolve_model
    from anydepth_edge.models.flops import count_gflops, count_params
    from anydepth_edge.weights import licence_of
    from anydepth_edge.resolution import check_multiple, default_resolution

    model, report = resolve_model(checkpoint, encoder, decoder, warn=warn, say=say)
    cfg = model.config
    res = check_multiple(res, cfg.patch_size) if res else default_resolution(cfg.patch_size)
    return {
        "model": model_label(cfg),
        "family": cfg.family,
        "encoder": cfg.encoder,
        "decoder": cfg.decoder,
        "res": list(res),
        "params": count_params(model),
        "gflops": {k: round(v, 3) for k, v in count_gflops(model, res).items()},
        "taken_layers": list(cfg.layers),
        "input": {"layout": "NCHW float32, RGB, ImageNet-normalised", "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD), "multiple_of": cfg.patch_size},
        "output_kind": cfg.output_kind,
        "output": f"{OUTPUT_MEANING[cfg.output_kind]}, (1, 1, H, W)",
        "recognised": report.recognised,
        "licence": licence_of(checkpoint),
        "checkpoint": report.ref.to_dict(),
    }
