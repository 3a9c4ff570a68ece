"""Which model `run` uses without --model: the newest engine for this resolution that this
TensorRT and GPU can load, else the newest ONNX export, else the commands that make one.
Torch-free, Python 3.8."""

from pathlib import Path
from typing import Optional, Tuple

from anydepth_edge.artifacts import read_json
from anydepth_edge.errors import UserError
from anydepth_edge.resolution import res_tag


def _newest(paths):
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def find_engine(res: Tuple[int, int], engines_dir: Path, trt_version: str, gpu_name: Optional[str]) -> Optional[Path]:
    from anydepth_edge.engines.trt_common import version_tuple

    matches = []
    for p in Path(engines_dir).glob("*.engine"):
        side = read_json(p.with_suffix(".json")) or {}
        if side.get("resolution") != list(res):
            continue
        if version_tuple(str(side.get("tensorrt_version", ""))) != version_tuple(trt_version):
            continue
        if gpu_name and side.get("gpu_name") != gpu_name:
            continue
        matches.append(p)
    return _newest(matches)


def find_onnx(res: Tuple[int, int], export_dir: Path) -> Optional[Path]:
    matches = [p for p in Path(export_dir).glob("*.onnx")
               if (read_json(p.with_suffix(".json")) or {}).get("resolution") == list(res)]
    # prefer the plain SDT GridSample exports (the product) when several match
    preferred = [p for p in matches if "-sdt-" in p.name and not p.stem.endswith("-gather")]
    return _newest(preferred or matches)


def find_model(res: Tuple[int, int], engines_dir: Path, export_dir: Path, tensorrt: Optional[str],
               gpu_name: Optional[str] = None) -> Path:
    if tensorrt:
        engine = find_engine(res, engines_dir, tensorrt, gpu_name)
        if engine is not None:
            return engine
    onnx = find_onnx(res, export_dir)
    if onnx is not None:
        return onnx
    tag = res_tag(res)
    hint = f"anydepth-edge export --res {tag}"
    if tensorrt:
        hint += f", then anydepth-edge build {export_dir}/anydepth-sdt-vits-{tag}-<target>.onnx"
    raise UserError(f"no model for {tag} in {engines_dir}/ or {export_dir}/: run {hint} (or pass --model)")
