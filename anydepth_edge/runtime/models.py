"""Which model `run` uses without --model: the newest engine for this resolution that this
TensorRT, GPU and L4T can load, else the newest ONNX export, else the commands that make one.
Torch-free, Python 3.8."""

from pathlib import Path
from typing import Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.records import EngineArtifact, OnnxArtifact
from anydepth_edge.resolution import res_tag


def _newest(paths):
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def find_engine(res: Tuple[int, int], engines_dir: Path, host) -> Optional[Path]:
    """The newest engine for `res` that `compat.engine_problem` accepts on `host` (a TrtHost)."""
    from anydepth_edge.engines.compat import engine_problem

    matches = []
    for p in Path(engines_dir).glob("*.engine"):
        record = EngineArtifact.find(p)
        if record is None or record.resolution != list(res) or engine_problem(record, host):
            continue
        matches.append(p)
    return _newest(matches)


def find_onnx(res: Tuple[int, int], export_dir: Path) -> Optional[Path]:
    matches = []
    for p in Path(export_dir).glob("*.onnx"):
        record = OnnxArtifact.find(p)
        if record is not None and record.res == tuple(res):
            matches.append(p)
    # prefer the plain SDT GridSample exports (the product) when several match
    preferred = [p for p in matches if "-sdt-" in p.name and not p.stem.endswith("-gather")]
    return _newest(preferred or matches)


def find_model(res: Tuple[int, int], engines_dir: Path, export_dir: Path, host=None) -> Path:
    """`host` (a TrtHost) when TensorRT runs here: engines are looked for first."""
    if host is not None:
        engine = find_engine(res, engines_dir, host)
        if engine is not None:
            return engine
    onnx = find_onnx(res, export_dir)
    if onnx is not None:
        return onnx
    tag = res_tag(res)
    hint = f"anydepth-edge export --res {tag}"
    if host is not None:
        hint += f", then anydepth-edge build {export_dir}/anydepth-sdt-vits-{tag}-<target>.onnx"
    raise UserError(f"no model for {tag} in {engines_dir}/ or {export_dir}/: run {hint} (or pass --model)")
