"""`anydepth-edge bench`: the paper's Orin Nano table on this machine.

For every (decoder, resolution): make sure the artifact exists (export / build, cached), run one
child process that loads the backend and times it, collect latency, FPS, end-to-end latency, peak
memory (method named), GFLOPs and utilisation, and the environment. Torch-free unless the PyTorch
backend is benchmarked or an export is needed.
"""

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from anydepth_edge.fileio import sha256_file
from anydepth_edge.bench.figures import engine_traffic, environment, orin_nano_bounds, peak_memory, sdt_dpt_ratios, utilisation
from anydepth_edge.bench.process import run_child
from anydepth_edge.bench.stats import is_noisy, paper_figures, spread
from anydepth_edge.engines import (
    BackendChoice,
    BackendSpec,
    choose_backend,
    ort_cuda,
    tensorrt_ready,
    torch_cuda,
)
from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.platform_info import PlatformInfo, detect
from anydepth_edge.artifacts import OnnxArtifact
from anydepth_edge.resolution import check_fits_memory, res_tag
from anydepth_edge.targets import TARGETS, resolve_target

BENCH_SCHEMA = "anydepth-edge/bench/1"
DEVICES = ("auto", "orin-nano", "cpu", "cuda")
# (warm-up, timed iterations): many on GPUs, few on CPUs (a 512 DPT takes seconds per run there).
DEFAULT_COUNTS = {"cpu": (2, 10), "cuda": (20, 200), "orin-nano": (10, 50)}
DEFAULT_E2E = {"cpu": 3, "cuda": 50, "orin-nano": 20}


@dataclass
class BenchOptions:
    device: str = "auto"
    resolutions: List[Tuple[int, int]] = field(default_factory=lambda: [(256, 256), (512, 512)])
    decoders: List[str] = field(default_factory=lambda: ["sdt", "dpt"])
    encoder: str = "vits"
    backend: str = "auto"
    precision: Optional[str] = None
    warmup: Optional[int] = None
    iters: Optional[int] = None
    e2e_iters: Optional[int] = None
    checkpoint: Optional[str] = None
    out_dir: Path = Path("benchmarks/results")
    export_dir: Path = Path("export")
    engines_dir: Path = Path("engines")
    allow_mismatch: bool = False
    cuda_graph: bool = False
    dysample: Optional[str] = None  # None: each target's own form (targets.Target.sampler)
    layout: str = "auto"  # PyTorch memory layout (engines.base.TORCH_LAYOUTS)
    threads: Optional[int] = None
    platform_root: str = "/"
    allow_unverified: bool = False


@dataclass
class Cell:
    decoder: str
    res: Tuple[int, int]
    spec: Dict[str, Any]
    gflops: Optional[float] = None
    params: Optional[Dict[str, int]] = None
    artifact: Optional[str] = None
    traffic: Optional[Dict[str, int]] = None


def resolve_device(requested: str, info: PlatformInfo, allow_mismatch: bool) -> Tuple[str, str, Optional[str]]:
    """(profile, runtime device 'cuda'|'cpu', mismatch label or None)."""
    requested = (requested or "auto").lower()
    if requested not in DEVICES:
        raise UserError(f"unknown device {requested!r}: choose one of {', '.join(DEVICES)}")
    has_gpu = bool(tensorrt_ready()) or info.is_jetson or ort_cuda() or torch_cuda()
    if requested == "auto":
        if info.is_orin_nano:
            return "orin-nano", "cuda", None
        return ("cuda", "cuda", None) if has_gpu else ("cpu", "cpu", None)
    if requested == "orin-nano" and not info.is_orin_nano:
        what = info.device_model or f"{info.machine} {info.cpu_model}".strip()
        if not allow_mismatch:
            raise UserError(f"--device orin-nano: this host is not a Jetson Orin Nano ({what}); run it on the robot, "
                            "or add --allow-mismatch to measure here with every figure labelled as such")
        return "orin-nano", ("cuda" if has_gpu else "cpu"), f"measured on {what}, not an Orin Nano"
    if requested == "cuda" and not has_gpu:
        raise HardwareMissing("--device cuda: no CUDA runtime here (TensorRT, ONNX Runtime CUDA or PyTorch CUDA)")
    return requested, ("cpu" if requested == "cpu" else "cuda"), None


def default_precision(choice: BackendChoice) -> str:
    return "fp16" if choice.device == "cuda" else "fp32"


# ----------------------------------------------------------------------------- artifacts

def _checkpoint_sha(path: Optional[str]) -> str:
    if path is None:
        return "random"
    if not Path(path).is_file():
        raise UserError(f"checkpoint not found: {path}")
    return sha256_file(path)


def find_onnx(opts: BenchOptions, decoder: str, res, target: str) -> Optional[Path]:
    """An existing export for this configuration and checkpoint (no PyTorch needed to find it)."""
    from anydepth_edge.resolver import exact_export

    return exact_export(opts.export_dir, decoder, opts.encoder, res, target,
                        TARGETS[target].sampler_for(decoder, opts.dysample), _checkpoint_sha(opts.checkpoint))


def ensure_onnx(opts: BenchOptions, decoder: str, res, target_name: str, warn, progress=None) -> OnnxArtifact:
    found = find_onnx(opts, decoder, res, target_name)
    if found is not None:
        return OnnxArtifact.load(found)
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise UserError(f"no exported model for {decoder} {res_tag(res)} in {opts.export_dir} and no PyTorch here to export it: "
                        f"run anydepth-edge export --decoder {decoder} --res {res_tag(res)} --target {target_name} "
                        "(in the export image or on a workstation), then copy export/ over")
    from anydepth_edge.export.onnx_export import export_models

    (result,) = export_models(opts.encoder, [decoder], [res], TARGETS[target_name], opts.export_dir,
                              checkpoint=opts.checkpoint, dysample=opts.dysample, warn=warn, force=True,
                              progress=progress)
    return result.artifact


def prepare(opts: BenchOptions, choice: BackendChoice, precision: str, profile: str, warn, progress=None) -> List[Cell]:
    """One Cell per (resolution, decoder), artifacts made where missing."""
    cells = []
    warmup, iters = DEFAULT_COUNTS[profile if profile in DEFAULT_COUNTS else "cuda"]
    warmup = opts.warmup if opts.warmup is not None else warmup
    iters = opts.iters if opts.iters is not None else iters
    e2e = opts.e2e_iters if opts.e2e_iters is not None else DEFAULT_E2E.get(profile, 10)
    if warmup < 0 or iters < 1:
        raise UserError("--iters must be at least 1 and --warmup not negative")
    if opts.encoder not in ("vits", "vitb", "vitl"):
        raise UserError(f"unknown encoder {opts.encoder!r}: choose one of vits, vitb, vitl")
    for res in opts.resolutions:
        for decoder in opts.decoders:
            spec: Dict[str, Any] = {
                "res": list(res), "warmup": warmup, "iters": iters, "e2e_iters": e2e,
                "tegrastats": profile == "orin-nano", "measure_peak": True,
            }
            cell = Cell(decoder, res, spec)
            if choice.device == "cpu":
                check_fits_memory(res, f"benchmarking {decoder.upper()}", decoder=decoder)
            if choice.kind == "torch":
                backend = BackendSpec.for_choice(choice, None, precision=precision, cuda_graph=opts.cuda_graph,
                                                 layout=opts.layout, model={"encoder": opts.encoder, "decoder": decoder,
                                                        "checkpoint": opts.checkpoint, "res": list(res)})
                cell.params, cell.gflops = _torch_counts(opts, decoder, res)
            else:
                target = resolve_target("auto").name if choice.kind == "tensorrt" else "ort"
                onnx = ensure_onnx(opts, decoder, res, target, warn, progress)
                cell.gflops = onnx.gflops.get("total")
                cell.params = onnx.params or None
                cell.traffic = onnx.traffic or None
                spec["dysample"] = onnx.dysample
                artifact = onnx.path
                if choice.kind == "tensorrt":  # resolver policy: no fallback here (one table, one backend)
                    from anydepth_edge.resolver import engine_for_export

                    # the precision ladder unless a precision was asked for: the rung goes into the report
                    record = engine_for_export(onnx.path, opts.engines_dir, "orin-nano" if profile == "orin-nano"
                                               else "generic", precision=opts.precision or "auto")
                    artifact = record.path
                    spec["rung"], spec["verification"] = record.rung or record.precision, record.status
                backend = BackendSpec.for_choice(choice, artifact, cuda_graph=opts.cuda_graph, threads=opts.threads,
                                                 precision=precision, allow_unverified=opts.allow_unverified)
                cell.artifact = str(artifact)
            spec["backend"] = backend.to_dict()
            cells.append(cell)
    return cells


_COUNT_MODELS: Dict[Tuple[str, str], Any] = {}


def _torch_counts(opts: BenchOptions, decoder: str, res):
    """Parameters and GFLOPs for the PyTorch backend (no ONNX sidecar to read them from)."""
    from anydepth_edge.models import build_model
    from anydepth_edge.models.flops import count_gflops, count_params

    key = (opts.encoder, decoder)
    if key not in _COUNT_MODELS:  # one build per decoder, however many resolutions
        _COUNT_MODELS[key] = build_model(opts.encoder, decoder)
    model = _COUNT_MODELS[key]
    return count_params(model), count_gflops(model, res)["total"]


# ----------------------------------------------------------------------------- running

def run_bench(opts: BenchOptions, warn: Callable[[str], None], progress=None) -> Dict[str, Any]:
    info = detect(opts.platform_root)
    profile, runtime_device, mismatch = resolve_device(opts.device, info, opts.allow_mismatch)
    choice = choose_backend(opts.backend, runtime_device)
    precision = opts.precision or default_precision(choice)
    if precision not in ("fp16", "fp32"):
        raise UserError(f"unknown precision {precision!r}: fp16 or fp32")
    if precision == "fp16" and choice.device == "cpu":
        raise UserError("FP16 on the CPU is not benchmarked (no fast kernels here): use --precision fp32")
    if choice.kind == "onnxruntime" and precision == "fp16":
        warn("ONNX Runtime runs the FP32 export; --precision fp16 applies to TensorRT and PyTorch")
        precision = "fp32"
    for w in info.warnings:
        warn(w)
    if mismatch:
        warn(f"--allow-mismatch: {mismatch}; every figure is labelled so")

    cells = prepare(opts, choice, precision, profile, warn, progress)
    matrix = progress.add_task("configurations", total=len(cells)) if progress else None
    iters_task = progress.add_task("iterations", total=1) if progress else None
    results, noisy = [], []
    for k, cell in enumerate(cells, 1):
        label = f"{cell.decoder.upper()} {res_tag(cell.res)}"
        if progress:
            progress.update(iters_task, description=f"benchmarking {label} ({k}/{len(cells)})", completed=0)

        def on_iter(done, total, label=label):
            if progress:
                progress.update(iters_task, total=total, completed=done)

        out = run_child(cell.spec, on_iter)
        if "error" in out:
            warn(f"{label}: {out['error']}")
        results.append(_result_row(cell, out, choice, profile, precision))
        if is_noisy(results[-1]):
            noisy.append(noisy_warning(opts, cell, results[-1], profile))
            warn(noisy[-1])
        if progress:
            progress.advance(matrix)

    record = _record(opts, cells, results, profile, mismatch, choice, precision, info)
    record["warnings"] += noisy
    return record


def noisy_warning(opts: BenchOptions, cell: Cell, row: Dict[str, Any], profile: str) -> str:
    """What a too-wide spread means and the command that measures the cell again, with more rounds."""
    s, n = row["spread"], row["latency"]["n"]
    again = (f"anydepth-edge bench --device {profile} --backend {opts.backend} --res {res_tag(cell.res)} "
             f"--decoder {cell.decoder} --iters {max(2 * n, 20)}")
    return (f"{cell.decoder.upper()} {res_tag(cell.res)}: its {n} runs spread too much to trust (CV {s['cv']:.0%}, "
            f"p90/p10 {s['p90_over_p10']:.2f}; limits {s['limits']['cv']:.0%} and {s['limits']['p90_over_p10']}): "
            f"something else was using the machine; measure it again alone, with more rounds: {again}")


def _result_row(cell: Cell, out: Dict[str, Any], choice: BackendChoice, profile: str, precision: str) -> Dict[str, Any]:
    """One configuration's row: what ran, the child's figures (or its error), memory and utilisation."""
    row: Dict[str, Any] = {"decoder": cell.decoder, "res": list(cell.res), "artifact": cell.artifact,
                           "gflops": cell.gflops, "params": cell.params, "paper": paper_figures(cell.res, cell.decoder)}
    if cell.traffic:  # which limit an Orin Nano figure is near: moving the bytes, or the FLOPs
        row["traffic"] = dict(cell.traffic, **orin_nano_bounds(engine_traffic(cell.traffic)[0], cell.gflops))
    if "dysample" in cell.spec:
        row["dysample"] = cell.spec["dysample"]
    if "rung" in cell.spec:  # TensorRT: which rung of the precision ladder, verified against FP32 or not
        row["rung"], row["verification"] = cell.spec["rung"], cell.spec["verification"]
    if "error" in out:
        row["error"] = out["error"]
        return row
    row.update(out)
    row["spread"] = spread(out["latency"])
    row["peak_memory"] = peak_memory(out, choice)
    achieved, fraction, source = utilisation(cell.gflops, out["latency"]["mean_ms"], out.get("peak_flops") or {},
                                             profile, precision)
    row["achieved_gflops_per_s"], row["peak_fraction"], row["peak_source"] = achieved, fraction, source
    return row


def _record(opts: BenchOptions, cells: List[Cell], results: List[Dict[str, Any]], profile: str,
            mismatch: Optional[str], choice: BackendChoice, precision: str, info) -> Dict[str, Any]:
    return {
        "schema": BENCH_SCHEMA,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": profile,
        "mismatch": mismatch,
        "backend": {"kind": choice.kind, "device": choice.device, "reason": choice.reason, "label": choice.label},
        "precision": precision,
        "settings": {"encoder": opts.encoder, "resolutions": [list(r) for r in opts.resolutions],
                     "decoders": opts.decoders, "warmup": cells[0].spec["warmup"] if cells else None,
                     "iters": cells[0].spec["iters"] if cells else None,
                     "e2e_iters": cells[0].spec["e2e_iters"] if cells else None,
                     "cuda_graph": opts.cuda_graph, "dysample": opts.dysample or "auto",
                     "layout": opts.layout},
        "checkpoint": {"path": opts.checkpoint, "sha256": _checkpoint_sha(opts.checkpoint)} if opts.checkpoint
        else {"path": None, "sha256": "random", "note": "random weights: latency and memory are valid, depth is not"},
        "environment": environment(info),
        "warnings": list(info.warnings),
        "results": results,
        "ratios": sdt_dpt_ratios(results),
    }


