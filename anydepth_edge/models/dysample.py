"""DySample: learned point-sampling upsampler (Liu et al., ICCV 2023), as used inside SDT.

This is the training form: it builds the sampling grid from `arange` at run time, so it works for
any input size. The export forms (constant base grid for a fixed size, or a gather-based bilinear
sampler for runtimes without GridSample) live in `anydepth_edge.export.forms` and are tested equal
to this module.

Parameter names (`offset`, `scope`, `init_pos`) follow the public DySample definition so that
checkpoints load without remapping.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

STYLES = ("lp", "pl")


def initial_positions(scale: int, groups: int) -> torch.Tensor:
    """Sub-pixel offsets of the `scale` x `scale` output points around each input pixel centre.

    Layout (1, 2*groups*scale*scale, 1, 1) ordered [coordinate (x, y)][group][sub-row][sub-col];
    x varies with the sub-column, y with the sub-row. For scale 2 the offsets are +-0.25 px.
    """
    steps = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
    sub_y, sub_x = torch.meshgrid(steps, steps, indexing="ij")  # (s, s) each
    per_group = torch.stack([sub_x, sub_y])  # (2, s, s)
    return per_group.unsqueeze(1).expand(2, groups, scale, scale).reshape(1, -1, 1, 1).clone()


def pixel_centre_grid(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(1, 2, 1, H, W) pixel-centre coordinates: channel 0 is x + 0.5, channel 1 is y + 0.5."""
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).reshape(1, 2, 1, height, width)


def offsets_to_grid(
    offset: torch.Tensor,
    scale: int,
    base: Optional[torch.Tensor] = None,
    normaliser: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Turn per-pixel offsets (B, 2*G*s*s, H, W) into a grid_sample grid (B*G, sH, sW, 2).

    `base` (1, 2, 1, H, W) and `normaliser` (1, 2, 1, 1, 1) are computed here when not given;
    the export form passes them as constants for its fixed size.
    """
    b, _, h, w = offset.shape
    if base is None:
        base = pixel_centre_grid(h, w, offset.dtype, offset.device)
    if normaliser is None:
        # Filled on the device (no host copy), so this also runs inside a CUDA graph capture.
        normaliser = torch.empty(1, 2, 1, 1, 1, dtype=offset.dtype, device=offset.device)
        normaliser[:, 0] = w
        normaliser[:, 1] = h
    coords = 2 * (base + offset.reshape(b, 2, -1, h, w)) / normaliser - 1
    coords = F.pixel_shuffle(coords.reshape(b, -1, h, w), scale)  # (B, 2*G, sH, sW)
    coords = coords.reshape(b, 2, -1, scale * h, scale * w)
    return coords.permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1)


class DySample(nn.Module):
    """Upsample by `scale` by sampling the input at learned, content-dependent points.

    style 'lp': offsets predicted on the low-resolution input ("linear then pixel-shuffle");
    style 'pl': on the pixel-shuffled input. `dyscope` adds a learned sigmoid range factor.
    """

    def __init__(self, in_channels: int, scale: int = 2, style: str = "lp", groups: int = 4, dyscope: bool = False):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"DySample style must be one of {STYLES}, got {style!r}")
        if in_channels % groups:
            raise ValueError(f"DySample: in_channels {in_channels} not divisible by groups {groups}")
        if style == "pl" and in_channels % (scale * scale):
            raise ValueError(f"DySample 'pl': in_channels {in_channels} not divisible by scale^2")
        self.scale = scale
        self.style = style
        self.groups = groups
        conv_in = in_channels // (scale * scale) if style == "pl" else in_channels
        conv_out = 2 * groups if style == "pl" else 2 * groups * scale * scale
        self.offset = nn.Conv2d(conv_in, conv_out, 1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        if dyscope:
            self.scope = nn.Conv2d(conv_in, conv_out, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        else:
            self.scope = None
        self.register_buffer("init_pos", initial_positions(scale, groups))

    def predict_offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2*G*s*s, H, W) sampling offsets in input pixels, including the initial positions."""
        if self.style == "pl":
            shuffled = F.pixel_shuffle(x, self.scale)
            raw = self.offset(shuffled)
            if self.scope is not None:
                raw = F.pixel_unshuffle(raw * self.scope(shuffled).sigmoid(), self.scale) * 0.5
            else:
                raw = F.pixel_unshuffle(raw, self.scale) * 0.25
        else:
            raw = self.offset(x)
            raw = raw * self.scope(x).sigmoid() * 0.5 if self.scope is not None else raw * 0.25
        return raw + self.init_pos

    def sample(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        grouped = x.reshape(b * self.groups, c // self.groups, h, w)
        out = F.grid_sample(grouped, grid, mode="bilinear", align_corners=False, padding_mode="border")
        return out.reshape(b, c, self.scale * h, self.scale * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Coordinates and sampling in FP32 even in a half-precision model: FP16 quantises absolute
        # positions to 0.125-0.25 px at 128-512 px (the FP16 engine pins the same nodes).
        grid = offsets_to_grid(self.predict_offsets(x).float(), self.scale)
        return self.sample(x.float(), grid).to(x.dtype)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, style={self.style!r}, groups={self.groups}, dyscope={self.scope is not None}"
