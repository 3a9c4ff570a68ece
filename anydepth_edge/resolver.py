"""Which file runs on which backend, and why: the one resolver that `run` (and `eval`, `run --ros2`),
`bench`, `build FOLDER` (the container entrypoint's engine step), and `doctor` ask. Torch-free,
Python 3.8.

The policy (README "Which model runs"):
1. `--model FILE` runs that file. Without it: the newest engine of the size that this TensorRT, GPU
   and L4T can load and that agreed with FP32 on this board (SDT preferred when both decoders have
   one); else the newest export of the size (SDT in its target's own DySample form preferred).
2. An export on TensorRT gets its engine: reused when up to date, else built, and the build is
   announced before it starts (minutes on an Orin Nano).
3. When the precision ladder finds no engine that agrees with FP32: `--backend auto` runs the export
   on ONNX Runtime instead (CUDA when it has it, else the CPU), with one warning; `--backend trt`
   stops with the ladder's error, and so does `bench` (one table, one backend).
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from anydepth_edge.engines import BackendChoice, choose_backend, ort_cuda
from anydepth_edge.engines.compat import TrtHost, engine_problem
from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import TYPED_FP16_SUFFIX, EngineArtifact, OnnxArtifact, export_files, onnx_stem
from anydepth_edge.resolution import res_tag
from anydepth_edge.targets import TARGETS, check_target_for_tensorrt

Warn = Optional[Callable[[str], None]]
Notify = Callable[[str], None]
# Several models for one size (export --decoder all writes SDT and DPT): run the product, SDT.
PREFERRED_DECODER = "sdt"
OLD_SDT_LABEL = " + SDT"  # engines built before sidecars recorded the decoder: their model label says it


@dataclass(frozen=True)
class Found:
    """A model file and why it was picked (printed by `run`, `doctor`)."""

    path: Path
    why: str


@dataclass(frozen=True)
class Plan:
    """What `run` opens: this artifact, on this backend; `why` is the line it prints."""

    artifact: Path
    choice: BackendChoice
    why: str


# ----------------------------------------------------------------------------- judging one file

def judge_export(path: Path) -> Tuple[Optional[OnnxArtifact], str, str]:
    """(record, '', '') for an export `run` would accept, else (None, problem, fix)."""
    record = OnnxArtifact.find(path)
    if record is None:
        return None, "no readable sidecar beside it", OnnxArtifact._generic_rebuild(path)
    if record.onnx_sha256 and not record.content_matches():
        return None, "not the file its sidecar describes (sha256 differs)", record.rebuild_command()
    return record, "", ""


def judge_engine(path: Path, host: TrtHost, check_content: bool = True) -> Tuple[Optional[EngineArtifact], str, str]:
    """(record, '', '') for an engine that can run on `host` (compat.engine_problem), else
    (record or None, problem, fix). Its FP32 verification is judged by the caller."""
    record = EngineArtifact.find(path)
    if record is None:
        return None, "no readable sidecar beside it", EngineArtifact._generic_rebuild(path)
    problem = engine_problem(record, host)
    if not problem and check_content and record.engine_sha256 and not record.content_matches():
        problem = "not the engine its sidecar describes (sha256 differs)"
    return (record, problem, record.rebuild_command()) if problem else (record, "", "")


# ----------------------------------------------------------------------------- picking from folders

def _readable(folder: Path, pattern: str, warn: Warn) -> Dict[Path, float]:
    """The files matching `pattern` in `folder` that can be read, with their mtimes; entries that
    cannot be (a dangling symlink, a symlink loop) are skipped with one warning."""
    found: Dict[Path, float] = {}
    skipped: List[str] = []
    try:
        candidates = sorted(Path(folder).glob(pattern))
    except OSError:  # the folder itself is a loop or unreadable: nothing there to use
        candidates = []
    for p in candidates:
        try:
            st = p.stat()  # follows symlinks: ELOOP / ENOENT for a loop or a dangling link
        except OSError as e:
            skipped.append(f"{p.name} ({e.strerror or e})")
            continue
        if stat.S_ISREG(st.st_mode) and os.access(str(p), os.R_OK):
            found[p] = st.st_mtime
        else:
            skipped.append(f"{p.name} (not a readable file)")
    if skipped and warn:
        warn(f"skipped in {folder}/: {', '.join(skipped)}")
    return found


def _newest(mtimes: Dict[Path, float], paths) -> Optional[Path]:
    paths = list(paths)
    return max(paths, key=lambda p: mtimes[p]) if paths else None


def engine_files(engines_dir: Path, warn: Warn = None) -> List[Path]:
    """The engines in a folder that can be read, sorted (those that cannot: one warning)."""
    return sorted(_readable(engines_dir, "*.engine", warn))


def _pick(mtimes: Dict[Path, float], preferred: List[Path], matches: List[Path], what: str) -> Tuple[Optional[Path], str]:
    """(the newest preferred file, else the newest match; why it was picked)."""
    path, newest = _newest(mtimes, preferred or matches), _newest(mtimes, matches)
    if path is None:
        return None, ""
    return path, (f"the newest {what}" if path == newest else f"SDT's {what}, preferred over the newer {newest.name}")


def find_engine(res: Tuple[int, int], engines_dir: Path, host: TrtHost, warn: Warn = None,
                allow_unverified: bool = False) -> Optional[Path]:
    """The newest engine for `res` that can run on `host` and whose output was verified against FP32
    on this board (unless `allow_unverified`); SDT's when there are several."""
    return _find_engine(res, engines_dir, host, warn, allow_unverified)[0]


def _find_engine(res, engines_dir: Path, host: TrtHost, warn: Warn, allow_unverified: bool) -> Tuple[Optional[Path], str]:
    mtimes = _readable(engines_dir, "*.engine", warn)
    matches, preferred, unverified = [], [], []
    for p in mtimes:
        record, problem, _ = judge_engine(p, host, check_content=False)  # the content is checked when it loads
        if record is None or problem or record.resolution != list(res):
            continue
        if record.status != "verified" and not allow_unverified:
            unverified.append(f"{p.name} ({record.status})")
            continue
        matches.append(p)
        if record.decoder == PREFERRED_DECODER or (not record.decoder and (record.model or "").endswith(OLD_SDT_LABEL)):
            preferred.append(p)
    if unverified and warn:
        warn(f"not using {', '.join(unverified)}: an engine must agree with FP32 first (anydepth-edge verify "
             "ENGINE, or --allow-unverified)")
    return _pick(mtimes, preferred, matches, f"engine for {res_tag(res)} verified on this board")


def find_onnx(res: Tuple[int, int], export_dir: Path, warn: Warn = None) -> Optional[Path]:
    """The newest export for `res`; SDT in its target's own DySample form when there are several."""
    return _find_onnx(res, export_dir, warn)[0]


def _find_onnx(res, export_dir: Path, warn: Warn) -> Tuple[Optional[Path], str]:
    mtimes = {p: t for p, t in _readable(export_dir, "*.onnx", warn).items() if not p.name.endswith(TYPED_FP16_SUFFIX)}
    matches, preferred = [], []
    for p in mtimes:
        record = OnnxArtifact.find(p)
        if record is not None and record.res == tuple(res):
            matches.append(p)
            if record.decoder == PREFERRED_DECODER and record.target in TARGETS and record.dysample == TARGETS[record.target].sampler:
                preferred.append(p)
    return _pick(mtimes, preferred, matches, f"export for {res_tag(res)}")


def find_model(res: Tuple[int, int], engines_dir: Path, export_dir: Path, host: Optional[TrtHost] = None,
               warn: Warn = None, allow_unverified: bool = False) -> Found:
    """Policy step 1 without --model. `host` when TensorRT runs here: engines are looked for first."""
    tag = res_tag(res)
    if host is not None:
        engine, why = _find_engine(res, engines_dir, host, warn, allow_unverified)
        if engine is not None:
            return Found(engine, why)
    onnx, why = _find_onnx(res, export_dir, warn)
    if onnx is not None:
        return Found(onnx, ("no usable engine for it, " if host is not None else "") + why)
    hint = f"anydepth-edge export --res {tag}"
    if host is not None:
        hint += f", then anydepth-edge build {export_dir}/anydepth-sdt-vits-{tag}-<target>.onnx"
    raise UserError(f"no model for {tag} in {engines_dir}/ or {export_dir}/: run {hint} (or pass --model)")


def exact_export(export_dir: Path, decoder: str, encoder: str, res, target: str, dysample: str,
                 checkpoint_sha256: str) -> Optional[Path]:
    """`bench`'s export: the one of exactly this configuration and checkpoint whose file is the one its
    sidecar describes, else None (export it again)."""
    path = Path(export_dir) / (onnx_stem(decoder, encoder, res, target, dysample, checkpoint_sha256) + ".onnx")
    record = OnnxArtifact.find(path)
    if record is None or record.checkpoint.sha256 != checkpoint_sha256 or not record.content_matches():
        return None
    return path


def exports_for_tensorrt(export_dir, trt_version: str, resolutions: Sequence[Tuple[int, int]] = (),
                         decoders: Sequence[str] = ()) -> List[Path]:
    """`build FOLDER` (and so the container entrypoint): the GridSample-form exports whose graph is
    the one this TensorRT's target asks for (trt8.6 and trt10 exports are the same graph), of these
    resolutions and decoders when given."""
    found = []
    for path in export_files(export_dir):
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
        if decoders and onnx.decoder not in decoders:
            continue
        found.append(path)
    return found


# ----------------------------------------------------------------------------- engines for exports

def engine_for_export(onnx: Path, engines_dir: Path, device: str = "auto", precision: str = "auto",
                      notify: Notify = lambda s: None) -> EngineArtifact:
    """Policy step 2: the export's verified engine, reused when up to date, else built now (said first)."""
    from anydepth_edge.engines.ensure import ensure_engine
    from anydepth_edge.engines.trt_common import device_profile

    notify(f"engine for {onnx.name}: reused when up to date, else built once and checked against FP32 "
           "(minutes on an Orin Nano)")
    record, _ = ensure_engine(onnx, Path(engines_dir), device_profile(device), precision=precision, notify=notify)
    return record


def fallback_backend() -> BackendChoice:
    """Policy step 3's next backend for an export: ONNX Runtime, on CUDA when it has it."""
    return choose_backend("ort") if ort_cuda() else choose_backend("auto", device="cpu")


def this_trt_host() -> TrtHost:
    from anydepth_edge.engines.cuda_api import load_cuda_api
    from anydepth_edge.engines.trt_common import import_tensorrt

    cuda = load_cuda_api()
    try:
        return TrtHost.current(import_tensorrt(), cuda)
    finally:
        cuda.close()


def _model_file(model: Optional[str], res: str, choice: BackendChoice, engines_dir: str, export_dir: str,
                warn: Warn, allow_unverified: bool) -> Found:
    if model is None:
        from anydepth_edge.resolution import parse_res

        host = this_trt_host() if choice.kind == "tensorrt" else None
        return find_model(parse_res(res), Path(engines_dir), Path(export_dir), host, warn=warn, allow_unverified=allow_unverified)
    path = Path(model)
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".onnx", ".engine"))[:3]
        raise UserError(f"--model {model} is a folder: give a model file in it ("
                        + (", ".join(found) if found else "it holds no .onnx or .engine")
                        + "), or leave --model out to pick from --export-dir / --engines-dir")
    if not path.is_file():
        raise UserError(f"--model {model}: file not found")
    return Found(path, "--model")


def plan_run(model: Optional[str], res: str, backend: str, engines_dir: str, export_dir: str, warn: Callable[[str], None],
             notify: Notify = lambda s: None, allow_unverified: bool = False) -> Plan:
    """The whole policy for `run`: the file, its backend, and the line that says why."""
    requested = backend or "auto"
    choice = choose_backend(requested)
    found = _model_file(model, res, choice, engines_dir, export_dir, warn, allow_unverified)
    path, why = found.path, found.why
    if path.suffix == ".engine":
        if choice.kind != "tensorrt":
            if requested != "auto":
                raise UserError(f"--backend {backend} runs an .onnx export, not a TensorRT engine: pass --model "
                                f"<export>.onnx, or --backend trt for {path.name}")
            choice = choose_backend("trt")  # an engine needs TensorRT; a clear error if absent
    elif path.suffix != ".onnx":
        raise UserError(f"--model {path}: expected an .engine or .onnx file")
    elif choice.kind == "tensorrt":
        try:
            path = engine_for_export(path, Path(engines_dir), notify=notify).path
            why += ", its engine"
        except UserError as e:
            if requested != "auto":
                raise
            warn(f"{e}; running {path.name} on the next backend instead")
            choice, why = fallback_backend(), why + ", no engine agrees with FP32"
    return Plan(path, choice, f"{choice.label} on {path} ({why}; {choice.reason})")
