"""FP32 ONNX -> strongly typed FP16 ONNX: every float tensor FP16 except the nodes of the chosen pin
regions (`pins`), with explicit Cast nodes at each boundary; graph inputs and outputs stay FP32.

This is what TensorRT's strongly typed mode (`NetworkDefinitionCreationFlag.STRONGLY_TYPED`,
`trtexec --stronglyTyped`) builds: the types come from the graph, no FP16 flag and no precision
constraints (deprecated for weakly typed networks since TensorRT 10.12, removed in 11). The pin
regions are found by the node names the export gives them, so the conversion needs only the
`onnx` package (no PyTorch): the export writes the default-pins form, the builder makes the
wider one on the robot. Python 3.8.
"""

from typing import Dict, Iterable, List, Set, Tuple

import numpy as np

from anydepth_edge import pins

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
# Inputs that the ONNX spec types as float32 whatever the data type (Resize: roi, scales).
FP32_ONLY_INPUTS = {"Resize": (1, 2)}


def _float_tensors(model) -> Set[str]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
              if vi.type.tensor_type.elem_type == FLOAT}
    floats |= {t.name for t in model.graph.initializer if t.data_type == FLOAT}
    return floats


def to_typed_fp16(model, regions: Iterable[str]):
    """A copy of `model` (an FP32 export with named pin regions) in strongly typed FP16, the nodes of
    `regions` kept FP32. Returns (model, {'fp16_nodes', 'fp32_nodes', 'casts'})."""
    import onnx

    src = onnx.ModelProto()
    src.CopyFrom(model)
    rewrite = _TypedRewrite(src, set(regions))
    for node in list(src.graph.node):
        rewrite.node(node)
    rewrite.graph_outputs_fp32()
    rewrite.finish()
    entry = src.metadata_props.add()
    entry.key, entry.value = "anydepth.fp32_regions", ",".join(sorted(rewrite.regions))  # what stays FP32, for tools
    return src, rewrite.stats


class _TypedRewrite:
    """The state of one FP32 -> typed FP16 rewrite: each float tensor's current element type, the
    Casts and FP16 initializer copies made so far (each made once), and the new node list."""

    def __init__(self, src, regions):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.graph, self.regions = src.graph, regions
        self.floats = _float_tensors(src)
        self.inits = {t.name: t for t in self.graph.initializer}
        self.dtype: Dict[str, int] = {name: FLOAT for name in self.floats}
        self.casts: Dict[Tuple[str, int], str] = {}
        self.fp16_inits: Dict[str, str] = {}
        self.new_nodes: List = []
        self.stats = {"fp16_nodes": 0, "fp32_nodes": 0, "casts": 0}

    def as_type(self, name: str, want: int) -> str:
        """`name` as element type `want`: an FP16 copy of an initializer, or a Cast node."""
        if not name or name not in self.dtype or self.dtype[name] == want:
            return name
        if name in self.inits and want == FLOAT16:
            if name not in self.fp16_inits:
                array = self.numpy_helper.to_array(self.inits[name]).astype(np.float16)
                t = self.numpy_helper.from_array(array, name + "__fp16")
                self.graph.initializer.append(t)
                self.fp16_inits[name] = t.name
                self.dtype[t.name] = FLOAT16
            return self.fp16_inits[name]
        key = (name, want)
        if key not in self.casts:
            tag = "fp16" if want == FLOAT16 else "fp32"
            out = f"{name}__to_{tag}"
            self.new_nodes.append(self.helper.make_node("Cast", [name], [out], to=want, name=f"Cast{tag.upper()}/{name}"))
            self.casts[key] = out
            self.dtype[out] = want
            self.stats["casts"] += 1
        return self.casts[key]

    def node(self, node) -> None:
        fp32 = pins.region_of(node.name) in self.regions
        want = FLOAT if fp32 else FLOAT16
        self.stats["fp32_nodes" if fp32 else "fp16_nodes"] += 1
        keep32 = FP32_ONLY_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            node.input[i] = self.as_type(name, FLOAT if i in keep32 else want)
        if node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i == FLOAT and not fp32:
                to.i = FLOAT16  # an int -> float cast inside the FP16 part makes FP16
        elif node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == FLOAT and not fp32:
                    array = self.numpy_helper.to_array(a.t).astype(np.float16)
                    a.t.CopyFrom(self.numpy_helper.from_array(array, a.t.name))
        for name in node.output:
            if name in self.floats:
                self.dtype[name] = want
        self.new_nodes.append(node)

    def graph_outputs_fp32(self) -> None:
        """Graph outputs stay FP32: an FP16 one is renamed inside and cast back under its name."""
        for out in self.graph.output:
            if self.dtype.get(out.name, FLOAT) != FLOAT:
                inner = out.name + "__fp16"
                for node in self.new_nodes:
                    node.output[:] = [inner if o == out.name else o for o in node.output]
                    node.input[:] = [inner if i == out.name else i for i in node.input]
                self.dtype[inner] = FLOAT16
                self.new_nodes.append(self.helper.make_node("Cast", [inner], [out.name], to=FLOAT,
                                                            name=f"CastFP32/{out.name}"))
                self.stats["casts"] += 1

    def finish(self) -> None:
        graph = self.graph
        del graph.node[:]
        graph.node.extend(self.new_nodes)
        used = {i for n in graph.node for i in n.input}
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        del graph.value_info[:]


def typed_fp16_regions(decompose_layernorm: bool, pin_set: str = "default") -> Tuple[str, ...]:
    """The FP32 regions of a strongly typed FP16 graph: the pin set's, with LayerNorm always (a
    strongly typed network computes a FP16 LayerNormalization in FP16)."""
    return tuple(sorted(set(pins.pin_regions(pin_set, decompose_layernorm)) | {"layernorm"}))
