"""Export targets: which opset and LayerNorm form each runtime gets, chosen explicitly.

Never torch's defaults: torch >= 2.9 exports with dynamo at opset 20 by default, and opset 20
GridSample ('linear') imports into TensorRT as NEAREST. Torch-free.
"""

from dataclasses import dataclass
from typing import Optional

from anydepth_edge.errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    opset: int
    tensorrt: bool
    native_layernorm: bool  # opset >= 17 LayerNormalization (TRT >= 8.6); else decomposed

    @property
    def decompose_layernorm(self) -> bool:
        return not self.native_layernorm


TARGETS = {
    # JetPack 5.1.x: TensorRT 8.5.2 cannot import LayerNormalization -> opset 16, decomposed.
    "trt8.5": Target("trt8.5", 16, True, False),
    # JetPack 6.0: TensorRT 8.6.2, opset <= 17, native LayerNormalization (FP32 compute).
    "trt8.6": Target("trt8.6", 17, True, True),
    # JetPack 6.1/6.2: TensorRT 10.3 (opset <= 20, but never 20: GridSample 'linear').
    "trt10": Target("trt10", 17, True, True),
    # ONNX Runtime (CPU / CUDA / TensorRT EP).
    "ort": Target("ort", 17, False, True),
}
TARGET_CHOICES = ("auto",) + tuple(TARGETS)


def target_for_tensorrt_version(version: str) -> str:
    """'8.5.2.2' -> 'trt8.5'; '8.6.2' -> 'trt8.6'; '10.3.0' -> 'trt10'."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        raise UserError(f"cannot read TensorRT version {version!r}") from None
    if (major, minor) < (8, 5):
        raise UserError(f"TensorRT {version} cannot import GridSample (needs >= 8.5, JetPack >= 5.1.1)")
    if major == 8 and minor == 5:
        return "trt8.5"
    if major < 10:
        return "trt8.6"
    return "trt10"


def installed_tensorrt_version() -> Optional[str]:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return None
    return getattr(tensorrt, "__version__", None)


def resolve_target(name: str) -> Target:
    """`auto`: the TensorRT installed here, else trt10 (JetPack 6.1/6.2)."""
    key = (name or "auto").lower()
    if key == "auto":
        version = installed_tensorrt_version()
        key = target_for_tensorrt_version(version) if version else "trt10"
    if key not in TARGETS:
        raise UserError(f"unknown target {name!r}: choose one of {', '.join(TARGET_CHOICES)}")
    return TARGETS[key]


def onnx_stem(decoder: str, encoder: str, res, target: str, dysample: str = "grid_sample") -> str:
    """anydepth-<decoder>-<encoder>-<H>x<W>-<target>[-gather]: what the file contains."""
    tag = "" if dysample == "grid_sample" else "-gather"
    return f"anydepth-{decoder}-{encoder}-{res[0]}x{res[1]}-{target}{tag}"
