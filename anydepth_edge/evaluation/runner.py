"""`anydepth-edge eval`: the deployed model's accuracy under the zero-shot protocol (protocol.py) on
a benchmark (datasets.py), optionally beside a second backend on the same images (`--against fp32`:
the FP32 export on ONNX Runtime, to see what the deployment lost). Writes a record like bench's:
JSON for programs, Markdown for people, a PNG of the per-image error distribution. Python 3.8.
"""

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from anydepth_edge.fileio import ensure_writable_dir, write_json_atomic, write_text_atomic
from anydepth_edge.evaluation.datasets import Dataset
from anydepth_edge.evaluation.protocol import METRICS, RULES, evaluate_image, mean_metrics
from anydepth_edge.runtime.processing import Postprocessor, Preprocessor

PROTOCOL = ("zero-shot affine-invariant (MiDaS, Ranftl et al. TPAMI 2022; as Depth Anything V1/V2 and AnyDepth "
            "report): per image, least-squares scale and shift in the model's output space (disparity: fitted to "
            "1/depth, compared in depth), dataset depth caps and crops, means of per-image figures")
WORST = 5
# The reference this toolkit is built from gives no accuracy table for the models it can load: no paper
# figure is shown rather than one for another model or protocol. Keyed (model label, dataset kind).
PAPER: Dict[Tuple[str, str], Dict[str, float]] = {}


def evaluate(dataset: Dataset, models: Sequence[Tuple[str, Any]], progress=None,
             on_image: Callable[[int], None] = lambda i: None) -> Dict[str, Any]:
    """Every image through every (label, backend); the record (see module doc)."""
    rule = RULES[dataset.kind]
    pre = {label: Preprocessor(be.resolution, "stretch") for label, be in models}
    post = Postprocessor("stretch")
    per_image: List[Dict[str, Any]] = []
    infer_ms: Dict[str, List[float]] = {label: [] for label, _ in models}
    task = progress.add_task(f"eval on {len(dataset)} images", total=len(dataset)) if progress else None
    started = time.perf_counter()
    for i, sample in enumerate(dataset):
        row: Dict[str, Any] = {"name": sample.name}
        for label, be in models:
            tensor = pre[label](sample.bgr)
            t0 = time.perf_counter()
            out = np.array(be.infer(tensor), np.float32)
            infer_ms[label].append((time.perf_counter() - t0) * 1000.0)
            pred = post.to_frame(out, sample.depth_m.shape)
            row[label] = evaluate_image(pred, sample.depth_m, getattr(be, "output_kind", "depth"), rule)
        per_image.append(row)
        if task is not None:
            progress.update(task, advance=1)
        on_image(i)
    labels = [label for label, _ in models]
    summary = {label: mean_metrics(r[label] for r in per_image) for label in labels}
    record = {
        "kind": "eval", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "protocol": PROTOCOL,
        "dataset": {"kind": dataset.kind, "name": rule.name, "images": len(dataset), "of": dataset.total,
                    "crop": rule.crop_name, "depth_range_m": [rule.min_depth, rule.max_depth],
                    "unscored": sum(1 for r in per_image if any(r[label] is None for label in labels)),
                    "skipped": list(dataset.skipped)},
        "models": [{"label": label, **_describe(be)} for label, be in models],
        "summary": summary,
        "timing_ms": {label: {"inference_mean": float(np.mean(v)) if v else None} for label, v in infer_ms.items()},
        "wall_s_per_image": (time.perf_counter() - started) / max(len(dataset), 1),
        "per_image": per_image,
    }
    if len(labels) == 2:
        a, b = labels
        record["difference"] = {k: (None if summary[a][k] is None or summary[b][k] is None
                                    else summary[a][k] - summary[b][k]) for k in METRICS}
    record["worst"] = worst_images(per_image, labels)
    record["paper"] = {label: PAPER.get((label, dataset.kind)) for label in labels}
    return record


def _describe(be) -> Dict[str, Any]:
    d = be.describe()
    return {"backend": d.get("backend"), "input": d.get("input"), "output_kind": getattr(be, "output_kind", "depth"),
            "random_weights": bool(getattr(be, "random_weights", False))}


def worst_images(per_image: List[Dict[str, Any]], labels: Sequence[str]) -> List[Dict[str, Any]]:
    """The images where the first model is worst: by AbsRel alone, or (two models) by how much worse
    than the second it is there."""
    def key(row):
        first = row[labels[0]]
        if first is None:
            return -np.inf
        if len(labels) == 2 and row[labels[1]] is not None:
            return first["abs_rel"] - row[labels[1]]["abs_rel"]
        return first["abs_rel"]

    rows = sorted((r for r in per_image if r[labels[0]] is not None), key=key, reverse=True)
    if len(labels) == 2:
        rows = [r for r in rows if key(r) > 0]  # only where the first model is worse
    rows = rows[:WORST]
    return [{"name": r["name"], **{label: (r[label] or {}).get("abs_rel") for label in labels}} for r in rows]


def _f(value: Optional[float], metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if metric != "rmse" else f"{value:.3f} m"


def table_rows(record: Dict[str, Any]) -> List[List[str]]:
    """[model, AbsRel, RMSE, d1, d2, d3, ms/image] per model, then the difference when two."""
    rows = [[label, *(_f(s[k], k) for k in METRICS), f"{record['timing_ms'][label]['inference_mean']:.1f}"]
            for label, s in record["summary"].items()]
    if "difference" in record:
        diff = record["difference"]
        rows.append(["difference", *("-" if diff[k] is None else f"{diff[k]:+.2e}" + (" m" if k == "rmse" else "")
                                     for k in METRICS), ""])
    return rows


HEADER = ["model", "AbsRel", "RMSE", "delta1", "delta2", "delta3", "inference ms/image"]


def markdown(record: Dict[str, Any], chart_name: Optional[str]) -> str:
    d = record["dataset"]
    lines = [f"# eval: {d['name']}", "", f"{d['images']} of {d['images'] if d['of'] is None else d['of']} images, "
             f"{d['crop']}, depth {d['depth_range_m'][0]:g} to {d['depth_range_m'][1]:g} m; {d['unscored']} unscored.",
             "", f"Protocol: {record['protocol']}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(record)]
    paper = [f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in p.items()) for k, p in record["paper"].items() if p]
    lines += ["", "Paper: " + ("; ".join(paper) if paper else "no figure for these models on this dataset "
                                                                 "(docs/eval.md)")]
    if any(m["random_weights"] for m in record["models"]):
        lines += ["", "**RANDOM WEIGHTS**: these figures say nothing about the trained model."]
    order = "by how much worse than the second model" if len(record["summary"]) == 2 else "by AbsRel"
    lines += ["", f"Worst images ({order}; AbsRel per model):", ""] + [
        f"- {w['name']}: " + ", ".join(f"{k} {_f(v, 'abs_rel')}" for k, v in w.items() if k != "name")
        for w in record["worst"]]
    if chart_name:
        lines += ["", f"![per-image AbsRel]({chart_name})"]
    return "\n".join(lines) + "\n"


def chart(record: Dict[str, Any], path: Path) -> bool:
    """Histogram of per-image AbsRel per model (and of the difference for two); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = list(record["summary"])
    values = {label: [r[label]["abs_rel"] for r in record["per_image"] if r[label]] for label in labels}
    panels = 2 if len(labels) == 2 else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    for label in labels:
        ax.hist(values[label], bins=20, alpha=0.6, label=f"{label} (mean {np.mean(values[label]):.3f})")
    ax.set_xlabel("AbsRel per image")
    ax.set_ylabel("images")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    ax.yaxis.get_major_locator().set_params(integer=True)
    random = any(m["random_weights"] for m in record["models"])
    ax.set_title(record["dataset"]["name"] + (" (RANDOM WEIGHTS)" if random else ""), fontsize=9,
                 color="tab:red" if random else "black")
    if panels == 2:
        a, b = labels
        diff = [r[a]["abs_rel"] - r[b]["abs_rel"] for r in record["per_image"] if r[a] and r[b]]
        axes[0][1].hist(diff, bins=20, color="tab:red")
        axes[0][1].axvline(0, color="k", lw=0.8)
        axes[0][1].yaxis.get_major_locator().set_params(integer=True)
        axes[0][1].set_xlabel("AbsRel difference per image (first - second model)")
        axes[0][1].set_title("what the deployment changed", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return True


def write_outputs(record: Dict[str, Any], out_dir, stem_parts: Sequence[str]) -> Dict[str, Path]:
    """eval-<dataset>-<models>-<time>.{json,md,png} in out_dir; a new name each run (never overwrites)."""
    out = ensure_writable_dir(Path(out_dir))
    stamp = record["created"].replace(":", "").replace("-", "")[:15]
    stem = "-".join(["eval", record["dataset"]["kind"], *stem_parts, stamp])
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    png = out / f"{stem}.png"
    if chart(record, png):
        paths["png"] = png
    write_json_atomic(paths["json"], record)
    write_text_atomic(paths["md"], markdown(record, png.name if "png" in paths else None))
    return paths
