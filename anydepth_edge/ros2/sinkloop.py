"""DepthLoop with extra sinks: each output frame's depth goes to every sink, on the loop's output
thread, after its own outputs. Python 3.8.

loop.py has no sink hook yet, so this subclass adds it from outside: `_output` is wrapped, and the
frame's final depth (resized back, metric fit applied) is taken where the loop hands it to the
colour map, which it does once per frame. With the hook in loop.py (see docs/ros2.md, "Runtime
hook") this file reduces to passing `sinks=` to DepthLoop.

A sink has `write(frame, depth, depth_frame, colour, fit)` (depth: the model's output; depth_frame:
at the frame's size, metres when `fit` is the frame's metric fit, else relative; colour: the
colour-mapped depth_frame) and `close() -> Optional[str]` (a line for the run summary). A sink
that raises stops the run with one line, as the loop's own sinks do.
"""

import time
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.runtime.loop import DepthLoop, StageStats
from anydepth_edge.runtime.metric import MetricFit
from anydepth_edge.runtime.processing import Postprocessor


class _TapPostprocessor(Postprocessor):
    """Remembers the last depth it coloured and the colours: in DepthLoop._output, the frame's final
    depth."""

    taken: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def colourise(self, depth_frame, lo=None, hi=None):
        colour = super().colourise(depth_frame, lo, hi)
        self.taken = (depth_frame, colour)
        return colour


class SinkLoop(DepthLoop):
    def __init__(self, *args, sinks: Sequence[Any] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.sinks = list(sinks)
        self.post = _TapPostprocessor(self.opts.resize_policy)
        self.stats["publish"] = StageStats()  # shown in the summary's per-stage table and /stats.json

    def _output(self, frame, depth: np.ndarray) -> None:
        misses = self.metric_misses
        self.post.taken = None
        super()._output(frame, depth)
        if self.post.taken is None:
            raise RuntimeError("DepthLoop._output no longer colours the depth: update ros2/sinkloop.py")
        depth_frame, colour = self.post.taken
        fit = MetricFit(**self.metric_last) if self.opts.metric and self.metric_misses == misses else None
        t0 = time.perf_counter()
        for sink in self.sinks:
            sink.write(frame, depth, depth_frame, colour, fit)
        self.stats["publish"].add((time.perf_counter() - t0) * 1000.0)

    def _close(self, summary) -> None:
        super()._close(summary)
        errors: List[str] = [summary.error] if summary.error else []
        for sink in self.sinks:
            try:
                line = sink.close()
            except UserError as e:  # a bag that did not come out whole is never listed as written
                errors.append(str(e))
                summary.stopped_by = "error"
            else:
                if line:
                    summary.outputs.append(line)
        summary.error = "; ".join(errors) or None
