"""FP16 readiness: how far an FP16 engine's depth is from FP32, with and without the FP32 pins.

TensorRT does not run here, and half-precision convolutions on this CPU are ~500x slower than
FP32, so FP16 is emulated: weights are rounded to FP16, and the output of every operation is
rounded to FP16 (computed in FP32, stored in FP16 - what tensor-core kernels with FP32
accumulation do). Inside pinned regions (DySample coordinates + sampler; LayerNorm) nothing is
rounded until the region's output, as TensorRT does for layers constrained to FP32.

LayerNorm: opset 17 native LayerNormalization computes in FP32 on TensorRT >= 8.6; at opset 16
(trt8.5) it is decomposed, and without pins each piece (mean, variance, ...) rounds to FP16.
"""

import copy
from contextlib import ExitStack
from typing import Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from anydepth_edge import pins as pin_policy
from anydepth_edge.agreement import FLOOR_FRACTION
from anydepth_edge.export.forms import DySampleCoords
from anydepth_edge.export.pin_names import emulated

aten = torch.ops.aten


def _round16(t):
    if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
        return t.to(torch.float16).to(torch.float32)
    return t


class FP16Emulation(TorchDispatchMode):
    def __init__(self, decompose_layernorm: bool = False):
        super().__init__()
        self.pinned = 0
        self.decompose_layernorm = decompose_layernorm

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.pinned:
            return func(*args, **kwargs)
        if self.decompose_layernorm and func is aten.native_layer_norm.default:
            return self._layer_norm_fp16(*args)
        return tree_map(_round16, func(*args, **kwargs))

    @staticmethod
    def _layer_norm_fp16(x, shape, weight, bias, eps):
        # The opset-16 decomposition, each intermediate stored in FP16.
        dims = tuple(range(-len(shape), 0))
        r = _round16
        mean = r(x.mean(dim=dims, keepdim=True))
        centred = r(x - mean)
        var = r(r(centred * centred).mean(dim=dims, keepdim=True))
        std = r(torch.sqrt(r(var + eps)))
        y = r(centred / std)
        if weight is not None:
            y = r(y * weight)
        if bias is not None:
            y = r(y + bias)
        return y, mean, r(1.0 / std)


def _pinned_modules(model, pins: bool, decompose_layernorm: bool):
    """The modules the default pin set keeps in FP32, when pins are on."""
    if not pins:
        return []
    regions = pin_policy.pin_regions("default", decompose_layernorm)
    return [m for m in model.modules() if emulated(m, regions)]


def emulate_fp16(model, image: torch.Tensor, pins: bool, decompose_layernorm: bool = False) -> torch.Tensor:
    """Run `model` (an export form) under FP16 emulation; returns the FP32 view of the output."""
    model = copy.deepcopy(model).eval()
    pinned = _pinned_modules(model, pins, decompose_layernorm)
    pinned_tensors = {id(t) for m in pinned for t in list(m.parameters()) + list(m.buffers())}
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if id(t) not in pinned_tensors and t.dtype == torch.float32:
                t.copy_(_round16(t))
    # A pinned LayerNorm runs unrounded inside (FP32); an unpinned decomposed one rounds every piece.
    mode = FP16Emulation(decompose_layernorm=decompose_layernorm and not pins)

    def enter(_m, _inp):
        mode.pinned += 1

    def leave(m, _inp, out):
        mode.pinned -= 1
        # The coordinates flow into the (also pinned) sampler in FP32; the sampler's output feeds
        # FP16 layers, so that is where the region ends and the value is stored in FP16.
        if mode.pinned or isinstance(m, DySampleCoords):
            return out
        return _round16(out)

    with ExitStack() as stack:
        for m in pinned:
            stack.callback(m.register_forward_pre_hook(enter).remove)
            stack.callback(m.register_forward_hook(leave).remove)
        with torch.no_grad(), mode:
            out = model(_round16(image))
    return out.float()


def depth_agreement(pred: torch.Tensor, ref: torch.Tensor) -> Dict[str, float]:
    """AbsRel and delta1 of `pred` against `ref`, plus error against the reference's spread
    (RMSE / std: near-constant random-weight outputs make AbsRel look better than it is)."""
    pred = pred.double().flatten()
    ref = ref.double().flatten()
    rmse = torch.sqrt(torch.mean((pred - ref) ** 2))
    spread = ref.std()
    # relative figures over pixels with depth, as agreement.depth_metrics counts them (a ReLU head's
    # zeros, e.g. DAv2's disparity, made AbsRel NaN although the depth was finite)
    valid = (ref > 0) & (ref >= FLOOR_FRACTION * float(ref.median()))
    p, r = torch.clamp(pred[valid], min=1e-6), ref[valid]
    ratio = torch.maximum(p / r, r / p)
    return {
        "abs_rel": float(torch.mean(torch.abs(p - r) / r)),
        "delta1": float(torch.mean((ratio < 1.25).double())),
        "max_abs": float(torch.max(torch.abs(pred - ref))),
        "rmse_over_std": float(rmse / spread) if spread > 0 else float("inf"),
    }


def fp16_readiness(export_model, image: torch.Tensor, decompose_layernorm: bool) -> Dict[str, Dict[str, float]]:
    """FP16-vs-FP32 agreement with the FP32 pins and without them."""
    with torch.no_grad():
        ref = export_model(image)
    return {
        "with_pins": depth_agreement(emulate_fp16(export_model, image, True, decompose_layernorm), ref),
        "without_pins": depth_agreement(emulate_fp16(export_model, image, False, decompose_layernorm), ref),
    }


def dysample_probe(in_hw, seed: int = 0) -> Dict[str, object]:
    """The DySample mechanism alone on real image content: a DySample (scale 2, groups 4, learned-
    looking offsets of about a pixel) applied to the bundled photo at `in_hw`, FP16-emulated with and
    without the FP32 pins, error in 8-bit intensity levels against FP32. Independent of the model's
    weights, so it answers "does pinning matter at this size" even for random-weight exports."""
    import numpy as np

    from anydepth_edge.export.forms import DySampleExport
    from anydepth_edge.models.dysample import DySample
    from anydepth_edge.model_input import load_sample_image

    rgb = load_sample_image(in_hw).astype(np.float32) / 255.0
    x = torch.from_numpy(np.concatenate([rgb, rgb.mean(axis=2, keepdims=True)], axis=2)).permute(2, 0, 1)[None]
    torch.manual_seed(seed)
    sampler = DySample(4, scale=2, style="lp", groups=4, dyscope=True)
    with torch.no_grad():
        sampler.offset.weight.normal_(0, 1.0)
        sampler.scope.weight.normal_(0, 1.0)
    probe = DySampleExport(sampler.eval(), tuple(in_hw)).eval()
    with torch.no_grad():
        ref = probe(x)
    out: Dict[str, object] = {"input": list(in_hw)}
    for key, pins in (("with_pins", True), ("without_pins", False)):
        err = (emulate_fp16(probe, x, pins) - ref).abs() * 255.0
        out[key] = {"mean_abs_levels": float(err.mean()), "max_abs_levels": float(err.max())}
    return out
