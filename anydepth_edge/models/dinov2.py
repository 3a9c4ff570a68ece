"""Frozen DINOv2 ViT/14 encoder (timm `VisionTransformer`), as Depth Anything V2 runs it.

The released AnyDepth SDT weights and Depth Anything V2 use Meta's DINOv2 with an absolute
position embedding learnt for 37 x 37 patches (518 px). timm's module tree and state-dict keys
are those of the DAv2 checkpoints (`cls_token`, `pos_embed`, `blocks.N.ls1.gamma`, ...), but timm
resamples the embedding by target size, while DAv2 interpolates bicubically by a *scale factor*
of (grid + 0.1) / 37 without antialiasing: the sampled positions differ, so the embedding is
interpolated here the DAv2 way and the tokens are assembled around timm's blocks.

`bake_grid(h, w)` stores the interpolated embedding for one input size, so an exported graph
holds a constant instead of a bicubic Resize.
"""

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from anydepth_edge.models.dinov3 import checked_taken_layers
from anydepth_edge.model_facts import FAMILIES, EncoderSpec

PATCH = FAMILIES["dinov2"].patch_size
INTERPOLATE_OFFSET = 0.1  # DAv2's work-around so floor(scale * 37) lands on the wanted grid


def create_backbone(spec: EncoderSpec, depth: Optional[int] = None) -> nn.Module:
    import timm

    kwargs = dict(pretrained=False, num_classes=0, img_size=FAMILIES["dinov2"].native_side)
    if depth is not None:
        kwargs["depth"] = depth
    return timm.create_model(spec.dinov2_timm_name, **kwargs)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """(1, 1 + N*N, C) learnt embedding -> (1, 1 + h*w, C) for a patch grid (h, w), DAv2's way."""
    n = pos_embed.shape[1] - 1
    side = int(round(n ** 0.5))
    h, w = grid
    if (h, w) == (side, side):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    dim = pos_embed.shape[-1]
    patch_pos = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(
        patch_pos, scale_factor=((h + INTERPOLATE_OFFSET) / side, (w + INTERPOLATE_OFFSET) / side),
        mode="bicubic", antialias=False)
    if tuple(patch_pos.shape[-2:]) != (h, w):
        raise ValueError(f"position embedding resampled to {tuple(patch_pos.shape[-2:])}, wanted {(h, w)}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=1)


class DinoV2Encoder(nn.Module):
    patch_size = PATCH

    def __init__(
        self,
        spec: EncoderSpec,
        taken_layers: Optional[Sequence[int]] = None,
        depth: Optional[int] = None,
        use_backbone_norm: bool = True,
    ):
        super().__init__()
        self.spec = spec
        self.backbone = create_backbone(spec, depth=depth)
        self.taken_layers = checked_taken_layers(spec, taken_layers, len(self.backbone.blocks))
        # DAv2's get_intermediate_layers applies the final norm by default; its DPT relies on it.
        self.use_backbone_norm = use_backbone_norm
        self.embed_dim = self.backbone.embed_dim
        self.baked_grid: Optional[Tuple[int, int]] = None
        self.register_buffer("baked_pos_embed", torch.zeros(0), persistent=False)
        self.backbone.requires_grad_(False)

    @property
    def embed_dims(self) -> List[int]:
        return [self.embed_dim] * 4

    @property
    def native_grid(self) -> Tuple[int, int]:
        side = int(round((self.backbone.pos_embed.shape[1] - 1) ** 0.5))
        return side, side

    def bake_grid(self, height: int, width: int) -> None:
        """Freeze the interpolated position embedding for one input size (export form)."""
        grid = (height // PATCH, width // PATCH)
        with torch.no_grad():
            self.baked_pos_embed = interpolate_pos_embed(self.backbone.pos_embed, grid).detach().clone()
        self.baked_grid = grid

    def pos_embed_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        if grid == self.baked_grid:
            return self.baked_pos_embed
        return interpolate_pos_embed(self.backbone.pos_embed, grid)

    def forward(self, image: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        bb = self.backbone
        b = image.shape[0]
        grid = (image.shape[-2] // PATCH, image.shape[-1] // PATCH)
        tokens = bb.patch_embed.proj(image).flatten(2).transpose(1, 2)  # (B, h*w, C)
        x = torch.cat([bb.cls_token.expand(b, -1, -1), tokens], dim=1) + self.pos_embed_for(grid)
        x = bb.norm_pre(x)
        taken = {}
        for i, block in enumerate(bb.blocks[: max(self.taken_layers) + 1]):
            x = block(x)
            if i in self.taken_layers:
                y = bb.norm(x) if self.use_backbone_norm else x
                taken[i] = (y[:, 1:].transpose(1, 2).reshape(b, self.embed_dim, *grid), y[:, 0])
        return [taken[i] for i in self.taken_layers]
