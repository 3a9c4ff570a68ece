"""The files an export writes beside its ONNX, each listed in its sidecar with a sha256: the
reference bundle (inputs + FP32 depth, what `verify` compares engines with) and, for TensorRT 10,
the strongly typed FP16 form."""

from typing import Any, Dict

# `job` below is an onnx_export.ExportJob (res, onnx_path, stem, target), not imported: it imports this.

from anydepth_edge.agreement import Bundle, depth_metrics
from anydepth_edge.fileio import atomic_path, sha256_file
from anydepth_edge.errors import UserError
from anydepth_edge.export.graph import INPUT_NAME, OUTPUT_NAME, check_graph, ort_session
from anydepth_edge.typed_fp16 import to_typed_fp16, typed_fp16_regions
from anydepth_edge.artifacts import reference_path, typed_fp16_path


def write_reference(session, job) -> Dict[str, Any]:
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


def write_typed_fp16(graph, job, bundle: Bundle) -> Dict[str, Any]:
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
