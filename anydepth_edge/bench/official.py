"""The official AnyDepth PyTorch code, from a user's clone, as a bench backend in eager mode.

Only for comparisons (benchmarks/official_compare.py): the official code is CC BY-NC-SA and is
never copied into this project; the user points at their clone
(github.com/AIGeeksGroup/AnyDepth). Its `model/` package imports itself as `models.*`, so that
name is aliased to the clone's `model/` directory.

The official code needs a DINOv3 backbone object (Meta's `dinov3` hub models: `embed_dim`,
`n_blocks`, `patch_size`, `get_intermediate_layers`). `TimmBackbone` gives it timm's DINOv3, the
encoder we use, with the same taken layers; the decoder, the wrapper and the depth activation are
the official code's own. Needs PyTorch (the `export` extra).
"""

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from anydepth_edge.engines.base import Backend
from anydepth_edge.errors import HardwareMissing, UserError

OFFICIAL_FILES = ("model/__init__.py", "model/sdt_head.py", "model/dpt_head.py", "model/encoder.py", "model/embed.py")


def load_official(path) -> types.ModuleType:
    """The clone's `model` package, importable as the official code expects."""
    root = Path(path).expanduser()
    missing = [f for f in OFFICIAL_FILES if not (root / f).is_file()]
    if missing:
        raise UserError(f"{root} is not a clone of the official AnyDepth code (no {', '.join(missing)}): "
                        "git clone https://github.com/AIGeeksGroup/AnyDepth")
    if "models" in sys.modules and getattr(sys.modules["models"], "__path__", None) != [str(root / "model")]:
        raise UserError("another package named 'models' is already imported in this process")
    alias = types.ModuleType("models")
    alias.__path__ = [str(root / "model")]  # `from models.embed import ...` reads the clone's model/embed.py
    sys.modules["models"] = alias
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    # Its DySample calls torch.meshgrid without `indexing`: a warning per model, not ours to fix.
    warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release")
    try:
        return importlib.import_module("model")
    except Exception as e:
        raise UserError(f"cannot import the official code from {root}: {type(e).__name__}: {e}") from None


class TimmBackbone(nn.Module):
    """Our DINOv3 encoder (timm) behind the interface of Meta's DINOv3 models that the official code
    calls. It answers only the call our encoder makes (same layers, same norm), so both sides take
    the encoder's features from one place."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder  # anydepth_edge.models.dinov3.DinoV3Encoder
        self.embed_dim = encoder.backbone.embed_dim
        self.n_blocks = len(encoder.backbone.blocks)
        self.embed_dims = [self.embed_dim] * self.n_blocks
        self.patch_size = self.input_pad_size = 16

    def get_intermediate_layers(self, x, n: Sequence[int], reshape: bool = True, return_class_token: bool = True,
                                norm: bool = False) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        asked = (tuple(n), reshape, return_class_token, bool(norm))
        ours = (tuple(self.encoder.taken_layers), True, True, bool(self.encoder.use_backbone_norm))
        if asked != ours:
            raise ValueError(f"official code asks for (layers, reshape, class token, norm) {asked}; "
                             f"the encoder gives {ours}")
        return self.encoder(x)


def build_official(official: types.ModuleType, ours: nn.Module) -> nn.Module:
    """The official depther with the same architecture (and weights) as our model `ours`."""
    config = ours.config
    extra: Dict[str, Any] = {}
    if config.decoder == "dpt":  # the paper's DPT baseline, as our DPTHead builds it
        extra = {"channels": config.dpt_channels, "post_process_channels": list(ours.encoder.embed_dims)}
    depther = official.build_depther(
        TimmBackbone(ours.encoder), backbone_out_layers=list(ours.encoder.taken_layers), n_output_channels=1,
        use_backbone_norm=config.use_backbone_norm, use_batchnorm=True, use_cls_token=True,
        head_type=config.decoder, **extra)
    decoder = depther[0].decoder
    result = decoder.load_state_dict(ours.decoder.state_dict(), strict=False)
    depther.weight_transfer = {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}
    return depther.eval()


def seeded_model(encoder: str, decoder: str, seed: int) -> nn.Module:
    """Our model with the random weights `seed` gives (both sides of a comparison load these)."""
    from anydepth_edge.models import build_model
    from anydepth_edge.models.anydepth import spread_random_init

    torch.manual_seed(seed)
    return spread_random_init(build_model(encoder, decoder), seed)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class OfficialBackend(Backend):
    """The official model in eager mode: FP32 on the CPU, FP16 autocast on CUDA (as its code runs)."""

    name = "official-pytorch"

    def __init__(self, official: str, encoder: str, decoder: str, res: Sequence[int], device: str = "cpu",
                 precision: str = "fp32", seed: int = 0):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HardwareMissing("PyTorch sees no CUDA GPU here: use --device cpu")
        if precision == "fp16" and not device.startswith("cuda"):
            raise UserError("FP16 needs a CUDA device")
        ours = seeded_model(encoder, decoder, seed)
        self.model = build_official(load_official(official), ours).to(device)
        del ours
        self.device = torch.device(device)
        self.precision = precision
        self.input_shape = (1, 3, int(res[0]), int(res[1]))
        self.output_shape = (1, 1, int(res[0]), int(res[1]))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16,
                                                    enabled=self.precision == "fp16"):
            return self.model(x)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.check_input(batch)
        out = self.forward(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()
        return out

    def memory(self) -> Dict[str, Any]:
        if self.device.type == "cuda":
            return {"method": "torch.cuda.max_memory_allocated (weights + activations)",
                    "max_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device))}
        from anydepth_edge.host_memory import process_memory

        return {"method": "process RSS (PyTorch CPU)", **process_memory()}

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d.update({"device": str(self.device), "precision": self.precision, "torch": torch.__version__,
                  "eager": True, "weight_transfer": getattr(self.model, "weight_transfer", None)})
        return d

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def agreement(official: str, encoder: str, decoder: str, res: Tuple[int, int], seed: int = 0) -> Dict[str, Optional[float]]:
    """Our model and the official code on the same weights and image: max |difference| / max |depth|."""
    ours = seeded_model(encoder, decoder, seed).eval()
    theirs = build_official(load_official(official), ours)
    x = torch.randn(1, 3, *res, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        a, b = ours(x), theirs(x)
    return {"max_rel_diff": float((a - b).abs().max() / a.abs().max()),
            "params_ours_decoder": parameter_count(ours.decoder),
            "params_official_decoder": parameter_count(theirs[0].decoder),
            "unloaded_official_keys": len(theirs.weight_transfer["missing"]),
            "unused_our_keys": len(theirs.weight_transfer["unexpected"])}
