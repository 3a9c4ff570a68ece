"""Frozen DINOv3 ViT encoder (timm `Eva`) returning the layers the depth decoders read.

For each taken block: the patch tokens as a (B, C, h, w) map and the class token (B, C), from
timm's public `forward_intermediates`. As in the official wrapper, the backbone's final norm is
not applied unless asked.

RoPE: the sin/cos table depends only on the patch grid. `bake_rope(h, w)` puts a `FixedRope` in
place of timm's RoPE module, so an exported graph holds constants instead of the coordinate maths
(whose `tile` exports as an `If` node that TensorRT 10.3 rejects), and a CUDA graph replays no
host work.
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from anydepth_edge.model_facts import PATCH_SIZE, EncoderSpec


def create_backbone(spec: EncoderSpec, qkv_bias: bool = False, depth: Optional[int] = None) -> nn.Module:
    import timm

    name = spec.timm_name + ("_qkvb" if qkv_bias else "")
    kwargs = dict(pretrained=False, num_classes=0, dynamic_img_size=True)
    if depth is not None:
        kwargs["depth"] = depth
    return timm.create_model(name, **kwargs)


class FixedRope(nn.Module):
    """timm's RoPE module with its table frozen for one patch grid; other grids are delegated."""

    def __init__(self, rope: nn.Module, grid: Tuple[int, int]):
        super().__init__()
        self.inner = rope
        self.grid = tuple(grid)
        with torch.no_grad():
            table = rope.get_embed(shape=list(grid))
        self.register_buffer("table", table.detach().clone(), persistent=False)

    def get_embed(self, shape=None, dtype=None) -> torch.Tensor:
        if shape is not None and tuple(shape) == self.grid:
            return self.table if dtype is None else self.table.to(dtype)
        return self.inner.get_embed(shape=shape, dtype=dtype) if dtype is not None else self.inner.get_embed(shape=shape)


def checked_taken_layers(spec: EncoderSpec, taken_layers: Optional[Sequence[int]], n_blocks: int) -> Tuple[int, ...]:
    """The four blocks an encoder hands the decoder (the spec's unless given), each one it has."""
    taken = tuple(taken_layers if taken_layers is not None else spec.taken_layers)
    if len(taken) != 4 or any(not 0 <= i < n_blocks for i in taken):
        raise ValueError(f"taken layers {taken} invalid for a {n_blocks}-block encoder")
    return taken


class DinoV3Encoder(nn.Module):
    patch_size = PATCH_SIZE

    def __init__(
        self,
        spec: EncoderSpec,
        taken_layers: Optional[Sequence[int]] = None,
        qkv_bias: bool = False,
        depth: Optional[int] = None,
        use_backbone_norm: bool = False,
    ):
        super().__init__()
        self.spec = spec
        self.backbone = create_backbone(spec, qkv_bias=qkv_bias, depth=depth)
        self.taken_layers = checked_taken_layers(spec, taken_layers, len(self.backbone.blocks))
        self.use_backbone_norm = use_backbone_norm
        self.embed_dim = self.backbone.embed_dim
        # Frozen, as in AnyDepth: only the decoder is trained.
        self.backbone.requires_grad_(False)

    @property
    def embed_dims(self) -> List[int]:
        return [self.embed_dim] * 4

    @property
    def baked_grid(self) -> Optional[Tuple[int, int]]:
        rope = self.backbone.rope
        return rope.grid if isinstance(rope, FixedRope) else None

    def bake_rope(self, height: int, width: int) -> None:
        """Freeze the RoPE table for one input size (export form); other sizes still work."""
        rope = self.backbone.rope
        if isinstance(rope, FixedRope):
            rope = rope.inner
        self.backbone.rope = FixedRope(rope, (height // PATCH_SIZE, width // PATCH_SIZE)).to(
            next(self.backbone.parameters()).device)

    bake_grid = bake_rope  # the export form's one call for either encoder family

    def forward(self, image: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        layers = self.backbone.forward_intermediates(
            image, indices=list(self.taken_layers), return_prefix_tokens=True, norm=self.use_backbone_norm,
            stop_early=True, intermediates_only=True)
        return [(patch_map, prefix[:, 0]) for patch_map, prefix in layers]
