"""ONNX -> TensorRT engine, one code path for TensorRT 8.5 through 10.x (or through trtexec).

Version differences handled here:
- EXPLICIT_BATCH network flag: set on 8.x (required there), not on 10.x (removed / default);
- workspace via `set_memory_pool_limit` (8.4+), capped per device profile;
- `builder_optimization_level` only where it exists (8.6+);
- progress: `IProgressMonitor` on 10.x, phase messages on 8.x;
- FP16 with the sidecar's FP32 pins (DySample coordinates + sampler; decomposed LayerNorm on 8.5),
  constraints OBEY, falling back to PREFER with a warning if OBEY cannot build.
Also: persistent timing cache, a build log with TensorRT's memory figures, the engine
inspector's JSON, an atomic write of the engine and its sidecar.
"""

import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from anydepth_edge import __version__
from anydepth_edge.artifacts import (
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from anydepth_edge.engines.trt_common import (
    ENGINE_SIDECAR_SCHEMA,
    PIN_PREFIXES,
    TRTEXEC_JETSON,
    DeviceProfile,
    engine_path,
    engine_sidecar_path,
    gpu_tag,
    import_tensorrt,
    trt_major,
    version_tuple,
)
from anydepth_edge.errors import HardwareMissing, UserError

Notify = Callable[[str], None]


class BuildOutOfMemory(Exception):
    pass
_MEM_LINE = re.compile(r"MemUsage|Memory|memory|GPU \+|CPU \+", re.I)


@dataclass
class BuildSettings:
    precision: str = "fp16"  # fp16 | fp32
    workspace_mib: int = 1024
    builder_optimization_level: Optional[int] = 3
    fp32_pins: Sequence[str] = ()
    timing_cache: Optional[Path] = None
    obey_constraints: bool = True

    def to_dict(self) -> Dict[str, Any]:
        return {
            "precision": self.precision, "workspace_mib": self.workspace_mib,
            "builder_optimization_level": self.builder_optimization_level,
            "fp32_pins": len(self.fp32_pins), "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "precision_constraints": "obey" if self.obey_constraints else "prefer",
        }


@dataclass
class BuildOutput:
    engine: bytes
    log: List[str] = field(default_factory=list)
    memory_lines: List[str] = field(default_factory=list)
    pinned_layers: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    constraints: str = "obey"
    timing_cache: Optional[bytes] = None
    inspector_json: Optional[str] = None
    device_memory_bytes: Optional[int] = None
    command: Optional[str] = None


def make_logger(trt, sink: List[str]):
    """A TensorRT logger that keeps every message (for the build log) at INFO and above."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            sink.append(f"[{str(severity).split('.')[-1]}] {msg}")

    return _Logger()


def make_progress_monitor(trt, notify: Notify):
    """IProgressMonitor (TensorRT 10+): top-level phases and their steps, to `notify`."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                notify(f"{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            pass

    return _Monitor()


def network_flags(trt) -> int:
    """EXPLICIT_BATCH where it exists and is needed (8.x); 0 on 10.x, where it is removed."""
    if trt_major(trt) >= 10:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def _is_pinned(name: str, pins: set) -> bool:
    return name in pins or any(p in name for p in PIN_PREFIXES)


def apply_fp32_pins(trt, network, pins: Sequence[str]) -> List[str]:
    """Constrain the pinned layers (and constants feeding them) to FP32; returns their names."""
    pin_set = set(pins)
    float_types = (trt.float32, trt.float16)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    pinned, pinned_inputs = [], set()
    for layer in layers:
        if not _is_pinned(layer.name, pin_set):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in float_types:  # index maths stays integer
                layer.set_output_type(j, trt.float32)
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                pinned_inputs.add(t.name)
        pinned.append(layer.name)
    # Constants (the precomputed base grids) feeding pinned layers stay FP32 as well.
    for layer in layers:
        if layer.type == trt.LayerType.CONSTANT and layer.name not in pinned:
            if any(layer.get_output(j).name in pinned_inputs for j in range(layer.num_outputs)):
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
                pinned.append(layer.name)
    return pinned


def parse_onnx(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(onnx_path.read_bytes(), str(onnx_path))
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(f"TensorRT cannot parse {onnx_path.name}: {errors[0] if errors else 'unknown error'} "
                        f"(run anydepth-edge check-onnx {onnx_path})")


def build_engine_python(onnx_path: Path, settings: BuildSettings, trt=None, notify: Notify = lambda s: None) -> BuildOutput:
    trt = trt or import_tensorrt()
    log: List[str] = []
    logger = make_logger(trt, log)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    notify("parsing ONNX")
    parse_onnx(trt, network, logger, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    if settings.builder_optimization_level is not None and hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = settings.builder_optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions in the inspector
    out = BuildOutput(engine=b"", log=log)
    if settings.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        out.pinned_layers = apply_fp32_pins(trt, network, settings.fp32_pins)

    cache = None
    if settings.timing_cache is not None:
        data = settings.timing_cache.read_bytes() if settings.timing_cache.exists() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)

    if hasattr(trt, "IProgressMonitor"):
        monitor = make_progress_monitor(trt, notify)
        config.progress_monitor = monitor  # keep `monitor` alive for the whole build
    else:
        notify(f"building (TensorRT {trt.__version__} reports no progress; minutes on an Orin Nano)")

    constraint_flags = [("obey", trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS), ("prefer", trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)]
    if not settings.obey_constraints:
        constraint_flags = constraint_flags[1:]
    serialized = None
    for i, (label, flag) in enumerate(constraint_flags):
        if out.pinned_layers:
            config.set_flag(flag)
        serialized = builder.build_serialized_network(network, config)
        out.constraints = label
        if serialized is not None or not out.pinned_layers or i == len(constraint_flags) - 1:
            break
        out.warnings.append("TensorRT could not build with precision constraints 'obey'; retrying with 'prefer' "
                            "(the FP32 pins become hints: check the inspector JSON for their precision)")
        config.clear_flag(flag)
    if serialized is None:
        if any("out of memory" in line.lower() for line in log):
            raise BuildOutOfMemory("TensorRT ran out of memory")
        raise UserError("TensorRT failed to build the engine: " + _last_error(log))
    out.engine = bytes(serialized)
    if cache is not None:
        out.timing_cache = bytes(config.get_timing_cache().serialize())
    out.memory_lines = [line for line in log if _MEM_LINE.search(line)]
    notify("inspecting engine")
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(out.engine)
    if engine is not None:
        out.device_memory_bytes = engine_device_memory(engine)
        inspector = engine.create_engine_inspector()
        out.inspector_json = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return out


def engine_device_memory(engine) -> Optional[int]:
    """Activation memory an execution context needs (`_v2` on 10.x, deprecated name on 8.x)."""
    for attr in ("device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, attr, None)
        if value is not None:
            return int(value)
    return None


def _last_error(log: List[str]) -> str:
    errors = [line for line in log if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
    return errors[-1] if errors else "see the build log"


# ----------------------------------------------------------------------------- trtexec

def trtexec_command(trtexec: str, onnx_path: Path, engine_out: Path, settings: BuildSettings, trt_version: str,
                    inspector_out: Optional[Path] = None) -> List[str]:
    """The same settings as the Python builder, as a trtexec command line."""
    cmd = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_out}",
           f"--memPoolSize=workspace:{settings.workspace_mib}"]
    if settings.precision == "fp16":
        cmd.append("--fp16")
        if settings.fp32_pins:
            mode = "obey" if settings.obey_constraints else "prefer"
            cmd.append(f"--precisionConstraints={mode}")
            cmd.append("--layerPrecisions=" + ",".join(f"{n}:fp32" for n in settings.fp32_pins))
            cmd.append("--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in settings.fp32_pins))
    if settings.builder_optimization_level is not None and version_tuple(trt_version) >= (8, 6):
        cmd.append(f"--builderOptimizationLevel={settings.builder_optimization_level}")
    if settings.timing_cache is not None:
        cmd.append(f"--timingCacheFile={settings.timing_cache}")
    cmd.append("--profilingVerbosity=detailed")
    if inspector_out is not None:
        cmd.append(f"--exportLayerInfo={inspector_out}")
    cmd.append("--skipInference" if version_tuple(trt_version) >= (8, 6) else "--iterations=1")
    return cmd


def build_engine_trtexec(onnx_path: Path, settings: BuildSettings, trt_version: str, trtexec: str = TRTEXEC_JETSON,
                         notify: Notify = lambda s: None, run=subprocess.run) -> BuildOutput:
    if not Path(trtexec).exists():
        raise HardwareMissing(f"trtexec not found at {trtexec} (JetPack installs it with tensorrt; or use --builder python)")
    with tempfile.TemporaryDirectory(prefix="anydepth-trtexec-") as tmp:
        tmp_engine, tmp_info = Path(tmp) / "model.engine", Path(tmp) / "inspector.json"
        cmd = trtexec_command(trtexec, onnx_path, tmp_engine, settings, trt_version, tmp_info)
        notify("trtexec building (see the build log)")
        proc = run(cmd, capture_output=True, text=True)
        log = (proc.stdout or "").splitlines() + (proc.stderr or "").splitlines()
        if proc.returncode != 0 or not tmp_engine.exists() or tmp_engine.stat().st_size == 0:
            if any("out of memory" in line.lower() for line in log):
                raise BuildOutOfMemory("trtexec ran out of memory")
            last = next((line for line in reversed(log) if "ERROR" in line), "see its output")
            raise UserError(f"trtexec failed (exit {proc.returncode}): {last}")
        out = BuildOutput(engine=tmp_engine.read_bytes(), log=log, command=" ".join(shlex.quote(c) for c in cmd))
        out.inspector_json = tmp_info.read_text() if tmp_info.exists() and tmp_info.stat().st_size else None
    out.memory_lines = [line for line in log if _MEM_LINE.search(line)]
    out.constraints = "obey" if settings.obey_constraints else "prefer"
    out.pinned_layers = list(settings.fp32_pins) if settings.precision == "fp16" else []
    return out


# ----------------------------------------------------------------------------- the build job

@dataclass
class EngineJob:
    onnx_path: Path
    out_dir: Path
    profile: DeviceProfile
    precision: str = "fp16"
    workspace_mib: Optional[int] = None
    builder: str = "python"  # python | trtexec
    timing_cache: Optional[Path] = None  # None: default_timing_cache() in out_dir
    force: bool = False
    trtexec: str = TRTEXEC_JETSON


def default_timing_cache(out_dir: Path, trt_version: str, gpu_name: str) -> Path:
    """One timing cache per TensorRT version and GPU (a cache from another one is rejected), shared
    by every build in `out_dir`: `build`, `bench` and `run` all reuse each other's engines."""
    return Path(out_dir) / f"timing-trt{trt_version}-{gpu_tag(gpu_name)}.cache"


def _onnx_sidecar(onnx_path: Path) -> Dict[str, Any]:
    side = read_json(onnx_path.with_suffix(".json"))
    if side is None:
        raise UserError(f"{onnx_path.with_suffix('.json').name} is missing beside {onnx_path.name}: "
                        "it names the FP32 pins; re-export with anydepth-edge export")
    return side


def check_target(onnx_side: Dict[str, Any], trt_version: str) -> Optional[str]:
    """An error for an ONNX TensorRT cannot import (LayerNormalization on 8.5); a warning otherwise."""
    target = onnx_side.get("target")
    v = version_tuple(trt_version)
    if v[:2] == (8, 5) and target not in ("trt8.5",):
        raise UserError(f"this ONNX was exported for {target} (native LayerNormalization); TensorRT {trt_version} "
                        "needs: anydepth-edge export --target trt8.5")
    if v[:2] != (8, 5) and target == "trt8.5":
        return f"this ONNX was exported for trt8.5 (decomposed LayerNorm); TensorRT {trt_version} builds it, but --target auto fits better"
    return None


def build(job: EngineJob, trt=None, cuda=None, notify: Notify = lambda s: None, run=subprocess.run):
    """Build (or reuse) the engine for `job`; returns (engine path, sidecar dict, reused)."""
    from anydepth_edge.platform_info import detect

    trt = trt or import_tensorrt()
    if not job.onnx_path.is_file():
        raise UserError(f"ONNX file not found: {job.onnx_path}")
    onnx_side = _onnx_sidecar(job.onnx_path)
    warning = check_target(onnx_side, trt.__version__)
    if cuda is None:
        from anydepth_edge.engines.cuda_api import load_cuda_api

        cuda = load_cuda_api()
    gpu_name, cc = cuda.device_name(), cuda.compute_capability()
    path = engine_path(job.onnx_path, job.precision, trt.__version__, gpu_name, job.out_dir)
    onnx_sha = sha256_file(job.onnx_path)
    settings = BuildSettings(
        precision=job.precision,
        workspace_mib=job.workspace_mib or job.profile.workspace_mib,
        builder_optimization_level=job.profile.builder_optimization_level,
        fp32_pins=onnx_side.get("fp32_nodes", []),
        timing_cache=job.timing_cache or default_timing_cache(job.out_dir, trt.__version__, gpu_name),
    )
    old = read_json(engine_sidecar_path(path))
    if not job.force and old and path.exists() and old.get("onnx_sha256") == onnx_sha \
            and old.get("settings") == settings.to_dict() and old.get("engine_sha256") == sha256_file(path):
        return path, old, True

    t0 = time.perf_counter()
    try:
        if job.builder == "trtexec":
            result = build_engine_trtexec(job.onnx_path, settings, trt.__version__, trtexec=job.trtexec,
                                          notify=notify, run=run)
        else:
            result = build_engine_python(job.onnx_path, settings, trt=trt, notify=notify)
    except (MemoryError, BuildOutOfMemory) as e:
        raise UserError(f"{e or 'out of memory'} while building {job.onnx_path.name}: {job.profile.memory_hint}") from None
    seconds = time.perf_counter() - t0

    platform = detect()
    sidecar: Dict[str, Any] = {
        "schema": ENGINE_SIDECAR_SCHEMA,
        "tensorrt_version": trt.__version__,
        "gpu_name": gpu_name,
        "compute_capability": list(cc),
        "jetson": {"model": platform.device_model, "l4t": platform.l4t, "jetpack": platform.jetpack} if platform.is_jetson else None,
        "device_profile": job.profile.name,
        "onnx_path": str(job.onnx_path),
        "onnx_sha256": onnx_sha,
        "model": onnx_side.get("model"), "resolution": onnx_side.get("resolution"), "target": onnx_side.get("target"),
        "inputs": onnx_side.get("inputs"), "outputs": onnx_side.get("outputs"),
        "mean": onnx_side.get("mean"), "std": onnx_side.get("std"),
        "settings": settings.to_dict(),
        "builder": job.builder,
        "trtexec_command": result.command,
        "precision_constraints": result.constraints,
        "pinned_layers": len(result.pinned_layers),
        "build_seconds": round(seconds, 1),
        "device_memory_bytes": result.device_memory_bytes,
        "memory_log": result.memory_lines[-20:],
        "warnings": ([warning] if warning else []) + result.warnings,
        "toolkit_version": __version__,
    }
    write_bytes_atomic(path, result.engine)
    sidecar["engine_sha256"] = sha256_file(path)
    if result.inspector_json:
        write_text_atomic(path.with_suffix(".inspector.json"), result.inspector_json)
    write_text_atomic(path.with_suffix(".build.log"), "\n".join(result.log) + "\n")
    if result.timing_cache is not None and settings.timing_cache is not None:
        write_bytes_atomic(settings.timing_cache, result.timing_cache)
    write_json_atomic(engine_sidecar_path(path), sidecar)
    return path, sidecar, False
