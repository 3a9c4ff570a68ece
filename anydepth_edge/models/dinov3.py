"""Frozen DINOv3 ViT encoder (timm `Eva`) returning the layers the depth decoders read.

For each taken block: the patch tokens as a (B, C, h, w) map and the class token (B, C). As in
the official wrapper, the backbone's final norm is not applied unless asked.

RoPE: the sin/cos table depends only on the patch grid. `bake_rope(h, w)` stores it as a buffer so
an exported graph holds constants instead of the coordinate maths (whose `tile` exports as an
`If` node that TensorRT 10.3 rejects).
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from anydepth_edge.specs import PATCH_SIZE, EncoderSpec


def create_backbone(spec: EncoderSpec, qkv_bias: bool = False, depth: Optional[int] = None) -> nn.Module:
    import timm

    name = spec.timm_name + ("_qkvb" if qkv_bias else "")
    kwargs = dict(pretrained=False, num_classes=0, dynamic_img_size=True)
    if depth is not None:
        kwargs["depth"] = depth
    return timm.create_model(name, **kwargs)


class DinoV3Encoder(nn.Module):
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
        n_blocks = len(self.backbone.blocks)
        self.taken_layers: Tuple[int, ...] = tuple(taken_layers if taken_layers is not None else spec.taken_layers)
        if len(self.taken_layers) != 4 or any(not 0 <= i < n_blocks for i in self.taken_layers):
            raise ValueError(f"taken layers {self.taken_layers} invalid for a {n_blocks}-block encoder")
        self.use_backbone_norm = use_backbone_norm
        self.embed_dim = self.backbone.embed_dim
        self.num_prefix_tokens = self.backbone.num_prefix_tokens  # class + 4 register tokens
        self.baked_grid: Optional[Tuple[int, int]] = None
        self.register_buffer("baked_rope", None, persistent=False)
        # Frozen, as in AnyDepth: only the decoder is trained.
        self.backbone.requires_grad_(False)

    @property
    def embed_dims(self) -> List[int]:
        return [self.embed_dim] * 4

    def rope_table(self, grid_h: int, grid_w: int) -> Optional[torch.Tensor]:
        if self.baked_rope is not None and self.baked_grid == (grid_h, grid_w):
            return self.baked_rope
        rope = self.backbone.rope
        return rope.get_embed(shape=(grid_h, grid_w)) if rope is not None else None

    def bake_rope(self, height: int, width: int) -> None:
        """Freeze the RoPE table for one input size (export form); other sizes still work."""
        grid = (height // PATCH_SIZE, width // PATCH_SIZE)
        with torch.no_grad():
            table = self.backbone.rope.get_embed(shape=grid)
        self.baked_rope = table.detach().clone()
        self.baked_grid = grid

    def forward(self, image: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        bb = self.backbone
        b = image.shape[0]
        tokens = bb.patch_embed(image)  # (B, h, w, C): timm's dynamic-size patch embed is NHWC
        _, gh, gw, c = tokens.shape
        prefix = [bb.cls_token.expand(b, -1, -1)]
        if bb.reg_token is not None:
            prefix.append(bb.reg_token.expand(b, -1, -1))
        x = torch.cat(prefix + [tokens.reshape(b, gh * gw, c)], dim=1)
        x = bb.norm_pre(x)
        rope = self.rope_table(gh, gw)
        last = max(self.taken_layers)
        outputs = []
        for i, block in enumerate(bb.blocks[: last + 1]):
            x = block(x, rope=rope)
            if i in self.taken_layers:
                y = bb.norm(x) if self.use_backbone_norm else x
                patch_map = y[:, self.num_prefix_tokens:].reshape(b, gh, gw, c).permute(0, 3, 1, 2)
                outputs.append((patch_map, y[:, 0]))
        return outputs
