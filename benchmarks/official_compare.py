"""Time the official AnyDepth PyTorch code (eager) next to our best backend, in one run on one machine.

    python benchmarks/official_compare.py --official ~/src/AnyDepth            # CPU: FP32
    python benchmarks/official_compare.py --official ~/src/AnyDepth --device cuda   # FP16

--official is your clone of https://github.com/AIGeeksGroup/AnyDepth (CC BY-NC-SA: read from where
you cloned it, never copied here). Both sides get the same architecture and the same random
weights: the official decoder is loaded with ours and must agree with our PyTorch model before
anything is timed (the record says how closely). Ours is ONNX Runtime on the CPU (the `ort`
export), PyTorch FP16 with a CUDA graph on a GPU. Every configuration runs in its own process;
latency is the mean of the timed runs, peak memory the process RSS over its idle baseline (CPU) or
torch's max allocated (CUDA). With --rounds N every configuration runs N times, rounds one after
the other, and the table takes the median (a shared VM drifts by 20% over minutes). Writes JSON
and Markdown to --out-dir.
"""

import argparse
import datetime as dt
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anydepth_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from anydepth_edge.bench.harness import DEFAULT_COUNTS, BenchOptions, ensure_onnx  # noqa: E402
from anydepth_edge.bench.process import run_child  # noqa: E402
from anydepth_edge.engines import BackendSpec  # noqa: E402
from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.platform_info import detect  # noqa: E402

AGREEMENT_LIMIT = 1e-4  # max |ours - official| / max |depth|, FP32, same weights


def _peak_mb(result: Dict[str, Any]) -> float:
    mem = result["memory"]
    if "max_allocated_bytes" in mem:
        return mem["max_allocated_bytes"] / 2 ** 20
    return mem["rss_peak_over_baseline_bytes"] / 2 ** 20


def _time(spec_backend: BackendSpec, res, warmup: int, iters: int) -> Dict[str, Any]:
    out = run_child({"res": list(res), "warmup": warmup, "iters": iters, "e2e_iters": 0,
                     "backend": spec_backend.to_dict()})
    if "error" in out:
        raise UserError(f"{spec_backend.kind} {res[0]}x{res[1]}: {out['error']}")
    return {"mean_ms": out["latency"]["mean_ms"], "min_ms": out["latency"]["min_ms"], "peak_mb": _peak_mb(out),
            "memory_method": out["memory"]["method"], "latencies_ms": out["latencies_ms"]}


def _median_run(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The median of several rounds (their means and peaks), with every round kept."""
    return {"mean_ms": float(statistics.median(r["mean_ms"] for r in runs)),
            "peak_mb": float(statistics.median(r["peak_mb"] for r in runs)),
            "memory_method": runs[0]["memory_method"], "rounds": runs}


def ours_backend(device: str, decoder: str, res, export_dir: Path) -> BackendSpec:
    if device == "cuda":
        return BackendSpec("torch", "cuda", precision="fp16", cuda_graph=True,
                           model={"encoder": "vits", "decoder": decoder, "checkpoint": None, "res": list(res)})
    onnx = ensure_onnx(BenchOptions(encoder="vits", export_dir=export_dir), decoder, res, "ort", warn=print)
    return BackendSpec("onnxruntime", "cpu", str(onnx.path))


def official_backend(official: Path, device: str, decoder: str, res) -> BackendSpec:
    return BackendSpec("custom", device, factory="anydepth_edge.bench.official:OfficialBackend",
                       options={"official": str(official), "encoder": "vits", "decoder": decoder, "res": list(res),
                                "device": device, "precision": "fp16" if device == "cuda" else "fp32"})


def markdown(record: Dict[str, Any]) -> str:
    dev = record["device"]
    lines = [f"# Official AnyDepth (PyTorch eager) vs anydepth-edge: {dev}, ViT-S", "",
             f"- created {record['created']} on {record['host']}; {record['ours']} vs the official code at "
             f"{record['official_commit'] or '?'} ({record['official_precision']})",
             "- same architecture and weights: " + "; ".join(
                 f"{d.upper()} max rel. diff {a['max_rel_diff']:.1e}" for d, a in record["agreement"].items()),
             f"- {record['runs'][0]} warm-up, {record['runs'][1]} timed runs per configuration, each in its own process; "
             f"{record['rounds']} round(s), median shown",
             "", "| Resolution | Decoder | Official ms | Ours ms | Speed-up | Official peak MB | Ours peak MB |",
             "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        o, u = row["official"], row["ours"]
        lines.append(f"| {row['res']} | {row['decoder'].upper()} | {o['mean_ms']:.1f} | {u['mean_ms']:.1f} | "
                     f"{o['mean_ms'] / u['mean_ms']:.2f}x | {o['peak_mb']:.0f} | {u['peak_mb']:.0f} |")
    for res, r in record["ratios"].items():
        lines.append(f"| {res} | SDT/DPT | {r['official_latency']:.3f} | {r['ours_latency']:.3f} | | "
                     f"{r['official_peak']:.3f} | {r['ours_peak']:.3f} |")
    lines += ["", f"Peak memory: {record['memory_method']}."]
    return "\n".join(lines) + "\n"


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, type=Path, help="your clone of github.com/AIGeeksGroup/AnyDepth")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu: FP32; cuda: FP16 (default cpu)")
    ap.add_argument("--res", type=int, nargs="+", default=[256, 512], help="square sizes (default 256 512)")
    ap.add_argument("--decoder", nargs="+", choices=("sdt", "dpt"), default=["sdt", "dpt"])
    ap.add_argument("--warmup", type=int, help="untimed runs (default cpu 2, cuda 20)")
    ap.add_argument("--iters", type=int, help="timed runs (default cpu 10, cuda 200)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every configuration; the median is reported")
    ap.add_argument("--export-dir", type=Path, default=Path("export"), help="where our ONNX exports are (made if missing)")
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/runs"), help="where the JSON and Markdown go")
    args = ap.parse_args(argv)
    try:
        from anydepth_edge.bench.official import agreement, load_official

        load_official(args.official)  # a clear error before anything is exported or timed
        warmup, iters = DEFAULT_COUNTS[args.device]  # bench's own counts
        warmup = args.warmup if args.warmup is not None else warmup
        iters = args.iters if args.iters is not None else iters
        agree = {d: agreement(str(args.official), "vits", d, (64, 64)) for d in args.decoder}
        for d, a in agree.items():
            if a["max_rel_diff"] > AGREEMENT_LIMIT or a["unloaded_official_keys"] or a["unused_our_keys"]:
                raise UserError(f"{d.upper()}: the official code does not compute our model ({a}); not comparing")
        configs = [((size, size), decoder) for size in args.res for decoder in args.decoder]
        ours_specs = {c: ours_backend(args.device, c[1], c[0], args.export_dir) for c in configs}  # exports first
        runs: Dict[Any, Dict[str, List[Dict[str, Any]]]] = {c: {"official": [], "ours": []} for c in configs}
        for round_no in range(1, max(1, args.rounds) + 1):
            for res, decoder in configs:
                label = f"round {round_no}/{args.rounds} {res[0]}x{res[1]} {decoder.upper()}"
                print(f"{label}: official ...", flush=True)
                official = _time(official_backend(args.official, args.device, decoder, res), res, warmup, iters)
                print(f"{label}: ours ...", flush=True)
                ours = _time(ours_specs[(res, decoder)], res, warmup, iters)
                runs[(res, decoder)]["official"].append(official)
                runs[(res, decoder)]["ours"].append(ours)
                print(f"  official {official['mean_ms']:.1f} ms, {official['peak_mb']:.0f} MB; "
                      f"ours {ours['mean_ms']:.1f} ms, {ours['peak_mb']:.0f} MB", flush=True)
        rows = [{"res": f"{res[0]}x{res[1]}", "decoder": decoder,
                 **{side: _median_run(runs[(res, decoder)][side]) for side in ("official", "ours")}}
                for res, decoder in configs]
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ratios = {}
    for size in args.res:
        by = {r["decoder"]: r for r in rows if r["res"] == f"{size}x{size}"}
        if {"sdt", "dpt"} <= set(by):
            s, d = by["sdt"], by["dpt"]
            ratios[f"{size}x{size}"] = {
                "official_latency": s["official"]["mean_ms"] / d["official"]["mean_ms"],
                "ours_latency": s["ours"]["mean_ms"] / d["ours"]["mean_ms"],
                "official_peak": s["official"]["peak_mb"] / d["official"]["peak_mb"],
                "ours_peak": s["ours"]["peak_mb"] / d["ours"]["peak_mb"]}
    import subprocess

    commit = subprocess.run(["git", "-C", str(args.official), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    plat = detect()
    record = {
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": f"{plat.cpu_model or platform.machine()} ({plat.cpu_count} CPUs)", "device": args.device,
        "ours": "ONNX Runtime CPU FP32 (ort export)" if args.device == "cpu" else "PyTorch CUDA FP16 + CUDA graph",
        "official_commit": commit, "official_precision": "FP32 eager" if args.device == "cpu" else "FP16 autocast, eager",
        "runs": [warmup, iters], "rounds": max(1, args.rounds), "agreement": agree, "rows": rows, "ratios": ratios,
        "memory_method": rows[0]["ours"]["memory_method"] if rows else "",
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"official-compare-{args.device}-{dt.date.today().isoformat()}"
    write_json_atomic(args.out_dir / f"{stem}.json", record)
    write_text_atomic(args.out_dir / f"{stem}.md", markdown(record))
    print(markdown(record))
    print(f"wrote {args.out_dir / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
