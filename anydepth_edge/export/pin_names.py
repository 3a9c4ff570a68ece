"""The export side of the FP32 pin policy (pins.py): which modules of an export-form model are which
pin region (by type: classes of this package declare `pin_region`, timm's are known by class name),
and the renaming of their ONNX nodes to `<Prefix><module path>/<op>` that the builder selects by.
Works on modules and ONNX protos; imports no PyTorch itself."""

from typing import Dict, Iterable, List, Sequence

from anydepth_edge.pins import REGIONS

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
