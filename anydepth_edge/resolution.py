"""Input resolution parsing: '256' or 'HxW' ('256x320'), each side a multiple of the patch size.

The patch is a fact of the model (16 for DINOv3, 14 for DINOv2): verbs that know the model only
after loading it parse with `multiple=None` and call `check_multiple` once it is known. A side
that is not a multiple is refused with the two nearest choices, the same everywhere.
"""

import re
from typing import Iterable, List, Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.model_facts import PATCH_SIZE

Resolution = Tuple[int, int]  # (height, width)
# The largest side any verb takes: a 4096 x 4096 SDT export already needs ~100 GB. Jobs that run
# the model check the memory a size needs against this machine's (`check_fits_memory`).
MAX_SIDE = 2048

_RES_RE = re.compile(r"^\s*(\d+)\s*(?:[xX*,]\s*(\d+))?\s*$")


def nearest_valid(side: int, multiple: int = PATCH_SIZE) -> Tuple[int, int]:
    """The multiples of `multiple` just below and above `side` (below is at least `multiple`)."""
    below = max(multiple, (side // multiple) * multiple)
    above = -(-side // multiple) * multiple
    return below, max(above, multiple)


def _check_side(side: int, what: str, multiple: Optional[int] = PATCH_SIZE) -> None:
    if side <= 0:
        raise UserError(f"{what} must be positive, got {side}")
    if side > MAX_SIDE:
        raise UserError(f"{what} {side} is larger than {MAX_SIDE}: AnyDepth's activations at that size do not fit "
                        "in any robot's memory (the paper uses 256 and 512)")
    if multiple and side % multiple:
        lo, hi = nearest_valid(side, multiple)
        native = {14: " (518 is these weights' native size)"}.get(multiple, "")
        raise UserError(
            f"{what} {side} is not a multiple of {multiple} (the ViT patch size of this model): use {lo} or {hi}{native}"
        )


def default_resolution(multiple: int = PATCH_SIZE) -> Resolution:
    """256 (the paper's Orin size) or, on other patches, the first multiple at or above it (266 for
    14 px: no fewer pixels than the paper's figures)."""
    side = nearest_valid(256, multiple)[1]
    return side, side


def check_multiple(res: Resolution, multiple: int) -> Resolution:
    """`res` when both sides are multiples of the model's patch, else one clear error."""
    h, w = res
    if h == w:
        _check_side(h, "resolution", multiple)
    else:
        _check_side(h, "height", multiple)
        _check_side(w, "width", multiple)
    return res


def parse_res(text, multiple: Optional[int] = PATCH_SIZE) -> Resolution:
    """'256' -> (256, 256); '256x320' -> (256, 320) as height x width."""
    if isinstance(text, (tuple, list)):
        h, w = int(text[0]), int(text[1])
    elif isinstance(text, int):
        h = w = text
    else:
        m = _RES_RE.match(str(text))
        if not m:
            raise UserError(f"cannot read resolution {text!r}: give one side (256) or HxW (256x320)")
        if any(len(g or "") > 9 for g in m.groups()):
            raise UserError(f"resolution {text!r} is larger than {MAX_SIDE}")
        h = int(m.group(1))
        w = int(m.group(2)) if m.group(2) else h
    if h == w:
        _check_side(h, "resolution", multiple)
    else:
        _check_side(h, "height", multiple)
        _check_side(w, "width", multiple)
    return h, w


def parse_res_list(values: Iterable, multiple: Optional[int] = PATCH_SIZE) -> List[Resolution]:
    out: List[Resolution] = []
    for v in values:
        r = parse_res(v, multiple)
        if r not in out:
            out.append(r)
    return out


def res_tag(res: Resolution) -> str:
    return f"{res[0]}x{res[1]}"


def activation_bytes(res: Resolution, decoder: str = "sdt", embed_dim: int = 384, patch: int = PATCH_SIZE) -> int:
    """A rough upper bound of the memory one FP32 inference of AnyDepth needs at `res`: the decoder's
    full-resolution feature maps (SDT: 256 channels, a few alive at once; DPT: 512 channels at half
    size) plus the encoder's attention matrices. Measured peaks on ONNX Runtime CPU stay below it
    (SDT 512: 2.0 GB measured, 2.9 GB here)."""
    h, w = res
    tokens = (h // patch) * (w // patch) + 5
    heads = max(1, embed_dim // 64)
    attention = 2 * tokens * tokens * heads * 4
    decoder_maps = h * w * 256 * 4 * 10 if decoder == "sdt" else (h // 2) * (w // 2) * 512 * 4 * 10
    return int(attention + decoder_maps)


def check_fits_memory(res: Resolution, what: str, factor: float = 1.0, decoder: str = "sdt",
                      available_bytes: int = 0) -> None:
    """One clear error when `what` at `res` needs more memory than this machine has available."""
    if not available_bytes:
        from anydepth_edge.host_memory import available_memory

        available_bytes = available_memory()
    need = activation_bytes(res, decoder) * factor
    if available_bytes and need > available_bytes:
        raise UserError(f"{what} at {res[0]}x{res[1]} needs about {need / 2**30:.1f} GB of memory; "
                        f"{available_bytes / 2**30:.1f} GB is available here: use a smaller --res")


DEFAULT_RUN_RES = "256"  # run's --res when none is given (the paper's Orin Nano size)
