"""Depth Anything V2's DPT head: the decoder of `depth_anything_v2_vit{s,b,l}.pth`.

Per encoder size: `features` (64 / 128 / 256) and four reassembly widths (`DAV2_DPT` in model_facts).
Levels: 1x1 projection of each taken layer, resized to x4, x2, x1 and x1/2 of the patch grid, a
3x3 conv to `features`, then four fusion blocks from the coarsest level up (two pre-activation
residual units, bilinear upsampling with align_corners=True, a 1x1 conv), and the output convs
with an upsampling to 14 x the patch grid (the input size) in between. The output, after ReLU, is
relative *disparity* (larger = nearer).

Attribute names are the checkpoints' (`projects.N`, `resize_layers.N`, `scratch.layerN_rn`,
`scratch.refinenetN.resConfUnitM.convK`, `scratch.output_conv1`, `scratch.output_conv2.K`), so the
released weights load by prefix alone. Written from those facts; no class token readout (DAv2's
released models do not use one).
"""

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from anydepth_edge.models.sdt import LayerFeatures


def _upsample(x: torch.Tensor, size: Optional[Tuple[int, int]]) -> torch.Tensor:
    if size is None:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias, no normalisation."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class FusionBlock(nn.Module):
    """(coarser path [+ unit1(skip)]) -> unit2 -> upsample (align_corners=True) -> 1x1 conv."""

    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualUnit(features)
        self.resConfUnit2 = ResidualUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, path: torch.Tensor, skip: Optional[torch.Tensor] = None,
                size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        return self.out_conv(_upsample(self.resConfUnit2(path), size))


class Scratch(nn.Module):
    def __init__(self, out_channels: Sequence[int], features: int):
        super().__init__()
        for i, c in enumerate(out_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FusionBlock(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )


class DAv2DPTHead(nn.Module):
    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int], patch_size: int = 14):
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"the DAv2 DPT head has 4 levels, got {len(out_channels)} widths")
        self.patch_size = patch_size
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, stride=4),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1),
        ])
        self.scratch = Scratch(out_channels, features)

    def forward(self, features: LayerFeatures) -> torch.Tensor:
        ph, pw = features[0][0].shape[-2:]
        layer_1, layer_2, layer_3, layer_4 = (
            resize(project(patch_map))
            for (patch_map, _cls), project, resize in zip(features, self.projects, self.resize_layers))
        s = self.scratch
        level_1, level_2 = s.layer1_rn(layer_1), s.layer2_rn(layer_2)
        level_3, level_4 = s.layer3_rn(layer_3), s.layer4_rn(layer_4)
        path_4 = s.refinenet4(level_4, size=level_3.shape[-2:])
        path_3 = s.refinenet3(path_4, level_3, size=level_2.shape[-2:])
        path_2 = s.refinenet2(path_3, level_2, size=level_1.shape[-2:])
        path_1 = s.refinenet1(path_2, level_1)
        out = s.output_conv1(path_1)
        out = F.interpolate(out, size=(int(ph) * self.patch_size, int(pw) * self.patch_size),
                            mode="bilinear", align_corners=True)
        return s.output_conv2(out)
