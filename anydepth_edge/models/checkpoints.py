"""Checkpoint loading and saving, with key remapping kept as pure functions.

Three sources:
- official AnyDepth checkpoints: state dicts of the official module tree
  `Sequential(EncoderDecoder(encoder=wrapper(backbone=DinoVisionTransformer), decoder=Head), FeaturesToDepth)`,
  i.e. keys `0.encoder.backbone.<DINOv3 key>` and `0.decoder.<head key>`;
- Meta DINOv3 backbone checkpoints (plain `DinoVisionTransformer` state dicts): encoder only;
- the toolkit's own format: `<name>.safetensors` + `<name>.json` (config).

Only `torch.load(weights_only=True)` is used: no pickle code from a checkpoint ever runs.
"""

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from anydepth_edge import __version__
from anydepth_edge.errors import UserError
from anydepth_edge.specs import ENCODER_BY_DIM

FORMAT_ANYDEPTH = "anydepth-official"
FORMAT_DINOV3 = "dinov3-backbone"
FORMAT_TOOLKIT = "anydepth-edge"

TOOLKIT_FORMAT_TAG = "anydepth-edge/1"
RANDOM_WEIGHTS_WARNING = "no checkpoint: random weights (latency and memory figures are valid; depth is not)"

_WRAPPER_KEYS = ("state_dict", "model", "model_ema", "module")
_DINOV3_DROPPED_SUFFIXES = (".bias_mask", "rope_embed.periods", "mask_token")
_DINOV3_DROPPED_PREFIXES = ("local_cls_norm.", "cls_norm.", "head.")


# --------------------------------------------------------------------------- pure key functions

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
    if any(k.startswith("0.encoder.") or k.startswith("0.decoder.") for k in keys):
        return FORMAT_ANYDEPTH
    if any(k.startswith("encoder.backbone.") or k.startswith("decoder.") for k in keys):
        return FORMAT_TOOLKIT
    if "storage_tokens" in keys or any(re.match(r"blocks\.\d+\.ls1\.gamma$", k) for k in keys):
        return FORMAT_DINOV3
    raise ValueError(
        "unrecognised checkpoint layout: expected an official AnyDepth checkpoint (keys '0.encoder.*', "
        "'0.decoder.*'), a DINOv3 backbone (keys 'storage_tokens', 'blocks.N.*') or an anydepth-edge file"
    )


def dinov3_key_to_timm(key: str) -> Optional[str]:
    """Map one Meta DINOv3 `DinoVisionTransformer` key to timm `Eva`; None for keys timm has no use for.

    `attn.qkv.bias` is returned unchanged: it is split by `remap_dinov3_backbone`.
    """
    if key.endswith(_DINOV3_DROPPED_SUFFIXES) or key.startswith(_DINOV3_DROPPED_PREFIXES):
        return None  # RoPE periods are recomputed; k-bias mask, mask token, 7B-only norms unused
    if key == "storage_tokens":
        return "reg_token"
    key = re.sub(r"\.ls1\.gamma$", ".gamma_1", key)
    key = re.sub(r"\.ls2\.gamma$", ".gamma_2", key)
    return key


def remap_dinov3_backbone(
    sd: Mapping[str, torch.Tensor], qkv_bias: bool, prefix: str = ""
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """DINOv3 backbone keys -> timm Eva keys under `prefix`. Returns (mapped, dropped keys).

    DINOv3 fuses q/k/v biases into one vector with the k part masked to zero; timm keeps q and v
    biases (k fixed at zero) only in its `*_qkvb` variants, so with `qkv_bias=False` the (zero)
    biases are dropped.
    """
    out: Dict[str, torch.Tensor] = {}
    dropped: List[str] = []
    for key, value in sd.items():
        new = dinov3_key_to_timm(key)
        if new is None:
            dropped.append(key)
            continue
        if new.endswith("attn.qkv.bias"):
            if not qkv_bias:
                dropped.append(key)
                continue
            q, _k, v = value.chunk(3, dim=-1)
            out[prefix + new.replace("qkv.bias", "q_bias")] = q
            out[prefix + new.replace("qkv.bias", "v_bias")] = v
            continue
        out[prefix + new] = value
    return out, dropped


def has_nonzero_qkv_bias(sd: Mapping[str, torch.Tensor]) -> bool:
    """True when a DINOv3 `qkv.bias` has non-zero q or v parts (then timm's *_qkvb variant is needed)."""
    for key, value in sd.items():
        if key.endswith("attn.qkv.bias"):
            q, _k, v = value.float().chunk(3, dim=-1)
            if q.abs().max() > 0 or v.abs().max() > 0:
                return True
    return False


def remap_anydepth_official(
    sd: Mapping[str, torch.Tensor], qkv_bias: bool
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Official AnyDepth keys -> this package's `AnyDepth` keys. Returns (mapped, dropped keys)."""
    backbone: Dict[str, torch.Tensor] = {}
    out: Dict[str, torch.Tensor] = {}
    dropped: List[str] = []
    for key, value in sd.items():
        if key.startswith("0.encoder.backbone."):
            backbone[key[len("0.encoder.backbone."):]] = value
        elif key.startswith("0.decoder."):
            out["decoder." + key[len("0.decoder."):]] = value
        else:
            dropped.append(key)  # FeaturesToDepth has no weights; anything else is foreign
    mapped, dropped_bb = remap_dinov3_backbone(backbone, qkv_bias, prefix="encoder.backbone.")
    out.update(mapped)
    dropped.extend("0.encoder.backbone." + k for k in dropped_bb)
    return out, dropped


def backbone_view(sd: Mapping[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """The DINOv3-named backbone tensors of a checkpoint in either Meta layout."""
    if fmt == FORMAT_ANYDEPTH:
        p = "0.encoder.backbone."
        return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
    return dict(sd)


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
    depth = 1 + max(int(m.group(1)) for m in (re.match(r"blocks\.(\d+)\.", k) for k in bb) if m)
    arch: Dict[str, Any] = {"encoder": spec.name, "depth": depth, "qkv_bias": has_nonzero_qkv_bias(bb)}
    if fmt == FORMAT_ANYDEPTH:
        sdt_width = sd.get("0.decoder.weighted_fusion.projections.0.0.weight")
        dpt_width = sd.get("0.decoder.convs.0.conv.weight")
        if sdt_width is not None:
            arch["decoder"] = "sdt"
            arch["fusion_channels"] = int(sdt_width.shape[0])
        elif dpt_width is not None:
            arch["decoder"] = "dpt"
            arch["dpt_channels"] = int(dpt_width.shape[0])
        else:
            raise ValueError("the checkpoint's decoder is neither SDT nor DPT")
    return arch


# --------------------------------------------------------------------------- file I/O

@dataclass
class LoadReport:
    path: Optional[str]
    format: str
    sha256: Optional[str] = None
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def random_decoder(self) -> bool:
        return self.format in ("random", FORMAT_DINOV3)

    def describe(self) -> Dict[str, Any]:
        return {"path": self.path, "format": self.format, "sha256": self.sha256 or "random"}


def _read_tensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, safetensors metadata) from a .safetensors or a torch file (weights_only)."""
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} is not a file")
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            tensors, meta = {}, {}
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                for k in fh.keys():
                    tensors[k] = fh.get_tensor(k)
            return tensors, meta
        except Exception as e:  # safetensors raises several types for a damaged header
            raise UserError(f"cannot read checkpoint {path}: not a valid safetensors file ({_first_line(e)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before failing anyway
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        if "Unsupported global" in str(e):
            raise UserError(
                f"refusing checkpoint {path}: it contains pickled Python objects, which are never loaded "
                "here; save a plain state dict (tensors only)"
            ) from None
        raise UserError(
            f"cannot read checkpoint {path}: not a PyTorch state dict or safetensors file (corrupt or truncated?)"
        ) from None
    try:
        return unwrap_state_dict(obj), {}
    except ValueError as e:
        raise UserError(f"cannot use checkpoint {path}: {e}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _toolkit_config(path: Path, meta: Dict[str, str]) -> Dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        try:
            data = json.loads(sidecar.read_text())
            return data["config"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"checkpoint config {sidecar} is unreadable or has no 'config'") from None
    if "anydepth_edge_config" in meta:
        return json.loads(meta["anydepth_edge_config"])
    raise UserError(f"checkpoint {path} has no config: expected {sidecar.name} beside it")


def _check_request(arch_encoder: str, arch_decoder: Optional[str], encoder: Optional[str], decoder: Optional[str], path) -> None:
    from anydepth_edge.specs import ENCODERS

    if encoder is not None and encoder != arch_encoder:
        raise UserError(
            f"checkpoint {path} is a {ENCODERS[arch_encoder].label} model but --encoder {encoder} was asked: "
            f"use --encoder {arch_encoder} or another checkpoint"
        )
    if decoder is not None and arch_decoder is not None and decoder != arch_decoder:
        raise UserError(
            f"checkpoint {path} holds a {arch_decoder.upper()} decoder but --decoder {decoder} was asked: "
            f"use --decoder {arch_decoder} or another checkpoint"
        )


def _check_shapes(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path) -> None:
    own = model.state_dict()
    for key, value in sd.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise UserError(
                f"checkpoint {path} does not fit the model: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(own[key].shape)}"
            )


def load_checkpoint(
    path,
    encoder: Optional[str] = None,
    decoder: Optional[str] = None,
    **overrides: Any,
):
    """Build the model a checkpoint describes and load it. Returns (model, LoadReport).

    `encoder` / `decoder`, when given, must agree with the checkpoint (a clear error otherwise).
    A DINOv3 backbone checkpoint fills the encoder only; `decoder` then picks the random head.
    """
    from anydepth_edge.artifacts import sha256_file
    from anydepth_edge.models.anydepth import AnyDepth, AnyDepthConfig

    path = Path(path)
    tensors, meta = _read_tensors(path)
    try:
        fmt = detect_format(tensors.keys())
    except ValueError as e:
        raise UserError(f"cannot use checkpoint {path}: {e}") from None
    report = LoadReport(path=str(path), format=fmt, sha256=sha256_file(path))

    if fmt == FORMAT_TOOLKIT:
        cfg = AnyDepthConfig.from_dict({**_toolkit_config(path, meta), **overrides})
        _check_request(cfg.encoder, cfg.decoder, encoder, decoder, path)
        mapped = tensors
    else:
        try:
            arch = infer_architecture(tensors, fmt)
        except ValueError as e:
            raise UserError(f"cannot use checkpoint {path}: {e}") from None
        _check_request(arch["encoder"], arch.get("decoder"), encoder, decoder, path)
        cfg_args: Dict[str, Any] = dict(encoder=arch["encoder"], decoder=arch.get("decoder") or decoder or "sdt",
                                        qkv_bias=arch["qkv_bias"])
        cfg_args.update({k: arch[k] for k in ("fusion_channels", "dpt_channels") if k in arch})
        from anydepth_edge.specs import ENCODERS

        if arch["depth"] != ENCODERS[arch["encoder"]].depth:
            cfg_args["encoder_depth"] = arch["depth"]
        cfg_args.update(overrides)
        cfg = AnyDepthConfig(**cfg_args)
        if fmt == FORMAT_ANYDEPTH:
            mapped, report.dropped = remap_anydepth_official(tensors, cfg.qkv_bias)
        else:
            mapped, report.dropped = remap_dinov3_backbone(tensors, cfg.qkv_bias, prefix="encoder.backbone.")

    model = AnyDepth(cfg).eval()
    _check_shapes(model, mapped, path)
    result = model.load_state_dict(mapped, strict=False)
    report.unexpected = list(result.unexpected_keys)
    missing = list(result.missing_keys)
    if fmt == FORMAT_DINOV3:
        head_missing = [k for k in missing if k.startswith("decoder.")]
        missing = [k for k in missing if not k.startswith("decoder.")]
        report.notes.append(
            f"DINOv3 backbone only: the {cfg.decoder.upper()} decoder has random weights "
            f"({len(head_missing)} tensors); depth is not meaningful until a trained decoder is loaded"
        )
    report.missing = missing
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise UserError(f"checkpoint {path} lacks {len(missing)} weights the model needs: {shown}")
    return model, report


def save_checkpoint(model, path) -> Path:
    """Write `<path>.safetensors` + `<path>.json` (config, toolkit version), atomically."""
    from safetensors.torch import save as st_save

    from anydepth_edge.artifacts import write_bytes_atomic, write_json_atomic

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    config = model.config.to_dict()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": TOOLKIT_FORMAT_TAG, "anydepth_edge_config": json.dumps(config), "version": __version__}
    write_bytes_atomic(path, st_save(tensors, metadata=meta))
    write_json_atomic(path.with_suffix(".json"), {"format": TOOLKIT_FORMAT_TAG, "version": __version__, "config": config})
    return path


def resolve_model(checkpoint=None, encoder: str = "vits", decoder: str = "sdt", warn=None, **overrides: Any):
    """The model for a CLI job: loaded from `checkpoint`, or random weights with one loud warning.

    `warn` is called with each note for the user (the CLI passes its warning printer).
    """
    from anydepth_edge.models.anydepth import build_model

    if checkpoint is None:
        from anydepth_edge.models.anydepth import spread_random_init

        torch.manual_seed(0)  # the same random weights every run: exports are reproducible and cacheable
        model = spread_random_init(build_model(encoder, decoder, **overrides))
        if warn:
            warn(RANDOM_WEIGHTS_WARNING)
        return model, LoadReport(path=None, format="random")
    model, report = load_checkpoint(checkpoint, encoder=encoder, decoder=decoder, **overrides)
    if warn:
        for note in report.notes:
            warn(note)
        if report.unexpected:
            shown = ", ".join(report.unexpected[:6]) + (" ..." if len(report.unexpected) > 6 else "")
            warn(f"checkpoint has {len(report.unexpected)} keys the model does not use: {shown}")
    return model, report
