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
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from anydepth_edge import __version__, pins
from anydepth_edge.artifacts import (
    atomic_path,
    check_not_a_folder,
    non_finite_paths,
    sha256_file,
)
from anydepth_edge.errors import UserError
from anydepth_edge.agreement import Bundle, depth_metrics
from anydepth_edge.export.traffic import graph_traffic
from anydepth_edge.weights import licence_of
from anydepth_edge.onnx_fp16 import to_typed_fp16, typed_fp16_regions
from anydepth_edge.records import (
    CheckpointRef,
    OnnxArtifact,
    TensorSpec,
    onnx_stem,
    reference_path,
    sidecar_path,
    typed_fp16_path,
)
from anydepth_edge.specs import IMAGENET_MEAN, IMAGENET_STD
from anydepth_edge.targets import Target

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
PARITY_LIMIT = 1e-4  # max |onnx - torch| / max |torch|
STRONG_TYPING_TARGET = "trt10"  # strongly typed networks exist from TensorRT 10.0


@dataclass
class ExportResult:
    artifact: OnnxArtifact
    reused: bool = False
    seconds: float = 0.0

    @property
    def onnx_path(self) -> Path:
        return self.artifact.path


@dataclass
class ExportJob:
    model: torch.nn.Module  # training form, eval mode, weights loaded
    res: Tuple[int, int]
    target: Target
    checkpoint: CheckpointRef
    out_dir: Path
    dysample: str = "grid_sample"
    force: bool = False
    fp16_check: bool = True
    steps: List[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        cfg = self.model.config
        return onnx_stem(cfg.decoder, cfg.encoder_tag, self.res, self.target.name, self.dysample, self.checkpoint.sha256)

    @property
    def onnx_path(self) -> Path:
        return self.out_dir / f"{self.stem}.onnx"

    def cache_key(self) -> str:
        facts = {
            "config": self.model.config.to_dict(), "res": list(self.res), "target": self.target.name,
            "opset": self.target.opset, "dysample": self.dysample, "checkpoint": self.checkpoint.sha256,
            "toolkit": __version__, "schema": OnnxArtifact.SCHEMA, "fp16_check": self.fp16_check,
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

def _reusable(job: ExportJob) -> Optional[OnnxArtifact]:
    found = OnnxArtifact.find(job.onnx_path)
    if found is None or found.cache_key != job.cache_key() or not found.content_matches():
        return None  # another configuration, or edited / damaged since it was written
    return found


def finite_or_none(figures: Dict[str, float]) -> Dict[str, Any]:
    """Non-finite figures become null (strict JSON), with `finite: false` saying so."""
    out: Dict[str, Any] = {k: (v if np.isfinite(v) else None) for k, v in figures.items()}
    out["finite"] = all(v is not None for v in out.values())
    return out


def export_onnx(job: ExportJob, step: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Export one model; reuse an up-to-date artifact unless `job.force`."""
    import onnx

    for path in (job.onnx_path, sidecar_path(job.onnx_path)):
        check_not_a_folder(path)  # before minutes of work, not at the final rename
    from anydepth_edge.export.forms import to_export_form
    from anydepth_edge.export.lint import lint_model
    from anydepth_edge.models.flops import count_gflops, count_params

    if not job.force:
        found = _reusable(job)
        if found is not None:
            return ExportResult(found, reused=True)

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
    regions = pins.name_region_nodes(graph.graph, export_model)
    fp32_nodes = pins.pinned_names(sum(regions.values(), []), pins.pin_regions("default", job.target.decompose_layernorm))
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
    session = ort_session(model_bytes)
    par, refs = parity(job.model, session, inputs)
    if not all(np.isfinite(r).all() for r in refs.values()) or non_finite_paths(par):
        raise UserError(f"{job.stem}: the model's depth is NaN or Inf on the test inputs (non-finite weights or an "
                        "overflow): not exported")
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
        if non_finite_paths(fp16["with_pins"]):
            fp16_nan = (f"{job.stem}: FP16 (emulated, with the FP32 pins) gives NaN or Inf depth, so an FP16 engine "
                        "of this model would too")
            if job.target.tensorrt:
                raise UserError(fp16_nan + "; --no-fp16-check exports it anyway for FP32 / ONNX Runtime")
            from anydepth_edge.console import warn

            warn(fp16_nan + " (this ONNX Runtime export runs in FP32: written)")  # a fact for later, not a refusal
        fp16["with_pins"] = finite_or_none(fp16["with_pins"])
        fp16["without_pins"] = finite_or_none(fp16["without_pins"])
        fp16["method"] = ("emulated on CPU: weights and every op output rounded to FP16, FP32 inside pins; "
                          "input: the bundled photo")
        if cfg.decoder == "sdt":
            from anydepth_edge.export.fp16 import dysample_probe

            # The last DySample stage samples an (H/2, W/2) map: the largest coordinates in the model.
            fp16["dysample_probe"] = dysample_probe((job.res[0] // 2, job.res[1] // 2))
        fp16["reference_depth"] = {"mean": float(refs["image"].mean()), "std": float(refs["image"].std())}

    h, w = job.res
    artifact = OnnxArtifact(
        model=model_label(cfg), encoder=cfg.encoder, decoder=cfg.decoder,
        config=cfg.to_dict(), resolution=[h, w], opset=job.target.opset, target=job.target.name,
        family=cfg.family, output_kind=cfg.output_kind, licence=licence_of(job.checkpoint.path),
        notes=graph_notes(cfg),
        exporter=f"torch {torch.__version__} TorchScript exporter (dynamo=False)", dysample=job.dysample,
        layernorm=job.target.layernorm,
        inputs=[TensorSpec(INPUT_NAME, [1, 3, h, w], "float32", layout="NCHW RGB")],
        outputs=[TensorSpec(OUTPUT_NAME, [1, 1, h, w], "float32", meaning=OUTPUT_MEANING[cfg.output_kind])],
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), checkpoint=job.checkpoint, toolkit_version=__version__,
        params=count_params(job.model), gflops={k: round(v, 3) for k, v in count_gflops(job.model, job.res).items()},
        traffic=graph_traffic(graph),
        nodes={"before_slim": nodes_before, "after_slim": nodes_after}, op_counts=op_counts(graph),
        fp32_nodes=fp32_nodes, pin_nodes={r: names for r, names in regions.items() if names},
        parity={"limit_rel": PARITY_LIMIT, "definition": "max|onnx - torch| / max|torch|", **par}, fp16=fp16,
        host=platform.node(), cache_key=job.cache_key(), path=job.onnx_path,
    )
    step("reference bundle")
    artifact.reference = write_reference(session, job)
    if job.target.name == STRONG_TYPING_TARGET:
        step("strongly typed FP16 form")
        artifact.typed_fp16 = write_typed_fp16(graph, job, Bundle.read(reference_path(job.onnx_path)))
    artifact.export_seconds = round(time.perf_counter() - t0, 2)
    step("write")
    _set_metadata(graph, artifact)
    with atomic_path(job.onnx_path) as tmp:
        onnx.save(graph, str(tmp))
    artifact.onnx_sha256 = sha256_file(job.onnx_path)
    artifact.write_sidecar()  # last: a sidecar exists only when everything it lists does
    return ExportResult(artifact, seconds=artifact.export_seconds)


OUTPUT_MEANING = {"depth": "affine-invariant depth, relu(x) + 0.001",
                  "disparity": "relative disparity (inverse depth up to scale and shift; larger = nearer), relu(x)"}


def model_label(cfg) -> str:
    """'AnyDepth ViT-S + SDT' for the paper's DINOv3 models; 'DINOv2 ViT-B/14 + SDT' otherwise."""
    from anydepth_edge.specs import family_spec

    head = {"dav2": "DAv2-DPT"}.get(cfg.decoder, cfg.decoder.upper())
    if cfg.family == "dinov3":
        return f"AnyDepth {cfg.spec.label} + {head}"
    return f"{family_spec(cfg.family).label} {cfg.spec.label}/{cfg.patch_size} + {head}"


def graph_notes(cfg) -> List[str]:
    if cfg.decoder == "sdt" and cfg.patch_size != 16:
        return [f"SDT upsamples the patch grid 16x, i.e. 16/{cfg.patch_size} of the input on this "
                f"{cfg.patch_size}-px encoder: the graph resizes it back to the input (bilinear, align_corners=False)"]
    return []


def write_reference(session, job: "ExportJob") -> Dict[str, Any]:
    """The reference bundle (inputs + FP32 depth on ONNX Runtime) beside the export."""
    from anydepth_edge.export.reference import make_bundle

    from anydepth_edge.agreement import LIMITS, SEPARATION_FACTOR, separation

    bundle = make_bundle(session, job.res, INPUT_NAME, OUTPUT_NAME)
    path = bundle.write(reference_path(job.onnx_path))
    apart = separation(bundle.outputs)
    if not (apart is not None and apart >= SEPARATION_FACTOR * LIMITS["fp16"].rmse_over_std):
        from anydepth_edge.console import warn

        warn(f"{job.stem}: the reference inputs' depths are alike (RMSE/std {apart}), so verify will refuse this "
             "bundle; verify --images DIR with distinct photos instead")
    return {"file": path.name, "sha256": sha256_file(path), "inputs": bundle.names, "separation": apart}


def write_typed_fp16(graph, job: "ExportJob", bundle: Bundle) -> Dict[str, Any]:
    """The strongly typed FP16 form (TensorRT >= 10 builds it without precision flags), checked like
    the export: onnx.checker, the target's lint, and its depth on ONNX Runtime against the bundle."""
    import onnx

    from anydepth_edge.export.lint import lint_model

    regions = typed_fp16_regions(job.target.decompose_layernorm)
    typed, stats = to_typed_fp16(graph, regions)
    check_graph(typed)
    problems = lint_model(typed, job.target.name)
    if problems:
        raise UserError(f"the FP16 form of {job.stem} fails the {job.target.name} lint: {problems[0].message}")
    session = ort_session(typed.SerializeToString())
    figures = {name: depth_metrics(session.run([OUTPUT_NAME], {INPUT_NAME: x[None]})[0], ref)
               for name, x, ref in zip(bundle.names, bundle.inputs, bundle.outputs)}
    if any(m["non_finite"] for m in figures.values()):
        raise UserError(f"the strongly typed FP16 form of {job.stem} outputs NaN/Inf on ONNX Runtime: not exported")
    path = typed_fp16_path(job.onnx_path)
    with atomic_path(path) as tmp:
        onnx.save(typed, str(tmp))
    return {"file": path.name, "sha256": sha256_file(path), "fp32_regions": list(regions), **stats,
            "agreement": {"method": "ONNX Runtime CPU, FP16 graph vs the FP32 export, after a scale-and-shift fit",
                          **figures}}


def _set_metadata(graph, artifact: OnnxArtifact) -> None:
    """The record's facts in the ONNX file itself (metadata_props), for tools that see only the file."""
    del graph.metadata_props[:]
    for key, value in artifact.to_dict().items():
        if key in ("cache_key", "onnx_sha256"):
            continue
        entry = graph.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    graph.producer_name = "anydepth-edge"
    graph.producer_version = __version__
    graph.doc_string = f"{artifact.model} at {artifact.res[0]}x{artifact.res[1]} for {artifact.target}"


def export_models(
    encoder: Optional[str],
    decoders: List[Optional[str]],
    resolutions: List[Tuple[int, int]],
    target: Target,
    out_dir: Path,
    checkpoint: Optional[str] = None,
    dysample: Optional[str] = None,
    force: bool = False,
    fp16_check: bool = True,
    warn: Optional[Callable[[str], None]] = None,
    progress=None,
    say: Optional[Callable[[str], None]] = None,
) -> List[ExportResult]:
    """Export every (decoder, resolution); the model is loaded once per decoder. `encoder` / a decoder
    None: the checkpoint's (else vits / sdt). `dysample` None: the target's own form. Resolutions are
    checked against the model's patch once it is known."""
    from anydepth_edge.artifacts import ensure_writable_dir
    from anydepth_edge.models.factory import resolve_model
    from anydepth_edge.resolution import check_fits_memory, check_multiple, default_resolution

    out_dir = ensure_writable_dir(out_dir)
    for decoder in decoders:
        for res in resolutions:  # traced model, ONNX Runtime session and FP16 emulation alive together
            check_fits_memory(res, f"exporting {(decoder or 'the model').upper()}", factor=2.0, decoder=decoder or "sdt")
    results = []
    total = len(decoders) * max(1, len(resolutions))
    task = progress.add_task("export", total=total) if progress is not None else None
    for decoder in decoders:
        model, report = resolve_model(checkpoint, encoder, decoder, warn=warn, say=say)
        if not resolutions:
            resolutions = [default_resolution(model.patch_size)]
            if say and model.patch_size != 16:
                say(f"no --res: {resolutions[0][0]} (the first multiple of {model.patch_size} above 256; "
                    "518 is these weights' native size)")
        for res in resolutions:
            check_multiple(res, model.patch_size)
        licence = licence_of(checkpoint)
        if licence and say:
            say(f"weights licence: {licence}")
        for res in resolutions:
            job = ExportJob(model, res, target, report.ref, out_dir, dysample=target.sampler_for(model.config.decoder, dysample), force=force,
                            fp16_check=fp16_check)

            def step(text, job=job):
                if progress is not None:
                    progress.update(task, description=f"{job.stem}: {text}")

            results.append(export_onnx(job, step))
            if progress is not None:
                progress.advance(task)
    return results


def results_table(results: List[ExportResult]):
    """The exports as a table for people (FP16 figures emulated, with / without the FP32 pins)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title="ONNX exports (FP16: emulated, with / without FP32 pins)")
    for col in ("file", "nodes", "parity", "FP16 d1", "FP16 AbsRel", "s"):
        t.add_column(col, overflow="fold")
    for r in results:
        a = r.artifact
        fp = a.fp16 or {}
        def pair(key, spec):  # None: NaN/Inf in FP16
            return " / ".join("NaN" if fp[side].get(key) is None else format(fp[side][key], spec)
                              for side in ("with_pins", "without_pins")) if fp else "-"

        d1, ar = pair("delta1", ".4f"), pair("abs_rel", ".2e")
        worst = max(v["rel"] for v in a.parity.values() if isinstance(v, dict))
        t.add_row(Text(a.path.name), f"{a.nodes['before_slim']}->{a.nodes['after_slim']}", f"{worst:.1e}", d1, ar,
                  "reused" if r.reused else f"{r.seconds:.1f}")
    return t
