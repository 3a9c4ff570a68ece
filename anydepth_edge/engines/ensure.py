"""`ensure_engine`: the engine for one ONNX export on this TensorRT and GPU, reused when it is up
to date and built (once) otherwise. `export --engine`, `build`, `run`, `bench` and the container
entrypoint all come through here, so an engine one of them made is up to date for the others.

Up to date means: the sidecar reads, the engine file is the one it describes (sha256), it was
built from this ONNX (sha256) with these settings, and `compat.engine_problem` finds nothing.
Torch-free, Python 3.8.
"""

import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from anydepth_edge import __version__, pins
from anydepth_edge.artifacts import sha256_file, write_bytes_atomic, write_text_atomic
from anydepth_edge.engines.compat import TrtHost, engine_problem
from anydepth_edge.engines.trt_build import (
    BuildOutOfMemory,
    BuildOutput,
    BuildSettings,
    build_engine_python,
    build_engine_trtexec,
)
from anydepth_edge.engines.trt_common import (
    TRTEXEC_JETSON,
    DeviceProfile,
    import_tensorrt,
)
from anydepth_edge.errors import NothingToDo, UserError
from anydepth_edge.records import (
    EngineArtifact,
    OnnxArtifact,
    build_log_path,
    engine_path,
    gpu_tag,
    inspector_path,
)
from anydepth_edge.targets import (
    TARGETS,
    check_target_for_tensorrt,
    target_for_tensorrt_version,
)

Notify = Callable[[str], None]
PRECISIONS = ("fp16", "fp32")
BUILDERS = ("python", "trtexec")


def default_timing_cache(out_dir: Path, trt_version: str, gpu_name: str) -> Path:
    """One timing cache per TensorRT version and GPU (a cache from another one is rejected), shared
    by every build in `out_dir`."""
    return Path(out_dir) / f"timing-trt{trt_version}-{gpu_tag(gpu_name)}.cache"


def _settings(onnx: OnnxArtifact, precision: str, profile: DeviceProfile, workspace_mib: Optional[int],
              timing_cache: Path) -> BuildSettings:
    regions = pins.pin_regions("default", TARGETS[onnx.target].decompose_layernorm) if precision == "fp16" else ()
    return BuildSettings(
        precision=precision,
        workspace_mib=workspace_mib or profile.workspace_mib,
        builder_optimization_level=profile.builder_optimization_level,
        pin_regions=regions,
        pin_names=pins.pinned_names(onnx.fp32_nodes, regions),
        timing_cache=timing_cache,
    )


def _build(onnx_path: Path, settings: BuildSettings, builder: str, trt, notify: Notify, run, trtexec: str,
           profile: DeviceProfile) -> BuildOutput:
    try:
        if builder == "trtexec":
            return build_engine_trtexec(onnx_path, settings, trt.__version__, trtexec=trtexec, notify=notify, run=run)
        return build_engine_python(onnx_path, settings, trt=trt, notify=notify)
    except (MemoryError, BuildOutOfMemory) as e:
        raise UserError(f"{e or 'out of memory'} while building {onnx_path.name}: {profile.memory_hint}") from None


def ensure_engine(onnx_path, engines_dir, profile: DeviceProfile, precision: str = "fp16", builder: str = "python",
                  workspace_mib: Optional[int] = None, timing_cache: Optional[Path] = None, force: bool = False,
                  trt=None, cuda=None, platform=None, notify: Notify = lambda s: None, run=subprocess.run,
                  trtexec: str = TRTEXEC_JETSON) -> Tuple[EngineArtifact, bool]:
    """(the engine's record, reused?) for `onnx_path` on this machine."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}")
    if builder not in BUILDERS:
        raise UserError(f"unknown builder {builder!r}: {' or '.join(BUILDERS)}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    trt = trt or import_tensorrt()
    onnx = OnnxArtifact.load(onnx_path).require_content()
    warning = check_target_for_tensorrt(onnx.target, trt.__version__)
    if cuda is None:
        from anydepth_edge.engines.cuda_api import load_cuda_api

        cuda = load_cuda_api()
    if platform is None:
        from anydepth_edge.platform_info import detect

        platform = detect()
    host = TrtHost.current(trt, cuda, platform)
    engines_dir = Path(engines_dir)
    path = engine_path(onnx_path, precision, trt.__version__, host.gpu_name, engines_dir)
    settings = _settings(onnx, precision, profile, workspace_mib,
                         timing_cache or default_timing_cache(engines_dir, trt.__version__, host.gpu_name))
    onnx_sha = sha256_file(onnx_path)
    old = EngineArtifact.find(path)
    if (not force and old is not None and old.onnx_sha256 == onnx_sha and old.settings == settings.to_dict()
            and engine_problem(old, host) is None and old.content_matches()):
        return old, True

    t0 = time.perf_counter()
    result = _build(onnx_path, settings, builder, trt, notify, run, trtexec, profile)
    record = EngineArtifact(
        tensorrt_version=trt.__version__, gpu_name=host.gpu_name, onnx_path=str(onnx_path), onnx_sha256=onnx_sha,
        settings=settings.to_dict(), compute_capability=list(host.compute_capability or ()),
        jetson={"model": platform.device_model, "l4t": platform.l4t, "jetpack": platform.jetpack}
        if platform.is_jetson else None,
        device_profile=profile.name, model=onnx.model, resolution=list(onnx.res), target=onnx.target,
        inputs=onnx.inputs, outputs=onnx.outputs, mean=onnx.mean, std=onnx.std, builder=builder,
        trtexec_command=result.command, precision_constraints=result.constraints,
        pinned_layers=len(result.pinned_layers), build_seconds=round(time.perf_counter() - t0, 1),
        device_memory_bytes=result.device_memory_bytes, memory_log=result.memory_lines[-20:],
        warnings=([warning] if warning else []) + result.warnings, toolkit_version=__version__, path=path,
    )
    write_bytes_atomic(path, result.engine)
    record.engine_sha256 = sha256_file(path)
    if result.inspector_json:
        write_text_atomic(inspector_path(path), result.inspector_json)
    write_text_atomic(build_log_path(path), "\n".join(result.log) + "\n")
    if result.timing_cache is not None and settings.timing_cache is not None:
        write_bytes_atomic(settings.timing_cache, result.timing_cache)
    record.write_sidecar()
    return record, False


def exports_for_this_tensorrt(export_dir, trt_version: str, resolutions: Sequence[Tuple[int, int]] = ()) -> List[Path]:
    """The GridSample-form ONNX exports in `export_dir` whose graph is the one this TensorRT's target
    asks for (trt8.6 and trt10 exports are the same graph), and, when given, of these resolutions:
    what the container entrypoint builds engines for."""
    found = []
    for path in sorted(Path(export_dir).glob("*.onnx")):
        onnx = OnnxArtifact.find(path)
        if onnx is None or onnx.dysample != "grid_sample" or onnx.target not in TARGETS:
            continue
        try:
            if check_target_for_tensorrt(onnx.target, trt_version) is not None:
                continue  # builds, but another export fits better
        except UserError:
            continue  # this TensorRT cannot build it
        if resolutions and onnx.res not in [tuple(r) for r in resolutions]:
            continue
        found.append(path)
    return found


def summary_line(record: EngineArtifact, reused: bool) -> str:
    if reused:
        return f"up to date: {record.path}"
    return (f"built {record.path} in {record.build_seconds} s ({record.precision_constraints} constraints, "
            f"{record.pinned_layers} FP32 layers, device memory {record.device_memory_bytes} bytes)")


def build_engines(onnx: Path, engines_dir: Path, device: str = "auto", precision: str = "fp16",
                  builder: str = "python", workspace_mib: Optional[int] = None, timing_cache: Optional[Path] = None,
                  force: bool = False, resolutions: Sequence[Tuple[int, int]] = (), trt=None, cuda=None,
                  notify: Notify = lambda s: None, progress=None) -> List[str]:
    """`anydepth-edge build FILE|FOLDER`: ensure an engine for one export, or for every export in a
    folder made for this TensorRT's target (the container entrypoint's use). Returns the lines to print."""
    from anydepth_edge.artifacts import ensure_writable_dir
    from anydepth_edge.engines.trt_common import device_profile

    onnx = Path(onnx)
    if not onnx.exists():
        raise UserError(f"ONNX file not found: {onnx}")
    profile = device_profile(device)
    trt = trt or import_tensorrt()
    if onnx.is_dir():
        paths = exports_for_this_tensorrt(onnx, trt.__version__, resolutions)
        if not paths:
            target = target_for_tensorrt_version(trt.__version__)
            sizes = ", ".join(f"{h}x{w}" for h, w in resolutions) or "any size"
            raise NothingToDo(f"no export for TensorRT {trt.__version__} (target {target}, {sizes}) in {onnx}: "
                            f"anydepth-edge export --decoder all --target {target}"
                            + "".join(f" --res {h}x{w}" for h, w in resolutions)
                            + " (the export image or a workstation), then copy the files there")
    else:
        paths = [onnx]
    if cuda is None:
        from anydepth_edge.engines.cuda_api import load_cuda_api

        cuda = load_cuda_api()
    engines_dir = ensure_writable_dir(engines_dir)
    lines = []
    for i, path in enumerate(paths, 1):
        prefix = f"[{i}/{len(paths)}] {path.name}" if len(paths) > 1 else path.name
        notify(f"{prefix}: TensorRT {trt.__version__} engine (reused when up to date; minutes on an Orin Nano)")
        record, reused = ensure_engine(path, engines_dir, profile, precision=precision, builder=builder,
                                       workspace_mib=workspace_mib, timing_cache=timing_cache, force=force,
                                       trt=trt, cuda=cuda, notify=lambda text, p=prefix: notify(f"{p}: {text}"))
        lines += [f"warning: {w}" for w in record.warnings] if not reused else []
        lines.append(summary_line(record, reused))
    return lines


def check_engine_mode(mode: str) -> None:
    """`export --engine always` where TensorRT cannot run: one error before any export work."""
    from anydepth_edge.engines import tensorrt_ready

    if mode == "always" and tensorrt_ready() is None:
        from anydepth_edge.engines.trt_common import TENSORRT_MISSING
        from anydepth_edge.errors import HardwareMissing

        raise HardwareMissing("--engine always: " + TENSORRT_MISSING)


def engines_after_export(onnx_paths: Sequence[Path], mode: str, engines_dir: Path,
                         notify: Notify = lambda s: None) -> List[str]:
    """`export --engine auto|never|always`: engines for fresh TensorRT exports where TensorRT runs."""
    if mode == "never" or not onnx_paths:
        return []
    from anydepth_edge.engines import tensorrt_ready

    check_engine_mode(mode)
    if tensorrt_ready() is None:
        notify("TensorRT is not importable here: ONNX only (build the engine on the robot: anydepth-edge build FILE)")
        return []
    lines: List[str] = []
    for path in onnx_paths:
        lines += build_engines(Path(path), engines_dir, notify=notify)
    return lines
