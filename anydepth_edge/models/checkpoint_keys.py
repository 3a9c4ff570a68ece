"""Checkpoint layouts as pure functions over state dicts (no file I/O, no model construction).

Three layouts:
- official AnyDepth checkpoints: state dicts of the official module tree
  `Sequential(EncoderDecoder(encoder=wrapper(backbone=DinoVisionTransformer), decoder=Head), FeaturesToDepth)`,
  i.e. keys `0.encoder.backbone.<DINOv3 key>` and `0.decoder.<head key>`;
- Meta DINOv3 backbone checkpoints (plain `DinoVisionTransformer` state dicts): encoder only;
- the toolkit's own format: keys of this package's `AnyDepth` (`encoder.backbone.*`, `decoder.*`).

DINOv3 backbone keys are mapped to timm `Eva` by timm's own `checkpoint_filter_fn` (see
`checkpoints.load_checkpoint`); this module only separates, recognises and measures.
"""

import re
from typing import Any, Dict, List, Mapping, Tuple

import torch

from anydepth_edge.specs import ENCODER_BY_DIM

FORMAT_ANYDEPTH = "anydepth-official"
FORMAT_DINOV3 = "dinov3-backbone"
FORMAT_TOOLKIT = "anydepth-edge"

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
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith(OFFICIAL_BACKBONE) or k.startswith(OFFICIAL_DECODER) for k in keys):
        return FORMAT_ANYDEPTH
    if any(k.startswith("encoder.backbone.") or k.startswith("decoder.") for k in keys):
        return FORMAT_TOOLKIT
    if "storage_tokens" in keys or any(re.match(r"blocks\.\d+\.ls1\.gamma$", k) for k in keys):
        return FORMAT_DINOV3
    raise ValueError(
        "unrecognised checkpoint layout: expected an official AnyDepth checkpoint (keys '0.encoder.*', "
        "'0.decoder.*'), a DINOv3 backbone (keys 'storage_tokens', 'blocks.N.*') or an anydepth-edge file"
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


def backbone_view(sd: Mapping[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """The DINOv3-named backbone tensors of a checkpoint in either Meta layout."""
    if fmt == FORMAT_ANYDEPTH:
        return split_official(sd)[0]
    return dict(sd)


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
        raise ValueError("no DINOv3 backbone in the checkpoint (no cls_token)")
    dim = int(bb["cls_token"].shape[-1])
    spec = ENCODER_BY_DIM.get(dim)
    if spec is None:
        raise ValueError(f"encoder width {dim} is not ViT-S/B/L (384/768/1024)")
    blocks = [int(m.group(1)) for m in (re.match(r"blocks\.(\d+)\.", k) for k in bb) if m]
    if not blocks:
        raise ValueError("no transformer blocks in the checkpoint's backbone")
    arch: Dict[str, Any] = {"encoder": spec.name, "depth": 1 + max(blocks), "qkv_bias": has_nonzero_qkv_bias(bb)}
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
