"""Engines for many exports at once: the `build` verb (a file or a folder of exports), export's
`--engine auto|always`. Which exports a folder builds: resolver.exports_for_tensorrt; each engine
comes from ensure.ensure_engine; views.print_engines shows them."""

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from anydepth_edge.engines.ensure import ensure_engine
from anydepth_edge.engines.trt_build import Notify
from anydepth_edge.engines.trt_common import import_tensorrt
from anydepth_edge.errors import NothingToDo, UserError
from anydepth_edge.artifacts import EngineArtifact
from anydepth_edge.targets import target_for_tensorrt_version


def build_engines(onnx: Path, engines_dir: Path, device: str = "auto", precision: str = "auto", typing: str = "auto",
                  builder: str = "python", workspace_mib: Optional[int] = None, timing_cache: Optional[Path] = None,
                  force: bool = False, resolutions: Sequence[Tuple[int, int]] = (), decoders: Sequence[str] = (),
                  trt=None, cuda=None,
                  notify: Notify = lambda s: None) -> List[Tuple[EngineArtifact, bool]]:
    """`anydepth-edge build FILE|FOLDER`: ensure an engine for one export, or for every export in a
    folder made for this TensorRT's target (the container entrypoint's use). Returns (record,
    reused) per engine (views.print_engines renders them)."""
    from anydepth_edge.fileio import ensure_writable_dir
    from anydepth_edge.engines.trt_common import device_profile

    onnx = Path(onnx)
    if not onnx.exists():
        raise UserError(f"ONNX file not found: {onnx}")
    profile = device_profile(device)
    trt = trt or import_tensorrt()
    if onnx.is_dir():
        from anydepth_edge.resolver import exports_for_tensorrt

        paths = exports_for_tensorrt(onnx, trt.__version__, resolutions, decoders)
        if not paths:
            target = target_for_tensorrt_version(trt.__version__)
            sizes = ", ".join(f"{h}x{w}" for h, w in resolutions) or "any size"
            which = "/".join(d.upper() for d in decoders) + " " if decoders else ""
            raise NothingToDo(f"no {which}export for TensorRT {trt.__version__} (target {target}, {sizes}) in {onnx}: "
                            f"anydepth-edge export --decoder {'all' if len(decoders) != 1 else decoders[0]} --target {target}"
                            + "".join(f" --res {h}x{w}" for h, w in resolutions)
                            + " (the export image or a workstation), then copy the files there")
    else:
        paths = [onnx]
    if cuda is None:
        from anydepth_edge.engines.cuda_api import load_cuda_api

        cuda = load_cuda_api()
    engines_dir = ensure_writable_dir(engines_dir)
    built = []
    for i, path in enumerate(paths, 1):
        prefix = f"[{i}/{len(paths)}] {path.name}" if len(paths) > 1 else path.name
        notify(f"{prefix}: TensorRT {trt.__version__} engine (reused when up to date; minutes on an Orin Nano)")
        record, reused = ensure_engine(path, engines_dir, profile, precision=precision, typing=typing, builder=builder,
                                       workspace_mib=workspace_mib, timing_cache=timing_cache, force=force,
                                       trt=trt, cuda=cuda, notify=lambda text, p=prefix: notify(f"{p}: {text}"))
        built.append((record, reused))
    return built


def check_engine_mode(mode: str) -> None:
    """`export --engine always` where TensorRT cannot run: one error before any export work."""
    from anydepth_edge.engines import tensorrt_ready

    if mode == "always" and tensorrt_ready() is None:
        from anydepth_edge.engines.trt_common import TENSORRT_MISSING
        from anydepth_edge.errors import HardwareMissing

        raise HardwareMissing("--engine always: " + TENSORRT_MISSING)


def engines_after_export(onnx_paths: Sequence[Path], mode: str, engines_dir: Path,
                         notify: Notify = lambda s: None) -> List[Tuple[EngineArtifact, bool]]:
    """`export --engine auto|never|always`: engines for fresh TensorRT exports where TensorRT runs."""
    if mode == "never" or not onnx_paths:
        return []
    from anydepth_edge.engines import tensorrt_ready

    check_engine_mode(mode)
    if tensorrt_ready() is None:
        notify("TensorRT is not importable here: ONNX only (build the engine on the robot: anydepth-edge build FILE)")
        return []
    built: List[Tuple[EngineArtifact, bool]] = []
    for path in onnx_paths:
        built += build_engines(Path(path), engines_dir, notify=notify)
    return built
