"""Benchmark harness: statistics on known inputs, memory probes on a child of known size, Jetson
detection on fixture file systems, the CLI end to end at a tiny size."""

import json
import re
import os
import stat
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error, run_cli
from fakes.platforms import FixtureTools

from anydepth_edge.bench.figures import peak_memory, sdt_dpt_ratios
from anydepth_edge.bench.harness import resolve_device
from anydepth_edge.bench.process import run_child
from anydepth_edge.bench.tegrastats import TegrastatsSampler, parse_tegrastats_ram
from anydepth_edge.bench.stats import latency_stats, paper_figures, percentile
from anydepth_edge.engines import BackendChoice
from anydepth_edge.errors import UserError
from anydepth_edge.host_memory import process_memory
from anydepth_edge.platform_info import detect as detect_root
from anydepth_edge.platform_info import parse_nv_tegra_release
from anydepth_edge.targets import jetpack_name

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"
SYNTHETIC = "fakes.synthetic:SyntheticBackend"


def detect(root):
    return detect_root(root, FixtureTools(root))


def _synthetic(res=(32, 32), **options):
    return {"kind": "custom", "factory": SYNTHETIC, "options": {"res": list(res), **options}}


@pytest.fixture(autouse=True)
def _tests_on_the_childs_path(monkeypatch):
    """The benchmark child imports the synthetic backend from tests/ (`fakes.synthetic`)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))


# ----------------------------------------------------------------------------- statistics

def test_latency_stats_known_values():
    s = latency_stats([10, 20, 30, 40, 50])
    assert s["n"] == 5 and s["mean_ms"] == 30 and s["min_ms"] == 10 and s["max_ms"] == 50
    assert s["std_ms"] == pytest.approx(15.8113883, rel=1e-6)  # sample std
    assert s["p50_ms"] == 30 and s["p90_ms"] == pytest.approx(46) and s["p99_ms"] == pytest.approx(49.6)
    assert s["fps"] == pytest.approx(1000 / 30)
    assert latency_stats([7.5])["std_ms"] == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    values = sorted(np.random.default_rng(0).exponential(10, 101).tolist())
    for q in (0, 5, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_paper_figures_and_ratios():
    assert paper_figures((256, 256), "sdt") == {"latency_ms": 213.35, "fps": 4.7, "memory_mb": 395.2}
    assert paper_figures((512, 512), "dpt")["memory_mb"] is None
    assert paper_figures((256, 320), "sdt")["latency_ms"] is None
    rows = [
        {"res": [256, 256], "decoder": "sdt", "latency": {"mean_ms": 100.0}, "peak_memory": {"peak_mb": 300.0}},
        {"res": [256, 256], "decoder": "dpt", "latency": {"mean_ms": 200.0}, "peak_memory": {"peak_mb": 600.0}},
    ]
    r = sdt_dpt_ratios(rows)["256x256"]
    assert r["latency_sdt_over_dpt"] == 0.5 and r["memory_sdt_over_dpt"] == 0.5
    assert r["paper_latency_sdt_over_dpt"] == pytest.approx(213.35 / 305.65)
    assert r["paper_memory_sdt_over_dpt"] == pytest.approx(395.2 / 589.5)


def test_spread_flags_runs_too_wide_to_trust():
    """Quiet runs pass; a few runs slowed by another job (CV) or a wide tail (p90/p10) are flagged."""
    from anydepth_edge.bench.stats import spread

    quiet = spread(latency_stats([100, 102, 98, 101, 99, 103, 97, 100, 101, 99]))
    assert not quiet["noisy"] and quiet["cv"] == pytest.approx(0.0183, abs=1e-3)
    outliers = spread(latency_stats([100] * 8 + [300, 320]))
    assert outliers["noisy"] and outliers["cv"] > 0.15
    tail = spread(latency_stats([100, 100, 100, 100, 110, 120, 130, 140, 150, 160]))  # CV 0.19, p90/p10 1.51
    assert tail["noisy"] and tail["p90_over_p10"] == pytest.approx(151 / 100)
    assert spread(latency_stats([100, 104, 108, 112, 116, 120, 124, 128, 132, 136]))["noisy"] is False


def test_a_noisy_cell_is_flagged_everywhere_with_the_command_to_measure_it_again(tmp_path):
    """A run that shared the machine (every 3rd inference 5x slower): the warning names the cell and
    gives the command with more rounds; tables, Markdown, ratio and chart mark it."""
    from anydepth_edge.bench.harness import BenchOptions, Cell, _result_row, noisy_warning
    from anydepth_edge.bench.report import markdown, write_outputs
    from anydepth_edge.views import bench_tables

    rows = []
    for decoder, slow in (("sdt", 3), ("dpt", 0)):
        spec = {"res": [32, 32], "warmup": 0, "iters": 9, "e2e_iters": 0, "measure_peak": False,
                "backend": _synthetic(sleep_ms=10, slow_every=slow, slow_ms=50)}
        rows.append(_result_row(Cell(decoder, (32, 32), spec), run_child(spec), BackendChoice("onnxruntime", "cpu", ""),
                                "cpu", "fp32"))
    assert rows[0]["spread"]["noisy"] and not rows[1]["spread"]["noisy"]
    line = noisy_warning(BenchOptions(backend="ort"), Cell("sdt", (32, 32), {}), rows[0], "cpu")
    assert line.startswith("SDT 32x32: its 9 runs spread too much to trust")
    assert line.endswith("anydepth-edge bench --device cpu --backend ort --res 32x32 --decoder sdt --iters 20")
    record = dict(_record_shell(), results=rows, ratios=sdt_dpt_ratios(rows))
    assert record["ratios"]["32x32"]["noisy"] is True
    from rich.console import Console

    console = Console(width=200, record=True)
    for table in bench_tables(record):
        console.print(table)
    text = console.export_text()
    assert "NOISY" in text and "(noisy)" in text
    assert "NOISY" in markdown(record) and "(noisy)" in markdown(record)
    paths = write_outputs(record, tmp_path)
    assert paths["png"].stat().st_size > 10_000


def _record_shell():
    return {"schema": "anydepth-edge/bench/1", "created": "2026-12-07T10:00:00+00:00", "device": "cpu", "mismatch": None,
            "backend": {"kind": "onnxruntime", "label": "ONNX Runtime (cpu)", "reason": ""}, "precision": "fp32",
            "settings": {"encoder": "vits", "iters": 9, "warmup": 0, "e2e_iters": 0}, "checkpoint": {"path": None},
            "warnings": [], "environment": {"platform": {"machine": "x86_64"}, "versions": {}, "python": "3.11",
                                            "toolkit_version": "0.1.0"}}


# ----------------------------------------------------------------------------- memory probes

def test_child_of_known_size_is_measured_within_tolerance():
    spec = {"res": [32, 32], "warmup": 1, "iters": 5, "e2e_iters": 0, "measure_peak": False,
            "backend": _synthetic(alloc_mb=200, sleep_ms=20)}
    seen = []
    result = run_child(spec, on_iter=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (6, 6)  # progress reported for warm-up + timed runs
    mem = result["memory"]
    measured_mb = mem["rss_peak_over_baseline_bytes"] / 2 ** 20
    assert 190 <= measured_mb <= 230, measured_mb
    assert peak_memory(result, BackendChoice("onnxruntime", "cpu", ""))["peak_mb"] == pytest.approx(measured_mb)
    lat = result["latency"]
    assert lat["n"] == 5 and len(result["latencies_ms"]) == 5
    assert 20 <= lat["min_ms"] < 200  # the synthetic backend sleeps 20 ms per run


def test_child_errors_come_back_as_one_record():
    result = run_child({"res": [32, 32], "warmup": 0, "iters": 1, "backend": {"kind": "onnxruntime", "artifact": "/nope.onnx"}})
    assert "error" in result and "not found" in result["error"]


def test_peak_memory_method_per_backend():
    tegra = {"memory": {"tegrastats": {"baseline_mb": 1500, "peak_mb": 1900}, "rss_peak_over_baseline_bytes": 1}}
    assert peak_memory(tegra, BackendChoice("tensorrt", "cuda", ""))["peak_mb"] == 400
    torch_cuda = {"memory": {"max_allocated_bytes": 300 * 2 ** 20}}
    assert peak_memory(torch_cuda, BackendChoice("torch", "cuda", ""))["method"].startswith("torch.cuda")
    trt = {"memory": {"cuda_meminfo_delta_bytes": 64 * 2 ** 20, "engine_device_memory_bytes": 32 * 2 ** 20}}
    got = peak_memory(trt, BackendChoice("tensorrt", "cuda", ""))
    assert got["peak_mb"] == 64 and got["engine_device_memory_mb"] == 32 and "cudaMemGetInfo" in got["method"]


def test_process_memory_reads_proc():
    m = process_memory()
    assert m["rss_bytes"] > 10 << 20 and m["peak_rss_bytes"] >= m["rss_bytes"]


def test_tegrastats_parsing_and_sampler(tmp_path, monkeypatch):
    line = ("11-25-2026 10:00:00 RAM 2012/3458MB (lfb 2x4MB) SWAP 0/1729MB (cached 0MB) CPU [5%@1510,off] "
            "GR3D_FREQ 99% cpu@50C")
    assert parse_tegrastats_ram(line) == (2012, 3458)
    assert parse_tegrastats_ram("no ram here") is None
    fake = tmp_path / "tegrastats"
    fake.write_text("#!/bin/sh\nfor m in 1500 1700 2100 1800; do echo \"RAM $m/3458MB (lfb 1x4MB) SWAP 0/0MB\"; "
                    "sleep 0.05; done\nsleep 5\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    sampler = TegrastatsSampler(interval_ms=50)
    assert sampler.wait_for_sample()
    import time

    time.sleep(0.5)
    assert sampler.stop() == {"baseline_mb": 1500, "peak_mb": 2100, "samples": 4}


# ----------------------------------------------------------------------------- Jetson detection

def test_orin_nano_jetpack5_fixture():
    info = detect(FIXTURES / "orin-nano-4gb-jp5")
    assert info.is_jetson and info.is_orin_nano and info.device_profile == "orin-nano"
    assert info.module == "Orin Nano 4GB" and info.l4t == "35.4.1" and info.jetpack == "5.1.2"
    assert info.expected_tensorrt == "8.5.2"
    assert info.mem_total_mb == 3381 and info.cpu_count == 6 and info.machine == "aarch64"
    assert info.nvpmodel == "7W (mode 1)" and info.nvpmodel_is_max is False and info.clocks_locked is False
    assert any("nvpmodel -m 0" in w for w in info.warnings) and any("jetson_clocks" in w for w in info.warnings)


def test_orin_nano_jetpack6_fixture():
    info = detect(FIXTURES / "orin-nano-4gb-jp6")
    assert info.is_orin_nano and info.l4t == "36.4.3" and info.jetpack == "6.2" and info.expected_tensorrt == "10.3"
    assert info.nvpmodel_is_max and info.clocks_locked and info.warnings == []


def test_x86_fixture():
    info = detect(FIXTURES / "x86-host")
    assert not info.is_jetson and info.device_profile == "x86_64" and info.cpu_count == 2
    assert info.cpu_model.startswith("Intel")


def test_l4t_parsing():
    assert parse_nv_tegra_release("# R36 (release), REVISION: 3.0, GCID: 1") == "36.3.0"
    assert jetpack_name("35.3.1") == "5.1.1" and jetpack_name("35.9.9") == "5.1.x" and jetpack_name("36.9.0") == "6.x"


def test_device_resolution_against_fixtures():
    x86 = detect(FIXTURES / "x86-host")
    with pytest.raises(UserError, match="not a Jetson Orin Nano.*--allow-mismatch"):
        resolve_device("orin-nano", x86, allow_mismatch=False)
    profile, runtime, label = resolve_device("orin-nano", x86, allow_mismatch=True)
    assert profile == "orin-nano" and "not an Orin Nano" in label
    assert resolve_device("auto", detect(FIXTURES / "orin-nano-4gb-jp6"), False) == ("orin-nano", "cuda", None)
    assert resolve_device("cpu", x86, False) == ("cpu", "cpu", None)
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu", x86, False)


# ----------------------------------------------------------------------------- the CLI

@pytest.mark.integration
def test_bench_cli_tiny_run_writes_every_output(tmp_path):
    out = tmp_path / "results"
    proc = run_cli("bench", "--device", "cpu", "--res", "64", "--iters", "3", "--warmup", "1", "--out-dir", out,
                   "--export-dir", tmp_path / "export", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Latency" in proc.stdout and "SDT/DPT" in proc.stdout
    files = {p.suffix for p in out.iterdir()}
    assert {".json", ".md", ".csv"} <= files
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["device"] == "cpu" and record["backend"]["kind"] == "onnxruntime"
    assert {(r["decoder"], tuple(r["res"])) for r in record["results"]} == {("sdt", (64, 64)), ("dpt", (64, 64))}
    for r in record["results"]:
        assert len(r["latencies_ms"]) == 3 and r["latency"]["mean_ms"] > 0
        assert r["peak_memory"]["peak_mb"] > 50 and "RSS" in r["peak_memory"]["method"]
        # end-to-end includes the inference: never much faster than it (3 iterations on a busy CPU jitter)
        assert r["gflops"] > 10 and 0 < r["peak_fraction"] and r["end_to_end"]["mean_ms"] >= 0.5 * r["latency"]["min_ms"]
        # ONNX Runtime gets the target's measured DySample form; the report sets bytes against the Orin Nano
        form = "gather" if r["decoder"] == "sdt" else "grid_sample"  # DPT has no DySample, no '-gather' name
        assert r["dysample"] == form and r["artifact"].endswith("-ort-gather.onnx" if form == "gather" else "-ort.onnx")
        t = r["traffic"]
        assert 0 < t["fused_bytes"] < t["bytes"] and t["orin_nano_memory_bound_ms"] > 0
        # the bound is the engine's: SDT's Gather samplers counted as TensorRT's GridSample, which moves less
        moved = t["tensorrt_form_fused_bytes"] if form == "gather" else t["fused_bytes"]
        assert (moved < t["fused_bytes"]) == (form == "gather") and t["orin_nano_memory_bound_ms"] == pytest.approx(moved / 2 / 34e9 * 1e3)
        assert t["orin_nano_compute_bound_ms"] == pytest.approx(r["gflops"] / 5.0e3 * 1e3)
    md = next(out.glob("*.md")).read_text()
    assert "What bounds it on an Orin Nano" in md and "What bounds it on an Orin Nano" in proc.stdout
    assert "SDT/DPT below 1: SDT is faster" in md and "SDT/DPT below 1" in proc.stdout
    assert re.search(r"Reference peak for the last column: \d+ GFLOP/s", md)
    # off a terminal: a line per step (export phases, then each configuration), and the total time
    assert "info: benchmarking SDT 64x64 (1/2)" in proc.stderr and "info: benchmarking DPT 64x64 (2/2)" in proc.stderr
    assert re.search(r"written in \d+ min \d\d s: ", proc.stdout)
    env = record["environment"]
    assert env["platform"]["cpu_count"] >= 1 and "onnxruntime" in env["versions"] and env["git_commit"]


def test_bench_orin_nano_on_this_host_is_one_line():
    assert_one_line_error(run_cli("bench", "--device", "orin-nano"), "not a Jetson Orin Nano")


@pytest.mark.parametrize("args,needle", [
    (["--res", "250"], "use 240 or 256"),
    (["--decoder", "unet"], "'unet' is not one of 'sdt', 'dpt'"),
    (["--backend", "tflite"], "'tflite' is not one of 'auto', 'trt', 'ort', 'torch'"),
    (["--device", "cpu", "--precision", "fp16"], "FP16 on the CPU"),
    (["--device", "cpu", "--iters", "0"], "--iters"),
    (["--layout", "nhwc"], "'nhwc' is not one of 'auto', 'nchw', 'channels-last'"),
])
def test_bench_bad_inputs(args, needle):
    assert_one_line_error(run_cli("bench", *args), needle)


@pytest.mark.integration
def test_bench_cli_through_pytorch_records_the_layout(tmp_path):
    """`bench --backend torch --layout L`: the layout reaches the child, the record and the report."""
    out = tmp_path / "results"
    proc = run_cli("bench", "--device", "cpu", "--backend", "torch", "--decoder", "sdt", "--res", "64", "--iters", "2",
                   "--warmup", "1", "--e2e-iters", "1", "--layout", "channels-last", "--out-dir", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(next(out.glob("*.json")).read_text())
    (row,) = record["results"]
    assert record["backend"]["kind"] == "torch" and record["settings"]["layout"] == "channels-last"
    assert row["backend"]["layout"] == "channels-last" and row["backend"]["layout_ms"] == {}
    assert "| SDT (channels-last) |" in next(out.glob("*.md")).read_text()


def test_bench_cli_through_tensorrt(exported, tmp_path):
    """`bench --backend trt`: the engine is built through the fake TensorRT, the child times it."""
    import shutil

    _, res = exported
    export = tmp_path / "export"
    export.mkdir()
    src = res["trt10"].onnx_path
    for p in src.parent.glob(src.stem + ".*"):  # the export with its reference bundle and FP16 form
        shutil.copy(p, export)
    out = tmp_path / "results"
    proc = run_cli("bench", "--device", "cuda", "--backend", "trt", "--decoder", "sdt", "--res", "64", "--iters", "3",
                   "--warmup", "1", "--e2e-iters", "1", "--export-dir", export, "--engines-dir", tmp_path / "engines",
                   "--out-dir", out, fake_tensorrt="10.3.0", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["backend"]["kind"] == "tensorrt" and record["precision"] == "fp16"
    (row,) = record["results"]
    assert row["artifact"].endswith("-fp16-trt10.3.0-orin.engine") and len(row["latencies_ms"]) == 3
    assert row["dysample"] == "grid_sample"  # the TensorRT targets keep GridSample
    assert "cudaMemGetInfo" in row["peak_memory"]["method"] and row["backend"]["tensorrt"] == "10.3.0"


def test_ort_sessions_run_without_a_memory_pattern(exported):
    """The memory pattern packed SDT's full-resolution maps badly (ViT-S 512: 2051 vs 1255 MB peak)."""
    from anydepth_edge.engines.ort_backend import OrtBackend

    _, res = exported
    backend = OrtBackend(res["trt10"].onnx_path)
    opts = backend.session.get_session_options()
    assert opts.enable_mem_pattern is False and opts.enable_cpu_mem_arena is True
