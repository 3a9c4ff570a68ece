"""AnyDepth depth model: DINOv3 encoder + SDT (or DPT) decoder, and the `build_model` factory.

Input: an ImageNet-normalised RGB batch (B, 3, H, W), H and W multiples of 16.
Output: affine-invariant depth (B, 1, H, W) = relu(decoder) + 0.001.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from anydepth_edge.errors import UserError
from anydepth_edge.models.dinov3 import DinoV3Encoder
from anydepth_edge.models.dpt import DPTHead
from anydepth_edge.models.sdt import SDTHead
from anydepth_edge.specs import DPT_CHANNELS, MIN_DEPTH, PATCH_SIZE, SDT_FUSION_CHANNELS, check_decoder, encoder_spec


@dataclass
class AnyDepthConfig:
    encoder: str = "vits"
    decoder: str = "sdt"
    qkv_bias: bool = False  # DINOv3 checkpoints with non-zero q/v biases need timm's *_qkvb variant
    use_backbone_norm: bool = False
    fusion_channels: int = SDT_FUSION_CHANNELS  # SDT width F
    dpt_channels: int = DPT_CHANNELS
    # Small test configs only: a shallower encoder and the blocks to read from it.
    encoder_depth: Optional[int] = None
    taken_layers: Optional[Tuple[int, ...]] = field(default=None)

    def __post_init__(self):
        self.encoder = encoder_spec(self.encoder).name
        self.decoder = check_decoder(self.decoder)
        if self.taken_layers is not None:
            self.taken_layers = tuple(int(i) for i in self.taken_layers)

    @property
    def spec(self):
        return encoder_spec(self.encoder)

    @property
    def layers(self) -> Tuple[int, ...]:
        return self.taken_layers if self.taken_layers is not None else self.spec.taken_layers

    @property
    def is_reference_size(self) -> bool:
        """True for the paper's configuration (not a shrunken test model)."""
        return (
            self.encoder_depth is None
            and self.taken_layers is None
            and self.fusion_channels == SDT_FUSION_CHANNELS
            and self.dpt_channels == DPT_CHANNELS
        )

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        if d["taken_layers"] is not None:
            d["taken_layers"] = list(d["taken_layers"])
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "AnyDepthConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class AnyDepth(nn.Module):
    def __init__(self, config: AnyDepthConfig):
        super().__init__()
        self.config = config
        self.encoder = DinoV3Encoder(
            config.spec,
            taken_layers=config.taken_layers,
            qkv_bias=config.qkv_bias,
            depth=config.encoder_depth,
            use_backbone_norm=config.use_backbone_norm,
        )
        dims = self.encoder.embed_dims
        if config.decoder == "sdt":
            self.decoder = SDTHead(dims, fusion_channels=config.fusion_channels)
        else:
            self.decoder = DPTHead(dims, channels=config.dpt_channels)
        self.min_depth = MIN_DEPTH

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h % PATCH_SIZE or w % PATCH_SIZE:
            # Python ints also while tracing, so this check costs nothing in an exported graph.
            raise UserError(f"input {h}x{w}: both sides must be multiples of {PATCH_SIZE}")
        raw = self.decoder(self.encoder(image))
        if raw.shape[-2:] != image.shape[-2:]:
            # DPT's stride-2 branch rounds up when the patch grid is odd (e.g. 48 px = 3 patches);
            # bring the prediction back to the input size, as the official pipeline does.
            raw = F.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
        return torch.relu(raw) + self.min_depth


def build_model(encoder: str = "vits", decoder: str = "sdt", **overrides: Any) -> AnyDepth:
    """A randomly initialised AnyDepth model in eval mode; load weights with `load_checkpoint`."""
    config = AnyDepthConfig(encoder=encoder, decoder=decoder, **overrides)
    return AnyDepth(config).eval()
