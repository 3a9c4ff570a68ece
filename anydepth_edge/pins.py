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

The export names every region's nodes `<Prefix>/<module path>/<op>`, so the builder (which has
no PyTorch) selects a pin set by prefix. Pin sets: `default` (what every FP16 build gets) and
`wide` (the precision ladder's second rung). Module types declare their region (`pin_region`);
nothing here imports PyTorch or the stages, Python 3.8.
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


# ----------------------------------------------------------------------------- the torch side

# Module types of other libraries, by class name (timm's Eva attention and transformer block).
_REGION_BY_CLASS = {"LayerNorm": "layernorm", "EvaAttention": "attention", "EvaBlock": "residual"}


def module_region(module) -> str:
    """The pin region a module is, by type: classes of this package declare `pin_region`
    (the DySample export forms), others are known by class name. '' when none."""
    declared = getattr(type(module), "pin_region", None)
    if declared:
        return declared
    return next((_REGION_BY_CLASS[c.__name__] for c in type(module).__mro__ if c.__name__ in _REGION_BY_CLASS), "")


def region_modules(model) -> Dict[str, List[str]]:
    """{region: [qualified module names]} of an export-form model."""
    out: Dict[str, List[str]] = {name: [] for name in REGIONS}
    for qualified, module in model.named_modules():
        region = module_region(module)
        if region:
            out[region].append(qualified)
    return out


def emulated(module, regions: Iterable[str]) -> bool:
    """Does the FP16 emulation keep `module` unrounded inside (a whole-module region of `regions`)?"""
    region = module_region(module)
    return region in set(regions) and REGIONS[region].subtree


def scope_path(node_name: str) -> List[str]:
    """A TorchScript node name's module path: '/decoder/upsample_1/dysample1/dysample1.0/coords/Add'
    -> ['decoder', 'upsample_1', 'dysample1', '0', 'coords']. A container's child appears as
    'parent.N' after 'parent'; the op name (last part) is dropped."""
    parts = [p for p in node_name.split("/") if p][:-1]
    out: List[str] = []
    for part in parts:
        pieces = part.split(".")
        if len(pieces) > 1 and out and out[-1] == pieces[0]:
            out.pop()  # 'dysample1' followed by 'dysample1.0'
        out.extend(pieces)
    return out


def _is_subsequence(short: List[str], long: List[str]) -> bool:
    it = iter(long)
    return all(any(s == x for x in it) for s in short)


def owning_module(node_name: str, modules: Sequence[str]) -> str:
    """The module (qualified name) whose own ops include `node_name`, or ''. Scopes can elide
    modules whose `forward` is not called (timm's backbone under `forward_intermediates`), so a
    scope matches a module whose path contains it, same first and last part, fewest elisions."""
    path = scope_path(node_name)
    if not path:
        return ""
    best, best_extra = "", None
    for qualified in modules:
        parts = qualified.split(".")
        if parts[0] != path[0] or parts[-1] != path[-1] or not _is_subsequence(path, parts):
            continue
        extra = len(parts) - len(path)
        if best_extra is None or extra < best_extra:
            best, best_extra = qualified, extra
    return best


def name_region_nodes(graph, model) -> Dict[str, List[str]]:
    """Rename the nodes of every region in an ONNX graph traced from `model` to
    `<Prefix><module path>/<op>`; returns {region: [new node names]}."""
    regions = region_modules(model)
    all_modules = [q for q, _ in model.named_modules() if q]
    owner_cache: Dict[str, str] = {}
    named: Dict[str, List[str]] = {r: [] for r in REGIONS}
    used = {n.name for n in graph.node}
    for node in graph.node:
        scope = "/".join(node.name.split("/")[:-1])
        if scope not in owner_cache:
            owner_cache[scope] = owning_module(node.name, all_modules)
        owner = owner_cache[scope]
        if not owner:
            continue
        for region, modules in regions.items():
            subtree = REGIONS[region].subtree
            hit = next((m for m in modules if owner == m or (subtree and owner.startswith(m + "."))), None)
            if hit is None:
                continue
            base = f"{REGIONS[region].prefix}{hit}/{node.name.rsplit('/', 1)[-1]}"
            new, k = base, 1
            while new in used:
                k += 1
                new = f"{base}_{k}"
            used.add(new)
            node.name = new
            named[region].append(new)
            break
    return named
