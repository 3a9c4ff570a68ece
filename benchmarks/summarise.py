"""Summarise bench records (JSON from `anydepth-edge bench`) as one Markdown table, one row per
configuration, with the date, host, backend and file of each, so committed references
(benchmarks/results) and your own runs (benchmarks/runs) are never confused.

    python benchmarks/summarise.py                      # benchmarks/results and benchmarks/runs
    python benchmarks/summarise.py benchmarks/runs      # only your runs
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [REPO / "benchmarks" / "results", REPO / "benchmarks" / "runs"]


def records(paths):
    for p in map(Path, paths):
        files = sorted(p.rglob("bench-*.json")) if p.is_dir() else [p] if p.exists() else []
        for f in files:
            rec = json.loads(f.read_text())
            if rec.get("schema", "").startswith("anydepth-edge/bench/"):
                yield f, rec


def host(rec) -> str:
    plat = rec["environment"]["platform"]
    gpu = rec["results"][0].get("backend", {}).get("gpu") if rec["results"] else None
    name = gpu or plat.get("device_model") or plat.get("cpu_model") or rec["environment"].get("hostname", "?")
    return name + (" (NOT an Orin Nano: --allow-mismatch)" if rec.get("mismatch") else "")


def rows(paths):
    for f, rec in records(paths):
        try:
            where = f.resolve().relative_to(REPO)
        except ValueError:
            where = f
        settings = rec["settings"]
        for r in rec["results"]:
            cells = [rec["created"][:10], host(rec), rec["device"], rec["backend"]["label"], rec["precision"],
                     str(settings["cuda_graph"]), settings["encoder"],
                     r["decoder"] + (f" ({r['rung']})" if r.get("rung") else ""), f"{r['res'][0]}x{r['res'][1]}"]
            if "error" in r:
                cells += [f"failed: {r['error']}", "", "", "", ""]
            else:
                lat, mem = r["latency"], r["peak_memory"]
                cells += [f"{lat['mean_ms']:.2f}", f"{lat['p90_ms']:.2f}", f"{lat['fps']:.1f}", f"{mem['peak_mb']:.1f}",
                          mem["method"]]
            yield cells + [f"`{where}`"]


HEADER = ["date", "host", "device", "backend", "precision", "CUDA graph", "encoder", "decoder", "res", "mean ms",
          "p90 ms", "FPS", "peak MB", "memory method", "file"]


def main(argv):
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for cells in rows(argv or DEFAULT):
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
