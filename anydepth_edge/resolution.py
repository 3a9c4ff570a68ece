"""Input resolution parsing: '256' or 'HxW' ('256x320'), each side a multiple of the patch size."""

import re
from typing import Iterable, List, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.specs import PATCH_SIZE

Resolution = Tuple[int, int]  # (height, width)

_RES_RE = re.compile(r"^\s*(\d+)\s*(?:[xX*,]\s*(\d+))?\s*$")


def nearest_valid(side: int, multiple: int = PATCH_SIZE) -> Tuple[int, int]:
    """The multiples of `multiple` just below and above `side` (below is at least `multiple`)."""
    below = max(multiple, (side // multiple) * multiple)
    above = -(-side // multiple) * multiple
    return below, max(above, multiple)


def _check_side(side: int, what: str) -> None:
    if side <= 0:
        raise UserError(f"{what} must be positive, got {side}")
    if side % PATCH_SIZE:
        lo, hi = nearest_valid(side)
        raise UserError(
            f"{what} {side} is not a multiple of {PATCH_SIZE} (the ViT patch size): use {lo} or {hi}"
        )


def parse_res(text) -> Resolution:
    """'256' -> (256, 256); '256x320' -> (256, 320) as height x width."""
    if isinstance(text, (tuple, list)):
        h, w = int(text[0]), int(text[1])
    elif isinstance(text, int):
        h = w = text
    else:
        m = _RES_RE.match(str(text))
        if not m:
            raise UserError(f"cannot read resolution {text!r}: give one side (256) or HxW (256x320)")
        h = int(m.group(1))
        w = int(m.group(2)) if m.group(2) else h
    if h == w:
        _check_side(h, "resolution")
    else:
        _check_side(h, "height")
        _check_side(w, "width")
    return h, w


def parse_res_list(values: Iterable) -> List[Resolution]:
    out: List[Resolution] = []
    for v in values:
        r = parse_res(v)
        if r not in out:
            out.append(r)
    return out


def res_tag(res: Resolution) -> str:
    return f"{res[0]}x{res[1]}"
