"""A backend of known cost, for testing the benchmark's probes: holds `alloc_mb` of touched memory
and sleeps `sleep_ms` per inference. Opened in bench's child process through a `custom`
BackendSpec (`factory="fakes.synthetic:SyntheticBackend"`, tests/ on PYTHONPATH)."""

import os
import time

import numpy as np

from anydepth_edge.engines.base import Backend
from anydepth_edge.host_memory import process_memory


class SyntheticBackend(Backend):
    name = "synthetic"

    def __init__(self, res, alloc_mb: float = 0.0, sleep_ms: float = 0.0, pid_file: str = "",
                 slow_every: int = 0, slow_ms: float = 0.0):
        if pid_file:  # tests that signal the benchmark find its child by this
            with open(pid_file, "w") as fh:
                fh.write(str(os.getpid()))
        self.input_shape = (1, 3, res[0], res[1])
        self.output_shape = (1, 1, res[0], res[1])
        self.block = np.ones(int(alloc_mb * (1 << 20)), dtype=np.uint8)  # ones: pages really touched
        self.sleep_s = sleep_ms / 1000.0
        self.slow_every, self.slow_s, self.calls = slow_every, slow_ms / 1000.0, 0  # a busy machine's outliers
        self.out = np.ones(self.output_shape, np.float32)

    def infer(self, batch):
        self.check_input(batch)
        self.calls += 1
        slow = self.slow_every and self.calls % self.slow_every == 0
        time.sleep(self.slow_s if slow else self.sleep_s)
        return self.out

    def memory(self):
        return {"method": "process RSS (synthetic)", **process_memory()}
