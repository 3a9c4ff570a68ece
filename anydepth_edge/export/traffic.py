"""How many bytes one inference moves, read off the exported graph (recorded in the export's
sidecar; `bench` sets it against the Orin Nano's memory bandwidth, engines/trt_common.DEVICE_PROFILES).

Two counts. `bytes`: every node reads its inputs and writes its outputs once, weights read once per
use: the unfused graph, an upper bound. `fused_bytes`: the same with element-wise and shape-only
nodes left out, as TensorRT fuses those into the convolution, GEMM or sampler beside them: closer
to what an engine moves, and the figure the memory bound uses. Either way SDT's full-resolution
maps (256 channels at the input's size) are written and read at least once per convolution.
"""

from typing import Dict
# Nodes an engine fuses into a neighbour or that only relabel memory.
FUSED = frozenset({
    "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Erf", "Gelu", "Sqrt", "Pow", "Exp", "Neg", "Clip",
    "Floor", "Min", "Max", "Cast", "BatchNormalization", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
    "Shape", "Constant", "Expand", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "ReduceMean",
})


def _element_bytes(elem_type: int) -> int:
    """Bytes per element of an ONNX tensor type (onnx's own table); 4 for an undefined type."""
    import numpy as np
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, TypeError):
        return 4


def graph_traffic(model) -> Dict[str, int]:
    """{'bytes', 'fused_bytes', 'activation_bytes', 'weight_bytes', 'largest_tensor_bytes'} of one inference."""
    import numpy as np
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    sizes: Dict[str, int] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim]
        if dims and all(d > 0 for d in dims):
            sizes[vi.name] = int(np.prod(dims)) * _element_bytes(t.elem_type)
    weights = {t.name: int(np.prod(t.dims or [1])) * _element_bytes(t.data_type) for t in model.graph.initializer}
    activation = weight = fused = 0
    for node in model.graph.node:
        node_weight = sum(weights[name] for name in node.input if name in weights)
        node_activation = (sum(sizes.get(name, 0) for name in node.input if name not in weights)
                           + sum(sizes.get(name, 0) for name in node.output))
        weight += node_weight
        activation += node_activation
        if node.op_type not in FUSED:
            fused += node_weight + node_activation
    return {"bytes": activation + weight, "fused_bytes": fused, "activation_bytes": activation,
            "weight_bytes": weight, "largest_tensor_bytes": max(sizes.values(), default=0)}


def tensorrt_form_traffic(export_model, res, traffic: Dict[str, int]) -> Dict[str, int]:
    """`tensorrt_form_bytes` and `tensorrt_form_fused_bytes`: a Gather-form export's `traffic` with each
    GatherSampler's own traffic replaced by a GridSampleSampler's on the same tensors, as a TensorRT
    export samples. Both samplers are traced alone at the shapes a forward
    pass at `res` gives them; everything around them is the same graph in both forms."""
    import torch

    from anydepth_edge.export.forms import GatherSampler, GridSampleSampler, input_shapes
    from anydepth_edge.export.graph import trace_module

    totals = {key: traffic[key] for key in ("bytes", "fused_bytes")}
    for name, (x_shape, grid_shape) in input_shapes(export_model, res, GatherSampler).items():
        gather = export_model.get_submodule(name)
        inputs = (torch.zeros(x_shape), torch.zeros(grid_shape))
        for sign, sampler in ((-1, gather), (1, GridSampleSampler(gather.scale, gather.groups))):
            counted = graph_traffic(trace_module(sampler, inputs, 17))  # GridSample needs opset >= 16
            for key in totals:
                totals[key] += sign * counted[key]
    return {f"tensorrt_form_{key}": value for key, value in totals.items()}
