"""`anydepth-edge eval` wiring: the data is opened (and refused) before any model loads, then the
model and the `--against` reference, the images, the tables and the record. Python 3.8."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import TYPED_FP16_SUFFIX, export_of_typed_fp16


@dataclass
class EvalOptions:
    data: str
    dataset: str = "auto"
    split: Optional[str] = None
    depth_scale: float = 0.001
    limit: Optional[int] = None
    model: Optional[str] = None
    res: str = "256"
    backend: str = "auto"
    against: Optional[str] = None  # "fp32" or a model file
    engines_dir: str = "engines"
    export_dir: str = "export"
    out_dir: str = "eval"
    allow_unverified: bool = False


def reference_artifact(model: Optional[str], against: str) -> Path:
    """The file `--against` names: the FP32 export behind --model (an engine's ONNX, or the ONNX
    itself), or the model file given."""
    if against != "fp32":
        path = Path(against)
        if not path.is_file():
            raise UserError(f"--against {against}: give fp32 or a model file (.onnx / .engine)")
        return path
    if not model:
        raise UserError("--against fp32 needs --model (the engine or export whose FP32 export it runs)")
    path = Path(model)
    if path.name.endswith(TYPED_FP16_SUFFIX):  # the strongly typed FP16 form: its FP32 export beside it
        return export_of_typed_fp16(path)
    if path.suffix == ".engine":
        from anydepth_edge.artifacts import EngineArtifact

        engine = EngineArtifact.find(path)
        if engine is None or not Path(engine.onnx_path).is_file():
            raise UserError(f"--against fp32: {path.name}'s sidecar names no ONNX export that is still there")
        return Path(engine.onnx_path)
    return path


def run_eval(opts: EvalOptions, warn: Callable[[str], None], notify: Callable[[str], None]):
    """Returns (record, written paths)."""
    from anydepth_edge.console import progress
    from anydepth_edge.evaluation.datasets import open_dataset
    from anydepth_edge.evaluation.runner import evaluate, write_outputs
    from anydepth_edge.runtime.app import open_run_backend
    from anydepth_edge.runtime.processing import import_cv2

    cv2 = import_cv2()
    data = open_dataset(opts.data, opts.dataset, opts.split, opts.depth_scale, opts.limit, cv2)
    reference = reference_artifact(opts.model, opts.against) if opts.against else None
    models: List[Tuple[str, Any]] = []
    try:
        be, text = open_run_backend(opts.model, opts.res, opts.backend, opts.engines_dir, opts.export_dir, warn=warn,
                                    notify=notify, allow_unverified=opts.allow_unverified)
        models.append((_label(opts.model, be), be))
        notify(f"model: {text}")
        if reference is not None:
            ref, ref_text = open_run_backend(str(reference), opts.res, "ort", opts.engines_dir, opts.export_dir,
                                             warn=warn, notify=notify)
            models.append((f"fp32 {reference.name}" if opts.against == "fp32" else _label(str(reference), ref), ref))
            if models[0][0] == models[1][0] or (be.name == ref.name and Path(opts.model or "") == reference):
                raise UserError(f"--against {opts.against}: that is the model itself on the same backend: "
                                "give an engine (or --backend trt) to compare with its FP32 export")
            notify(f"against: {ref_text}")
        notify(f"{len(data)} images of {data.kind} ({data.total} listed); scale and shift fitted per image")
        for line in data.skipped:
            warn(line)
        with progress(transient=True) as prog:
            record = evaluate(data, models, prog)
    finally:
        for _, b in models:
            b.close()
    record["dataset"]["path"] = str(opts.data)
    stems = [Path(label.split()[-1]).stem for label, _ in models]
    return record, write_outputs(record, opts.out_dir, stems[:1] + (["vs", stems[1]] if len(stems) == 2 else []))


def _label(model: Optional[str], be) -> str:
    return Path(model).name if model else be.describe().get("backend", "model")
