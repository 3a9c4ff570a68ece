"""DPT decoder (the baseline AnyDepth compares against), DINOv3 style.

Configuration that reproduces the paper's decoder sizes: `channels=512`, post-process channels
[C, C, C, C] (C = encoder width), class-token readout `project`, BatchNorm on the reassembled
features, one output channel.

Attribute names follow the official checkpoints (`reassemble_blocks.*`, `convs.N.conv`,
`fusion_blocks.N.res_conv_unit2.conv1.conv`, `conv_depth.head.N`, ...).
"""

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anydepth_edge.models.sdt import LayerFeatures


class ConvAct(nn.Module):
    """A conv with an optional ReLU before (pre-activation) or after it; keys `conv.weight/bias`."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool, act: Optional[str] = None, padding: int = 0):
        super().__init__()
        if act not in (None, "pre", "post"):
            raise ValueError(f"act must be None, 'pre' or 'post', got {act!r}")
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=bias)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act == "pre":
            x = torch.relu(x)
        x = self.conv(x)
        if self.act == "post":
            x = torch.relu(x)
        return x


class ReassembleBlocks(nn.Module):
    """Tokens -> image-like maps at four scales (x4, x2, x1, x1/2 of the patch grid)."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], use_batchnorm: bool = True):
        super().__init__()
        self.readout_projects = nn.ModuleList(nn.Sequential(nn.Linear(2 * c, c), nn.GELU()) for c in in_channels)
        self.batchnorm_layers = nn.ModuleList(nn.BatchNorm2d(c) if use_batchnorm else nn.Identity() for c in in_channels)
        self.projects = nn.ModuleList(ConvAct(cin, cout, 1, bias=True) for cin, cout in zip(in_channels, out_channels))
        o = list(out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(o[0], o[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(o[1], o[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(o[3], o[3], kernel_size=3, stride=2, padding=1),
        ])

    def forward(self, features: LayerFeatures) -> List[torch.Tensor]:
        out = []
        for i, (patch_map, cls_token) in enumerate(features):
            b, c, h, w = patch_map.shape
            tokens = patch_map.flatten(2).transpose(1, 2)
            tokens = self.readout_projects[i](torch.cat([tokens, cls_token.unsqueeze(1).expand_as(tokens)], dim=-1))
            x = tokens.transpose(1, 2).reshape(b, c, h, w)
            x = self.projects[i](self.batchnorm_layers[i](x))
            out.append(self.resize_layers[i](x))
        return out


class PreActResidualConvUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvAct(channels, channels, 3, bias=False, act="pre", padding=1)
        self.conv2 = ConvAct(channels, channels, 3, bias=False, act="pre", padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class FeatureFusionBlock(nn.Module):
    """Merge the running output with one reassembled map, then upsample x2 (align_corners=True)."""

    def __init__(self, channels: int, with_skip: bool = True):
        super().__init__()
        self.res_conv_unit1 = PreActResidualConvUnit(channels) if with_skip else None
        self.res_conv_unit2 = PreActResidualConvUnit(channels)
        self.project = ConvAct(channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        if skip is not None:
            if skip.shape != x.shape:
                skip = F.interpolate(skip, size=x.shape[2:], mode="bilinear", align_corners=False)
            x = x + self.res_conv_unit1(skip)
        x = self.res_conv_unit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(x)


class Interpolate(nn.Module):
    def __init__(self, scale_factor: float, mode: str = "bilinear", align_corners: bool = True):
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners)


class UpConvHead(nn.Module):
    def __init__(self, channels: int, out_channels: int = 1, hidden: int = 32):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            Interpolate(2),
            nn.Conv2d(channels // 2, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class DPTHead(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 512,
        post_process_channels: Optional[Sequence[int]] = None,
        out_channels: int = 1,
        use_batchnorm: bool = True,
    ):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"DPT reads 4 encoder layers, got {len(in_channels)}")
        post = list(post_process_channels or in_channels)
        self.reassemble_blocks = ReassembleBlocks(in_channels, post, use_batchnorm)
        self.convs = nn.ModuleList(ConvAct(c, channels, 3, bias=False, padding=1) for c in post)
        self.fusion_blocks = nn.ModuleList(FeatureFusionBlock(channels, with_skip=i > 0) for i in range(4))
        self.project = ConvAct(channels, channels, 3, bias=True, act="post", padding=1)
        self.conv_depth = UpConvHead(channels, out_channels)

    def forward(self, features: LayerFeatures) -> torch.Tensor:
        maps = [conv(m) for conv, m in zip(self.convs, self.reassemble_blocks(features))]
        out = self.fusion_blocks[0](maps[-1])
        for i in range(1, len(self.fusion_blocks)):
            out = self.fusion_blocks[i](out, maps[-(i + 1)])
        return self.conv_depth(self.project(out))
