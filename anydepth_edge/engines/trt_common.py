"""TensorRT facts shared by the builder and the runtime: importing it with a clear message,
engine names, the engine sidecar and its compatibility check, device profiles.

Engines are tied to the TensorRT version and the GPU that built them (a JetPack upgrade
invalidates them), so every engine has a sidecar and loading compares it with this machine.
Torch-free, Python 3.8.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from anydepth_edge.errors import HardwareMissing, UserError

ENGINE_SIDECAR_SCHEMA = "anydepth-edge/engine/1"
TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"
PIN_PREFIXES = ("DySampleFP32/", "LayerNormFP32/")

TENSORRT_MISSING = (
    "TensorRT is not installed here: on a Jetson it comes with JetPack (sudo apt install python3-libnvinfer, "
    "or use the anydepth-edge L4T container); on an x86/SBSA host with an NVIDIA GPU: pip install 'anydepth-edge[trt]'"
)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise HardwareMissing(TENSORRT_MISSING) from None
    return trt


def version_tuple(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def trt_major(trt) -> int:
    return version_tuple(trt.__version__)[0]


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    workspace_mib: int
    builder_optimization_level: int
    memory_hint: str
    # Dense peak throughput, for the benchmark's utilisation figure (FLOP/s).
    peak_fp16_flops: Optional[float] = None
    peak_fp32_flops: Optional[float] = None


DEVICE_PROFILES = {
    # 4 GB LPDDR5 shared by CPU and GPU: a large workspace makes the build run out of memory.
    "orin-nano": DeviceProfile(
        "orin-nano", workspace_mib=1024, builder_optimization_level=3,
        memory_hint=("the Orin Nano 4GB shares 4 GB between CPU and GPU: close the desktop "
                     "(sudo systemctl isolate multi-user.target), add swap (sudo fallocate -l 4G /swapfile ...), "
                     "or lower --workspace (e.g. 512)"),
        # 512 CUDA cores + 16 tensor cores at 625 MHz: ~5 TFLOPS dense FP16 (tensor cores), 0.64 FP32.
        peak_fp16_flops=5.0e12, peak_fp32_flops=512 * 2 * 625e6,
    ),
    "generic": DeviceProfile(
        "generic", workspace_mib=4096, builder_optimization_level=3,
        memory_hint="lower --workspace, or close other GPU programs",
    ),
}


def device_profile(name: str = "auto") -> DeviceProfile:
    key = (name or "auto").lower()
    if key == "auto":
        from anydepth_edge.platform_info import detect

        key = "orin-nano" if detect().is_orin_nano else "generic"
    if key not in DEVICE_PROFILES:
        raise UserError(f"unknown device profile {name!r}: choose auto, {', '.join(DEVICE_PROFILES)}")
    return DEVICE_PROFILES[key]


def gpu_tag(gpu_name: str) -> str:
    """'Orin (nvgpu)' -> 'orin'; 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
    slug = re.sub(r"\(.*?\)", "", gpu_name.lower())
    slug = re.sub(r"\bnvidia\b|\bgeforce\b|\btesla\b", "", slug)
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
    return slug or "gpu"


def engine_path(onnx_path, precision: str, trt_version: str, gpu_name: str, out_dir) -> Path:
    """engines/<onnx stem>-<precision>-trt<version>-<gpu>.engine"""
    v = ".".join(str(p) for p in version_tuple(trt_version))
    return Path(out_dir) / f"{Path(onnx_path).stem}-{precision}-trt{v}-{gpu_tag(gpu_name)}.engine"


def engine_sidecar_path(engine) -> Path:
    return Path(engine).with_suffix(".json")


def check_engine_compatible(sidecar: Dict[str, Any], engine, trt_version: str, gpu_name: str,
                            compute_capability: Optional[Tuple[int, int]] = None) -> None:
    """One clear line when the engine was built by another TensorRT or for another GPU."""
    built_v = str(sidecar.get("tensorrt_version", "?"))
    built_gpu = str(sidecar.get("gpu_name", "?"))
    onnx = sidecar.get("onnx_path") or "<the .onnx>"
    rebuild = f"rebuild with anydepth-edge build {onnx}"
    if version_tuple(built_v) != version_tuple(trt_version):
        raise UserError(f"engine {Path(engine).name} was built with TensorRT {built_v} on {built_gpu}; "
                        f"this is {trt_version}: {rebuild}")
    built_cc = sidecar.get("compute_capability")
    if built_gpu != gpu_name or (compute_capability and built_cc and tuple(built_cc) != tuple(compute_capability)):
        raise UserError(f"engine {Path(engine).name} was built for {built_gpu} (sm_{''.join(map(str, built_cc or []))}); "
                        f"this GPU is {gpu_name}: {rebuild}")
