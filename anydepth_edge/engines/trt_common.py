"""TensorRT facts shared by the builder and the runtime: importing it with a clear message, its
data types as numpy types, device build profiles. Torch-free, Python 3.8.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.targets import version_tuple

TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"

TENSORRT_MISSING = (
    "TensorRT is not installed here: on a Jetson it comes with JetPack (sudo apt install python3-libnvinfer, "
    "or use the anydepth-edge L4T container); on an x86/SBSA host with an NVIDIA GPU: pip install 'anydepth-edge[trt]'"
)

# TensorRT DataType name -> numpy dtype. Our own table: TensorRT 8.5's `trt.nptype` uses `np.bool`,
# which NumPy 1.24 removed (NVIDIA/TensorRT#2557).
TRT_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                   "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8, "BF16": None, "FP8": None}


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise HardwareMissing(TENSORRT_MISSING) from None
    return trt


def trt_major(trt) -> int:
    return version_tuple(trt.__version__)[0]


WEAK_TYPING_UNTIL = (11, 0)  # TensorRT 11 is strongly typed only: no FP16 flag, no precision constraints


def has_weak_typing(trt) -> bool:
    """Whether this TensorRT has the weak-typing API (BuilderFlag.FP16, layer.precision, OBEY/PREFER)."""
    return version_tuple(trt.__version__)[:2] < WEAK_TYPING_UNTIL


def numpy_dtype(trt_dtype) -> np.dtype:
    """numpy dtype of a TensorRT DataType (`DataType.HALF` -> float16), without `trt.nptype`."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    dtype = TRT_NUMPY_TYPES.get(name.upper())
    if dtype is None:
        raise UserError(f"engine tensor type {name} has no numpy equivalent here")
    return np.dtype(dtype)


def engine_device_memory(engine) -> Optional[int]:
    """Activation memory an execution context needs (`_v2` on 10.x, deprecated name on 8.x)."""
    for attr in ("device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, attr, None)
        if value is not None:
            return int(value)
    return None


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    workspace_mib: int
    builder_optimization_level: int
    memory_hint: str
    # Dense peak throughput, for the benchmark's utilisation figure (FLOP/s), and the memory bandwidth
    # (bytes/s) for its memory-bound figure.
    peak_fp16_flops: Optional[float] = None
    peak_fp32_flops: Optional[float] = None
    memory_bandwidth: Optional[float] = None


DEVICE_PROFILES = {
    # 4 GB LPDDR5 shared by CPU and GPU: a large workspace makes the build run out of memory.
    "orin-nano": DeviceProfile(
        "orin-nano", workspace_mib=1024, builder_optimization_level=3,
        memory_hint=("the Orin Nano 4GB shares 4 GB between CPU and GPU: close the desktop "
                     "(sudo systemctl isolate multi-user.target), add swap (sudo fallocate -l 4G /swapfile ...), "
                     "or lower --workspace (e.g. 512)"),
        # 512 CUDA cores + 16 tensor cores at 625 MHz: ~5 TFLOPS dense FP16 (tensor cores), 0.64 FP32.
        peak_fp16_flops=5.0e12, peak_fp32_flops=512 * 2 * 625e6,
        memory_bandwidth=34e9,  # LPDDR5, shared by CPU and GPU
    ),
    "generic": DeviceProfile(
        "generic", workspace_mib=4096, builder_optimization_level=3,
        memory_hint="lower --workspace, or close other GPU programs",
    ),
}
PROFILE_CHOICES = ("auto",) + tuple(DEVICE_PROFILES)


def device_profile(name: str = "auto", platform=None) -> DeviceProfile:
    """A build profile by name; `auto` is orin-nano on an Orin Nano (detected), else generic."""
    key = (name or "auto").lower()
    if key == "auto":
        if platform is None:
            from anydepth_edge.platform_info import detect

            platform = detect()
        key = "orin-nano" if platform.is_orin_nano else "generic"
    if key not in DEVICE_PROFILES:
        raise UserError(f"unknown device profile {name!r}: choose {', '.join(PROFILE_CHOICES)}")
    return DEVICE_PROFILES[key]
