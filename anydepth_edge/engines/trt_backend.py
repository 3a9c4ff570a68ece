"""TensorRT runtime: a thin class that owns one engine, its execution context and its buffers.

Named-tensor API (TensorRT 8.5 through 10.x): `num_io_tensors` / `get_tensor_name` /
`set_tensor_address` / `execute_async_v3`. Pinned host buffers, async copies and inference on one
stream; optional CUDA graph replay of copy-in + inference + copy-out (cuda-python only).
Torch-free, Python 3.8.
"""

from pathlib import Path
from typing import Any, Dict

import numpy as np

from anydepth_edge.engines.base import Backend
from anydepth_edge.engines.compat import TrtHost, check_engine_usable
from anydepth_edge.engines.trt_common import (
    engine_device_memory,
    import_tensorrt,
    numpy_dtype,
)
from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import EngineArtifact


def _error_logger(trt, errors):
    """A TensorRT logger that keeps error messages, for the one-line message on failure."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if "ERROR" in str(severity):
                errors.append(str(msg))

    return _Logger()


def load_engine(path, trt, cuda, platform=None):
    """Deserialize `path` after checking its record against this TensorRT, GPU and L4T."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"engine not found: {path}")
    record = EngineArtifact.load(path)
    check_engine_usable(record, TrtHost.current(trt, cuda, platform))
    record.require_content()  # trusted by content, not by name
    errors = []
    runtime = trt.Runtime(_error_logger(trt, errors))
    data = path.read_bytes()
    try:
        engine = runtime.deserialize_cuda_engine(data) if data else None
    except Exception as e:  # some versions raise instead of returning None
        errors.append(str(e))
        engine = None
    if engine is None:
        why = errors[-1].splitlines()[0][:160] if errors else "empty or unreadable"
        raise UserError(f"engine {path.name} is corrupt or was built by another TensorRT ({why}): "
                        f"rebuild with {record.rebuild_command()}")
    return runtime, engine, record


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine_path, cuda_graph: bool = False, trt=None, cuda=None, platform=None):
        self.trt = trt or import_tensorrt()
        self.owns_cuda = cuda is None
        if cuda is None:
            from anydepth_edge.engines.cuda_api import load_cuda_api

            cuda = load_cuda_api()
        self.cuda = cuda
        self.path = Path(engine_path)
        self.host: Dict[str, np.ndarray] = {}
        self.device: Dict[str, int] = {}
        self.stream = self.graph = self.context = self.engine = None
        free_before, _ = cuda.mem_get_info()
        self.runtime, self.engine, self.record = load_engine(self.path, self.trt, cuda, platform)
        try:
            self._allocate(cuda)
            self.graph_note = ""
            if cuda_graph:
                self._capture_graph()
        except BaseException:
            self.close()
            raise
        free_after, _ = cuda.mem_get_info()
        self.load_delta = max(0, free_before - free_after)

    def _allocate(self, cuda) -> None:
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise UserError(f"cannot create an execution context for {self.path.name}: not enough GPU memory?")
        self.stream = cuda.stream()
        self.handle = cuda.stream_handle(self.stream)
        inputs, outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise UserError(f"engine {self.path.name} has a dynamic shape {shape} for {name}: export a fixed size")
            self.host[name] = cuda.host_empty(shape, numpy_dtype(self.engine.get_tensor_dtype(name)))
            self.device[name] = cuda.malloc(self.host[name].nbytes)
            self.context.set_tensor_address(name, self.device[name])
            is_input = self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"engine {self.path.name} has {len(inputs)} inputs / {len(outputs)} outputs; expected 1 / 1")
        self.input_name, self.output_name = inputs[0], outputs[0]
        want = tuple(self.record.inputs[0].shape) if self.record.inputs else None
        if want is not None and tuple(self.host[self.input_name].shape) != want:
            raise UserError(f"engine {self.path.name} takes {self.host[self.input_name].shape} but its sidecar says "
                            f"{want}: rebuild with {self.record.rebuild_command()}")
        self.input_shape = self.host[self.input_name].shape
        self.input_dtype = self.host[self.input_name].dtype
        self.output_shape = self.host[self.output_name].shape

    def _enqueue(self) -> None:
        self.cuda.htod_async(self.device[self.input_name], self.host[self.input_name], self.stream)
        if not self.context.execute_async_v3(self.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.cuda.dtoh_async(self.host[self.output_name], self.device[self.output_name], self.stream)

    def _capture_graph(self) -> None:
        if not self.cuda.supports_graphs:
            self.graph_note = f"CUDA graphs need cuda-python ({self.cuda.name} is in use): plain enqueue"
            return
        self._enqueue()  # one plain run first: TensorRT finishes lazy set-up outside the capture
        self.cuda.synchronize(self.stream)
        self.cuda.begin_capture(self.stream)
        self._enqueue()
        self.graph = self.cuda.end_capture(self.stream)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.check_input(batch)
        np.copyto(self.host[self.input_name], batch, casting="same_kind")
        if self.graph is not None:
            self.cuda.launch_graph(self.graph, self.stream)
        else:
            self._enqueue()
        self.cuda.synchronize(self.stream)
        return self.host[self.output_name]

    def memory(self) -> Dict[str, Any]:
        return {
            "method": "TensorRT engine device memory + cudaMemGetInfo delta over engine load",
            "engine_device_memory_bytes": engine_device_memory(self.engine),
            "cuda_meminfo_delta_bytes": self.load_delta,
        }

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d.update({"engine": str(self.path), "tensorrt": self.trt.__version__, "cuda_api": self.cuda.name,
                  "cuda_graph": self.graph is not None, "note": self.graph_note or None,
                  "precision": self.record.precision})
        return d

    def close(self) -> None:
        """Free everything this backend allocated: graph, device and pinned host buffers, stream."""
        cuda = self.cuda
        steps = []
        if self.graph is not None:
            steps.append(lambda g=self.graph: cuda.destroy_graph(g))
        steps += [lambda p=ptr: cuda.free(p) for ptr in self.device.values()]
        steps += [lambda a=arr: cuda.free_host(a) for arr in self.host.values()]
        if self.stream is not None:
            steps.append(lambda s=self.stream: cuda.destroy_stream(s))
        if self.owns_cuda:
            steps.append(cuda.close)
        for step in steps:
            try:
                step()
            except Exception:
                pass  # freeing is best effort: one failure must not keep the rest allocated
        self.graph = self.stream = self.context = self.engine = None
        self.device, self.host = {}, {}
