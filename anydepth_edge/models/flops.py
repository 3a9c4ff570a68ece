"""Parameter and FLOP counts (FLOPs = 2 x multiply-accumulates, from torch.utils.flop_counter).

Counted on the 'meta' device, so a ViT-L at 1024x1024 costs shapes, not compute. Only matmul /
conv / attention FLOPs are counted (elementwise ops, norms and grid sampling are not).
"""

import copy
from typing import Dict, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model) -> Dict[str, int]:
    enc = sum(p.numel() for p in model.encoder.parameters())
    dec = sum(p.numel() for p in model.decoder.parameters())
    return {"encoder": enc, "decoder": dec, "total": enc + dec}


def count_gflops(model, res: Tuple[int, int], batch: int = 1) -> Dict[str, float]:
    meta_model = copy.deepcopy(model).to("meta")
    image = torch.empty(batch, 3, res[0], res[1], device="meta")
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        features = meta_model.encoder(image)
    enc = counter.get_total_flops()
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        meta_model.decoder(features)
    dec = counter.get_total_flops()
    return {"encoder": enc / 1e9, "decoder": dec / 1e9, "total": (enc + dec) / 1e9}
