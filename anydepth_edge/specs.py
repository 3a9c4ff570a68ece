"""Static facts about the model family, importable without PyTorch.

Numbers from the AnyDepth paper / official code (see README "Model"): DINOv3 ViT encoders with
patch 16, the block indices the decoders read, and the ImageNet normalisation.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

PATCH_SIZE = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_DEPTH = 0.001  # depth = relu(x) + MIN_DEPTH
SDT_FUSION_CHANNELS = 256
DPT_CHANNELS = 512
DECODERS = ("sdt", "dpt")


@dataclass(frozen=True)
class EncoderSpec:
    name: str  # our short name: vits / vitb / vitl
    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    taken_layers: Tuple[int, ...]  # 0-based block indices fed to the decoder

    @property
    def label(self) -> str:
        return {"vits": "ViT-S", "vitb": "ViT-B", "vitl": "ViT-L"}.get(self.name, self.name)


ENCODERS: Dict[str, EncoderSpec] = {
    "vits": EncoderSpec("vits", "vit_small_patch16_dinov3", 384, 12, 6, (2, 5, 8, 11)),
    "vitb": EncoderSpec("vitb", "vit_base_patch16_dinov3", 768, 12, 12, (2, 5, 8, 11)),
    # The official code keeps [4, 11, 17, 23] for ViT-L (not [5, ...]) for checkpoint compatibility.
    "vitl": EncoderSpec("vitl", "vit_large_patch16_dinov3", 1024, 24, 16, (4, 11, 17, 23)),
}

ENCODER_BY_DIM = {spec.embed_dim: spec for spec in ENCODERS.values()}


def encoder_spec(name: str) -> EncoderSpec:
    from anydepth_edge.errors import UserError

    key = name.lower().replace("-", "").replace("_", "")
    if key not in ENCODERS:
        raise UserError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
    return ENCODERS[key]


def check_decoder(name: str) -> str:
    from anydepth_edge.errors import UserError

    key = name.lower()
    if key not in DECODERS:
        raise UserError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS)}")
    return key
