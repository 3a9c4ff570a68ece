"""What a new user hit: depth images that look right, readable views with a RANDOM WEIGHTS badge,
--max-frames counting processed frames, benchmark records that cannot be confused, and messages
that print user text as text."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error, run_cli

cv2 = pytest.importorskip("cv2")

from fakes.backends import MeanBackend  # noqa: E402

from anydepth_edge.runtime.loop import DepthLoop, RunOptions  # noqa: E402
from anydepth_edge.runtime.processing import Postprocessor  # noqa: E402
from anydepth_edge.runtime.sinks import BADGE, DepthSaver, depth_png, side_by_side  # noqa: E402
from anydepth_edge.runtime.sources import open_source, parse_source  # noqa: E402


def bordered_depth(h=480, w=640, band=2):
    """What the trial saw: a smooth depth in 0.90..0.94 with a border at 3.0: 2 px (1.5% of a VGA
    frame), or 10 px (7%: a ViT-S SDT 256 export shown at 640x480 has ~6 px at 2.4-3.0 ramping in to ~12)."""
    d = np.tile(np.linspace(0.90, 0.94, w, dtype=np.float32), (h, 1))
    d[:band], d[-band:], d[:, :band], d[:, -band:] = 3.0, 3.0, 3.0, 3.0
    return d


# ----------------------------------------------------------------------------- depth images

@pytest.mark.parametrize("band", [2, 10])
def test_colour_map_is_percentile_clipped(band):
    colour = Postprocessor().colourise(bordered_depth(band=band))
    grey = cv2.cvtColor(colour[band:-band, band:-band], cv2.COLOR_BGR2GRAY).astype(float)
    # the interior spans the colour map (min-max over the border would leave it one flat colour)
    assert grey.max() - grey.min() > 150


@pytest.mark.parametrize("band", [2, 10])
def test_depth_png_spans_16_bits_and_its_scale_is_saved(tmp_path, band):
    depth = bordered_depth(band=band)
    pixels, lo, hi = depth_png(depth, metric=False)
    inner = pixels[band:-band, band:-band]
    assert inner.max() - inner.min() > 40000 and 0.90 <= lo < hi <= 0.941
    saver = DepthSaver(tmp_path, cv2, metric=False)
    saver.save(7, depth, "kitchen.jpg")
    png = cv2.imread(str(tmp_path / "kitchen.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and (tmp_path / "kitchen.npy").exists()
    (row,) = list(csv.DictReader(open(tmp_path / "depth_scale.csv")))
    back = float(row["lo"]) + (png[240, 320].astype(float) - 1) / 65534 * (float(row["hi"]) - float(row["lo"]))
    assert back == pytest.approx(depth[240, 320], abs=2e-4) and row["unit"] == "relative depth"


def test_depth_files_are_named_after_input_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("door.png", "hall.jpg"):
        cv2.imwrite(str(folder / name), np.full((40, 50, 3), 90, np.uint8))
    spec = parse_source(str(folder))
    loop = DepthLoop(MeanBackend(), open_source(spec), spec, RunOptions(save_depth=str(tmp_path / "d")))
    loop.run()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "depth_scale.csv", "door.npy", "door.png", "hall.npy", "hall.png"]


# ----------------------------------------------------------------------------- views

def test_overlay_text_sits_on_a_dark_band_and_the_badge_shows():
    white = np.full((120, 160, 3), 255, np.uint8)
    view = side_by_side(white, white.copy(), ["12.0 FPS", "infer 80.0 ms"], cv2, badge=BADGE)
    band = view[2:40, 2:60]
    assert band.mean() < 140  # darkened behind the text...
    assert band.max() > 200  # ...the text itself white
    badge = view[4:20, 160:]
    red = (badge[..., 2] > 150) & (badge[..., 0] < 80)
    assert red.sum() > 50  # a red badge over the depth half
    plain = side_by_side(white, white.copy(), [], cv2)
    assert plain[4:20, 160:].min() == 255  # no badge when the weights are trained


def test_random_weights_reach_the_viewer_from_the_exports_sidecar(exported, tmp_path):
    """The flag comes from what the export says it was made from (its sidecar's checkpoint), through
    run's backend choice into the loop's stats the viewer serves: random for a random-weights export,
    not for one made from a checkpoint."""
    import json
    import shutil

    from test_runtime import make_video

    from anydepth_edge.runtime.app import open_run_backend

    _, res = exported
    clip = make_video(tmp_path / "c.mp4", frames=2)
    for checkpoint, expected in ((None, True), ({"path": "w.pth", "format": "anydepth-official", "sha256": "ab" * 32}, False)):
        folder = tmp_path / str(expected)
        folder.mkdir()
        src = res["trt10"].onnx_path
        for p in src.parent.glob(src.stem + ".*"):
            shutil.copy(p, folder)
        onnx = folder / src.name
        if checkpoint is not None:
            side = json.loads(onnx.with_suffix(".json").read_text())
            onnx.with_suffix(".json").write_text(json.dumps({**side, "checkpoint": checkpoint}))
        be, _ = open_run_backend(str(onnx), "64", "ort", str(tmp_path / "e"), str(folder), warn=lambda s: None)
        spec = parse_source(str(clip))
        loop = DepthLoop(be, open_source(spec), spec, RunOptions(pace="none"))
        try:
            loop.run()
        finally:
            be.close()
        assert be.random_weights is expected and loop.live_stats()["random_weights"] is expected


def test_run_says_random_weights_in_its_first_lines(exported, tmp_path):
    _, res = exported
    src = res["trt10"].onnx_path
    for p in src.parent.glob(src.stem + ".*"):
        shutil.copy(p, tmp_path)
    proc = run_cli("run", "--source", REPO / "anydepth_edge" / "data", "--model", tmp_path / src.name)
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[:3]
    assert any("RANDOM WEIGHTS" in line for line in first), first


# ----------------------------------------------------------------------------- --max-frames

def test_max_frames_counts_processed_frames(tmp_path):
    """A file played like a camera with a slow model: frames are dropped, yet 4 are processed."""
    from test_runtime import make_video

    clip = make_video(tmp_path / "c.mp4", frames=120)
    spec = parse_source(str(clip))
    loop = DepthLoop(MeanBackend(sleep_ms=60), open_source(spec), spec, RunOptions(max_frames=4))
    s = loop.run()
    assert s.frames == 4 and s.stopped_by == "max frames" and s.captured > 4 and s.dropped > 0


# ----------------------------------------------------------------------------- benchmark records

def test_benchmark_runs_go_to_an_untracked_folder():
    gitignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "benchmarks/runs/x.json"])
    assert gitignored.returncode == 0
    tracked = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "benchmarks/results/x.json"])
    assert tracked.returncode == 1
    help_text = run_cli("bench", "--help").stdout
    assert "benchmarks/runs" in help_text and "<str>" not in help_text and "<bool>" not in help_text.split("--help")[0]


def _record(mismatch=None):
    return {"schema": "anydepth-edge/bench/1", "created": "2026-11-26T10:00:00+00:00", "device": "orin-nano",
            "mismatch": mismatch, "backend": {"kind": "onnxruntime", "label": "ONNX Runtime (cpu)", "reason": ""},
            "precision": "fp32", "settings": {"encoder": "vits", "iters": 3, "warmup": 1, "e2e_iters": 0,
                                              "cuda_graph": False, "resolutions": [[64, 64]], "decoders": ["sdt"]},
            "checkpoint": {"path": None}, "warnings": [], "ratios": {},
            "environment": {"platform": {"machine": "x86_64", "cpu_model": "Test CPU"}, "versions": {},
                            "hostname": "box", "python": "3.11", "toolkit_version": "0.1.0"},
            "results": [{"decoder": "sdt", "res": [64, 64], "latency": {"mean_ms": 10.0, "std_ms": 1.0, "p90_ms": 11.0,
                                                                     "fps": 100.0},
                         "peak_memory": {"peak_mb": 5.0, "method": "rss"}, "paper": {}}]}


def test_mismatch_runs_are_named_and_labelled_as_such(tmp_path):
    from anydepth_edge.bench.report import write_outputs

    paths = write_outputs(_record("measured on x86_64, not an Orin Nano"), tmp_path)
    assert paths["json"].name.startswith("bench-orin-nano-profile-on-x86_64-")
    summary = subprocess.run([sys.executable, str(REPO / "benchmarks" / "summarise.py"), str(tmp_path)],
                             capture_output=True, text=True).stdout
    header, _, row = summary.splitlines()[:3]
    assert "date" in header and "host" in header and "file" in header
    assert "2026-11-26" in row and "NOT an Orin Nano" in row and paths["json"].name in row


def test_the_reference_peak_is_measured_once_per_host(tmp_path, monkeypatch):
    import anydepth_edge.bench.child as child

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(child, "measure_peak_flops", lambda k, d: calls.append(1) or {"flops": 1e11, "method": "m"})
    first = child.cached_peak_flops("onnxruntime", "cpu")
    second = child.cached_peak_flops("onnxruntime", "cpu")
    assert calls == [1] and first["flops"] == second["flops"] == 1e11 and "cached" in second


# ----------------------------------------------------------------------------- messages

def test_user_text_is_printed_as_text():
    proc = run_cli("run", "--source", "0", "--serve", "0.0.0.0:abc:")
    line = assert_one_line_error(proc, "0.0.0.0:abc:")
    assert "🔤" not in line and "\n\n" not in proc.stderr


def test_warnings_are_printed_once():
    from anydepth_edge import console

    seen = []
    console._warned.clear()
    real = console._line
    console._line = lambda label, msg: seen.append(msg)
    try:
        console.warn("random weights")
        console.warn("random weights")
    finally:
        console._line = real
    assert seen == ["random weights"]


def test_progress_off_a_terminal_is_a_line_per_step(monkeypatch):
    from anydepth_edge import console

    assert isinstance(console.progress(), console.StepLog) == (not console.err.is_terminal)
    lines = []
    monkeypatch.setattr(console, "info", lines.append)
    now = iter([100.0, 103.4, 161.0, 170.0])
    with console.StepLog(clock=lambda: next(now)) as log:
        task = log.add_task("iterations", total=10)
        log.update(task, description="benchmarking SDT 256x256 (1/4)", completed=0)
        for done in range(1, 11):  # iterations: no line each
            log.update(task, completed=done)
            log.advance(task)
        log.update(task, description="benchmarking SDT 256x256 (1/4)")  # unchanged: no line
        log.update(task, description="benchmarking DPT 256x256 (2/4)", completed=0)
    assert lines == ["benchmarking SDT 256x256 (1/4) (3 s)", "benchmarking DPT 256x256 (2/4) (61 s)"]


def test_check_onnx_groups_problems_with_their_fix(exported):
    _, res = exported
    bad = run_cli("check-onnx", res["trt10"].onnx_path, "--target", "trt8.5")
    rows = [line for line in bad.stdout.splitlines() if "LayerNormalization" in line]
    assert bad.returncode == 1 and len(rows) <= 2  # one grouped row (folded at most once), not one per node
    assert "nodes, e.g." in bad.stdout and "--target trt8.5" in bad.stdout


def test_corrupt_onnx_in_run_says_to_re_export(exported, tmp_path):
    from anydepth_edge.fileio import sha256_file
    from anydepth_edge.artifacts import OnnxArtifact

    _, res = exported
    src = res["trt10"].onnx_path
    for p in src.parent.glob(src.stem + ".*"):
        shutil.copy(p, tmp_path)
    broken = tmp_path / src.name
    broken.write_bytes(broken.read_bytes()[:5000])  # a half-copied file whose sidecar was updated
    record = OnnxArtifact.load(broken)
    record.onnx_sha256 = sha256_file(broken)
    record.write_sidecar()
    line = assert_one_line_error(run_cli("run", "--source", REPO / "anydepth_edge" / "data", "--model", broken),
                                 "ONNX Runtime cannot load")
    assert "re-export it: anydepth-edge export" in line


def test_doctor_says_cuda_buffers_need_a_gpu(tmp_path):
    from fakes.platforms import fixture

    from anydepth_edge.doctor import diagnose

    root = tmp_path / "x86"
    shutil.copytree(REPO / "tests" / "fixtures" / "platforms" / "x86-host", root)
    data = json.loads((root / "fixture-modules.json").read_text())
    data["modules"]["cuda"] = "13.0.0"  # cuda-python installed, no GPU (this machine)
    (root / "fixture-modules.json").write_text(json.dumps(data))
    checks = {c.name: c for c in diagnose(root, "export", "engines", **fixture(root))["checks"]}
    assert checks["CUDA buffers"].status == "info" and "no CUDA GPU" in checks["CUDA buffers"].detail
    assert "GPU" not in checks
