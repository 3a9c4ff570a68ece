"""The ONNX graph of an export: traced (TorchScript exporter at the target's opset), slimmed,
checked (onnx.checker, shape inference), and its output compared with PyTorch's on ONNX Runtime CPU.
Each step is a function export_onnx calls in turn."""

import inspect
import io
import warnings
from typing import Dict, Tuple

import numpy as np
import torch

from anydepth_edge.errors import UserError

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
PARITY_LIMIT = 1e-4  # max |onnx - torch| / max |torch|


# ----------------------------------------------------------------------------- graph building

def trace_to_onnx(export_model: torch.nn.Module, res: Tuple[int, int], opset: int):
    """TorchScript exporter (dynamo=False) at an explicit opset; returns an onnx.ModelProto."""
    return trace_module(export_model, (torch.zeros(1, 3, res[0], res[1]),), opset, [INPUT_NAME], [OUTPUT_NAME])


def trace_module(module: torch.nn.Module, inputs: Tuple[torch.Tensor, ...], opset: int,
                 input_names=None, output_names=None):
    """Any module traced with fixed shapes (the whole model, or one part of it for a count)."""
    import onnx

    buf = io.BytesIO()
    kwargs = dict(opset_version=opset, do_constant_folding=True, input_names=input_names,
                  output_names=output_names, dynamic_axes=None)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.9 defaults to dynamo (and opset 20); older torch has no switch
    with warnings.catch_warnings(), torch.no_grad():  # no autograd graph: the trace's activations are freed
        warnings.simplefilter("ignore")  # tracer warnings about Python-level shape checks (static here)
        torch.onnx.export(module, inputs, buf, **kwargs)
    return onnx.load_from_string(buf.getvalue())


def slim(model):
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


def check_graph(model) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:
        raise UserError(f"exported graph fails onnx.checker / shape inference: {str(e).splitlines()[0][:300]}") from None


def op_counts(model) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- numerical checks

def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # A check runs a few times: memory freed after each run rather than kept in an arena (on a 4 GB
    # board the arena's peak stayed held through the later steps).
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def parity_inputs(res: Tuple[int, int]) -> Dict[str, np.ndarray]:
    from anydepth_edge.model_input import load_sample_image, normalise

    rng = np.random.default_rng(0)
    return {
        "random": rng.standard_normal((1, 3, res[0], res[1])).astype(np.float32),
        "image": normalise(load_sample_image(res)),
    }


def parity(model: torch.nn.Module, session, inputs: Dict[str, np.ndarray]):
    """ONNX Runtime CPU vs the PyTorch (training-form) model on the same inputs.
    Returns (figures per input, the PyTorch outputs)."""
    out, refs = {}, {}
    for name, x in inputs.items():
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        max_abs = float(np.max(np.abs(got - ref)))
        out[name] = {"max_abs": max_abs, "rel": max_abs / float(np.max(np.abs(ref))),
                     "reference_std": float(ref.std())}
        refs[name] = ref
    return out, refs
