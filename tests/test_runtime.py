"""On-robot runtime: sources, the capture/inference/output loop, reconnects, sinks, the viewer,
metric depth, Ctrl-C. Real OpenCV files and an HTTP server on 127.0.0.1; cameras are fakes."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import REPO, assert_one_line_error, run_cli  # noqa: E402
from fakes.backends import MeanBackend  # noqa: E402
from fakes.sources import (  # noqa: E402
    DepthCamera,
    FakeRealSense,
    FastCamera,
    FlakyCamera,
    SilentCamera,
)

from anydepth_edge.errors import HardwareMissing, UserError  # noqa: E402
from anydepth_edge.runtime.loop import DepthLoop, RunOptions  # noqa: E402
from anydepth_edge.runtime.metric import fit_scale_shift  # noqa: E402
from anydepth_edge.runtime.processing import (  # noqa: E402
    Postprocessor,
    Preprocessor,
    letterbox_geometry,
)
from anydepth_edge.runtime.server import parse_serve  # noqa: E402
from anydepth_edge.runtime.sources import (  # noqa: E402
    SourceLost,
    SourceSpec,
    csi_pipeline,
    gstreamer_available,
    open_source,
    parse_source,
)


def make_video(path: Path, frames=60, size=(160, 120), fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    w, h = size
    xs = np.arange(w, dtype=np.float32)
    for i in range(frames):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, :, 0] = ((xs + 3 * i) % w * 255 / w).astype(np.uint8)
        frame[:, :, 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
        frame[:, :, 2] = i % 256
        writer.write(frame)
    writer.release()
    return path


def count_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps


@pytest.fixture
def video(tmp_path):
    return make_video(tmp_path / "clip.mp4")


def run_loop(source_text, backend=None, **opts):
    spec = parse_source(source_text)
    src = open_source(spec)
    loop = DepthLoop(backend or MeanBackend(), src, spec, RunOptions(**opts))
    return loop, loop.run()


# ----------------------------------------------------------------------------- sources

def test_parse_sources(tmp_path, video):
    assert parse_source("0") == SourceSpec("v4l2", "/dev/video0", {"index": 0})
    assert parse_source("/dev/video2").options == {"index": 2}
    csi = parse_source("csi://1?mode=2&width=1920&height=1080&fps=30&flip=2")
    assert csi.kind == "csi" and csi.options == {"sensor_id": 1, "mode": 2, "width": 1920, "height": 1080, "fps": 30, "flip": 2}
    pipe = csi_pipeline(csi.options)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1 sensor-mode=2 !") and "width=(int)1920" in pipe
    assert "framerate=(fraction)30/1" in pipe and "flip-method=2" in pipe and pipe.endswith("appsink drop=true max-buffers=1 sync=false")
    assert "sensor-mode" not in csi_pipeline(parse_source("csi://0").options)
    rs = parse_source("realsense")
    assert rs.kind == "realsense" and rs.target == "" and rs.options["depth"] is False and rs.live
    assert parse_source("realsense:0123456789?depth=1&width=848&fps=15").options == {"width": 848, "height": 480, "fps": 15, "depth": True}
    bag = parse_source("realsense:rec.bag")
    assert bag.options["bag"] and bag.options["depth"] and not bag.live
    assert parse_source(str(tmp_path / "x.bag")).kind == "realsense"
    assert parse_source("rtsp://cam.local:8554/stream").kind == "rtsp"
    assert parse_source(str(video)).kind == "file" and parse_source(str(tmp_path)).kind == "folder"


@pytest.mark.parametrize("text,needle", [
    ("rtsp://", "malformed RTSP URL"), ("rtsp://h:99999/x", "bad port"), ("http://x/y", "unsupported URL"),
    ("/no/such/file.mp4", "no such file"), ("csi://a", "sensor id"), ("realsense:bad serial!", "serial"),
    ("csi://0?fps=fast", "not a number"), ("", "empty"),
])
def test_bad_source_text(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_source(text)


def test_absent_camera_and_unreadable_file(tmp_path):
    with pytest.raises(UserError, match="/dev/video97 not found"):
        open_source(parse_source("/dev/video97"))
    bogus = tmp_path / "notavideo.mp4"
    bogus.write_text("hello")
    with pytest.raises(UserError, match="cannot open"):
        open_source(parse_source(str(bogus)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images"):
        open_source(parse_source(str(empty)))


def test_csi_needs_gstreamer():
    if gstreamer_available(cv2):
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(HardwareMissing, match="GStreamer.*JetPack's python3-opencv"):
        open_source(parse_source("csi://0"))


def test_realsense_without_pyrealsense2():
    import importlib.util

    if importlib.util.find_spec("pyrealsense2"):
        pytest.skip("pyrealsense2 is installed")
    with pytest.raises(HardwareMissing, match="pyrealsense2"):
        open_source(parse_source("realsense"))


def test_realsense_live_and_bag_with_fake(tmp_path):
    rs = FakeRealSense()
    src = open_source(parse_source("realsense:1234?depth=1"), rs=rs)
    assert ("enable_device", "1234") in rs.calls and ("enable_stream", "color", 640, 480, "bgr8", 30) in rs.calls
    assert ("enable_stream", "depth", 640, 480, "z16", 30) in rs.calls and ("align", "color") in rs.calls
    frame, depth = src.read()
    assert frame.shape == (48, 64, 3) and depth.dtype == np.float32 and float(depth[0, 0]) == pytest.approx(1.5)
    rs.left = 0
    with pytest.raises(SourceLost):
        src.read()
    src.release()
    bag = tmp_path / "rec.bag"
    bag.write_bytes(b"bag")
    rs2 = FakeRealSense(frames=2)
    src = open_source(parse_source(f"realsense:{bag}"), rs=rs2)
    assert ("from_file", str(bag), False) in rs2.calls and ("real_time", False) in rs2.calls
    src.read(), src.read()
    with pytest.raises(StopIteration):
        src.read()


# ----------------------------------------------------------------------------- processing

def test_letterbox_geometry_and_crop():
    g = letterbox_geometry((480, 640), (256, 256))
    assert (g.height, g.width, g.top, g.left) == (192, 256, 32, 0)
    pre = Preprocessor((256, 256), "letterbox")
    x = pre(np.full((480, 640, 3), 200, np.uint8))
    assert x.shape == (1, 3, 256, 256)
    assert np.allclose(x[0, :, :32, :], 0, atol=0.03)  # padding normalises to ~0 (ImageNet mean)
    depth = np.zeros((1, 1, 256, 256), np.float32)
    depth[..., 32:224, :] = 1.0  # the content area
    out = Postprocessor("letterbox").to_frame(depth, (480, 640), pre.geometry)
    assert out.shape == (480, 640) and out.min() == 1.0  # padding cropped before resizing back


# ----------------------------------------------------------------------------- the loop

def test_file_every_frame_with_record_and_depth_files(tmp_path, video):
    rec, depth_dir = tmp_path / "out" / "rec.mp4", tmp_path / "depth"
    loop, s = run_loop(str(video), pace="none", record=str(rec), save_depth=str(depth_dir))
    assert s.frames == 60 and s.captured == 60 and s.dropped == 0 and s.stopped_by == "end of source"
    assert s.error is None and s.loop_fps > 0 and s.inference_fps > 0
    for stage in ("capture_wait", "preprocess", "inference", "postprocess", "end_to_end"):
        assert s.stages[stage]["mean"] is not None
    assert s.stages["end_to_end"]["mean"] >= s.stages["inference"]["mean"]
    n, fps = count_frames(rec)
    assert n == 60 and fps == pytest.approx(30, abs=0.5)  # offline: the file's timing is kept
    assert not list(rec.parent.glob("*.partial*"))
    pngs, npys = sorted(depth_dir.glob("*.png")), sorted(depth_dir.glob("*.npy"))
    assert len(pngs) == len(npys) == 60
    png = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (120, 160) and png.max() == 65535
    assert np.load(npys[0]).shape == (120, 160)


def test_folder_source_and_max_frames(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((40, 50, 3), i * 40, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    _, s = run_loop(str(folder))
    assert s.frames == 5 and s.stopped_by == "end of source"
    _, s = run_loop(str(folder), max_frames=3)
    assert s.frames == 3 and s.stopped_by == "max frames"


def test_camera_unplugged_then_back_continues():
    cam = FlakyCamera(outage=2)  # two failed re-opens (backoff 0.25 s, 0.5 s), back on the third (after 1 s more)
    notes = []
    loop = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(reconnect_timeout=2.5), notify=notes.append)
    s = loop.run()
    assert s.reconnects == 1 and s.frames == 10  # 5 before the outage, 5 after
    assert any("source lost" in n for n in notes) and any("source back" in n for n in notes)
    assert s.error and "not back within 2 s" in s.error  # the final, permanent loss ends the run
    assert cam.released >= 1


def test_camera_that_never_returns_exits_in_bounded_time():
    cam = FlakyCamera(first=3, recover=False)
    loop = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(reconnect_timeout=1.0))
    t0 = time.monotonic()
    s = loop.run()
    assert s.error and s.stopped_by == "error" and s.frames == 3
    assert time.monotonic() - t0 < 10


def test_camera_that_opens_but_never_delivers_still_times_out():
    cam = SilentCamera()
    t0 = time.monotonic()
    s = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(reconnect_timeout=1.0)).run()
    assert s.error and "not back within 1 s" in s.error and s.reconnects == 0
    assert cam.opens >= 2 and time.monotonic() - t0 < 10


def test_live_source_keeps_only_the_newest_frame():
    cam = FastCamera()
    loop = DepthLoop(MeanBackend(sleep_ms=30), cam, cam.spec, RunOptions(reconnect_timeout=0.1))
    s = loop.run()
    assert s.dropped > 50 and s.frames < s.captured  # the model could not keep up: frames dropped...
    # ...and latency did not build up: each output is at most ~two inferences old
    assert s.stages["end_to_end"]["p90"] < 3 * s.stages["inference"]["mean"] + 20


def test_metric_fit_on_synthetic_data():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.5, 3.0, (120, 160)).astype(np.float32)
    sensor = 2.5 * pred + 0.3 + rng.normal(0, 0.01, pred.shape)
    outliers = rng.random(pred.shape) < 0.2
    sensor[outliers] = rng.uniform(0.2, 9.0, outliers.sum())
    sensor[:10] = 0  # holes: no reading
    fit = fit_scale_shift(pred, sensor.astype(np.float32))
    assert fit.scale == pytest.approx(2.5, abs=0.02) and fit.shift == pytest.approx(0.3, abs=0.03)
    assert fit.rmse_m < 0.03 and 0.7 < fit.inlier_fraction < 0.9 and fit.abs_rel < 0.02
    assert np.allclose(fit.apply(np.array([1.0])), 2.8, atol=0.05)
    assert fit_scale_shift(pred, np.zeros_like(pred)) is None  # sensor blind


def test_metric_mode_outputs_metres(tmp_path):
    cam = DepthCamera()
    loop = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(metric=True, save_depth=str(tmp_path / "d"),
                                                                   reconnect_timeout=0.1))
    s = loop.run()
    assert s.metric is not None and s.metric["rmse_m"] < 0.2 and s.metric["inlier_fraction"] > 0.8
    depth_m = np.load(sorted((tmp_path / "d").glob("*.npy"))[-1])
    assert 0.3 < depth_m.min() and depth_m.max() < 4.5  # metres, like the sensor
    mm = cv2.imread(str(sorted((tmp_path / "d").glob("*.png"))[-1]), cv2.IMREAD_UNCHANGED)
    assert abs(int(mm.max()) - int(depth_m.max() * 1000)) <= 2  # 16-bit millimetres


def test_soak_memory_stays_flat(tmp_path):
    """Thousands of frames from a file through every sink but the window: RSS must not grow."""
    from anydepth_edge.memory import process_memory

    clip = make_video(tmp_path / "long.mp4", frames=3000, size=(96, 64))
    spec = parse_source(str(clip))
    loop = DepthLoop(MeanBackend((32, 32)), open_source(spec), spec,
                     RunOptions(pace="none", record=str(tmp_path / "soak.mp4"), serve="127.0.0.1:0"))
    samples = []

    def sample():
        while not loop.stop_event.is_set() and not loop.capture.finished:
            frames = loop.stats["inference"].count
            if frames >= 300:
                samples.append((frames, process_memory()["rss_bytes"]))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    s = loop.run()
    watcher.join(timeout=5)
    assert s.frames == 3000 and len(samples) >= 3
    growth_mb = (max(r for _, r in samples) - samples[0][1]) / 2 ** 20
    assert growth_mb < 25, (growth_mb, samples[:3], samples[-3:])


# ----------------------------------------------------------------------------- the viewer

def _get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def test_serve_binds_localhost_by_default():
    assert parse_serve("8080") == ("127.0.0.1", 8080)
    assert parse_serve("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_serve("eight")
    with pytest.raises(UserError, match="0-65535"):
        parse_serve("70000")


@contextlib.contextmanager
def serving_loop(clip: Path):
    """A loop on `clip` with the viewer on 127.0.0.1 (any free port), running in a thread."""
    spec = parse_source(str(clip))
    loop = DepthLoop(MeanBackend(), open_source(spec), spec, RunOptions(serve="127.0.0.1:0"))
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    try:
        yield loop.server.address
    finally:
        loop.stop()
        t.join(timeout=10)


def test_mjpeg_viewer_over_http(tmp_path):
    with serving_loop(make_video(tmp_path / "viewer.mp4", frames=600)) as (host, port):
        assert host == "127.0.0.1"
        base = f"http://{host}:{port}/"
        status, headers, page = _get(base)
        assert status == 200 and b'src="stream/rgb.mjpg"' in page and b'src="stream/depth.mjpg"' in page
        assert _get(base + "healthz")[2] == b"ok\n"
        deadline = time.time() + 10
        stats = {}
        while time.time() < deadline and not stats.get("frames"):
            stats = json.loads(_get(base + "stats.json")[2])
            time.sleep(0.1)
        assert stats["frames"] > 0 and "inference" in stats["stages"] and stats["source"].startswith("file:")
        with urllib.request.urlopen(base + "stream/depth.mjpg", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
            chunk = b""
            while chunk.count(b"\xff\xd8") < 2 and len(chunk) < 2_000_000:
                chunk += r.read(4096)
        assert b"--anydepthframe" in chunk and chunk.count(b"\xff\xd8") >= 2  # two JPEG frames streamed
        snap = _get(base + "snapshot/rgb.jpg")[2]
        assert snap[:2] == b"\xff\xd8" and cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(base + "nothing")
        assert missing.value.code == 404


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_viewer_page_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium here (CI installs Debian's chromium)")
    with serving_loop(make_video(tmp_path / "page.mp4", frames=900)) as (host, port):
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
             f"http://{host}:{port}/"], capture_output=True, text=True, timeout=90)
    dom = proc.stdout
    assert 'id="depth"' in dom and 'id="rgb"' in dom, proc.stderr[-500:]
    # the page's script fetched /stats.json and filled the numbers in
    frames = re.search(r'id="frames">(\d+)<', dom)
    assert frames and int(frames.group(1)) > 0, dom[:1500]
    assert re.search(r'id="inference_mean">[\d.]+<', dom)


# ----------------------------------------------------------------------------- the CLI

@pytest.fixture
def tiny_onnx(exported, tmp_path):
    _, res = exported
    for suffix in (".onnx", ".json"):
        shutil.copy(res["trt10"].onnx_path.with_suffix(suffix), tmp_path / ("tiny" + suffix))
    return tmp_path / "tiny.onnx"


def test_run_cli_on_a_file(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "c.mp4", frames=8)
    proc = run_cli("run", "--source", clip, "--model", tiny_onnx, "--pace", "none", "--record", tmp_path / "r.mp4")
    assert proc.returncode == 0, proc.stderr
    assert "run summary: 8 frames" in proc.stdout and "ONNX Runtime (cpu)" in proc.stderr
    assert count_frames(tmp_path / "r.mp4")[0] == 8


def test_run_cli_finds_the_model_in_export_dir(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "c.mp4", frames=3)
    proc = run_cli("run", "--source", clip, "--res", "64", "--export-dir", tiny_onnx.parent, "--engines-dir", tmp_path / "e")
    assert proc.returncode == 0 and "tiny.onnx" in proc.stderr, proc.stderr
    assert_one_line_error(run_cli("run", "--source", clip, "--res", "96", "--export-dir", tmp_path / "none"),
                          "no model for 96x96", "anydepth-edge export --res 96x96")


@pytest.mark.parametrize("source,needle", [
    ("/dev/video97", "/dev/video97 not found"), ("rtsp://", "malformed RTSP URL"), ("nope.mp4", "no such file"),
])
def test_run_cli_bad_source_is_one_line(tiny_onnx, source, needle):
    assert_one_line_error(run_cli("run", "--source", source, "--model", tiny_onnx), needle)


def test_run_cli_metric_needs_realsense(tiny_onnx, video):
    assert_one_line_error(run_cli("run", "--source", video, "--model", tiny_onnx, "--metric"), "--metric needs a RealSense")


def test_sigint_finishes_a_playable_mp4(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "long.mp4", frames=900)  # 30 s at 30 FPS: Ctrl-C comes first
    rec = tmp_path / "rec.mp4"
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "anydepth_edge", "run", "--source", str(clip), "--model",
                             str(tiny_onnx), "--record", str(rec)], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / ".rec.partial.mp4"
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 10_000):
        time.sleep(0.2)
    assert partial.exists(), "recording never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by signal" in out and "Traceback" not in err
    n, fps = count_frames(rec)
    assert n > 0 and fps > 0
    assert not partial.exists()


def test_run_cli_through_tensorrt(tiny_onnx, tmp_path):
    """`run --backend trt` on an ONNX: the engine is built once (fake TensorRT), then found again."""
    clip = make_video(tmp_path / "c.mp4", frames=5)
    engines = tmp_path / "engines"
    proc = run_cli("run", "--source", clip, "--model", tiny_onnx, "--backend", "trt", "--pace", "none",
                   "--engines-dir", engines, fake_tensorrt="10.3.0")
    assert proc.returncode == 0, proc.stderr
    assert "TensorRT (cuda)" in proc.stderr and "run summary: 5 frames" in proc.stdout
    (engine,) = engines.glob("*.engine")
    assert engine.name == "tiny-fp16-trt10.3.0-orin.engine"
    built_at = engine.stat().st_mtime_ns
    again = run_cli("run", "--source", clip, "--res", "64", "--export-dir", tiny_onnx.parent, "--engines-dir", engines,
                    "--pace", "none", fake_tensorrt="10.3.0")
    assert again.returncode == 0 and f"on {engine.name}" in again.stderr, again.stderr
    assert engine.stat().st_mtime_ns == built_at  # found, not rebuilt


def test_run_cli_engine_with_the_ort_backend_is_one_line(tiny_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    clip = make_video(tmp_path / "c.mp4", frames=2)
    assert_one_line_error(run_cli("run", "--source", clip, "--model", engine, "--backend", "ort"),
                          "--backend ort runs an .onnx export, not a TensorRT engine")
