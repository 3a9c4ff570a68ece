"""Export forms: the model rewritten for one fixed input size, so the ONNX graph is what TensorRT
on a Jetson wants.

- DySample: the sampling base grid and normaliser become constants (no Range / meshgrid / Shape
  arithmetic), the coordinate maths sit in their own module (`DySampleCoords`) so their nodes carry
  a stable scope the engine builder pins to FP32, and the sampler is either GridSample
  (bilinear, align_corners=0, border, 4-D) or an equivalent gather-based bilinear sampler for
  runtimes without GridSample.
- DINOv3: the RoPE sin/cos table is baked for the fixed patch grid (no `If` / `tile` nodes) and
  attention runs as plain MatMul + Softmax instead of a fused SDPA call.

`to_export_form` works on a deep copy and never changes the caller's model.
"""

import copy
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from anydepth_edge.models.dysample import DySample, pixel_centre_grid
from anydepth_edge.targets import SAMPLERS


def shuffled_grid_layout(t: torch.Tensor, scale: int, groups: int) -> torch.Tensor:
    """(B, 2*G*s*s, H, W) with channels [coord][group][sub-row][sub-col] -> (B*G, sH, sW, 2):
    the pixel-shuffle + permute of the training form as one reshape/transpose."""
    b, _, h, w = t.shape
    t = t.reshape(b, 2, groups, scale, scale, h, w)
    t = t.permute(0, 2, 5, 3, 6, 4, 1)  # B, G, H, sub-row, W, sub-col, coord
    return t.reshape(b * groups, h * scale, w * scale, 2)


class DySampleCoords(nn.Module):
    """Offsets -> normalised sampling grid for one input size, with precomputed constants.

    grid = layout(offset) * (2/W, 2/H) + layout(2 * pixel_centre / (W, H) - 1). The Add of the
    base grid is where FP16 would quantise sub-pixel positions (0.125 px at 128-256 px): this
    module's nodes are pinned to FP32 in FP16 engines.
    """

    pin_region = "dysample"  # read by export/pin_names.py; pins.py: FP32 inside FP16 engines

    def __init__(self, scale: int, groups: int, in_hw: Tuple[int, int]):
        super().__init__()
        h, w = in_hw
        self.scale, self.groups = scale, groups
        base = pixel_centre_grid(h, w, torch.float64)  # (1, 2, 1, H, W)
        norm = torch.tensor([w, h], dtype=torch.float64).reshape(1, 2, 1, 1, 1)
        base = (2 * base / norm - 1).expand(1, 2, groups * scale * scale, h, w).reshape(1, -1, h, w)
        self.register_buffer("base_grid", shuffled_grid_layout(base, scale, groups).float().contiguous())
        self.register_buffer("step", torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float32))

    def forward(self, offset: torch.Tensor) -> torch.Tensor:
        grid = shuffled_grid_layout(offset, self.scale, self.groups)
        if grid.shape[0] != self.base_grid.shape[0]:  # batch > 1 in eager use
            return grid * self.step + self.base_grid.repeat(grid.shape[0] // self.base_grid.shape[0], 1, 1, 1)
        return grid * self.step + self.base_grid


class GridSampleSampler(nn.Module):
    pin_region = "dysample"

    def __init__(self, scale: int, groups: int):
        super().__init__()
        self.scale, self.groups = scale, groups

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = F.grid_sample(x.reshape(b * self.groups, c // self.groups, h, w), grid,
                            mode="bilinear", align_corners=False, padding_mode="border")
        return out.reshape(b, c, self.scale * h, self.scale * w)


class GatherSampler(nn.Module):
    """Bilinear sampling with border clamping and align_corners=False, built from Floor, Clip,
    Gather and arithmetic only (every TensorRT version and most runtimes import these).

    One group at a time, so the four corner tensors are C/G channels wide rather than C: on ONNX
    Runtime CPU this is as fast as sampling all groups at once and halves the peak memory of the
    last (full-resolution) stage. Each corner costs one Gather and one Mul over the big rows; the
    bilinear weights are formed on the small (B, sH, sW) grid.
    """

    pin_region = "dysample"

    def __init__(self, scale: int, groups: int, in_hw: Tuple[int, int]):
        super().__init__()
        self.scale, self.groups = scale, groups
        self.in_hw = in_hw

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        _, oh, ow, _ = grid.shape  # grid rows are (image, group)
        cg = c // self.groups
        grid = grid.reshape(b, self.groups, oh, ow, 2)
        px = (((grid[..., 0] + 1) * w - 1) * 0.5).clamp(0, w - 1)
        py = (((grid[..., 1] + 1) * h - 1) * 0.5).clamp(0, h - 1)
        x0f = px.floor()
        y0f = py.floor()
        ax = px - x0f
        ay = py - y0f
        bx = 1 - ax
        by = 1 - ay
        # Indices in integer arithmetic (an FP16 engine would round float indices above 2048); the
        # clamp as Min, since TensorRT's Clip takes no integers. The exporter widens the index to
        # INT64, which TensorRT 8.x casts down to INT32 on import.
        x0 = x0f.to(torch.int32)
        y0 = y0f.to(torch.int32)
        x1 = torch.minimum(x0 + 1, torch.tensor(w - 1, dtype=torch.int32, device=x.device))
        y1 = torch.minimum(y0 + 1, torch.tensor(h - 1, dtype=torch.int32, device=x.device))
        image_row = (torch.arange(b, device=x.device, dtype=torch.int32) * (h * w)).reshape(b, 1, 1, 1)
        # Per corner: table row and weight for every (image, group, output pixel), split by group.
        corners = [((image_row + yy * w + xx).unbind(1), weight.unbind(1))
                   for yy, xx, weight in ((y0, x0, bx * by), (y0, x1, ax * by), (y1, x0, bx * ay), (y1, x1, ax * ay))]
        outs = []
        for g in range(self.groups):
            # Rows of `table` are (image, pixel y*W + x); one Gather per corner reads C/G values.
            table = x[:, g * cg:(g + 1) * cg].reshape(b, cg, h * w).transpose(1, 2).reshape(b * h * w, cg)
            out = None
            for rows, weights in corners:
                term = table[rows[g].reshape(-1)] * weights[g].reshape(-1, 1)
                out = term if out is None else out + term
            outs.append(out.reshape(b, oh * ow, cg).transpose(1, 2))
        return torch.cat(outs, 1).reshape(b, c, oh, ow)


class DySampleExport(nn.Module):
    """Fixed-size DySample with the same weights as the training form it replaces."""

    def __init__(self, src: DySample, in_hw: Tuple[int, int], sampler: str = "grid_sample"):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}")
        self.style, self.scale, self.groups = src.style, src.scale, src.groups
        self.offset = src.offset
        self.scope = src.scope
        self.register_buffer("init_pos", src.init_pos.clone())
        self.coords = DySampleCoords(src.scale, src.groups, in_hw)
        if sampler == "grid_sample":
            self.sampler = GridSampleSampler(src.scale, src.groups)
        else:
            self.sampler = GatherSampler(src.scale, src.groups, in_hw)

    # Offsets exactly as DySample.predict_offsets: small values, fine in FP16.
    predict_offsets = DySample.predict_offsets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sampler(x, self.coords(self.predict_offsets(x)))


def input_shapes(model: nn.Module, res: Tuple[int, int], kind: type) -> Dict[str, Tuple[torch.Size, ...]]:
    """{name: its inputs' shapes} of every `kind` submodule in one forward pass of an image of size
    `res` (recorded with forward hooks)."""
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(t.shape for t in inp)))
             for name, m in model.named_modules() if isinstance(m, kind)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, res[0], res[1]))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _dysample_input_sizes(model: nn.Module, res: Tuple[int, int]):
    """Input size (H, W) of every DySample for an image of size `res`."""
    return {name: tuple(shapes[0][-2:]) for name, shapes in input_shapes(model, res, DySample).items()}


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def to_export_form(model: nn.Module, res: Tuple[int, int], sampler: str = "grid_sample") -> nn.Module:
    """A deep copy of `model` in export form for a fixed input size `res` (H, W)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model, "encoder"):
        model.encoder.bake_grid(*res)
        for m in model.encoder.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False  # plain MatMul/Softmax in the graph, no SDPA
    for name, in_hw in _dysample_input_sizes(model, res).items():
        _set_submodule(model, name, DySampleExport(model.get_submodule(name), in_hw, sampler))
    return model
