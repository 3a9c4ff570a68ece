"""PyTorch -> ONNX for one (model, resolution, target), with every TensorRT trap handled here.

Steps: export form (constant DySample grids, baked RoPE, plain attention) -> TorchScript exporter at
the target's opset -> onnxslim -> stable names for FP32-pinned nodes -> onnx.checker + shape inference
-> lint -> parity on ONNX Runtime CPU (random input, a photo) -> reference bundle -> FP16 readiness
(emulated) -> atomic write of the ONNX (facts in metadata_props) and its JSON sidecar.
"""

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from anydepth_edge import __version__, pins
from anydepth_edge.fileio import atomic_path, check_not_a_folder, non_finite_paths, sha256_file
from anydepth_edge.errors import UserError
from anydepth_edge.host_memory import process_memory, reset_peak_rss
from anydepth_edge.agreement import Bundle
from anydepth_edge.export.pin_names import name_region_nodes
from anydepth_edge.export.traffic import graph_traffic, tensorrt_form_traffic
from anydepth_edge.weights import licence_of
from anydepth_edge.artifacts import CheckpointRef, OnnxArtifact, TensorSpec, onnx_stem, reference_path
from anydepth_edge.sidecars import sidecar_path
from anydepth_edge.model_facts import IMAGENET_MEAN, IMAGENET_STD
from anydepth_edge.targets import Target
from anydepth_edge.export.companions import write_reference, write_typed_fp16
from anydepth_edge.export.graph import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_LIMIT,
    check_graph,
    op_counts,
    ort_session,
    parity,
    parity_inputs,
    slim,
    trace_to_onnx,
)

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
    if not job.force:
        found = _reusable(job)
        if found is not None:
            return ExportResult(found, reused=True)
    t0 = time.perf_counter()
    peak_from_here = reset_peak_rss()  # this export's own peak, not an earlier one's in the same process
    export_model, graph, facts = _checked_graph(job, step)
    step("parity (ONNX Runtime vs PyTorch)")
    session, par, inputs, refs = _parity_checked(job, graph)
    step("reference bundle")
    reference = write_reference(session, job)
    del session  # not needed again: freed before the FP16 emulation's peak
    fp16 = _fp16_readiness(job, export_model, inputs, refs, step) if job.fp16_check else None
    del export_model
    artifact = _record(job, graph, facts, par, fp16, reference)
    if job.target.name == STRONG_TYPING_TARGET:
        step("strongly typed FP16 form")
        artifact.typed_fp16 = write_typed_fp16(graph, job, Bundle.read(reference_path(job.onnx_path)))
    artifact.export_seconds = round(time.perf_counter() - t0, 2)
    peak = process_memory()["peak_rss_bytes"]
    artifact.export_peak_rss_mb = round(peak / 2**20) if peak and peak_from_here else None
    step("write")
    _set_metadata(graph, artifact)
    with atomic_path(job.onnx_path) as tmp:
        onnx.save(graph, str(tmp))
    artifact.onnx_sha256 = sha256_file(job.onnx_path)
    artifact.write_sidecar()  # last: a sidecar exists only when everything it lists does
    return ExportResult(artifact, seconds=artifact.export_seconds)


def _checked_graph(job: ExportJob, step: Callable[[str], None]):
    """(export-form model, ONNX graph, facts for the record): traced, slimmed, FP32-pinned nodes
    named, checked, and linted for a TensorRT target."""
    from anydepth_edge.export.forms import to_export_form
    from anydepth_edge.export.lint import lint_model

    step("export form")
    export_model = to_export_form(job.model, job.res, job.dysample)
    step(f"trace (opset {job.target.opset})")
    graph = trace_to_onnx(export_model, job.res, job.target.opset)
    nodes_before = len(graph.graph.node)
    step("onnxslim")
    graph = slim(graph)
    regions = name_region_nodes(graph.graph, export_model)
    facts = {"nodes": {"before_slim": nodes_before, "after_slim": len(graph.graph.node)},
             "fp32_nodes": pins.pinned_names(sum(regions.values(), []),
                                             pins.pin_regions("default", job.target.decompose_layernorm)),
             "pin_nodes": {r: names for r, names in regions.items() if names}, "traffic": graph_traffic(graph)}
    if job.dysample == "gather":  # the Orin bound counts what an engine moves: TensorRT samples with GridSample
        step("traffic of the TensorRT form")
        facts["traffic"].update(tensorrt_form_traffic(export_model, job.res, facts["traffic"]))
    step("onnx.checker")
    check_graph(graph)
    if job.target.tensorrt:
        problems = lint_model(graph, job.target.name)
        if problems:
            shown = "; ".join(f"{p.node}: {p.message}" for p in problems[:3])
            raise UserError(f"export for {job.target.name} fails its own lint ({len(problems)} problems): {shown}")
    return export_model, graph, facts


def _parity_checked(job: ExportJob, graph):
    """(ONNX Runtime session, parity figures, inputs, PyTorch outputs); refused when the depth is
    non-finite or ONNX Runtime differs from PyTorch beyond PARITY_LIMIT."""
    inputs = parity_inputs(job.res)
    session = ort_session(graph.SerializeToString())
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
    return session, par, inputs, refs


def _fp16_readiness(job: ExportJob, export_model, inputs, refs, step: Callable[[str], None]) -> Dict[str, Any]:
    """FP16 emulated on CPU, with and without the FP32 pins; NaN there refuses a TensorRT export."""
    from anydepth_edge.export.fp16_emulation import dysample_probe, fp16_readiness

    step("FP16 readiness (emulated)")
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
    if job.model.config.decoder == "sdt":
        # The last DySample stage samples an (H/2, W/2) map: the largest coordinates in the model.
        fp16["dysample_probe"] = dysample_probe((job.res[0] // 2, job.res[1] // 2))
    fp16["reference_depth"] = {"mean": float(refs["image"].mean()), "std": float(refs["image"].std())}
    return fp16


def _record(job: ExportJob, graph, facts: Dict[str, Any], par, fp16, reference) -> OnnxArtifact:
    from anydepth_edge.models.flops import count_gflops, count_params

    cfg = job.model.config
    h, w = job.res
    return OnnxArtifact(
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
        op_counts=op_counts(graph), **facts,
        parity={"limit_rel": PARITY_LIMIT, "definition": "max|onnx - torch| / max|torch|", **par}, fp16=fp16,
        host=platform.node(), cache_key=job.cache_key(), path=job.onnx_path, reference=reference)


OUTPUT_MEANING = {"depth": "affine-invariant depth, relu(x) + 0.001", "disparity":
                  "relative disparity (inverse depth up to scale and shift; larger = nearer), relu(x)"}


def model_label(cfg) -> str:
    """'AnyDepth ViT-S + SDT' for the paper's DINOv3 models; 'DINOv2 ViT-B/14 + SDT' otherwise."""
    from anydepth_edge.model_facts import family_spec

    head = {"dav2": "DAv2-DPT"}.get(cfg.decoder, cfg.decoder.upper())
    if cfg.family == "dinov3":
        return f"AnyDepth {cfg.spec.label} + {head}"
    return f"{family_spec(cfg.family).label} {cfg.spec.label}/{cfg.patch_size} + {head}"


def graph_notes(cfg) -> List[str]:
    if cfg.decoder == "sdt" and cfg.patch_size != 16:
        return [f"SDT upsamples the patch grid 16x, i.e. 16/{cfg.patch_size} of the input on this "
                f"{cfg.patch_size}-px encoder: the graph resizes it back to the input (bilinear, align_corners=False)"]
    return []


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
    from anydepth_edge.fileio import ensure_writable_dir
    from anydepth_edge.host_memory import release_memory
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
                release_memory()  # each step's peak starts from what is live, not from the last peak
                if progress is not None:
                    progress.update(task, description=f"{job.stem}: {text}")

            results.append(export_onnx(job, step))
            if progress is not None:
                progress.advance(task)
    return results
