"""ONNX -> TensorRT engine, one code path for TensorRT 8.5 through 10.x (or through trtexec).

Version differences handled here:
- EXPLICIT_BATCH network flag: set on 8.x (required there), not on 10.x (removed / default);
- workspace via `set_memory_pool_limit` (8.4+), capped per device profile;
- `builder_optimization_level` only where it exists (8.6+);
- progress: `IProgressMonitor` on 10.x, phase messages on 8.x;
- FP16 with the pin policy's FP32 regions (`anydepth_edge.pins`), constraints OBEY, falling back
  to PREFER with a warning if OBEY cannot build.
Also: persistent timing cache, a build log with TensorRT's memory figures, the engine
inspector's JSON. Reusing, naming and recording engines is `engines.ensure`.
"""

import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from anydepth_edge import pins
from anydepth_edge.engines.trt_common import (
    TRTEXEC_JETSON,
    WEAK_TYPING_UNTIL,
    engine_device_memory,
    has_weak_typing,
    import_tensorrt,
    trt_major,
)
from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.targets import version_tuple

Notify = Callable[[str], None]


class BuildOutOfMemory(Exception):
    pass


_MEM_LINE = re.compile(r"MemUsage|Memory|memory|GPU \+|CPU \+", re.I)


@dataclass
class BuildSettings:
    precision: str = "fp16"  # fp16 | fp32
    workspace_mib: int = 1024
    builder_optimization_level: Optional[int] = 3
    pin_regions: Tuple[str, ...] = ()  # pins.REGIONS kept in FP32 (FP16 builds)
    pin_names: Sequence[str] = ()  # their ONNX node names (trtexec takes names, not prefixes)
    timing_cache: Optional[Path] = None
    obey_constraints: bool = True
    # Types from the graph (an FP16 ONNX with Casts around FP32 regions): no FP16 flag, no pins.
    strongly_typed: bool = False

    @property
    def weak_fp16(self) -> bool:
        return self.precision == "fp16" and not self.strongly_typed

    def to_dict(self) -> Dict[str, Any]:
        return {
            "precision": self.precision, "workspace_mib": self.workspace_mib,
            "builder_optimization_level": self.builder_optimization_level, "strongly_typed": self.strongly_typed,
            "pin_regions": list(self.pin_regions), "fp32_pins": len(self.pin_names),
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
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


def network_flags(trt, strongly_typed: bool = False) -> int:
    """EXPLICIT_BATCH where it exists and is needed (8.x; removed on 10.x); STRONGLY_TYPED (10.x)."""
    flags = 0
    if trt_major(trt) < 10:
        flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        flags |= 0 if flag is None else 1 << int(flag)
    if strongly_typed:
        flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            raise UserError(f"TensorRT {trt.__version__} has no strongly typed networks (10.0 and later): --typing weak")
        flags |= 1 << int(flag)
    return flags


def apply_fp32_pins(trt, network, regions: Sequence[str]) -> List[str]:
    """Constrain the layers of the pinned regions (and constants feeding them) to FP32; returns
    their names."""
    float_types = (trt.float32, trt.float16)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    pinned, pinned_inputs = [], set()
    for layer in layers:
        if not pins.is_pinned(layer.name, regions):
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
    if settings.weak_fp16 and not has_weak_typing(trt):
        raise UserError(f"TensorRT {trt.__version__} is strongly typed only (no FP16 flag, no precision constraints): "
                        "build with --typing strong, from the export's .fp16.onnx form")
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, settings.strongly_typed))
    notify("parsing ONNX")
    parse_onnx(trt, network, logger, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    if settings.builder_optimization_level is not None and hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = settings.builder_optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions in the inspector
    out = BuildOutput(engine=b"", log=log)
    if settings.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # the ladder's last rung is true FP32 (TF32 is on by default)
    if settings.weak_fp16 and has_weak_typing(trt):
        config.set_flag(trt.BuilderFlag.FP16)
        out.pinned_layers = apply_fp32_pins(trt, network, settings.pin_regions)
    out.constraints = "typed" if settings.strongly_typed else ("obey" if out.pinned_layers else "none")

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

    out.engine = _serialized(trt, builder, network, config, out, settings, log)
    if cache is not None:
        out.timing_cache = bytes(config.get_timing_cache().serialize())
    out.memory_lines = [line for line in log if _MEM_LINE.search(line)]
    notify("inspecting engine")
    runtime = trt.Runtime(logger)  # kept while the engine lives (TensorRT wants runtimes to outlive engines)
    engine = runtime.deserialize_cuda_engine(out.engine)
    if engine is not None:
        out.device_memory_bytes = engine_device_memory(engine)
        inspector = engine.create_engine_inspector()
        out.inspector_json = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return out


def _serialized(trt, builder, network, config, out: BuildOutput, settings: BuildSettings, log: List[str]) -> bytes:
    """The built engine's bytes. With FP32 pins under weak typing: precision constraints 'obey', and
    when TensorRT cannot satisfy them, 'prefer' (said in the warnings); one plain build otherwise."""
    constraint_flags = [("", None)]  # strongly typed, or nothing pinned: one plain build
    if out.pinned_layers and has_weak_typing(trt):
        constraint_flags = [("obey", trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS),
                            ("prefer", trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)][0 if settings.obey_constraints else 1:]
    serialized = None
    for i, (label, flag) in enumerate(constraint_flags):
        if flag is not None:
            config.set_flag(flag)
            out.constraints = label
        serialized = builder.build_serialized_network(network, config)
        if serialized is not None or flag is None or i == len(constraint_flags) - 1:
            break
        out.warnings.append("TensorRT could not build with precision constraints 'obey'; retrying with 'prefer' "
                            "(the FP32 pins become hints: check the inspector JSON for their precision)")
        config.clear_flag(flag)
    if serialized is None:
        if any("out of memory" in line.lower() for line in log):
            raise BuildOutOfMemory("TensorRT ran out of memory")
        raise UserError("TensorRT failed to build the engine: " + _last_error(log))
    return bytes(serialized)


def _last_error(log: List[str]) -> str:
    errors = [line for line in log if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
    return errors[-1] if errors else "see the build log"


# ----------------------------------------------------------------------------- trtexec

def trtexec_command(trtexec: str, onnx_path: Path, engine_out: Path, settings: BuildSettings, trt_version: str,
                    inspector_out: Optional[Path] = None) -> List[str]:
    """The same settings as the Python builder, as a trtexec command line."""
    cmd = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_out}",
           f"--memPoolSize=workspace:{settings.workspace_mib}"]
    if settings.precision == "fp32":
        cmd.append("--noTF32")
    typed_only = version_tuple(trt_version)[:2] >= WEAK_TYPING_UNTIL
    if settings.weak_fp16 and typed_only:
        raise UserError(f"trtexec of TensorRT {trt_version} is strongly typed only (no --fp16): --typing strong")
    if settings.strongly_typed:
        if not typed_only:  # 11: always on, the flag is gone with --fp16
            cmd.append("--stronglyTyped")  # precision from the graph's types: no --fp16, no layer precisions
    elif settings.precision == "fp16":
        cmd.append("--fp16")
        cmd += pins.trtexec_precision_flags(list(settings.pin_names), settings.obey_constraints)
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
            last = next((line.strip() for line in reversed(log) if "[E]" in line or "ERROR" in line), "see its output")
            raise UserError(f"trtexec failed (exit {proc.returncode}): {last}")
        out = BuildOutput(engine=tmp_engine.read_bytes(), log=log, command=" ".join(shlex.quote(c) for c in cmd))
        out.inspector_json = tmp_info.read_text() if tmp_info.exists() and tmp_info.stat().st_size else None
    out.memory_lines = [line for line in log if _MEM_LINE.search(line)]
    out.pinned_layers = list(settings.pin_names) if settings.weak_fp16 else []
    out.constraints = "typed" if settings.strongly_typed else (
        ("obey" if settings.obey_constraints else "prefer") if out.pinned_layers else "none")
    return out
