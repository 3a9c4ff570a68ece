"""The FP32 pin policy: which regions of the network stay FP32 inside an FP16 engine, how their
nodes are named in the ONNX graph, and how each builder path applies them.

Regions are chosen by module type, never by attribute names:
- dysample: DySample's coordinate maths and sampler. FP16 grid coordinates quantise sub-pixel
  positions (0.125 px at 128-256 px, 0.25 px at 256-512 px). Always FP32.
- layernorm: LayerNorm. Decomposed at opset 16 (TensorRT 8.5) its pieces overflow in FP16, so it
  is always FP32 there; native LayerNormalization computes in FP32 on TensorRT >= 8.6, and the
  wider pin set also keeps its output FP32.
- attention: attention scores, softmax and the RoPE rotation (the ops of the attention module
  itself, not its q/k/v and output projections): "FP32 attention scores for FP16 stability".
- residual: the LayerScale and residual adds of each transformer block, where DINOv3's outlier
  channels live.

The export names every region's nodes `<Prefix>/<module path>/<op>` (export/pin_names.py: which
module is which region, and the renaming), so the builder (which has no PyTorch) selects a pin set
by prefix. Pin sets: `default` (what every FP16 build gets) and `wide` (the precision ladder's
second rung). Nothing here imports PyTorch or the stages, Python 3.8.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple


@dataclass(frozen=True)
class Region:
    name: str
    prefix: str
    subtree: bool  # all nodes under the module (True) or only the module's own ops (False)
    why: str


REGIONS: Dict[str, Region] = {
    "dysample": Region("dysample", "DySampleFP32/", True,
                       "sampling coordinates: FP16 quantises sub-pixel positions"),
    "layernorm": Region("layernorm", "LayerNormFP32/", True,
                        "LayerNorm: a decomposed LayerNorm overflows in FP16"),
    "attention": Region("attention", "AttentionFP32/", False,
                        "attention scores and softmax: FP16 overflows to NaN on DINOv3"),
    "residual": Region("residual", "ResidualFP32/", False,
                       "residual adds: DINOv3's outlier channels exceed FP16's precision"),
}

PIN_SETS: Dict[str, Tuple[str, ...]] = {
    "default": ("dysample",),
    "wide": ("dysample", "layernorm", "attention", "residual"),
}


def pin_regions(pin_set: str, decompose_layernorm: bool) -> Tuple[str, ...]:
    """The regions a pin set keeps in FP32 for an export form (decomposed LayerNorm always)."""
    regions = list(PIN_SETS[pin_set])
    if decompose_layernorm and "layernorm" not in regions:
        regions.append("layernorm")
    return tuple(r for r in REGIONS if r in regions)


def region_of(node_name: str) -> str:
    """The region a (renamed) node or TensorRT layer belongs to, or ''."""
    for region in REGIONS.values():
        if node_name.startswith(region.prefix) or f"/{region.prefix}" in node_name:
            return region.name
    return ""


def is_pinned(layer_name: str, regions: Iterable[str]) -> bool:
    """TensorRT layer names start with the ONNX node's name (a node may become several layers)."""
    return region_of(layer_name) in set(regions)


def pinned_names(names: Iterable[str], regions: Iterable[str]) -> List[str]:
    regions = set(regions)
    return [n for n in names if region_of(n) in regions]


def trtexec_precision_flags(layer_names: Sequence[str], obey: bool) -> List[str]:
    """The weakly typed trtexec flags that pin `layer_names` to FP32."""
    if not layer_names:
        return []
    return ["--precisionConstraints=" + ("obey" if obey else "prefer"),
            "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in layer_names),
            "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in layer_names)]
