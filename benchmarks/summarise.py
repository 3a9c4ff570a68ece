"""Summarise bench records (JSON from `anydepth-edge bench`) as one Markdown table.

    python benchmarks/summarise.py benchmarks/results [more folders or files]
"""

import json
import sys
from pathlib import Path


def records(paths):
    for p in map(Path, paths):
        files = sorted(p.rglob("bench-*.json")) if p.is_dir() else [p]
        for f in files:
            rec = json.loads(f.read_text())
            if rec.get("schema", "").startswith("anydepth-edge/bench/"):
                yield f, rec


def main(argv):
    print("| device | backend | precision | CUDA graph | encoder | decoder | res | mean ms | p90 ms | FPS | peak MB | memory method |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _, rec in records(argv or ["benchmarks/results"]):
        gpu = rec["results"][0].get("backend", {}).get("gpu") if rec["results"] else None
        dev = gpu or rec["environment"]["platform"].get("device_model") or rec["device"]
        for r in rec["results"]:
            if "error" in r:
                print(f"| {dev} | {rec['backend']['label']} | {rec['precision']} | {rec['settings']['cuda_graph']} | "
                      f"{rec['settings']['encoder']} | {r['decoder']} | {r['res'][0]}x{r['res'][1]} | failed: {r['error']} | | | | |")
                continue
            lat, mem = r["latency"], r["peak_memory"]
            print(f"| {dev} | {rec['backend']['label']} | {rec['precision']} | {rec['settings']['cuda_graph']} | "
                  f"{rec['settings']['encoder']} | {r['decoder']} | {r['res'][0]}x{r['res'][1]} | {lat['mean_ms']:.2f} | "
                  f"{lat['p90_ms']:.2f} | {lat['fps']:.1f} | {mem['peak_mb']:.1f} | {mem['method']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
