"""Checkpoint files: reading them safely, building the model they describe, saving the toolkit's
own format. Layout recognition and key handling are pure functions in `checkpoint_keys`; the
DINOv3 backbone keys go through timm's public `checkpoint_filter_fn`.

Only `torch.load(weights_only=True)` and safetensors are used: no pickle code from a checkpoint
ever runs.
"""

import argparse
import contextlib
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from anydepth_edge import __version__
from anydepth_edge.fileio import read_json
from anydepth_edge.errors import UserError
from anydepth_edge.models.checkpoint_keys import (
    FORMAT_ANYDEPTH,
    FORMAT_DAV2,
    FORMAT_DINOV3,
    FORMAT_TOOLKIT,
    detect_format,
    infer_architecture,
    native_side,
    split_dav2,
    split_official,
    unwrap_state_dict,
)
from anydepth_edge.sidecars import sidecar_path

TOOLKIT_FORMAT_TAG = "anydepth-edge/1"


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
    recognised: str = ""  # one line: layout, family, size, decoder and its options, native size

    @property
    def ref(self):
        """The checkpoint as recorded in artifacts (path, format, sha256)."""
        from anydepth_edge.artifacts import CheckpointRef

        return CheckpointRef(self.path, self.format, self.sha256 or "random")


# The largest AnyDepth (ViT-L + DPT) is ~400 M parameters, 1.6 GB in FP32: anything that inflates
# beyond this is not one of ours, and a small file that inflates a lot is a zip bomb.
MAX_CHECKPOINT_BYTES = 4 << 30
MAX_INFLATION = 20  # float tensors hardly compress; a ratio above this is not a checkpoint
MAX_SAFETENSORS_HEADER = 100 << 20
# The only non-tensor objects a checkpoint may hold: training scripts save their argparse options
# beside the weights. Anything else is refused by name.
SAFE_GLOBALS = (argparse.Namespace,)


def check_checkpoint_size(path: Path) -> None:
    """Refuse, before anything is inflated or allocated, a checkpoint whose contents would not fit
    (a torch zip's member sizes, a safetensors header length, or the file itself)."""
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise UserError(f"refusing checkpoint {path}: {size / 2**30:.1f} GB is more than any AnyDepth model "
                        f"({MAX_CHECKPOINT_BYTES >> 30} GB at most)")
    if path.suffix == ".safetensors":
        with open(path, "rb") as fh:
            head = fh.read(8)
        header = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < header <= min(MAX_SAFETENSORS_HEADER, size - 8):
            raise UserError(f"cannot read checkpoint {path}: not a valid safetensors file (header length {header})")
        return
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                inflated = sum(info.file_size for info in z.infolist())
        except (zipfile.BadZipFile, OSError):
            return  # torch.load says what is wrong with it
        if inflated > MAX_CHECKPOINT_BYTES or (inflated > (64 << 20) and inflated > MAX_INFLATION * size):
            raise UserError(f"refusing checkpoint {path}: it inflates from {size / 2**20:.1f} MB to "
                            f"{inflated / 2**20:.0f} MB, which no AnyDepth checkpoint does (a zip bomb, or not a checkpoint)")


def _read_tensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, safetensors metadata) from a .safetensors or a torch file (weights_only)."""
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} is not a file")
    check_checkpoint_size(path)
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
            with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        # torch words the refusal "Unsupported global: GLOBAL x" or "unsupported GLOBAL x ... is blocked"
        if "unsupported global" in str(e).lower():
            name = re.search(r"GLOBAL\s+([\w.]+)", str(e))
            raise UserError(
                f"refusing checkpoint {path}: it contains pickled Python code or objects ({name.group(1) if name else 'not only tensors'}), "
                "which are never run here; save a plain state dict (tensors only) or a .safetensors file"
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
    """The config of a toolkit checkpoint: the JSON beside it, else the safetensors metadata."""
    sidecar = sidecar_path(path)
    if sidecar.exists():
        data = read_json(sidecar, max_bytes=1 << 20)
        config = data.get("config") if data is not None else None
        where = f"checkpoint config {sidecar}"
    elif "anydepth_edge_config" in meta:
        try:
            config = json.loads(meta["anydepth_edge_config"], parse_constant=lambda c: None)
        except ValueError:
            config = None
        where = f"the config in {path.name}'s metadata"
    else:
        raise UserError(f"checkpoint {path} has no config: expected {sidecar.name} beside it")
    if not isinstance(config, dict):
        raise UserError(f"{where} is unreadable or its 'config' is not an object")
    return config


def non_finite_tensors(tensors: Mapping[str, torch.Tensor]) -> List[str]:
    """Tensors with NaN/Inf as the model will hold them (float32: a float64 1e300 is Inf there), and
    complex ones (loading would drop their imaginary part)."""
    return [k for k, v in tensors.items() if v.is_complex() or (v.is_floating_point() and not bool(
        torch.isfinite(v.to(torch.float32)).all()))]


def _check_request(arch_encoder: str, arch_decoder: Optional[str], encoder: Optional[str], decoder: Optional[str], path) -> None:
    from anydepth_edge.model_facts import ENCODERS

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
        if key in own and own[key].is_floating_point() and not value.is_floating_point():
            raise UserError(f"checkpoint {path} holds {key} as {str(value.dtype).replace('torch.', '')}, "
                            "where the model has weights: it is not a checkpoint of this model")
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
    from anydepth_edge.fileio import sha256_file
    from anydepth_edge.models.anydepth import AnyDepth

    path = Path(path)
    tensors, meta = _read_tensors(path)
    bad = non_finite_tensors(tensors)
    if bad:
        raise UserError(f"checkpoint {path} holds NaN, Inf (in float32) or complex values in {len(bad)} tensors "
                        f"({', '.join(bad[:3])}"
                        f"{' ...' if len(bad) > 3 else ''}): its depth would be NaN; use an intact checkpoint")
    try:
        fmt = detect_format(tensors.keys())
    except ValueError as e:
        raise UserError(f"cannot use checkpoint {path}: {e}") from None
    report = LoadReport(path=str(path), format=fmt, sha256=sha256_file(path))

    cfg = _config_of(path, tensors, meta, fmt, encoder, decoder, overrides)
    mapped = tensors
    model = AnyDepth(cfg).eval()
    report.recognised = recognised_line(fmt, cfg, native_side(tensors, fmt))
    if fmt == FORMAT_DAV2:
        mapped, _, report.dropped = split_dav2(tensors)
    elif fmt != FORMAT_TOOLKIT:
        backbone, mapped, report.dropped = split_official(tensors) if fmt == FORMAT_ANYDEPTH else (tensors, {}, [])
        mapped.update(timm_backbone_keys(backbone, model.encoder.backbone))
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


def _config_of(path: Path, tensors, meta, fmt: str, encoder: Optional[str], decoder: Optional[str],
               overrides: Dict[str, Any]):
    """The model configuration a checkpoint describes (its own record, or inferred from its tensor
    shapes), checked against the --encoder / --decoder asked for."""
    from anydepth_edge.models.anydepth import AnyDepthConfig
    from anydepth_edge.model_facts import ENCODERS

    if fmt == FORMAT_TOOLKIT:
        cfg = AnyDepthConfig.from_dict({**_toolkit_config(path, meta), **overrides}, where=f"checkpoint {path}")
        _check_request(cfg.encoder, cfg.decoder, encoder, decoder, path)
        return cfg
    try:
        arch = infer_architecture(tensors, fmt)
    except ValueError as e:
        raise UserError(f"cannot use checkpoint {path}: {e}") from None
    _check_request(arch["encoder"], arch.get("decoder"), encoder, decoder, path)
    cfg_args: Dict[str, Any] = dict(encoder=arch["encoder"], decoder=arch.get("decoder") or decoder or "sdt")
    cfg_args.update({k: arch[k] for k in ("qkv_bias", "family", "fusion_channels", "dpt_channels",
                                          "sdt_cls_token", "sdt_detail_enhancer") if k in arch})
    if arch["depth"] != ENCODERS[arch["encoder"]].depth:
        cfg_args["encoder_depth"] = arch["depth"]
    cfg_args.update(overrides)
    return AnyDepthConfig(**cfg_args)


def recognised_line(fmt: str, cfg, native: int = 0) -> str:
    """'Depth Anything V2 layout: DINOv2 ViT-B/14, SDT (fusion 128, class token, detail enhancer), native 518x518'."""
    from anydepth_edge.model_facts import family_spec

    family = family_spec(cfg.family)
    if cfg.decoder == "sdt":
        options = [f"fusion {cfg.fusion_channels}", "class token" if cfg.sdt_cls_token else "no class token",
                   "detail enhancer" if cfg.sdt_detail_enhancer else "no detail enhancer"]
        head = f"SDT ({', '.join(options)})"
    elif cfg.decoder == "dav2":
        head = "Depth Anything V2 DPT head"
    else:
        head = f"DPT ({cfg.dpt_channels} channels)"
    layout = {FORMAT_DAV2: "Depth Anything V2 layout", FORMAT_ANYDEPTH: "AnyDepth layout",
              FORMAT_DINOV3: "DINOv3 backbone", FORMAT_TOOLKIT: "anydepth-edge file"}.get(fmt, fmt)
    line = (f"{layout}: {family.label} {cfg.spec.label}/{family.patch_size}, {head}, output {cfg.output_kind}, "
            f"final norm {'on' if cfg.use_backbone_norm else 'off'}")
    return line + (f", native {native}x{native}" if native else "")


def save_checkpoint(model, path) -> Path:
    """Write `<path>.safetensors` + `<path>.json` (config, toolkit version), atomically."""
    from safetensors.torch import save as st_save

    from anydepth_edge.fileio import write_bytes_atomic, write_json_atomic

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    config = model.config.to_dict()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": TOOLKIT_FORMAT_TAG, "anydepth_edge_config": json.dumps(config), "version": __version__}
    write_bytes_atomic(path, st_save(tensors, metadata=meta))
    write_json_atomic(sidecar_path(path), {"format": TOOLKIT_FORMAT_TAG, "version": __version__, "config": config})
    return path


def timm_backbone_keys(backbone: Mapping[str, torch.Tensor], eva) -> Dict[str, torch.Tensor]:
    """Meta DINOv3 keys -> `encoder.backbone.*` keys of timm's Eva, by timm's own filter (it splits
    the fused q/k/v bias for *_qkvb models and drops RoPE periods, k-bias masks and the mask token)."""
    from timm.models.eva import checkpoint_filter_fn

    with contextlib.redirect_stdout(io.StringIO()):  # timm prints each absent q_bias of a no-bias model
        mapped = checkpoint_filter_fn(dict(backbone), eva)
    return {"encoder.backbone." + k: v for k, v in mapped.items()}
