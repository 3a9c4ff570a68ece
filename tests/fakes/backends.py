"""Backends with the model's interface and a cheap, known computation, for the runtime tests."""

import time

import numpy as np

from anydepth_edge.engines.base import Backend


class MeanBackend(Backend):
    """A cheap real computation (channel mean + offset) with the model's interface."""

    name = "mean"

    def __init__(self, res=(64, 64), sleep_ms=0.0):
        self.input_shape = (1, 3) + tuple(res)
        self.output_shape = (1, 1) + tuple(res)
        self.sleep = sleep_ms / 1000.0
        self.out = np.zeros(self.output_shape, np.float32)

    def infer(self, batch):
        if self.sleep:
            time.sleep(self.sleep)
        np.add(batch.mean(axis=1, keepdims=True), 3.0, out=self.out)
        return self.out



class HookBackend(MeanBackend):
    """MeanBackend that calls `hook(n, out)` after its n-th inference (from 1): tests use it to
    damage a file mid-run, or to put NaN / Inf into the depth."""

    def __init__(self, hook, res=(64, 64), sleep_ms=0.0):
        super().__init__(res, sleep_ms)
        self.hook = hook
        self.calls = 0

    def infer(self, batch):
        out = super().infer(batch)
        self.calls += 1
        self.hook(self.calls, out)
        return out
