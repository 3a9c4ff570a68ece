"""The one rule for "can this engine run here?", used by `run`, `bench`, `build`, `doctor` and
the container entrypoint (through `anydepth-edge build`).

TensorRT engines are tied to the TensorRT version and the GPU that built them; a JetPack upgrade
(another L4T release family) brings another TensorRT and CUDA. Torch-free, Python 3.8.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import EngineArtifact
from anydepth_edge.targets import version_tuple


@dataclass(frozen=True)
class TrtHost:
    """What an engine must match: this machine's TensorRT, GPU and L4T release."""

    tensorrt_version: str
    gpu_name: str  # '' when no GPU answers (doctor in an image without one): judged on TensorRT and L4T only
    compute_capability: Optional[Tuple[int, int]] = None
    l4t: str = ""  # '' off a Jetson

    @classmethod
    def current(cls, trt, cuda, platform=None) -> "TrtHost":
        if platform is None:
            from anydepth_edge.platform_info import detect

            platform = detect()
        return cls(trt.__version__, cuda.device_name(), tuple(cuda.compute_capability()), platform.l4t or "")


def engine_problem(engine: EngineArtifact, host: TrtHost) -> Optional[str]:
    """Why `engine` cannot run on `host`, or None when it can."""
    if version_tuple(engine.tensorrt_version) != version_tuple(host.tensorrt_version):
        return f"built with TensorRT {engine.tensorrt_version} on {engine.gpu_name}; this is TensorRT {host.tensorrt_version}"
    built_cc = tuple(engine.compute_capability or ())
    if host.gpu_name and (engine.gpu_name != host.gpu_name
                          or (built_cc and host.compute_capability and built_cc != tuple(host.compute_capability))):
        return (f"built for {engine.gpu_name} (sm_{''.join(map(str, built_cc))}); this GPU is {host.gpu_name}"
                f" (sm_{''.join(map(str, host.compute_capability or ()))})")
    if engine.l4t and host.l4t and version_tuple(engine.l4t)[:2] != version_tuple(host.l4t)[:2]:
        return f"built on L4T {engine.l4t}; this board runs L4T {host.l4t} (a JetPack upgrade)"
    return None


def check_engine_usable(engine: EngineArtifact, host: TrtHost) -> None:
    """One clear line, with the rebuild command, when `engine` cannot run on `host`."""
    problem = engine_problem(engine, host)
    if problem:
        name = engine.path.name if engine.path else "engine"
        raise UserError(f"engine {name} was {problem}: rebuild with {engine.rebuild_command()}")
