"""`ensure_engine`: the engine for one ONNX export on this TensorRT and GPU, reused when it is up
to date and built (once) otherwise, and never handed out before its output has been checked
against FP32. `export --engine`, `build`, `run`, `bench` and the container entrypoint all come
through here, so an engine one of them made is up to date for the others.

The precision ladder (`precision="auto"`): FP16 with the default FP32 pins -> FP16 with the wide
pin set (LayerNorm, attention, residual adds) -> FP32. Each rung is built, run on the export's
reference bundle and judged (`agreement`); the first that passes is kept, every rung's figures go
into its sidecar. TensorRT 10.3-10.4 are known to miscompile DINOv3 (NVIDIA/TensorRT#4723, #4742),
so a build that merely succeeds proves nothing.

Typing: strongly typed (TensorRT >= 10; the default from 10.12, where weak typing is deprecated)
builds an FP16 graph with Casts around the FP32 regions (`typed_fp16`), with no FP16 flag and no
precision constraints; weakly typed (8.5 / 8.6) sets the FP16 flag and pins the regions' layers.

Up to date means: the sidecar reads, the engine file is the one it describes (sha256), it was
built from this ONNX (sha256) with these settings, and `compat.engine_problem` finds nothing. A
rung that failed verification keeps its sidecar (not its engine) so it is not rebuilt in vain.
Torch-free, Python 3.8.
"""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from anydepth_edge import __version__, pins
from anydepth_edge.agreement import Bundle, Verdict, verify_backend
from anydepth_edge.fileio import sha256_file, write_bytes_atomic, write_partial_prefix, write_text_atomic
from anydepth_edge.engines.compat import TrtHost, engine_problem
from anydepth_edge.engines.trt_build import (
    BuildOutOfMemory,
    BuildOutput,
    BuildSettings,
    Notify,
    build_engine_python,
    build_engine_trtexec,
)
from anydepth_edge.engines.trt_common import (
    TRTEXEC_JETSON,
    WEAK_TYPING_UNTIL,
    DeviceProfile,
    import_tensorrt,
)
from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import (
    EngineArtifact,
    OnnxArtifact,
    build_log_path,
    engine_path,
    gpu_tag,
    inspector_path,
)
from anydepth_edge.targets import (
    KNOWN_BAD_DINOV3,
    TARGETS,
    check_target_for_tensorrt,
    version_tuple,
)

LADDER = ("fp16", "fp16-wide", "fp32")
PRECISIONS = ("auto",) + LADDER
PIN_SET = {"fp16": "default", "fp16-wide": "wide", "fp32": None}
TYPINGS = ("auto", "strong", "weak")
BUILDERS = ("python", "trtexec")
STRONG_TYPING_FROM = (10, 0)
STRONG_TYPING_DEFAULT_FROM = (10, 12)  # weak typing is deprecated from here (removed in 11)


def default_timing_cache(out_dir: Path, trt_version: str, gpu_name: str) -> Path:
    """One timing cache per TensorRT version and GPU (a cache from another one is rejected), shared
    by every build in `out_dir`."""
    return Path(out_dir) / f"timing-trt{trt_version}-{gpu_tag(gpu_name)}.cache"


def resolve_typing(typing: str, trt_version: str) -> str:
    v = version_tuple(trt_version)[:2]
    if typing == "auto":
        return "strong" if v >= STRONG_TYPING_DEFAULT_FROM else "weak"
    if typing == "strong" and v < STRONG_TYPING_FROM:
        raise UserError(f"TensorRT {trt_version} has no strongly typed networks (10.0 and later): --typing weak")
    if typing == "weak" and v >= WEAK_TYPING_UNTIL:
        raise UserError(f"TensorRT {trt_version} is strongly typed only (11.0 removed weak typing): --typing strong")
    if typing not in TYPINGS:
        raise UserError(f"unknown typing {typing!r}: {', '.join(TYPINGS)}")
    return typing


def _settings(onnx: OnnxArtifact, rung: str, typing: str, profile: DeviceProfile, workspace_mib: Optional[int],
              timing_cache: Path) -> BuildSettings:
    decompose = TARGETS[onnx.target].decompose_layernorm if onnx.target in TARGETS else True
    pin_set = PIN_SET[rung]
    regions = pins.pin_regions(pin_set, decompose) if pin_set else ()
    if pin_set and typing == "strong":
        from anydepth_edge.typed_fp16 import typed_fp16_regions

        regions = typed_fp16_regions(decompose, pin_set)
    names = [n for region_nodes in (onnx.pin_nodes or {"_": onnx.fp32_nodes}).values() for n in region_nodes]
    return BuildSettings(
        precision="fp32" if rung == "fp32" else "fp16",
        workspace_mib=workspace_mib or profile.workspace_mib,
        builder_optimization_level=profile.builder_optimization_level,
        pin_regions=regions,
        pin_names=pins.pinned_names(names, regions) if typing == "weak" else [],
        timing_cache=timing_cache,
        strongly_typed=typing == "strong",
    )


def _build(onnx_path: Path, settings: BuildSettings, builder: str, trt, notify: Notify, run, trtexec: str,
           profile: DeviceProfile) -> BuildOutput:
    try:
        if builder == "trtexec":
            return build_engine_trtexec(onnx_path, settings, trt.__version__, trtexec=trtexec, notify=notify, run=run)
        return build_engine_python(onnx_path, settings, trt=trt, notify=notify)
    except (MemoryError, BuildOutOfMemory) as e:
        raise UserError(f"{e or 'out of memory'} while building {onnx_path.name}: {profile.memory_hint}") from None


@dataclass
class Job:
    """What every rung of one `ensure_engine` call shares."""

    onnx: OnnxArtifact
    onnx_sha: str
    engines_dir: Path
    profile: DeviceProfile
    typing: str
    builder: str
    workspace_mib: Optional[int]
    timing_cache: Path
    force: bool
    trt: Any
    cuda: Any
    platform: Any
    host: TrtHost
    bundle: Optional[Bundle]
    warning: Optional[str]
    notify: Notify
    run: Any
    trtexec: str


@dataclass
class Rung:
    rung: str
    record: EngineArtifact
    reused: bool

    @property
    def passed(self) -> bool:
        return self.record.status == "verified"

    def summary(self) -> Dict[str, Any]:
        v = self.record.verification or {}
        return {"rung": self.rung, "status": self.record.status, "typing": self.record.typing,
                "why": v.get("why", "no reference bundle"), "per_input": v.get("per_input", {})}


def _source_onnx(job: Job, rung: str, settings: BuildSettings, tmp: Path) -> Path:
    """What TensorRT parses for a rung: the FP32 export, or its strongly typed FP16 form (the one
    the export wrote when its regions match, else converted here; that needs the onnx package)."""
    if not (settings.strongly_typed and settings.precision == "fp16"):
        return job.onnx.path
    typed = job.onnx.typed_fp16 or {}
    if list(typed.get("fp32_regions", [])) == list(settings.pin_regions) and job.onnx.companion_matches("typed_fp16"):
        return job.onnx.companion("typed_fp16")
    try:
        import onnx
    except ImportError:
        raise UserError(f"the {rung} rung builds a strongly typed FP16 graph, which needs the onnx package here: "
                        "pip install onnx (or --typing weak)") from None
    from anydepth_edge.typed_fp16 import to_typed_fp16

    converted, _ = to_typed_fp16(onnx.load(str(job.onnx.path)), settings.pin_regions)
    onnx.save(converted, str(tmp))
    return tmp


def _verify(job: Job, record: EngineArtifact) -> None:
    """Run the engine on the reference bundle; the verdict goes into its record."""
    if job.bundle is None:
        return
    from anydepth_edge.engines.trt_backend import TensorRTBackend

    job.notify(f"{record.path.name}: checking its output against FP32 ({len(job.bundle.names)} reference inputs)")
    backend = TensorRTBackend(record.path, trt=job.trt, cuda=job.cuda, platform=job.platform)
    try:
        verdict: Verdict = verify_backend(backend, job.bundle, record.rung)
    finally:
        backend.close()
    record.verification = {**verdict.to_dict(), "bundle_sha256": job.onnx.reference["sha256"]}


def _up_to_date(job: Job, old: Optional[EngineArtifact], settings: BuildSettings) -> bool:
    if job.force or old is None or old.onnx_sha256 != job.onnx_sha or old.settings != settings.to_dict():
        return False
    if engine_problem(old, job.host) is not None:
        return False
    if old.status == "failed" and job.bundle is not None:  # known bad on this board: not rebuilt in vain
        return (old.verification or {}).get("bundle_sha256") == job.onnx.reference["sha256"]
    return old.content_matches()


def _ensure_rung(job: Job, rung: str) -> Rung:
    trt, host = job.trt, job.host
    path = engine_path(job.onnx.path, rung, trt.__version__, host.gpu_name, job.engines_dir)
    settings = _settings(job.onnx, rung, job.typing, job.profile, job.workspace_mib, job.timing_cache)
    old = EngineArtifact.find(path, require_file=False)  # a failed rung's record outlives its engine
    if _up_to_date(job, old, settings):
        if old.status == "unverified" and job.bundle is not None:
            _verify(job, old)
            old.write_sidecar()
        return Rung(rung, old, True)
    t0 = time.perf_counter()
    job.engines_dir.mkdir(parents=True, exist_ok=True)
    # a converted graph, never kept (named like atomic_path's, so a killed build's copy is cleaned)
    tmp = job.engines_dir / f"{write_partial_prefix(path.stem + '.typed.onnx', os.getpid())}graph.onnx.partial"
    try:
        source = _source_onnx(job, rung, settings, tmp)
        job.notify(f"building the {rung} rung ({job.typing}ly typed)")
        result = _build(source, settings, job.builder, trt, job.notify, job.run, job.trtexec, job.profile)
    finally:
        if tmp.exists():
            tmp.unlink()
    onnx, platform = job.onnx, job.platform
    record = EngineArtifact(
        tensorrt_version=trt.__version__, gpu_name=host.gpu_name, onnx_path=str(onnx.path), onnx_sha256=job.onnx_sha,
        settings=settings.to_dict(), rung=rung, typing=job.typing, compute_capability=list(host.compute_capability or ()),
        jetson={"model": platform.device_model, "l4t": platform.l4t, "jetpack": platform.jetpack}
        if platform.is_jetson else None,
        device_profile=job.profile.name, model=onnx.model, decoder=onnx.decoder, resolution=list(onnx.res), target=onnx.target,
        inputs=onnx.inputs, outputs=onnx.outputs, mean=onnx.mean, std=onnx.std, builder=job.builder,
        trtexec_command=result.command, precision_constraints=result.constraints,
        pinned_layers=len(result.pinned_layers), build_seconds=round(time.perf_counter() - t0, 1),
        device_memory_bytes=result.device_memory_bytes, memory_log=result.memory_lines[-20:],
        warnings=([job.warning] if job.warning else []) + result.warnings, toolkit_version=__version__, path=path,
    )
    write_bytes_atomic(path, result.engine)
    record.engine_sha256 = sha256_file(path)
    if result.inspector_json:
        write_text_atomic(inspector_path(path), result.inspector_json)
    write_text_atomic(build_log_path(path), "\n".join(result.log) + "\n")
    if result.timing_cache is not None and settings.timing_cache is not None:
        write_bytes_atomic(settings.timing_cache, result.timing_cache)
    record.write_sidecar()
    _verify(job, record)
    if record.status == "failed":
        path.unlink()  # a wrong engine is never left where `run` could pick it up; its record stays
        record.engine_sha256 = ""
    record.write_sidecar()
    return Rung(rung, record, False)


def _ladder_failure(job: Job, rungs: List[Rung]) -> UserError:
    v = version_tuple(job.trt.__version__)[:2]
    known = f" (TensorRT {v[0]}.{v[1]} is known to miscompile DINOv3: NVIDIA/TensorRT#4723, #4742)" \
        if v in KNOWN_BAD_DINOV3 else ""
    tried = "; ".join(f"{r.rung}: {r.summary()['why']}" for r in rungs)
    return UserError(f"no engine of {job.onnx.path.name} agrees with FP32 on TensorRT {job.trt.__version__}{known}: "
                     f"{tried}. Use a JetPack with a newer TensorRT, export with --dysample gather, or run on "
                     "ONNX Runtime (--backend ort)")


def ensure_engine(onnx_path, engines_dir, profile: DeviceProfile, precision: str = "auto", typing: str = "auto",
                  builder: str = "python", workspace_mib: Optional[int] = None, timing_cache: Optional[Path] = None,
                  force: bool = False, trt=None, cuda=None, platform=None, notify: Notify = lambda s: None,
                  run=subprocess.run, trtexec: str = TRTEXEC_JETSON) -> Tuple[EngineArtifact, bool]:
    """(the kept engine's record, reused?) for `onnx_path` on this machine: the first rung of the
    precision ladder (or the forced one) whose output agrees with FP32."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: {', '.join(PRECISIONS)}")
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
    bundle = Bundle.read(onnx.companion("reference")) if onnx.companion_matches("reference") else None
    if bundle is None:
        notify(f"{onnx_path.name} has no (intact) reference bundle: its engine cannot be verified; re-export it")
    job = Job(onnx, sha256_file(onnx_path), engines_dir, profile, resolve_typing(typing, trt.__version__), builder,
              workspace_mib, timing_cache or default_timing_cache(engines_dir, trt.__version__, host.gpu_name), force,
              trt, cuda, platform, host, bundle, warning, notify, run, trtexec)
    rungs: List[Rung] = []
    for rung in (LADDER if precision == "auto" else (precision,)):
        rungs.append(_ensure_rung(job, rung))
        if rungs[-1].passed or bundle is None:
            break
    kept = next((r for r in rungs if r.passed or bundle is None), None)
    if kept is None:
        raise _ladder_failure(job, rungs)
    ladder = [r.summary() for r in rungs]
    if kept.record.ladder != ladder:
        kept.record.ladder = ladder
        kept.record.write_sidecar()
    return kept.record, kept.reused and all(r.reused for r in rungs)
