"""A fake GPU for the TensorRT and CUDA fakes: device memory is numpy byte arrays keyed by fake
pointers, work queued on a stream runs only at synchronize (a missing synchronize shows up as
stale output), stream capture records work instead of running it, and every free / destroy is
recorded so leaks are visible. The fake network a TensorRT engine runs is `kernel`.

`FakeCuda` is the toolkit's `CudaApi` on this device (a subclass of the real interface);
`tests/fakes/site/pycuda` is pycuda's API on it, for the real `PyCudaApi`.
"""

import itertools

import numpy as np

from anydepth_edge.engines.cuda_api import CudaApi


class FakeDevice:
    def __init__(self, name="Orin", cc=(8, 7), total=4 << 30):
        self.name, self.cc, self.total = name, tuple(cc), total
        self.mem = {}
        self._ptrs = itertools.count(0x10000, 0x10000)
        self._streams = itertools.count(0xA01)
        self.queues = {}  # stream handle -> pending work
        self.capturing = {}  # stream handle -> captured work
        self.log = []
        self.freed, self.destroyed_streams = [], []
        # How engines of each rung misbehave: {'fp16': 'nan' | 'noise' | 'zero' | callable}; an absent
        # rung computes its ONNX correctly (ONNX Runtime, FP16 builds rounded to FP16).
        self.behaviour = {}
        self._sessions = {}

    # memory
    def malloc(self, nbytes):
        ptr = next(self._ptrs)
        self.mem[ptr] = np.zeros(nbytes, dtype=np.uint8)
        return ptr

    def free(self, ptr):
        if self.mem.pop(ptr, None) is not None:
            self.freed.append(ptr)

    def used(self):
        return sum(a.nbytes for a in self.mem.values())

    # streams
    def new_stream(self):
        handle = next(self._streams)
        self.queues[handle] = []
        return handle

    def destroy_stream(self, handle):
        self.queues.pop(handle, None)
        self.destroyed_streams.append(handle)

    def enqueue(self, handle, fn):
        if handle in self.capturing:
            self.capturing[handle].append(fn)
        elif handle in self.queues:
            self.queues[handle].append(fn)
        else:
            raise RuntimeError(f"fake CUDA: unknown or destroyed stream {handle:#x}")

    def synchronize(self, handle):
        self.log.append(("sync", handle))
        work, self.queues[handle] = self.queues[handle], []
        for fn in work:
            fn()

    def copy_in(self, dst, src: np.ndarray, handle):
        self.log.append(("htod", handle))
        # the host buffer is read when the copy runs (a captured graph re-reads it on every replay)
        self.enqueue(handle, lambda: self.mem[dst].__setitem__(slice(None), np.frombuffer(src.tobytes(), np.uint8)))

    def copy_out(self, dst: np.ndarray, src, handle):
        self.log.append(("dtoh", handle))
        self.enqueue(handle, lambda: np.copyto(dst, np.frombuffer(self.mem[src].tobytes(), dst.dtype).reshape(dst.shape)))

    # the network
    def run_engine(self, state, onnx, in_ptr, out_ptr):
        """What a built engine computes: its ONNX on ONNX Runtime (FP16 builds rounded to FP16),
        unless `behaviour` makes its rung misbehave."""
        (in_shape,) = [shape for _, shape, mode in state["io"] if mode == "INPUT"]
        (out_shape,) = [shape for _, shape, mode in state["io"] if mode == "OUTPUT"]
        x = np.frombuffer(self.mem[in_ptr].tobytes(), np.float32).reshape(in_shape)
        y = self._compute(state, onnx, x).reshape(out_shape)
        bad = self.behaviour.get(engine_rung(state)) if isinstance(self.behaviour, dict) else self.behaviour
        if callable(bad):
            y = bad(y)
        elif bad == "nan":
            y = np.full_like(y, np.nan)
        elif bad == "noise":  # scaled and noisy: right range, wrong structure
            y = 0.5 * y + np.random.default_rng(0).normal(0, float(y.std()) + 1e-3, y.shape)
        elif bad == "zero":
            y = np.zeros_like(y)
        self.mem[out_ptr][:] = np.frombuffer(np.asarray(y, np.float32).tobytes(), np.uint8)

    def _compute(self, state, onnx, x):
        if not onnx:
            return x.sum(axis=1)
        key = hash(onnx)
        if key not in self._sessions:
            import onnxruntime as ort

            self._sessions[key] = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        sess = self._sessions[key]
        y = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float32)
        return y.astype(np.float16).astype(np.float32) if "FP16" in state["flags"] else y


def engine_rung(state) -> str:
    """fp32, fp16 or fp16-wide, from a fake engine's build state (flags and pins, or typed regions)."""
    regions = state.get("fp32_regions")
    if regions is not None:  # a strongly typed FP16 graph
        return "fp16-wide" if "attention" in regions else "fp16"
    if "FP16" not in state["flags"]:
        return "fp32"
    return "fp16-wide" if any(n.startswith("AttentionFP32/") for n in state["fp32_layers"]) else "fp16"


DEVICE = FakeDevice()  # this process's fake GPU (used by the fake pycuda package)


class FakeCuda(CudaApi):
    """The toolkit's CUDA interface on a FakeDevice."""

    def __init__(self, name="cuda-python", supports_graphs=True, gpu="Orin", cc=(8, 7), device=None):
        self.name, self.supports_graphs = name, supports_graphs
        self.device = device or FakeDevice(gpu, cc)
        self.host_freed, self.graphs_destroyed, self.closed = [], [], False
        self.mem = self.device.mem
        self.log = []

    def malloc(self, nbytes):
        return self.device.malloc(nbytes)

    def free(self, ptr):
        self.device.free(ptr)

    def host_empty(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def free_host(self, array):
        self.host_freed.append(array.ctypes.data)

    def stream(self):
        return self.device.new_stream()

    def stream_handle(self, stream):
        return stream

    def destroy_stream(self, stream):
        self.device.destroy_stream(stream)

    def htod_async(self, dst, src, stream):
        self.log.append("htod")
        self.device.copy_in(dst, src, stream)

    def dtoh_async(self, dst, src, stream):
        self.log.append("dtoh")
        self.device.copy_out(dst, src, stream)

    def synchronize(self, stream):
        self.log.append("sync")
        self.device.synchronize(stream)

    def mem_get_info(self):
        return self.device.total - self.device.used(), self.device.total

    def device_name(self):
        return self.device.name

    def compute_capability(self):
        return self.device.cc

    def begin_capture(self, stream):
        self.log.append("begin_capture")
        self.device.capturing[stream] = []

    def end_capture(self, stream):
        self.log.append("end_capture")
        return self.device.capturing.pop(stream)

    def launch_graph(self, graph, stream):
        self.log.append("launch_graph")
        self.device.queues[stream].extend(graph)

    def destroy_graph(self, graph):
        self.graphs_destroyed.append(graph)

    def close(self):
        self.closed = True
