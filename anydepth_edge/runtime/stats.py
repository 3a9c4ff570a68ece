"""The loop's figures: per-stage timings kept in bounded windows (memory stays flat over days) and
the summary a run ends with. Python 3.8."""

import collections
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional

STAGES = ("capture_wait", "preprocess", "inference", "postprocess", "end_to_end")
WINDOW = 1000  # per-stage samples kept for percentiles


class StageStats:
    """Running mean over everything and percentiles over the last WINDOW samples."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.window: Deque[float] = collections.deque(maxlen=WINDOW)

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.window.append(ms)

    def summary(self) -> Dict[str, Optional[float]]:
        if not self.count:
            return {"mean": None, "p50": None, "p90": None}
        w = sorted(self.window)
        return {"mean": self.total / self.count, "p50": w[len(w) // 2], "p90": w[min(len(w) - 1, int(0.9 * len(w)))]}


@dataclass
class RunSummary:
    frames: int = 0
    captured: int = 0
    dropped: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    loop_fps: Optional[float] = None
    inference_fps: Optional[float] = None
    stages: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)
    metric: Optional[Dict[str, float]] = None
    outputs: List[str] = field(default_factory=list)
    nonfinite_frames: int = 0  # frames whose depth had NaN / Inf
    read_ahead: int = 0  # frames the reader keeps queued (--pace none); 0: only the newest frame
    stopped_by: str = ""
    error: Optional[str] = None
