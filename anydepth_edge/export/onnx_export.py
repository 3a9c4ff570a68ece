"""PyTorch -> ONNX for one (model, resolution, target), with every TensorRT trap handled here.

Steps: export form (constant DySample grids, baked RoPE, plain attention) -> TorchScript exporter
at the target's opset -> onnxslim -> stable names for the FP32-pinned nodes -> onnx.checker
(full) + shape inference -> lint for the target -> parity against the PyTorch model on ONNX
Runtime CPU (random input and a real photo) -> FP16 readiness (emulated) -> atomic write of the
ONNX (facts in metadata_props) and its JSON sidecar.
"""

import hashlib
import inspect
import io
import json
import platform
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from anydepth_edge import __version__
from anydepth_edge.artifacts import (
    atomic_path,
    read_json,
    sha256_file,
    write_json_atomic,
)
from anydepth_edge.errors import UserError
from anydepth_edge.export.targets import Target, onnx_stem
from anydepth_edge.specs import IMAGENET_MEAN, IMAGENET_STD

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
DYSAMPLE_PREFIX = "DySampleFP32/"
LAYERNORM_PREFIX = "LayerNormFP32/"
PARITY_LIMIT = 1e-4  # max |onnx - torch| / max |torch|
SIDECAR_SCHEMA = "anydepth-edge/onnx/1"


@dataclass
class ExportResult:
    onnx_path: Path
    sidecar: Dict[str, Any]
    reused: bool = False
    seconds: float = 0.0


@dataclass
class ExportJob:
    model: torch.nn.Module  # training form, eval mode, weights loaded
    res: Tuple[int, int]
    target: Target
    checkpoint: Dict[str, Any]  # {"path", "format", "sha256"}
    out_dir: Path
    dysample: str = "grid_sample"
    force: bool = False
    fp16_check: bool = True
    steps: List[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        cfg = self.model.config
        return onnx_stem(cfg.decoder, cfg.encoder, self.res, self.target.name, self.dysample)

    @property
    def onnx_path(self) -> Path:
        return self.out_dir / f"{self.stem}.onnx"

    def cache_key(self) -> str:
        facts = {
            "config": self.model.config.to_dict(), "res": list(self.res), "target": self.target.name,
            "opset": self.target.opset, "dysample": self.dysample, "checkpoint": self.checkpoint.get("sha256"),
            "toolkit": __version__, "schema": SIDECAR_SCHEMA, "fp16_check": self.fp16_check,
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- graph building

def trace_to_onnx(export_model: torch.nn.Module, res: Tuple[int, int], opset: int):
    """TorchScript exporter (dynamo=False) at an explicit opset; returns an onnx.ModelProto."""
    import onnx

    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, res[0], res[1])
    kwargs = dict(opset_version=opset, do_constant_folding=True, input_names=[INPUT_NAME],
                  output_names=[OUTPUT_NAME], dynamic_axes=None)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.9 defaults to dynamo (and opset 20); older torch has no switch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-level shape checks (static here)
        torch.onnx.export(export_model, (dummy,), buf, **kwargs)
    return onnx.load_from_string(buf.getvalue())


def slim(model):
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


_DYSAMPLE_SCOPE = re.compile(r"^/(?P<where>.*?)/(?P<part>coords|sampler)/(?P<rest>.*)$")


def name_pinned_nodes(model, layernorm_modules: List[str], pin_layernorm: bool) -> List[str]:
    """Rename DySample coordinate/sampler nodes (and LayerNorm pieces when decomposed) under stable
    prefixes the engine builder looks for; returns the FP32 node names.

    TorchScript scopes look like `/decoder/upsample_1/dysample1/dysample1.0/coords/Mul`.
    """
    pinned = []
    ln_scopes = [("/" + m.replace(".", "/") + "/", m) for m in layernorm_modules]
    renames = {}
    for node in model.graph.node:
        m = _DYSAMPLE_SCOPE.match(node.name or "")
        if m and "dysample" in m.group("where"):
            where = re.sub(r"/dysample(\d)/dysample\d\.0$", r"/dysample\1", m.group("where"))
            renames[node.name] = f"{DYSAMPLE_PREFIX}{where.replace('decoder/', '')}/{m.group('part')}/{m.group('rest')}"
            continue
        if pin_layernorm:
            norm_name = _fix_scope(node.name or "")
            for scope, module in ln_scopes:
                if scope in norm_name:
                    renames[node.name] = f"{LAYERNORM_PREFIX}{module}/{node.name.rsplit('/', 1)[-1]}"
                    break
    used = set()
    for node in model.graph.node:
        if node.name in renames:
            new = renames[node.name]
            k = 1
            while new in used:
                k += 1
                new = f"{renames[node.name]}_{k}"
            used.add(new)
            node.name = new
            pinned.append(new)
    return pinned


def _fix_scope(name: str) -> str:
    # Scopes join ModuleList indices with dots ("blocks.0"); turn them into path parts.
    return re.sub(r"\.(\d+)", r"/\1", name)


def layernorm_scopes(model: torch.nn.Module) -> List[str]:
    """LayerNorm modules as they appear in export scopes (the backbone's own scope is elided)."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.LayerNorm):
            names.append(name.replace("encoder.backbone.", "encoder."))
    return names


def check_graph(model) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:
        raise UserError(f"exported graph fails onnx.checker / shape inference: {str(e).splitlines()[0][:300]}") from None


def op_counts(model) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- numerical checks

def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def parity_inputs(res: Tuple[int, int]) -> Dict[str, np.ndarray]:
    from anydepth_edge.preprocess import load_sample_image, normalise

    rng = np.random.default_rng(0)
    return {
        "random": rng.standard_normal((1, 3, res[0], res[1])).astype(np.float32),
        "image": normalise(load_sample_image(res)),
    }


def parity(model: torch.nn.Module, session, inputs: Dict[str, np.ndarray]):
    """ONNX Runtime CPU vs the PyTorch (training-form) model on the same inputs.
    Returns (figures per input, the PyTorch outputs)."""
    out, refs = {}, {}
    for name, x in inputs.items():
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        max_abs = float(np.max(np.abs(got - ref)))
        out[name] = {"max_abs": max_abs, "rel": max_abs / float(np.max(np.abs(ref))),
                     "reference_std": float(ref.std())}
        refs[name] = ref
    return out, refs


# ----------------------------------------------------------------------------- the job

def _reusable(job: ExportJob) -> Optional[Dict[str, Any]]:
    side = read_json(job.onnx_path.with_suffix(".json"))
    if not side or side.get("cache_key") != job.cache_key() or not job.onnx_path.exists():
        return None
    if side.get("onnx_sha256") != sha256_file(job.onnx_path):
        return None  # edited or damaged since it was written
    return side


def export_onnx(job: ExportJob, step: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Export one model; reuse an up-to-date artifact unless `job.force`."""
    import onnx

    from anydepth_edge.export.forms import to_export_form
    from anydepth_edge.export.lint import lint_model
    from anydepth_edge.models.flops import count_gflops, count_params

    if not job.force:
        side = _reusable(job)
        if side is not None:
            return ExportResult(job.onnx_path, side, reused=True)

    t0 = time.perf_counter()
    cfg = job.model.config
    step("export form")
    export_model = to_export_form(job.model, job.res, job.dysample)
    step(f"trace (opset {job.target.opset})")
    graph = trace_to_onnx(export_model, job.res, job.target.opset)
    nodes_before = len(graph.graph.node)
    step("onnxslim")
    graph = slim(graph)
    nodes_after = len(graph.graph.node)
    pin_ln = job.target.tensorrt and job.target.decompose_layernorm
    fp32_nodes = name_pinned_nodes(graph, layernorm_scopes(job.model), pin_ln)
    step("onnx.checker")
    check_graph(graph)
    if job.target.tensorrt:
        problems = lint_model(graph, job.target.name)
        if problems:
            shown = "; ".join(f"{p.node}: {p.message}" for p in problems[:3])
            raise UserError(f"export for {job.target.name} fails its own lint ({len(problems)} problems): {shown}")
    model_bytes = graph.SerializeToString()

    step("parity (ONNX Runtime vs PyTorch)")
    inputs = parity_inputs(job.res)
    par, refs = parity(job.model, ort_session(model_bytes), inputs)
    worst = max(v["rel"] for v in par.values())
    if worst > PARITY_LIMIT:
        raise UserError(f"ONNX output differs from PyTorch by {worst:.2e} (relative, limit {PARITY_LIMIT:.0e}): not written")
    if par["image"]["reference_std"] < 1e-6:
        from anydepth_edge.console import warn

        warn(f"{job.stem}: depth is constant on the test photo, so parity and FP16 checks prove little")

    fp16 = None
    if job.fp16_check:
        step("FP16 readiness (emulated)")
        from anydepth_edge.export.fp16 import fp16_readiness

        fp16 = fp16_readiness(export_model, torch.from_numpy(inputs["image"]), job.target.decompose_layernorm)
        fp16["method"] = ("emulated on CPU: weights and every op output rounded to FP16, FP32 inside pins; "
                          "input: the bundled photo")
        if cfg.decoder == "sdt":
            from anydepth_edge.export.fp16 import dysample_probe

            # The last DySample stage samples an (H/2, W/2) map: the largest coordinates in the model.
            fp16["dysample_probe"] = dysample_probe((job.res[0] // 2, job.res[1] // 2))
        fp16["reference_depth"] = {"mean": float(refs["image"].mean()), "std": float(refs["image"].std())}

    h, w = job.res
    sidecar: Dict[str, Any] = {
        "schema": SIDECAR_SCHEMA,
        "model": f"AnyDepth {cfg.spec.label} + {cfg.decoder.upper()}",
        "encoder": cfg.encoder,
        "decoder": cfg.decoder,
        "config": cfg.to_dict(),
        "resolution": [h, w],
        "opset": job.target.opset,
        "target": job.target.name,
        "exporter": f"torch {torch.__version__} TorchScript exporter (dynamo=False)",
        "dysample": job.dysample,
        "layernorm": "decomposed (opset 16)" if job.target.decompose_layernorm else "LayerNormalization (opset 17)",
        "inputs": [{"name": INPUT_NAME, "shape": [1, 3, h, w], "dtype": "float32", "layout": "NCHW RGB"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": [1, 1, h, w], "dtype": "float32",
                     "meaning": "affine-invariant depth, relu(x) + 0.001"}],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "checkpoint": job.checkpoint,
        "toolkit_version": __version__,
        "params": count_params(job.model),
        "gflops": {k: round(v, 3) for k, v in count_gflops(job.model, job.res).items()},
        "nodes": {"before_slim": nodes_before, "after_slim": nodes_after},
        "op_counts": op_counts(graph),
        "fp32_nodes": fp32_nodes,
        "parity": {"limit_rel": PARITY_LIMIT, "definition": "max|onnx - torch| / max|torch|", **par},
        "fp16": fp16,
        "export_seconds": None,
        "host": platform.node(),
        "cache_key": job.cache_key(),
    }
    sidecar["export_seconds"] = round(time.perf_counter() - t0, 2)
    step("write")
    _set_metadata(graph, sidecar)
    with atomic_path(job.onnx_path) as tmp:
        onnx.save(graph, str(tmp))
    sidecar["onnx_sha256"] = sha256_file(job.onnx_path)
    write_json_atomic(job.onnx_path.with_suffix(".json"), sidecar)
    return ExportResult(job.onnx_path, sidecar, seconds=sidecar["export_seconds"])


def _set_metadata(graph, sidecar: Dict[str, Any]) -> None:
    del graph.metadata_props[:]
    for key, value in sidecar.items():
        if key in ("cache_key",):
            continue
        entry = graph.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    graph.producer_name = "anydepth-edge"
    graph.producer_version = __version__
    graph.doc_string = f"{sidecar['model']} at {sidecar['resolution'][0]}x{sidecar['resolution'][1]} for {sidecar['target']}"


def export_models(
    encoder: str,
    decoders: List[str],
    resolutions: List[Tuple[int, int]],
    target: Target,
    out_dir: Path,
    checkpoint: Optional[str] = None,
    dysample: str = "grid_sample",
    force: bool = False,
    fp16_check: bool = True,
    warn: Optional[Callable[[str], None]] = None,
    progress=None,
) -> List[ExportResult]:
    """Export every (decoder, resolution); the model is loaded once per decoder."""
    from anydepth_edge.artifacts import ensure_writable_dir
    from anydepth_edge.models.checkpoints import resolve_model

    out_dir = ensure_writable_dir(out_dir)
    results = []
    total = len(decoders) * len(resolutions)
    task = progress.add_task("export", total=total) if progress is not None else None
    for decoder in decoders:
        model, report = resolve_model(checkpoint, encoder, decoder, warn=warn)
        for res in resolutions:
            job = ExportJob(model, res, target, report.describe(), out_dir, dysample=dysample, force=force,
                            fp16_check=fp16_check)

            def step(text, job=job):
                if progress is not None:
                    progress.update(task, description=f"{job.stem}: {text}")

            results.append(export_onnx(job, step))
            if progress is not None:
                progress.advance(task)
    return results
