"""Everything printed for people with rich: the CLI's tables and summaries. Stages return typed
results and records (JSON for programs); this module renders them, and only the CLI calls it.
User text (file names, messages) goes in as `Text` or with markup off, never as markup.
Torch-free, Python 3.8."""

from pathlib import Path
from typing import Any, Dict, List

from rich.markup import escape
from rich.table import Table
from rich.text import Text


def _f(v, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


# ----------------------------------------------------------------------------- model, export, engines

def model_info(record: Dict[str, Any]) -> List[Any]:
    """`info`: parameters and GFLOPs per part, then what goes in and comes out."""
    h, w = record["res"]
    t = Table(title=f"{record['model']} at {h}x{w}")
    t.add_column("part")
    t.add_column("parameters", justify="right")
    t.add_column("GFLOPs", justify="right")
    params, gflops = record["params"], record["gflops"]
    for part in ("encoder", "decoder", "total"):
        t.add_row(part, f"{params[part] / 1e6:.3f} M ({params[part]:,})", f"{gflops[part]:.2f}")
    lines = [t, f"taken encoder layers (0-based blocks): {record['taken_layers']}",
             f"input: RGB, ImageNet mean/std, (1, 3, H, W), H and W multiples of {record['input']['multiple_of']}",
             f"output: {record['output']}",
             "GFLOPs = 2 x multiply-accumulates of matmuls, convolutions and attention"]
    if record.get("licence"):
        lines.append(f"weights licence: {record['licence']}")
    return lines


def export_results(results) -> Table:
    """`export`: one row per ONNX file (FP16 figures emulated, with / without the FP32 pins)."""
    t = Table(title="ONNX exports (FP16: emulated, with / without FP32 pins)")
    for col in ("file", "nodes", "parity", "FP16 d1", "FP16 AbsRel", "s"):
        t.add_column(col, overflow="fold")
    for r in results:
        a = r.artifact
        fp = a.fp16 or {}

        def pair(key, spec):  # None: NaN/Inf in FP16
            return " / ".join("NaN" if fp[side].get(key) is None else format(fp[side][key], spec)
                              for side in ("with_pins", "without_pins")) if fp else "-"

        worst = max(v["rel"] for v in a.parity.values() if isinstance(v, dict))
        t.add_row(Text(a.path.name), f"{a.nodes['before_slim']}->{a.nodes['after_slim']}", f"{worst:.1e}",
                  pair("delta1", ".4f"), pair("abs_rel", ".2e"), "reused" if r.reused else f"{r.seconds:.1f}")
    return t


def lint_problems(path, target: str, problems) -> Table:
    """`check-onnx`: problems grouped by kind and message, one row per distinct problem."""
    groups: Dict[tuple, List[str]] = {}
    for p in problems:
        groups.setdefault((p.kind, p.message, p.fix), []).append(p.node)
    t = Table(title=Text(f"{path}: {len(problems)} problems for {target}"))
    for col in ("kind", "nodes", "problem", "fix"):
        t.add_column(col, overflow="fold")
    for (kind, message, fix), nodes in groups.items():
        shown = nodes[0] if len(nodes) == 1 else f"{len(nodes)} nodes, e.g. {nodes[0]}"
        t.add_row(Text(kind), Text(shown), Text(message), Text(fix))
    return t


def verdicts(verdicts_by_label: Dict[str, Any], title: str) -> Table:
    """`verify` and the ladder: rung or file x reference input, the figures and pass/fail."""
    t = Table(title=Text(title))
    for col in ("model", "input", "NaN/Inf", "max abs", "AbsRel", "delta1", "RMSE/std", "verdict"):
        t.add_column(col, justify="left" if col in ("model", "input", "verdict") else "right")
    for label, verdict in verdicts_by_label.items():
        for i, (name, m) in enumerate(verdict.per_input.items()):
            t.add_row(Text(label if i == 0 else ""), Text(name), str(m["non_finite"]), _f(m["max_abs"], "{:.3g}"),
                      _f(m["abs_rel"], "{:.2e}"), _f(m["delta1"], "{:.4f}"), _f(m["rmse_over_std"], "{:.3f}"),
                      Text(("pass" if verdict.passed else "FAIL") if i == 0 else ""))
    return t


def ladder(record) -> Table:
    """Every rung tried for an engine, with the verdict each got (not a re-judgement of its figures)."""
    from anydepth_edge.agreement import Verdict, limits_for

    rungs = {f"{r['rung']} ({r['typing']})": Verdict(r["rung"], vars(limits_for(r["rung"])), r["per_input"],
                                                      r["status"] == "verified", r["why"])
             for r in record.ladder if r["per_input"]}
    return verdicts(rungs, f"precision ladder for {Path(record.onnx_path).name} on TensorRT {record.tensorrt_version}")


def engine_line(record, reused: bool) -> str:
    """One engine of `build` / `export --engine`: built or reused, its rung, and its FP32 check."""
    v = record.verification or {}
    checked = (f"{record.status} against FP32 ({v.get('why')})" if v else
               "NOT verified (no reference bundle: re-export, then anydepth-edge verify)")
    if reused:
        return f"up to date: {record.path} ({record.rung or record.precision}, {checked})"
    return (f"built {record.path} in {record.build_seconds} s: rung {record.rung}, {record.typing}ly typed, "
            f"{record.pinned_layers} FP32-pinned layers, device memory {record.device_memory_bytes} bytes; {checked}")


def print_engines(built, console) -> None:
    """`build`'s output for each (record, reused): its warnings, its ladder, its line."""
    for record, reused in built:
        if not reused:
            for w in record.warnings:
                console.print(f"warning: {w}", markup=False)
            if record.ladder:
                console.print(ladder(record))
        console.print(engine_line(record, reused), markup=False)


# ----------------------------------------------------------------------------- run, bench, eval, doctor

def metric_lines(m: Dict[str, Any]) -> List[str]:
    """The summary's lines on the metric fit: frames fitted and refused (why), the last fit's figures."""
    lines = [f"metric ({m['mode']}): {m['fitted']} frames in metres, {m['refused']} refused (NaN depth)"
             + (f", last because {m['last_refusal']}" if m["refused"] else "")]
    if len(m.get("refusals") or {}) > 1:
        lines.append("refused because: " + "; ".join(f"{why} ({n})" for why, n in m["refusals"].items()))
    if "scale" in m:
        inverse = "1/" if m.get("space") == "disparity" else ""
        figures = f"rmse {m['rmse_m']:.3f} m, AbsRel {m['abs_rel']:.3f}, inliers {m['inlier_fraction']:.0%}"
        if "floor_fraction" in m:
            figures += f", floor {m['floor_fraction']:.0%} of the frame"
        lines.append(f"last fit: {inverse}depth_m = {m['scale']:.4g} x output {m['shift']:+.4g}; {figures}")
    return lines


def run_summary(summary, console) -> None:
    """`run`'s closing summary: frames, per-stage timings, rates, what was written."""
    console.print(f"run summary: {summary.frames} frames in {summary.wall_s:.1f} s, stopped by {summary.stopped_by}")
    t = Table(title="per-stage timings")
    t.add_column("stage")
    for col in ("mean ms", "p50 ms", "p90 ms"):
        t.add_column(col, justify="right")
    for name, s in summary.stages.items():
        t.add_row(name.replace("_", " "), *[_f(s[k]) for k in ("mean", "p50", "p90")])
    console.print(t)
    console.print(f"loop {_f(summary.loop_fps, '{:.2f}')} FPS (inference alone {_f(summary.inference_fps, '{:.2f}')} FPS); "
                  f"captured {summary.captured}, dropped {summary.dropped}, reconnects {summary.reconnects}")
    if summary.read_ahead:
        console.print(f"end to end includes the wait in the reader's queue: a folder, or a file with --pace none, keeps "
                      f"every frame, so each waits for up to {summary.read_ahead} before it (about "
                      f"{summary.read_ahead + 1}x inference); a camera, or a file at --pace native, keeps only the newest")
    if summary.nonfinite_frames:
        console.print(f"{summary.nonfinite_frames} frames had NaN/Inf depth (painted magenta; NaN kept in .npy, "
                      "0 in .png)")
    for line in metric_lines(summary.metric) if summary.metric else []:
        console.print(line, markup=False)
    for o in summary.outputs:
        console.print(f"wrote {o}", markup=False)


def bench_tables(record: Dict[str, Any]) -> tuple:
    """`bench`: latency (with the SDT/DPT ratios), peak memory, and what bounds it on an Orin Nano."""
    from anydepth_edge.bench.report import gather_note, latency_cell, ratio_cell, reading_note, report_rows, title

    rows = report_rows(record)
    lat = Table(title=Text(f"Latency (ours vs paper, Jetson Orin Nano 4GB)\n{title(record)}"), caption=reading_note(record))
    for col in ("Resolution", "Decoder", "Latency ms", "FPS", "e2e ms", "Paper ms", "Paper FPS", "GFLOP/s (% of ref.)"):
        lat.add_column(col, justify="right" if col not in ("Resolution", "Decoder") else "left")
    for row in rows:
        paper = (_f(row["paper_latency_ms"], "{:.2f}"), _f(row["paper_fps"]))
        if row["error"]:
            lat.add_row(row["resolution"], row["decoder"], "failed", "", "", *paper, Text(row["error"][:40]))
            continue
        frac = f" ({row['peak_fraction'] * 100:.1f}%)" if row["peak_fraction"] else ""
        lat.add_row(row["resolution"], row["decoder"], latency_cell(row), f"{row['fps']:.2f}", _f(row["e2e_ms"], "{:.2f}"), *paper,
                    _f(row["achieved_gflops_s"], "{:.0f}") + frac)
    for res, r in record.get("ratios", {}).items():
        lat.add_row(res, "SDT/DPT", ratio_cell(r), "", "", _f(r["paper_latency_sdt_over_dpt"], "{:.3f}"), "", "")
    mem = Table(title="Peak memory during inference (ours vs paper; the paper gives it at 256x256)")
    for col in ("Resolution", "Decoder", "Peak MB", "Paper MB", "Method"):
        mem.add_column(col)
    for row in rows:
        if not row["error"]:
            mem.add_row(row["resolution"], row["decoder"], f"{row['peak_mb']:.1f}", _f(row["paper_memory_mb"]),
                        row["memory_method"])
    for res, r in record.get("ratios", {}).items():
        mem.add_row(res, "SDT/DPT", _f(r["memory_sdt_over_dpt"], "{:.3f}"), _f(r["paper_memory_sdt_over_dpt"], "{:.3f}"), "")
    if not any(row["mb_moved"] for row in rows):
        return lat, mem
    bounds = Table(title="What bounds it on an Orin Nano\nFP16 floors of the engine's graph (TensorRT's GridSample form)"
                   + gather_note(rows))
    for col in ("Resolution", "Decoder", "GFLOPs", "MB moved", "Memory floor ms", "Compute floor ms"):
        bounds.add_column(col, justify="right" if col not in ("Resolution", "Decoder") else "left")
    for row in rows:
        if row["mb_moved"]:
            bounds.add_row(row["resolution"], row["decoder"], _f(row["gflops"]), f"{row['mb_moved']:.0f}",
                           _f(row["orin_memory_ms"]), _f(row["orin_compute_ms"]))
    return lat, mem, bounds


def eval_record(record: Dict[str, Any], paths: Dict[str, Path], console) -> None:
    """`eval`: the paper's metrics per model, the worst images, what was written."""
    from anydepth_edge.evaluation.runner import HEADER, table_rows

    d = record["dataset"]
    t = Table(title=Text(f"{d['name']}: {d['images']} images, {d['crop']}, "
                         f"{d['depth_range_m'][0]:g}-{d['depth_range_m'][1]:g} m"))
    for i, name in enumerate(HEADER):
        t.add_column(name, justify="left" if i == 0 else "right")
    for row in table_rows(record):
        t.add_row(*row)
    console.print(t)
    if record["worst"]:
        order = ("by how much worse than the second model" if len(record["summary"]) == 2 else "by AbsRel")
        console.print(f"worst images ({order}; AbsRel per model): " + "; ".join(
            f"{w['name']} " + "/".join("-" if v is None else f"{v:.3f}" for k, v in w.items() if k != "name")
            for w in record["worst"]), markup=False)
    console.print(f"{record['wall_s_per_image'] * 1000:.0f} ms per image in all; written: "
                  + ", ".join(str(p) for p in paths.values()), markup=False)


DOCTOR_COLOURS = {"ok": "green", "missing": "yellow", "wrong": "red", "info": "cyan"}


def doctor_report(report: Dict, job: str, console) -> bool:
    """`doctor`: one line per check with its fix, then the verdict for `job`; returns the verdict."""
    for c in report["checks"]:
        fix = f"  -> {escape(c.fix)}" if c.fix else ""
        console.print(f"[{DOCTOR_COLOURS[c.status]}]{c.status:<8}[/] {escape(c.name)}: {escape(c.detail)}{fix}",
                      highlight=False)
    verdict = report["can"][job]
    command = "run --ros2" if job == "ros2" else job
    console.print(("[green]ready[/]" if verdict else "[red]not ready[/]") + f" for `anydepth-edge {command}`")
    return bool(verdict)
