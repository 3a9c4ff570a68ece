"""Engine stage: TensorRT engine builds, and one inference API over TensorRT, ONNX Runtime and
PyTorch: `choose_backend` says which runtime to use here, `open_backend` opens one from a
`BackendSpec` (the same spec `run` builds and `bench` sends to its child process).
Torch-free unless the PyTorch backend is opened."""

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from anydepth_edge.errors import HardwareMissing, UserError

BACKENDS = ("auto", "trt", "ort", "torch")
KIND_LABELS = {"tensorrt": "TensorRT", "onnxruntime": "ONNX Runtime", "torch": "PyTorch"}


@dataclass
class BackendChoice:
    kind: str  # tensorrt | onnxruntime | torch
    device: str  # cuda | cpu
    reason: str

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind] + f" ({self.device})"


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def tensorrt_ready() -> Optional[str]:
    """'TensorRT 10.3.0 with cuda-python' when TensorRT and a CUDA buffer library import, else None."""
    from anydepth_edge.engines.cuda_api import cuda_api_available
    from anydepth_edge.targets import installed_tensorrt_version

    version = installed_tensorrt_version()
    api = cuda_api_available()
    return f"TensorRT {version} with {api}" if version and api else None


def torch_cuda() -> bool:
    if not _have("torch"):
        return False
    import torch

    return torch.cuda.is_available()


def ort_cuda() -> bool:
    """ONNX Runtime here has its CUDA provider."""
    from anydepth_edge.engines.ort_backend import ort_has_cuda

    return ort_has_cuda()


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


# PyTorch memory layouts: auto times both on the first frames and keeps the faster (DPT gains ~20%
# from channels_last on an H100 while SDT does not: a fixed choice would favour one decoder).


@dataclass
class BackendSpec:
    """Everything needed to open one backend; JSON-serialisable (bench's child process gets it as
    JSON). `artifact` is the engine (TensorRT) or the ONNX export (ONNX Runtime; PyTorch reads the
    model config and checkpoint from its sidecar). PyTorch without an export takes `model`
    ({encoder, decoder, checkpoint, res}); `custom` opens `factory` ('module:callable') with
    `options` (a backend of your own, or a test's)."""

    kind: str  # tensorrt | onnxruntime | torch | custom
    device: str = "cpu"
    artifact: Optional[str] = None
    precision: str = "fp32"
    cuda_graph: bool = False
    threads: Optional[int] = None
    model: Optional[Dict[str, Any]] = None
    factory: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    allow_unverified: bool = False  # TensorRT: an engine whose output was not checked against FP32
    layout: str = "auto"  # PyTorch: memory layout, one of base.TORCH_LAYOUTS (auto: the faster, measured)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "BackendSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def for_choice(cls, choice: BackendChoice, artifact: Optional[Path], **kw: Any) -> "BackendSpec":
        return cls(kind=choice.kind, device=choice.device, artifact=str(artifact) if artifact else None, **kw)


def open_backend(spec: BackendSpec, warn: Optional[Callable[[str], None]] = None):
    """Open the backend a spec names (the one factory `run` and bench's child process use)."""
    if spec.kind == "tensorrt":
        if not spec.artifact or Path(spec.artifact).suffix != ".engine":
            raise UserError("TensorRT needs an engine: anydepth-edge build <model.onnx>")
        from anydepth_edge.engines.trt_backend import TensorRTBackend
        from anydepth_edge.artifacts import EngineArtifact

        status = EngineArtifact.load(spec.artifact).status
        if status != "verified" and not spec.allow_unverified:
            raise UserError(f"engine {Path(spec.artifact).name} is {status}: its output has not been shown to agree "
                            f"with FP32 on this board; anydepth-edge verify {spec.artifact} (or --allow-unverified)")

        return TensorRTBackend(spec.artifact, cuda_graph=spec.cuda_graph)
    if spec.kind == "onnxruntime":
        if not spec.artifact or Path(spec.artifact).suffix != ".onnx":
            raise UserError(f"ONNX Runtime needs the .onnx export, not {spec.artifact or 'nothing'}: "
                            "anydepth-edge export --res <size>, or --backend trt for an engine")
        from anydepth_edge.engines.ort_backend import OrtBackend
        from anydepth_edge.artifacts import OnnxArtifact

        record = OnnxArtifact.of_file(spec.artifact)  # trusted by content, not by name (an FP16 form: by its export's)
        try:
            backend = OrtBackend(spec.artifact, device=spec.device, threads=spec.threads)
        except UserError as e:
            raise UserError(f"{e}; re-export it: {record.rebuild_command()}") from None
        record.check_shape(backend.input_shape, Path(spec.artifact).name)
        return backend
    if spec.kind == "torch":
        from anydepth_edge.engines.torch_backend import torch_backend

        return torch_backend(spec, warn=warn)
    if spec.kind == "custom":
        module, _, attr = (spec.factory or "").partition(":")
        if not module or not attr:
            raise UserError(f"custom backend factory {spec.factory!r}: give 'module:callable'")
        return getattr(importlib.import_module(module), attr)(**spec.options)
    raise UserError(f"unknown backend kind {spec.kind!r}")
