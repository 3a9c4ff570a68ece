"""Which model `run` uses without --model: the newest engine for this resolution that this
TensorRT, GPU and L4T can load, else the newest ONNX export, else the commands that make one.
Entries that cannot be read (a dangling symlink, a symlink loop) are skipped with one warning.
Torch-free, Python 3.8."""

import os
import stat
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.records import TYPED_FP16_SUFFIX, EngineArtifact, OnnxArtifact
from anydepth_edge.resolution import res_tag
from anydepth_edge.targets import TARGETS

Warn = Optional[Callable[[str], None]]
# Several models for one size (export --decoder all writes SDT and DPT): run the product, SDT.
PREFERRED_DECODER = "sdt"
PREFERRED_DECODER_LABEL = " + SDT"  # how an engine's sidecar names it (export/onnx_export.model_label)


def _readable(folder: Path, pattern: str, warn: Warn) -> Dict[Path, float]:
    """The files matching `pattern` in `folder` that can be read, with their mtimes."""
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


def find_engine(res: Tuple[int, int], engines_dir: Path, host, warn: Warn = None,
                allow_unverified: bool = False) -> Optional[Path]:
    """The newest engine for `res` that `compat.engine_problem` accepts on `host` (a TrtHost) and
    whose output was verified against FP32 on this board (unless `allow_unverified`)."""
    from anydepth_edge.engines.compat import engine_problem

    mtimes = _readable(engines_dir, "*.engine", warn)
    matches, preferred, unverified = [], [], []
    for p in mtimes:
        record = EngineArtifact.find(p)
        if record is None or record.resolution != list(res) or engine_problem(record, host):
            continue
        if record.status != "verified" and not allow_unverified:
            unverified.append(f"{p.name} ({record.status})")
            continue
        matches.append(p)
        if (record.model or "").endswith(PREFERRED_DECODER_LABEL):
            preferred.append(p)
    if unverified and warn:
        warn(f"not using {', '.join(unverified)}: an engine must agree with FP32 first (anydepth-edge verify "
             "ENGINE, or --allow-unverified)")
    return _newest(mtimes, preferred or matches)


def find_onnx(res: Tuple[int, int], export_dir: Path, warn: Warn = None) -> Optional[Path]:
    mtimes = {p: t for p, t in _readable(export_dir, "*.onnx", warn).items() if not p.name.endswith(TYPED_FP16_SUFFIX)}
    matches, preferred = [], []
    for p in mtimes:
        record = OnnxArtifact.find(p)
        if record is not None and record.res == tuple(res):
            matches.append(p)
            # prefer SDT (the product) in its target's own DySample form when several match
            if record.decoder == PREFERRED_DECODER and record.target in TARGETS and record.dysample == TARGETS[record.target].sampler:
                preferred.append(p)
    return _newest(mtimes, preferred or matches)


def find_model(res: Tuple[int, int], engines_dir: Path, export_dir: Path, host=None, warn: Warn = None,
               allow_unverified: bool = False) -> Path:
    """`host` (a TrtHost) when TensorRT runs here: engines are looked for first."""
    if host is not None:
        engine = find_engine(res, engines_dir, host, warn, allow_unverified)
        if engine is not None:
            return engine
    onnx = find_onnx(res, export_dir, warn)
    if onnx is not None:
        return onnx
    tag = res_tag(res)
    hint = f"anydepth-edge export --res {tag}"
    if host is not None:
        hint += f", then anydepth-edge build {export_dir}/anydepth-sdt-vits-{tag}-<target>.onnx"
    raise UserError(f"no model for {tag} in {engines_dir}/ or {export_dir}/: run {hint} (or pass --model)")
