"""The benchmark's PNG: our latency with its spread and the SDT/DPT ratio, the paper's Orin Nano
figures in a panel of their own (CPU FP32 bars are tens of times taller: on one linear axis the
paper's became slivers), and peak memory. Torch-free; False when matplotlib is missing."""

from pathlib import Path
from typing import Any, Dict, List, Optional

from anydepth_edge.fileio import atomic_path

PAIR = ("SDT", "DPT")


def _by_resolution(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """{'256x256': {'SDT': row, 'DPT': row}, ...} in the order benchmarked (first word of the label)."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["resolution"], {})[row["decoder"].split()[0]] = row
    return out


def _ratio_labels(ax, groups, values, ratios: Dict[str, Any], key: str, noisy: bool = False, top=None) -> None:
    """'SDT/DPT 0.92' (the record's `ratios[res][key]`, the figure the tables print) above each
    resolution's pair of bars (and their error bars: `top`)."""
    for i, (res, cells) in enumerate(groups.items()):
        value = (ratios.get(res) or {}).get(key)
        if value is None:
            continue
        flag = " (noisy)" if noisy and ratios[res].get("noisy") else ""
        height = max([v for v in (values(cells.get(d)) for d in PAIR) if v]
                     + ([top(c) for c in cells.values()] if top else []))
        ax.annotate(f"SDT/DPT {value:.2f}{flag}", (i, height), xytext=(0, 8),
                    textcoords="offset points", ha="center", fontsize=8)


def _pair_bars(ax, groups, values, errors=None, label_of=lambda d: d, hatch_if=None) -> Dict[tuple, float]:
    """Per resolution, one bar per decoder present (SDT left, DPT right, others after); returns
    each bar's x by (resolution index, decoder)."""
    where: Dict[tuple, float] = {}
    decoders = [d for d in PAIR if any(d in c for c in groups.values())]
    decoders += sorted({d for c in groups.values() for d in c} - set(decoders))
    width = 0.8 / max(1, len(decoders))
    for k, dec in enumerate(decoders):
        xs, hs, lo, hi, hatches = [], [], [], [], []
        for i, cells in enumerate(groups.values()):
            value = values(cells.get(dec))
            if value is None:
                continue
            xs.append(i + (k - (len(decoders) - 1) / 2) * width)
            where[(i, dec)] = xs[-1]
            hs.append(value)
            if errors:
                low, high = errors(cells[dec])
                lo.append(value - low)
                hi.append(high - value)
            hatches.append("//" if hatch_if and hatch_if(cells[dec]) else "")
        if not xs:
            continue
        bars = ax.bar(xs, hs, width, label=label_of(dec), yerr=[lo, hi] if errors else None, capsize=3)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
    ax.set_xticks(range(len(groups)), list(groups))
    return where


def _headroom(ax) -> None:
    """Room above the tallest bar (and its error bar) for the ratio and the legend."""
    top = max([p.get_height() for p in ax.patches] + [line.get_ydata().max() for line in ax.lines
                                                      if len(line.get_ydata())] + [0])
    ax.set_ylim(0, top * 1.35 or 1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, markerscale=0.5)


def chart(record: Dict[str, Any], path: Path, rows: List[Dict[str, Any]], title: str) -> bool:
    """Three panels: ours (latency, error bar p10-p90, NOISY hatched), the paper's Orin Nano latency,
    peak memory ours vs paper."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in rows if not r["error"]]
    if not rows:
        return False
    groups = _by_resolution(rows)
    ours = f"ours ({record['device']})" if not record.get("mismatch") else "ours (NOT an Orin Nano)"
    fig, (lat, paper, mem) = plt.subplots(1, 3, figsize=(14, 4.4))

    def latency(row: Optional[Dict[str, Any]]):
        return row["latency_ms"] if row else None

    _pair_bars(lat, groups, latency, errors=lambda r: (r["p10_ms"], r["p90_ms"]),
               label_of=lambda d: f"{d}, {ours}", hatch_if=lambda r: r["noisy"])
    ratios = record.get("ratios", {})
    _ratio_labels(lat, groups, latency, ratios, "latency_sdt_over_dpt", noisy=True, top=lambda r: r["p90_ms"])
    lat.set_title("Latency, ours (error bar: p10-p90; hatched: NOISY)", fontsize=9)
    lat.set_ylabel("ms per inference")

    def paper_latency(row):
        return row["paper_latency_ms"] if row else None

    paper_groups = {res: cells for res, cells in groups.items() if any(paper_latency(c) for c in cells.values())}
    if paper_groups:
        _pair_bars(paper, paper_groups, paper_latency, label_of=lambda d: f"{d}, paper")
        _ratio_labels(paper, paper_groups, paper_latency, ratios, "paper_latency_sdt_over_dpt")
    else:
        paper.text(0.5, 0.5, "no paper figure at these sizes", ha="center", transform=paper.transAxes)
    paper.set_title("Latency, paper (Jetson Orin Nano 4GB)", fontsize=9)
    paper.set_ylabel("ms per inference")

    where = _pair_bars(mem, groups, lambda r: r["peak_mb"] if r else None, label_of=lambda d: f"{d}, ours")
    paper_mem = [(where[(i, d)], c["paper_memory_mb"]) for i, cells in enumerate(groups.values())
                 for d, c in cells.items() if c["paper_memory_mb"] and (i, d) in where]
    if paper_mem:  # the paper's figure as a line across our bar: the two are on one scale
        mem.scatter([x for x, _ in paper_mem], [v for _, v in paper_mem], marker="_", s=900, color="black",
                    zorder=3, label="paper (Orin Nano, 256 only)")
    mem.set_title("Peak memory", fontsize=9)
    mem.set_ylabel("MB")
    for ax in (lat, paper, mem):
        _headroom(ax)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(str(tmp), format="png", dpi=110)
    plt.close(fig)
    return True
