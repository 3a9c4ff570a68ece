"""The model a job uses: loaded from a checkpoint, or seeded random weights with one loud warning."""

from typing import Any, Callable, Optional

import torch

from anydepth_edge.models.anydepth import build_model, spread_random_init
from anydepth_edge.models.checkpoints import LoadReport, load_checkpoint

RANDOM_WEIGHTS_WARNING = "no checkpoint: random weights (latency and memory figures are valid; depth is not)"


def resolve_model(checkpoint=None, encoder: Optional[str] = None, decoder: Optional[str] = None,
                  warn: Optional[Callable[[str], None]] = None, say: Optional[Callable[[str], None]] = None,
                  **overrides: Any):
    """(model, LoadReport) for a job. `encoder` / `decoder` None: the checkpoint's, else vits / sdt.
    `warn` receives each note for the user, `say` the line naming what a checkpoint was
    recognised as (the CLI passes its warning and info printers)."""
    if checkpoint is None:
        torch.manual_seed(0)  # the same random weights every run: exports are reproducible and cacheable
        model = spread_random_init(build_model(encoder or "vits", decoder or "sdt", **overrides))
        if warn:
            warn(RANDOM_WEIGHTS_WARNING)
        return model, LoadReport(path=None, format="random")
    model, report = load_checkpoint(checkpoint, encoder=encoder, decoder=decoder, **overrides)
    if say and report.recognised:
        say(f"checkpoint {checkpoint}: {report.recognised}")
    if warn:
        for note in report.notes:
            warn(note)
        if report.unexpected:
            shown = ", ".join(report.unexpected[:6]) + (" ..." if len(report.unexpected) > 6 else "")
            warn(f"checkpoint has {len(report.unexpected)} keys the model does not use: {shown}")
    return model, report
