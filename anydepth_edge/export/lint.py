"""`check-onnx`: will this ONNX file import into TensorRT 8.5 / 8.6 / 10.x as we need it?

Checks, each a Problem with the node it concerns:
- every op is in that TensorRT version's ONNX operator table (onnx-tensorrt docs/operators.md;
  `trt_ops.json` beside this file names the release each table comes from);
- the default-domain opset is inside the version's range, and below 20 for TensorRT: opset 20
  renamed GridSample's mode 'bilinear' to 'linear', which onnx-tensorrt imports as NEAREST;
- GridSample: mode bilinear (explicit or by default), 4-D input;
- no If / Loop / Scan (fixed-size engines; TensorRT 10.3 rejects the If that DINOv3's RoPE `tile`
  exports to);
- static shapes: every graph input and output dimension is a fixed positive number.

Needs only the `onnx` package (no PyTorch).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from anydepth_edge.targets import TRT_TARGETS

CONTROL_FLOW = ("If", "Loop", "Scan")
# Opset 20 is where GridSample's 'bilinear' became 'linear' (silently NEAREST in TensorRT).
TRT_OPSET_CEILING = 19


@dataclass
class Problem:
    kind: str  # unsupported-op | opset | gridsample | control-flow | dynamic-shape | custom-domain
    node: str
    message: str
    fix: str = ""

    def to_dict(self) -> Dict[str, str]:
        return {"kind": self.kind, "node": self.node, "message": self.message, "fix": self.fix}


def op_table(target: str) -> Dict:
    tables = json.loads((Path(__file__).with_name("trt_ops.json")).read_text())
    if target not in tables:
        from anydepth_edge.errors import UserError

        raise UserError(f"unknown TensorRT target {target!r}: choose one of {', '.join(TRT_TARGETS)}")
    return tables[target]


def default_opset(model) -> Optional[int]:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def _attr(node, name: str, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _iter_nodes(graph):
    """All nodes, including those inside subgraphs (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.g is not None and a.g.node:
                yield from _iter_nodes(a.g)
            for g in a.graphs:
                yield from _iter_nodes(g)


def _ranks(model) -> Dict[str, int]:
    """Tensor name -> rank, from shape inference (best effort)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    return ranks


def lint_model(model, target: str) -> List[Problem]:
    table = op_table(target)
    supported = set(table["supported"])
    problems: List[Problem] = []

    opset = default_opset(model)
    if opset is None:
        problems.append(Problem("opset", "-", "no default-domain opset import"))
    else:
        hi = min(table["max_opset"], TRT_OPSET_CEILING)
        if not table["min_opset"] <= opset <= hi:
            why = " (opset 20 renames GridSample 'bilinear' to 'linear', imported as NEAREST)" if opset >= 20 else ""
            problems.append(Problem("opset", "-", f"opset {opset} outside {table['min_opset']}-{hi} for {target}{why}",
                                    f"anydepth-edge export --target {target}"))

    ranks = _ranks(model)
    for node in _iter_nodes(model.graph):
        name = node.name or f"<{node.op_type}>"
        if node.domain not in ("", "ai.onnx"):
            problems.append(Problem("custom-domain", name, f"{node.domain}::{node.op_type} is not a standard ONNX op"))
            continue
        if node.op_type in CONTROL_FLOW:
            problems.append(Problem("control-flow", name, f"{node.op_type} node (TensorRT 10.3 rejects RoPE's If)",
                                    "export with anydepth-edge export: fixed size, RoPE baked"))
        elif node.op_type not in supported:
            listed = node.op_type in table["unsupported"]
            problems.append(Problem("unsupported-op", name,
                                    f"{node.op_type} is {'not supported' if listed else 'not in the operator table'} by {target}",
                                    "anydepth-edge export --target trt8.5 (LayerNorm decomposed at opset 16)"
                                    if node.op_type == "LayerNormalization" else "export without this op"))
        if node.op_type == "GridSample":
            mode = _attr(node, "mode", "linear" if (opset or 0) >= 20 else "bilinear")
            if mode != "bilinear":
                problems.append(Problem("gridsample", name, f"GridSample mode {mode!r} imports as NEAREST",
                                        "export at opset <= 19 (mode 'bilinear'): anydepth-edge export"))
            rank = ranks.get(node.input[0]) if node.input else None
            if rank is not None and rank != 4:
                problems.append(Problem("gridsample", name, f"GridSample on a {rank}-D input: TensorRT takes 4-D only",
                                        "a 4-D sampler (anydepth-edge export)"))

    for vi in list(model.graph.input) + list(model.graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?") for d in dims]
        if not dims or any(not isinstance(s, int) for s in shape):
            problems.append(Problem("dynamic-shape", vi.name, f"{vi.name} has dynamic shape {shape}",
                                    "export a fixed size: anydepth-edge export --res HxW"))
    return problems


def lint_file(path, target: str) -> List[Problem]:
    import onnx

    from anydepth_edge.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"ONNX file not found: {p}")
    try:
        model = onnx.load(str(p))
    except Exception as e:
        raise UserError(f"cannot read {p}: not a valid ONNX file ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    if not model.graph.node:
        raise UserError(f"cannot read {p}: the ONNX graph is empty")
    return lint_model(model, target)


def recorded_target(path) -> str:
    """The TensorRT target an export records in its sidecar, else the default."""
    from anydepth_edge.artifacts import OnnxArtifact
    from anydepth_edge.targets import DEFAULT_TRT_TARGET

    record = OnnxArtifact.find(path)
    return record.target if record is not None and record.target in TRT_TARGETS else DEFAULT_TRT_TARGET
