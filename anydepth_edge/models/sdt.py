"""SDT (Spatial Detail Transformer) decoder: the small AnyDepth head.

Pipeline (fusion width F): per taken layer a class-token readout and a projection to F,
softmax-weighted fusion of the four layers, a depthwise spatial-detail enhancer, two DySample
upsampling blocks (x4 each) with 3x3 refinements, and a small conv head to one channel.

Attribute names follow the official checkpoints' state-dict keys (`weighted_fusion.*`,
`detail_enhancer.*`, `upsample_1.dysample1.0.offset.weight`, ...), so official weights load by
prefix alone.
"""

from typing import List, Sequence, Tuple

import torch
from torch import nn

from anydepth_edge.models.dysample import DySample

LayerFeatures = List[Tuple[torch.Tensor, torch.Tensor]]  # per layer: (patch map B,C,h,w ; class token B,C)


class WeightedFusion(nn.Module):
    """Readout (patch + class token) when used, projection to F, then a softmax-weighted sum over
    layers. Without the class token (as the DA3 ViT-L release) the patch tokens are projected directly."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, use_cls_token: bool = True):
        super().__init__()
        self.readout_projects = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * c, c), nn.GELU()) for c in in_channels
        ) if use_cls_token else None
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(c, out_channels, bias=False), nn.GELU()) for c in in_channels
        )
        # One logit per layer, initialised equal; softmax keeps the mix convex.
        self.layer_weights = nn.Parameter(torch.ones(len(in_channels)))

    def forward(self, features: LayerFeatures) -> torch.Tensor:
        weights = torch.softmax(self.layer_weights, dim=0)
        fused = None
        for i, (patch_map, cls_token) in enumerate(features):
            tokens = patch_map.flatten(2).transpose(1, 2)  # (B, hw, C)
            if self.readout_projects is not None:
                readout = torch.cat([tokens, cls_token.unsqueeze(1).expand_as(tokens)], dim=-1)
                tokens = self.readout_projects[i](readout)
            projected = self.projections[i](tokens)
            term = weights[i] * projected
            fused = term if fused is None else fused + term
        return fused  # (B, hw, F)


class SpatialDetailEnhancer(nn.Module):
    """Depthwise 3x3 conv + BN with a residual, then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.dwconv(x)) + x)


def _dysample_stage(channels: int) -> nn.Sequential:
    return nn.Sequential(
        DySample(channels, scale=2, style="lp", groups=4, dyscope=True),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


def _conv_bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())


class DySampleUpsampler(nn.Module):
    """Two x2 DySample stages, each followed by conv3x3 + BN + ReLU: x4 in all."""

    def __init__(self, channels: int):
        super().__init__()
        self.dysample1 = _dysample_stage(channels)
        self.dysample2 = _dysample_stage(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dysample2(self.dysample1(x))


class SDTHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], fusion_channels: int = 256, out_channels: int = 1,
                 use_cls_token: bool = True, detail_enhancer: bool = True):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"SDT reads 4 encoder layers, got {len(in_channels)}")
        if fusion_channels % 8:
            raise ValueError("SDT fusion width must be a multiple of 8 (DySample groups, head halving)")
        self.fusion_channels = fusion_channels
        self.weighted_fusion = WeightedFusion(in_channels, fusion_channels, use_cls_token)
        self.detail_enhancer = SpatialDetailEnhancer(fusion_channels) if detail_enhancer else nn.Identity()
        self.upsample_1 = DySampleUpsampler(fusion_channels)  # H/16 -> H/4
        self.refinement_1 = _conv_bn_relu(fusion_channels)
        self.upsample_2 = DySampleUpsampler(fusion_channels)  # H/4 -> H
        self.refinement_2 = _conv_bn_relu(fusion_channels)
        half = fusion_channels // 2
        self.output_conv = nn.Sequential(
            nn.Conv2d(fusion_channels, half, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, out_channels, 1),
        )

    def forward(self, features: LayerFeatures) -> torch.Tensor:
        b, _, h, w = features[0][0].shape
        fused = self.weighted_fusion(features)
        x = fused.transpose(1, 2).reshape(b, self.fusion_channels, h, w)
        x = self.detail_enhancer(x)
        x = self.refinement_1(self.upsample_1(x))
        x = self.refinement_2(self.upsample_2(x))
        return self.output_conv(x)
