"""Engine stage: TensorRT engine builds, and one inference API over TensorRT, ONNX Runtime and
PyTorch (`choose_backend` + `open_backend`). Torch-free unless the PyTorch backend is opened."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from anydepth_edge.errors import HardwareMissing, UserError

BACKENDS = ("auto", "trt", "ort", "torch")


@dataclass
class BackendChoice:
    kind: str  # tensorrt | onnxruntime | torch
    device: str  # cuda | cpu
    reason: str

    @property
    def label(self) -> str:
        return {"tensorrt": "TensorRT", "onnxruntime": "ONNX Runtime", "torch": "PyTorch"}[self.kind] + f" ({self.device})"


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def tensorrt_ready() -> Optional[str]:
    """'TensorRT 10.3.0 with cuda-python' when TensorRT and a CUDA buffer library import, else None."""
    from anydepth_edge.engines.cuda_api import cuda_api_available
    from anydepth_edge.export.targets import installed_tensorrt_version

    version = installed_tensorrt_version()
    api = cuda_api_available()
    return f"TensorRT {version} with {api}" if version and api else None


def torch_cuda() -> bool:
    if not _have("torch"):
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(requested: str = "auto", device: str = "auto") -> BackendChoice:
    """auto: TensorRT > ONNX Runtime CUDA > PyTorch CUDA > ONNX Runtime CPU (CPU devices: ORT > PyTorch)."""
    from anydepth_edge.engines.ort_backend import ort_has_cuda

    requested = (requested or "auto").lower()
    if requested not in BACKENDS:
        raise UserError(f"unknown backend {requested!r}: choose one of {', '.join(BACKENDS)}")
    cpu_only = device == "cpu"
    if requested == "trt":
        if cpu_only:
            raise UserError("--backend trt needs a GPU device, not --device cpu")
        ready = tensorrt_ready()
        if not ready:
            from anydepth_edge.engines.trt_common import TENSORRT_MISSING

            raise HardwareMissing(TENSORRT_MISSING)
        return BackendChoice("tensorrt", "cuda", f"asked for; {ready}")
    if requested == "ort":
        if not _have("onnxruntime"):
            raise HardwareMissing("ONNX Runtime is not installed: pip install 'anydepth-edge[ort]'")
        if not cpu_only and ort_has_cuda():
            return BackendChoice("onnxruntime", "cuda", "asked for; CUDAExecutionProvider present")
        if device == "cuda":
            raise HardwareMissing("ONNX Runtime here has no CUDA provider (onnxruntime-gpu): use --device cpu")
        return BackendChoice("onnxruntime", "cpu", "asked for")
    if requested == "torch":
        if not _have("torch"):
            raise HardwareMissing("PyTorch is not installed: pip install 'anydepth-edge[export]'")
        if not cpu_only and torch_cuda():
            return BackendChoice("torch", "cuda", "asked for; CUDA available")
        if device == "cuda":
            raise HardwareMissing("PyTorch sees no CUDA GPU here: use --device cpu")
        return BackendChoice("torch", "cpu", "asked for")

    missing: List[str] = []
    if not cpu_only:
        ready = tensorrt_ready()
        if ready:
            return BackendChoice("tensorrt", "cuda", ready)
        missing.append("no TensorRT")
        if ort_has_cuda():
            return BackendChoice("onnxruntime", "cuda", "no TensorRT; ONNX Runtime has CUDA")
        missing.append("no ONNX Runtime CUDA")
        if torch_cuda():
            return BackendChoice("torch", "cuda", ", ".join(missing) + "; PyTorch sees a CUDA GPU")
        missing.append("no CUDA GPU for PyTorch")
    if _have("onnxruntime"):
        return BackendChoice("onnxruntime", "cpu", ", ".join(missing) or "CPU device")
    if _have("torch"):
        return BackendChoice("torch", "cpu", ", ".join(missing + ["no ONNX Runtime"]))
    raise HardwareMissing("no inference runtime installed: pip install 'anydepth-edge[ort]'")


def open_backend(choice: BackendChoice, onnx_path: Optional[Path] = None, engine_path: Optional[Path] = None,
                 precision: str = "fp32", cuda_graph: bool = False, threads: Optional[int] = None,
                 warn: Optional[Callable[[str], None]] = None):
    """Open the backend `choice` names on the given artifact (engine for TensorRT, ONNX for ONNX
    Runtime, the ONNX's sidecar config + checkpoint for PyTorch)."""
    if choice.kind == "tensorrt":
        if engine_path is None:
            raise UserError("TensorRT needs an engine: anydepth-edge build <model.onnx>")
        from anydepth_edge.engines.trt_backend import TensorRTBackend

        return TensorRTBackend(engine_path, cuda_graph=cuda_graph)
    if choice.kind == "onnxruntime":
        from anydepth_edge.engines.ort_backend import OrtBackend

        return OrtBackend(onnx_path, device=choice.device, threads=threads)
    from anydepth_edge.artifacts import read_json

    side = read_json(Path(onnx_path).with_suffix(".json")) if onnx_path else None
    if side is None:
        raise UserError(f"the PyTorch backend needs the export sidecar {Path(str(onnx_path)).with_suffix('.json')}")
    from anydepth_edge.engines.torch_backend import torch_backend_from_sidecar

    return torch_backend_from_sidecar(side, device=choice.device, precision=precision, cuda_graph=cuda_graph, warn=warn)
