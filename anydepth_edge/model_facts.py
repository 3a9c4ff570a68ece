"""Static facts about the model family, importable without PyTorch.

Numbers from the AnyDepth paper / official code (see README "Model"): DINOv3 ViT encoders with
patch 16 (the paper's), DINOv2 ViT/14 encoders (the released DAv2-based weights), the block
indices the decoders read, the decoders and what they output, and the ImageNet normalisation.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

PATCH_SIZE = 16  # the paper's DINOv3 family; a model's own patch is `family_spec(config.family).patch_size`
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_DEPTH = 0.001  # depth = relu(x) + MIN_DEPTH
SDT_FUSION_CHANNELS = 256
DPT_CHANNELS = 512
# sdt: AnyDepth's head; dpt: the paper's DPT baseline; dav2: Depth Anything V2's DPT head.
DECODERS = ("sdt", "dpt", "dav2")
PAPER_DECODERS = ("sdt", "dpt")  # what `--decoder all` means: the paper's comparison


def expand_decoders(names) -> List[Optional[str]]:
    """--decoder values in order, once each, with 'all' standing for PAPER_DECODERS (None: the checkpoint's)."""
    out: List[Optional[str]] = []
    for name in names:
        out += list(PAPER_DECODERS) if name == "all" else [name]
    return list(dict.fromkeys(out))
# What a decoder's output means. Disparity (DAv2) is relative inverse depth: larger = nearer.
OUTPUT_KIND = {"sdt": "depth", "dpt": "depth", "dav2": "disparity"}
OUTPUT_KINDS = ("depth", "disparity")
# Depth Anything V2's DPT head per encoder size: (features, out_channels per level).
DAV2_DPT = {
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
}


@dataclass(frozen=True)
class EncoderFamily:
    name: str
    patch_size: int
    native_side: int  # the side its position embedding / training used (the default suggestion)
    label: str


FAMILIES: Dict[str, EncoderFamily] = {
    "dinov3": EncoderFamily("dinov3", 16, 256, "DINOv3"),
    "dinov2": EncoderFamily("dinov2", 14, 518, "DINOv2"),
}


def family_spec(name: str) -> EncoderFamily:
    from anydepth_edge.errors import UserError

    if name not in FAMILIES:
        raise UserError(f"unknown encoder family {name!r}: choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def encoder_tag(encoder: str, family: str = "dinov3") -> str:
    """The encoder as artifact names spell it: 'vitb' (DINOv3, patch 16), 'vitb14' (DINOv2)."""
    return encoder if family == "dinov3" else f"{encoder}{family_spec(family).patch_size}"


@dataclass(frozen=True)
class EncoderSpec:
    name: str  # our short name: vits / vitb / vitl
    timm_name: str  # DINOv3
    dinov2_timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    taken_layers: Tuple[int, ...]  # 0-based block indices fed to the decoder

    @property
    def label(self) -> str:
        return {"vits": "ViT-S", "vitb": "ViT-B", "vitl": "ViT-L"}.get(self.name, self.name)


ENCODERS: Dict[str, EncoderSpec] = {
    "vits": EncoderSpec("vits", "vit_small_patch16_dinov3", "vit_small_patch14_dinov2", 384, 12, 6, (2, 5, 8, 11)),
    "vitb": EncoderSpec("vitb", "vit_base_patch16_dinov3", "vit_base_patch14_dinov2", 768, 12, 12, (2, 5, 8, 11)),
    # The official code keeps [4, 11, 17, 23] for ViT-L (not [5, ...]) for checkpoint compatibility.
    "vitl": EncoderSpec("vitl", "vit_large_patch16_dinov3", "vit_large_patch14_dinov2", 1024, 24, 16, (4, 11, 17, 23)),
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
