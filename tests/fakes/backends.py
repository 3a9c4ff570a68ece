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

