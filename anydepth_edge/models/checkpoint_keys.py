"""Checkpoint layouts as pure functions over state dicts (no file I/O, no model construction).

Four layouts:
- official AnyDepth checkpoints: state dicts of the official module tree
  `Sequential(EncoderDecoder(encoder=wrapper(backbone=DinoVisionTransformer), decoder=Head), FeaturesToDepth)`,
  i.e. keys `0.encoder.backbone.<DINOv3 key>` and `0.decoder.<head key>`;
- Depth Anything V2 layout (`depth_anything_v2_vit*.pth` and AnyDepth's released `dav2_sdt_*.pth` /
  `da3_sdt_vitl.pth`): `pretrained.<DINOv2 key>` + `depth_head.<SDT or DAv2 DPT key>`;
- Meta DINOv3 backbone checkpoints (plain `DinoVisionTransformer` state dicts): encoder only;
- the toolkit's own format: keys of this package's `AnyDepth` (`encoder.backbone.*`, `decoder.*`).

DINOv3 backbone keys are mapped to timm `Eva` by timm's own `checkpoint_filter_fn` (see
`checkpoints.load_checkpoint`); this module only separates, recognises and measures.
"""

import re
from typing import Any, Dict, List, Mapping, Tuple

import torch

from anydepth_edge.model_facts import ENCODER_BY_DIM

FORMAT_ANYDEPTH = "anydepth-official"
FORMAT_DINOV3 = "dinov3-backbone"
FORMAT_TOOLKIT = "anydepth-edge"
FORMAT_DAV2 = "depth-anything-v2"

DAV2_BACKBONE = "pretrained."
DAV2_HEAD = "depth_head."
# DINOv2 keys no inference uses: the masked-token embedding of its self-supervised training.
IGNORED_BACKBONE_KEYS = ("mask_token",)

OFFICIAL_BACKBONE = "0.encoder.backbone."
OFFICIAL_DECODER = "0.decoder."
_WRAPPER_KEYS = ("state_dict", "model", "model_ema", "module")


def unwrap_state_dict(obj: Any) -> Dict[str, Any]:
    """The tensor mapping inside a loaded checkpoint: unwraps {'state_dict'|'model'|...: sd} and
    strips a DistributedDataParallel `module.` prefix."""
    sd = obj
    for _ in range(3):
        if isinstance(sd, Mapping):
            inner = next((sd[k] for k in _WRAPPER_KEYS if k in sd and isinstance(sd[k], Mapping)), None)
            if inner is not None and not any(torch.is_tensor(v) for v in sd.values()):
                sd = inner
                continue
        break
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError("no state dict found in the checkpoint")
    sd = {str(k): v for k, v in sd.items() if torch.is_tensor(v)}
    if not sd:
        raise ValueError("the checkpoint holds no tensors")
    for prefix in ("module.", "model."):  # DistributedDataParallel; loaders that save `self.model`
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith(OFFICIAL_BACKBONE) or k.startswith(OFFICIAL_DECODER) for k in keys):
        return FORMAT_ANYDEPTH
    if any(k.startswith("encoder.backbone.") or k.startswith("decoder.") for k in keys):
        return FORMAT_TOOLKIT
    if any(k.startswith(DAV2_BACKBONE) for k in keys):
        return FORMAT_DAV2
    if "storage_tokens" in keys or any(re.match(r"blocks\.\d+\.ls1\.gamma$", k) for k in keys):
        return FORMAT_DINOV3
    raise ValueError(
        "unrecognised checkpoint layout: expected an official AnyDepth checkpoint (keys '0.encoder.*', "
        "'0.decoder.*'), a Depth Anything V2 layout file (keys 'pretrained.*', 'depth_head.*': DAv2 and the "
        "released dav2_sdt / da3_sdt weights), a DINOv3 backbone (keys 'storage_tokens', 'blocks.N.*') or an "
        "anydepth-edge file"
    )


def split_official(sd: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], List[str]]:
    """Official AnyDepth keys -> (DINOv3 backbone keys, `decoder.*` keys of this package, foreign keys)."""
    backbone: Dict[str, torch.Tensor] = {}
    decoder: Dict[str, torch.Tensor] = {}
    foreign: List[str] = []
    for key, value in sd.items():
        if key.startswith(OFFICIAL_BACKBONE):
            backbone[key[len(OFFICIAL_BACKBONE):]] = value
        elif key.startswith(OFFICIAL_DECODER):
            decoder["decoder." + key[len(OFFICIAL_DECODER):]] = value
        else:
            foreign.append(key)  # FeaturesToDepth has no weights; anything else is foreign
    return backbone, decoder, foreign


def split_dav2(sd: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], List[str]]:
    """DAv2-layout keys -> (`encoder.backbone.*`, `decoder.*` keys of this package, dropped keys).
    timm's DINOv2 module tree has the DAv2 names, so this is a prefix swap; the mask token is dropped."""
    mapped: Dict[str, torch.Tensor] = {}
    dropped: List[str] = []
    for key, value in sd.items():
        if key.startswith(DAV2_BACKBONE):
            name = key[len(DAV2_BACKBONE):]
            if name in IGNORED_BACKBONE_KEYS:
                dropped.append(key)
            else:
                mapped["encoder.backbone." + name] = value
        elif key.startswith(DAV2_HEAD):
            mapped["decoder." + key[len(DAV2_HEAD):]] = value
        else:
            dropped.append(key)
    return mapped, {}, dropped


def backbone_view(sd: Mapping[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """The backbone tensors of a checkpoint, named as Meta's DINOv3 / DINOv2 code names them."""
    if fmt == FORMAT_ANYDEPTH:
        return split_official(sd)[0]
    if fmt == FORMAT_DAV2:
        return {k[len(DAV2_BACKBONE):]: v for k, v in sd.items() if k.startswith(DAV2_BACKBONE)}
    return dict(sd)


def _dav2_decoder(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """What the `depth_head.*` of a DAv2-layout file is: SDT (with its options) or DAv2's DPT."""
    sdt_width = sd.get(DAV2_HEAD + "weighted_fusion.projections.0.0.weight")
    if sdt_width is not None:
        return {"decoder": "sdt", "fusion_channels": int(sdt_width.shape[0]),
                "sdt_cls_token": any(k.startswith(DAV2_HEAD + "weighted_fusion.readout_projects.") for k in sd),
                "sdt_detail_enhancer": any(k.startswith(DAV2_HEAD + "detail_enhancer.") for k in sd)}
    if DAV2_HEAD + "scratch.layer1_rn.weight" in sd:
        if any(k.startswith(DAV2_HEAD + "readout_projects.") for k in sd):
            raise ValueError("its DPT head reads the class token (use_clstoken=True), which the released "
                             "Depth Anything V2 models do not and this toolkit does not build")
        return {"decoder": "dav2"}
    raise ValueError("its 'depth_head.*' is neither AnyDepth's SDT head nor Depth Anything V2's DPT head")


def native_side(sd: Mapping[str, torch.Tensor], fmt: str) -> int:
    """The input side a DINOv2 position embedding was learnt for (37 x 37 patches -> 518 px)."""
    pos = backbone_view(sd, fmt).get("pos_embed")
    patch = backbone_view(sd, fmt).get("patch_embed.proj.weight")
    if pos is None or patch is None:
        return 0
    return int(round((pos.shape[1] - 1) ** 0.5)) * int(patch.shape[-1])


def has_nonzero_qkv_bias(sd: Mapping[str, torch.Tensor]) -> bool:
    """True when a DINOv3 `qkv.bias` has non-zero q or v parts (then timm's *_qkvb variant is needed)."""
    for key, value in sd.items():
        if key.endswith("attn.qkv.bias"):
            q, _k, v = value.float().chunk(3, dim=-1)
            if q.abs().max() > 0 or v.abs().max() > 0:
                return True
    return False


def infer_architecture(sd: Mapping[str, torch.Tensor], fmt: str) -> Dict[str, Any]:
    """Encoder size, depth, decoder type and qkv-bias need, read from tensor shapes and key names."""
    if fmt == FORMAT_TOOLKIT:
        raise ValueError("toolkit checkpoints carry their config in the JSON beside them")
    bb = backbone_view(sd, fmt)
    if "cls_token" not in bb:
        raise ValueError("no ViT backbone in the checkpoint (no cls_token)")
    dim = int(bb["cls_token"].shape[-1])
    spec = ENCODER_BY_DIM.get(dim)
    if spec is None:
        raise ValueError(f"encoder width {dim} is not ViT-S/B/L (384/768/1024)")
    blocks = [int(m.group(1)) for m in (re.match(r"blocks\.(\d+)\.", k) for k in bb) if m]
    if not blocks:
        raise ValueError("no transformer blocks in the checkpoint's backbone")
    arch: Dict[str, Any] = {"encoder": spec.name, "depth": 1 + max(blocks)}
    if fmt == FORMAT_DAV2:
        patch = bb.get("patch_embed.proj.weight")
        if patch is None or tuple(patch.shape[-2:]) != (14, 14):
            raise ValueError("its backbone is not a DINOv2 ViT/14 (patch_embed.proj.weight is not C x 3 x 14 x 14)")
        if "pos_embed" not in bb or int(round((bb["pos_embed"].shape[1] - 1) ** 0.5)) ** 2 + 1 != bb["pos_embed"].shape[1]:
            raise ValueError("its DINOv2 position embedding is not 1 + N x N patches")
        arch.update(family="dinov2", **_dav2_decoder(sd))
        return arch
    arch["qkv_bias"] = has_nonzero_qkv_bias(bb)
    if fmt == FORMAT_ANYDEPTH:
        sdt_width = sd.get(OFFICIAL_DECODER + "weighted_fusion.projections.0.0.weight")
        dpt_width = sd.get(OFFICIAL_DECODER + "convs.0.conv.weight")
        if sdt_width is not None:
            arch["decoder"] = "sdt"
            arch["fusion_channels"] = int(sdt_width.shape[0])
        elif dpt_width is not None:
            arch["decoder"] = "dpt"
            arch["dpt_channels"] = int(dpt_width.shape[0])
        else:
            raise ValueError("the checkpoint's decoder is neither SDT nor DPT")
    return arch
