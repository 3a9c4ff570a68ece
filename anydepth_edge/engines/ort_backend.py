"""ONNX Runtime backend: CPU here; CUDA and TensorRT execution providers where present.
Torch-free, Python 3.8."""

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from anydepth_edge.engines.base import Backend
from anydepth_edge.errors import HardwareMissing, UserError

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def import_ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise HardwareMissing("ONNX Runtime is not installed: pip install 'anydepth-edge[ort]' "
                              "(Jetson: the onnxruntime-gpu wheel for your JetPack)") from None
    return ort


def ort_has_cuda() -> bool:
    try:
        ort = import_ort()
    except HardwareMissing:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers() and ort.get_device() == "GPU"


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path, device: str = "cpu", threads: Optional[int] = None):
        ort = import_ort()
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise UserError(f"ONNX file not found: {self.path}")
        if device not in PROVIDERS:
            raise UserError(f"unknown ONNX Runtime device {device!r}: choose {', '.join(PROVIDERS)}")
        available = set(ort.get_available_providers())
        wanted: List[str] = [p for p in PROVIDERS[device] if p in available]
        if PROVIDERS[device][0] not in available:
            raise HardwareMissing(f"ONNX Runtime here has no {PROVIDERS[device][0]} (has: {', '.join(sorted(available))})")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # No memory pattern: ORT then plans one block for every activation, and its packing of SDT's
        # full-resolution maps doubles the peak (ViT-S 512 SDT, CPU: 2051 -> 1255 MB; DPT 1336 ->
        # 1017 MB), at no measurable latency cost. The arena stays: without it the big buffers are
        # page-faulted in on every run (SDT 512: +15% latency).
        opts.enable_mem_pattern = False
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as e:
            raise UserError(f"ONNX Runtime cannot load {self.path.name}: {str(e).splitlines()[0][:200]}") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if any(not isinstance(d, int) for d in inp.shape):
            raise UserError(f"{self.path.name} has a dynamic input shape {inp.shape}: export a fixed size")
        self.input_name, self.input_shape = inp.name, tuple(inp.shape)
        self.output_name, self.output_shape = out.name, tuple(out.shape)
        self.input_dtype = np.dtype(np.float16 if "float16" in inp.type else np.float32)
        self.device = device
        self.providers = self.session.get_providers()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.check_input(batch)
        return self.session.run([self.output_name], {self.input_name: batch.astype(self.input_dtype, copy=False)})[0]

    def memory(self) -> Dict[str, Any]:
        from anydepth_edge.host_memory import process_memory

        return {"method": "process RSS (ONNX Runtime)", **process_memory()}

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d.update({"onnx": str(self.path), "providers": self.providers})
        return d
