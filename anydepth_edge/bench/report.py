"""Benchmark outputs: console tables in the paper's shape, and the files in --out-dir
(JSON record, Markdown report, CSV, PNG chart when matplotlib is installed). Torch-free."""

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

from anydepth_edge.fileio import write_json_atomic, write_text_atomic
from anydepth_edge.bench.figures import engine_traffic
from anydepth_edge.bench.stats import NOISY_CV, NOISY_P90_OVER_P10, is_noisy
from anydepth_edge.resolution import res_tag


def reading_note(record: Dict[str, Any]) -> str:
    """How to read the ratios and the e2e column (users asked why e2e can be below the latency)."""
    note = ("SDT/DPT below 1: SDT is faster (or lighter). " if record.get("ratios") else "")
    if (record.get("settings") or {}).get("e2e_iters") != 0:  # --e2e-iters 0: no e2e column to explain
        note += ("e2e: a few runs on a 640x480 frame with pre- and post-processing, fewer than the timed runs: on "
                 "a busy machine it can read below the latency mean.")
    if record["device"] == "cpu":  # measured on the 2-core development VMs
        note += " Runs on a shared CPU differ by 15-25%: compare within one run."
    if any(is_noisy(r) for r in record["results"]):
        note += (f" NOISY: runs spread beyond CV {NOISY_CV:.0%} or p90/p10 {NOISY_P90_OVER_P10}: not to be trusted; "
                 "the warnings give the command that measures it again.")
    return note


def _f(value: Optional[float], fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def latency_cell(row: Dict[str, Any]) -> str:
    return f"{row['latency_ms']:.2f} +- {row['std_ms']:.2f}" + (" NOISY" if row["noisy"] else "")


def ratio_cell(r: Dict[str, Any]) -> str:
    return _f(r["latency_sdt_over_dpt"], "{:.3f}") + (" (noisy)" if r.get("noisy") else "")


def _decoder_label(r: Dict[str, Any]) -> str:
    """SDT / DPT, with what was chosen for it: the TensorRT rung, PyTorch's measured layout."""
    notes = [f"{r['rung']}, {r['verification']}"] if r.get("rung") else []
    layout = (r.get("backend") or {}).get("layout")
    if layout:
        notes.append(layout)
    return r["decoder"].upper() + (f" ({'; '.join(notes)})" if notes else "")


def report_rows(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for r in record["results"]:
        paper = r.get("paper") or {}
        traffic = r.get("traffic") or {}
        moved, moved_unfused = engine_traffic(traffic)
        row = {
            "resolution": res_tag(r["res"]),
            "decoder": _decoder_label(r),
            "latency_ms": None, "std_ms": None, "p90_ms": None, "fps": None, "e2e_ms": None,
            "paper_latency_ms": paper.get("latency_ms"), "paper_fps": paper.get("fps"),
            "peak_mb": None, "memory_method": None, "paper_memory_mb": paper.get("memory_mb"),
            "gflops": r.get("gflops"), "achieved_gflops_s": r.get("achieved_gflops_per_s"),
            "peak_fraction": r.get("peak_fraction"), "error": r.get("error"),
            "mb_moved": moved / 1e6 or None,
            "mb_moved_unfused": moved_unfused / 1e6 or None,
            "gather_counted": "fused_bytes" in traffic and "tensorrt_form_fused_bytes" not in traffic,
            "orin_memory_ms": traffic.get("orin_nano_memory_bound_ms"),
            "orin_compute_ms": traffic.get("orin_nano_compute_bound_ms"),
            "p10_ms": None, "noisy": is_noisy(r),
        }
        if "latency" in r:
            lat = r["latency"]
            row.update(latency_ms=lat["mean_ms"], std_ms=lat["std_ms"], p90_ms=lat["p90_ms"], fps=lat["fps"],
                       p10_ms=lat.get("p10_ms", lat.get("min_ms", lat["mean_ms"])),
                       e2e_ms=(r.get("end_to_end") or {}).get("mean_ms"),
                       peak_mb=r["peak_memory"]["peak_mb"], memory_method=r["peak_memory"]["method"])
        rows.append(row)
    return rows


def title(record: Dict[str, Any]) -> str:
    t = (f"{record['device']} | {record['backend']['label']} | {record['precision'].upper()} | "
         f"{record['settings']['encoder']} | {record['settings']['iters']} iterations")
    if record.get("mismatch"):
        t += f" | MISMATCH: {record['mismatch']}"
    return t




def gather_note(rows: List[Dict[str, Any]]) -> str:
    """Said where a record predates the TensorRT-form count: its SDT rows are the Gather form's."""
    return " (this record's SDT rows: the Gather form, which moves more)" if any(r["gather_counted"] for r in rows
                                                                                  if "SDT" in r["decoder"]) else ""


def _md_header(record: Dict[str, Any]) -> List[str]:
    env = record["environment"]
    plat = env["platform"]
    lines = [
        f"# anydepth-edge benchmark: {record['device']}, {record['backend']['label']}, {record['precision'].upper()}",
        "",
        f"- created: {record['created']}; git {env.get('git_commit') or '?'}; anydepth-edge {env['toolkit_version']}",
        f"- host: {plat.get('device_model') or plat.get('cpu_model')} ({plat.get('cpu_count')} CPUs, "
        f"{plat.get('mem_total_mb')} MB RAM); python {env['python']}",
        f"- backend: {record['backend']['label']} ({record['backend']['reason']})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- model: AnyDepth {record['settings']['encoder']}; weights: "
        + (record["checkpoint"].get("path") or "random (latency and memory valid, depth not)"),
        f"- runs: {record['settings']['warmup']} warm-up, {record['settings']['iters']} timed, "
        f"{record['settings']['e2e_iters']} end-to-end (640x480 frame, pre- and post-processing included)",
    ]
    if plat.get("is_jetson"):
        lines.append(f"- Jetson: L4T {plat.get('l4t')} (JetPack {plat.get('jetpack')}), power mode {plat.get('nvpmodel')}, "
                     f"clocks locked: {plat.get('clocks_locked')}")
    if record.get("mismatch"):
        lines.append(f"- **MISMATCH**: {record['mismatch']}: these are not Orin Nano figures")
    for w in record.get("warnings", []):
        lines.append(f"- warning: {w}")
    return lines


def _md_latency(rows: List[Dict[str, Any]]) -> List[str]:
    lines = ["", "## Latency", "",
              "| Resolution | Decoder | Latency ms (mean +- std) | p90 ms | FPS | End-to-end ms | Paper ms (Orin Nano) | Paper FPS | GFLOPs | Achieved GFLOP/s | of reference peak |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["error"]:
            lines.append(f"| {row['resolution']} | {row['decoder']} | failed: {row['error']} | | | | {_f(row['paper_latency_ms'])} | {_f(row['paper_fps'], '{:.1f}')} | | | |")
            continue
        frac = f"{row['peak_fraction'] * 100:.1f}%" if row["peak_fraction"] else "-"
        lines.append(f"| {row['resolution']} | {row['decoder']} | {latency_cell(row)} | {row['p90_ms']:.2f} | "
                     f"{row['fps']:.2f} | {_f(row['e2e_ms'])} | {_f(row['paper_latency_ms'])} | {_f(row['paper_fps'], '{:.1f}')} | "
                     f"{_f(row['gflops'], '{:.1f}')} | {_f(row['achieved_gflops_s'], '{:.0f}')} | {frac} |")
    return lines


def _md_orin_bound(rows: List[Dict[str, Any]]) -> List[str]:
    """The Orin Nano's memory and compute floors of each benchmarked graph."""
    lines: List[str] = []
    if any(row["mb_moved"] for row in rows):
        from anydepth_edge.engines.trt_common import DEVICE_PROFILES

        orin = DEVICE_PROFILES["orin-nano"]
        lines += ["", "## What bounds it on an Orin Nano", "",
                  f"Bytes one inference of the engine's graph moves (FP32; element-wise nodes counted as "
                  f"fused, unfused in brackets), halved for FP16. The TensorRT form is counted: where the export "
                  f"benchmarked here samples DySample with Gather (`ort`), its samplers are counted as GridSample"
                  f"{gather_note(rows)}. Set against the Orin Nano's {orin.memory_bandwidth / 1e9:.0f} GB/s of "
                  f"shared memory; next to it the FLOPs against its {orin.peak_fp16_flops / 1e12:.0f} TFLOPS dense "
                  "FP16. These are floors: an Orin figure near the larger one is limited by it.", "",
                  "| Resolution | Decoder | GFLOPs | MB moved (FP32) | memory floor ms | compute floor ms |",
                  "|---|---|---|---|---|---|"]
        for row in rows:
            if row["mb_moved"]:
                lines.append(f"| {row['resolution']} | {row['decoder']} | {_f(row['gflops'], '{:.1f}')} | "
                             f"{row['mb_moved']:.0f} ({_f(row['mb_moved_unfused'], '{:.0f}')}) | "
                             f"{_f(row['orin_memory_ms'], '{:.1f}')} | {_f(row['orin_compute_ms'], '{:.1f}')} |")
    return lines


def markdown(record: Dict[str, Any], chart_name: Optional[str] = None) -> str:
    rows = report_rows(record)
    lines = _md_header(record) + _md_latency(rows) + _md_orin_bound(rows)
    sources = sorted({r.get("peak_source") for r in record["results"] if r.get("peak_source")})
    peaks = sorted({round(r["achieved_gflops_per_s"] / r["peak_fraction"]) for r in record["results"]
                    if r.get("peak_fraction")})
    if sources:
        lines += ["", "Reference peak for the last column: " + " / ".join(f"{p} GFLOP/s" for p in peaks) + ", "
                  + "; ".join(sources)
                  + (" (a measured rate: a lower bound of the true peak, so convolutions can exceed it)"
                     if record["device"] == "cpu" else "")]
    ratios = record.get("ratios", {})  # none unless both decoders ran at a size
    if ratios:
        lines += ["", "SDT/DPT latency ratio: " + "; ".join(
            f"{res}: ours {ratio_cell(r)}, paper {_f(r['paper_latency_sdt_over_dpt'], '{:.3f}')}"
            for res, r in ratios.items())]
    lines += ["", reading_note(record), "",
              "## Peak memory", "", "| Resolution | Decoder | Peak MB | Paper MB | Method |", "|---|---|---|---|---|"]
    for row in rows:
        if not row["error"]:
            lines.append(f"| {row['resolution']} | {row['decoder']} | {row['peak_mb']:.1f} | {_f(row['paper_memory_mb'], '{:.1f}')} | {row['memory_method']} |")
    if ratios:
        lines += ["", "SDT/DPT memory ratio: " + "; ".join(
            f"{res}: ours {_f(r['memory_sdt_over_dpt'], '{:.3f}')}, paper {_f(r['paper_memory_sdt_over_dpt'], '{:.3f}')}"
            for res, r in ratios.items())]
    if chart_name:
        lines += ["", f"![latency and memory, ours vs paper]({chart_name})"]
    lines += ["", "Paper figures: AnyDepth (arXiv 2601.02760), Jetson Orin Nano 4GB; the paper does not state the encoder size, precision or runtime."]
    return "\n".join(lines) + "\n"


def csv_text(record: Dict[str, Any]) -> str:
    rows = report_rows(record)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["device", "backend", "precision"] + list(rows[0].keys()) if rows else ["device"])
    writer.writeheader()
    for row in rows:
        writer.writerow({"device": record["device"], "backend": record["backend"]["label"], "precision": record["precision"], **row})
    return buf.getvalue()


def write_outputs(record: Dict[str, Any], out_dir: Path) -> Dict[str, Path]:
    from anydepth_edge.fileio import ensure_writable_dir

    out_dir = ensure_writable_dir(out_dir)
    stamp = record["created"].replace(":", "").replace("-", "")[:15]
    device = record["device"]
    if record.get("mismatch"):  # an orin-nano profile measured elsewhere is never named like an Orin Nano run
        device = f"{device}-profile-on-{record['environment']['platform'].get('machine') or 'other'}"
    stem = f"bench-{device}-{record['backend']['kind']}-{record['precision']}-{stamp}"
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv"}
    png = out_dir / f"{stem}.png"
    from anydepth_edge.bench.chart import chart

    if chart(record, png, report_rows(record), title(record)):
        paths["png"] = png
    write_json_atomic(paths["json"], record)
    write_text_atomic(paths["md"], markdown(record, png.name if "png" in paths else None))
    write_text_atomic(paths["csv"], csv_text(record))
    return paths
