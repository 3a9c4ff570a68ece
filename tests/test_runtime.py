"""On-robot runtime: sources, the capture/inference/output loop, reconnects, sinks, the viewer,
metric depth, Ctrl-C, and the adversarial cases (kill -9 and full disks while recording, outputs
that must not be overwritten, NaN depth, hostile viewer clients, credentials in URLs, broken
model links). Real OpenCV files, real sockets on 127.0.0.1; cameras are fakes."""

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import REPO, assert_one_line_error, run_cli  # noqa: E402
from fakes.backends import HookBackend, MeanBackend  # noqa: E402
from fakes.sources import (  # noqa: E402
    DepthCamera,
    FakeRealSense,
    GatedCamera,
    FastCamera,
    FlakyCamera,
    RtspCamera,
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
from anydepth_edge.runtime.server import DepthServer, FrameHub, parse_serve  # noqa: E402
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
    assert frame.shape == (480, 640, 3) and depth.shape == (480, 640)  # the resolution asked for
    assert depth.dtype == np.float32 and float(depth[0, 0]) == pytest.approx(1.5)
    from anydepth_edge.runtime.camera import realsense_intrinsics

    intr = realsense_intrinsics(src)  # the colour stream's, from the running pipeline
    assert intr.hw == (480, 640) and intr.focal_centre == pytest.approx((640 / 1.375, 480 / 0.768, 323.5, 237.75))
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
    small = FakeRealSense()
    src = open_source(parse_source("realsense?width=424&height=240"), rs=small)
    assert src.read()[0].shape == (240, 424, 3) and realsense_intrinsics(src).hw == (240, 424)
    with pytest.raises(UserError, match="Couldn.t resolve requests"):  # a mode the camera does not have: one line
        open_source(parse_source("realsense?width=1000&height=700"), rs=FakeRealSense())


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
    """Deterministic on any machine: while each inference runs, the camera delivers 3 frames; the
    next inference must get the newest of them (the two older ones dropped), never a queued old one."""
    from anydepth_edge.model_facts import IMAGENET_MEAN, IMAGENET_STD

    cam = GatedCamera(frames=3 * 8 + 1)
    seen = []

    class Backend(MeanBackend):
        def infer(self, batch):
            # the frame's value back from the normalised tensor: mean over c of (v/255 - m_c) / s_c
            v = 255 * (float(batch.mean()) + np.mean(np.divide(IMAGENET_MEAN, IMAGENET_STD))) / np.mean(np.divide(1.0, IMAGENET_STD))
            seen.append((round(v), cam.produced))
            cam.release_and_wait(3)
            return super().infer(batch)

    s = DepthLoop(Backend(), cam, cam.spec, RunOptions(reconnect_timeout=0.1)).run()
    taken = [v for v, _ in seen]
    assert taken[:3] == [1, 4, 7] and all(v == newest for v, newest in seen)  # always the newest captured
    assert s.frames == len(seen) and s.dropped >= 2 * (len(seen) - 2)  # two of every three dropped


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
    loop = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(metric="sensor", save_depth=str(tmp_path / "d"),
                                                                   reconnect_timeout=0.1))
    s = loop.run()
    assert s.metric is not None and s.metric["rmse_m"] < 0.2 and s.metric["inlier_fraction"] > 0.8
    depth_m = np.load(sorted((tmp_path / "d").glob("*.npy"))[-1])
    assert 0.3 < depth_m.min() and depth_m.max() < 4.5  # metres, like the sensor
    mm = cv2.imread(str(sorted((tmp_path / "d").glob("*.png"))[-1]), cv2.IMREAD_UNCHANGED)
    assert abs(int(mm.max()) - int(depth_m.max() * 1000)) <= 2  # 16-bit millimetres


def test_soak_memory_stays_flat(tmp_path):
    """Thousands of frames from a file through every sink but the window: RSS must not grow."""
    from anydepth_edge.host_memory import process_memory

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
    assert "<th>end to end</th>" in dom and "<th>capture wait</th>" in dom  # every underscore, not the first


# ----------------------------------------------------------------------------- the CLI

@pytest.fixture
def tiny_onnx(exported, tmp_path):
    """The tiny export as `tiny.onnx` + sidecar, with the companions its sidecar lists (reference
    bundle, FP16 form) under their recorded names."""
    _, res = exported
    src = res["trt10"].onnx_path
    for suffix in (".onnx", ".json"):
        shutil.copy(src.with_suffix(suffix), tmp_path / ("tiny" + suffix))
    for p in src.parent.glob(src.stem + ".*"):
        if p.suffix not in (".onnx", ".json") or p.name.endswith(".fp16.onnx"):
            shutil.copy(p, tmp_path)
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
    assert_one_line_error(run_cli("run", "--source", video, "--model", tiny_onnx, "--metric", "sensor"), "--metric sensor needs a RealSense")


def test_sigint_finishes_a_playable_mp4(tiny_onnx, tmp_path):
    clip = make_video(tmp_path / "long.mp4", frames=900)  # 30 s at 30 FPS: Ctrl-C comes first
    rec = tmp_path / "rec.mp4"
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "anydepth_edge", "run", "--source", str(clip), "--model",
                             str(tiny_onnx), "--record", str(rec)], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / f".rec.mp4.~rec{proc.pid}.partial"  # per-process temp name
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
    assert again.returncode == 0 and f"on {engine}" in again.stderr, again.stderr
    assert engine.stat().st_mtime_ns == built_at  # found, not rebuilt


def test_run_cli_engine_with_the_ort_backend_is_one_line(tiny_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    clip = make_video(tmp_path / "c.mp4", frames=2)
    assert_one_line_error(run_cli("run", "--source", clip, "--model", engine, "--backend", "ort"),
                          "--backend ort runs an .onnx export, not a TensorRT engine")


# ----------------------------------------------------------------------------- recordings: crash-safe, checked

def _recorder(path, fps=30.0, **kw):
    from anydepth_edge.runtime.recording import VideoRecorder

    return VideoRecorder(path, cv2, fps=fps, **kw)


def _views(n, h=61, w=81):
    """Odd-sized, changing frames (H.264 needs even sides: the recorder pads)."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_recording_is_fragmented_h264_that_browsers_play(tmp_path):
    av = pytest.importorskip("av")
    rec = _recorder(tmp_path / "r.mp4")
    for v in _views(75):
        rec.write(v)
    assert rec.close() == tmp_path / "r.mp4" and rec.frames == 75
    data = (tmp_path / "r.mp4").read_bytes()
    assert data[4:8] == b"ftyp" and data.count(b"moof") == 2  # 75 frames at 30 FPS: a fragment (keyframe) per 2 s
    with av.open(str(tmp_path / "r.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (82, 62)  # padded to even sides
    assert count_frames(tmp_path / "r.mp4") == (75, 30.0)
    assert [p.name for p in tmp_path.iterdir()] == ["r.mp4"]  # no temp file left


def test_recording_without_pyav_warns_once_and_still_records(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails as if not installed
    warned = []
    rec = _recorder(tmp_path / "r.mp4", warn=warned.append)
    for v in _views(20):
        rec.write(v)
    assert rec.close() == tmp_path / "r.mp4" and count_frames(tmp_path / "r.mp4")[0] == 20
    assert len(warned) == 1 and "not crash-safe" in warned[0] and "pip install av" in warned[0]


def test_recording_damaged_on_disk_fails_the_run_naming_it(tmp_path):
    """Frames lost between writing and the read-back are never reported as saved."""
    pytest.importorskip("av")
    clip, rec = make_video(tmp_path / "c.mp4", frames=150), tmp_path / "rec.mp4"

    def cut_the_file(n, _out):  # something else truncates the recording after its first fragment
        if n == 100:
            (partial,) = tmp_path.glob(".rec.mp4.~rec*.partial")
            os.truncate(str(partial), partial.stat().st_size // 2)

    spec = parse_source(str(clip))
    loop = DepthLoop(HookBackend(cut_the_file), open_source(spec), spec, RunOptions(pace="none", record=str(rec)))
    s = loop.run()
    assert s.error and f"--record {rec}" in s.error and "of 150 frames written decode" in s.error
    assert not any("rec.mp4" in o for o in s.outputs)


def _start_run(*args, **popen):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "anydepth_edge", "run", *map(str, args)], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _viewer_url(proc, lines, timeout=60):
    """Read `proc`'s stderr into `lines` (a thread) until the viewer's URL shows up."""
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in list(lines):
            m = re.search(r"viewer on (http://\S+/)", line)
            if m:
                return m.group(1)
        time.sleep(0.1)
    raise AssertionError("".join(lines))


def test_sigkill_keeps_a_recording_that_decodes_and_the_next_run_recovers_it(tiny_onnx, tmp_path):
    pytest.importorskip("av")
    clip = make_video(tmp_path / "long.mp4", frames=1800)  # 60 s at 30 FPS: the kill comes first
    rec = tmp_path / "rec.mp4"
    proc = _start_run("--source", clip, "--model", tiny_onnx, "--record", rec, "--serve", "127.0.0.1:0")
    lines = []
    try:
        url = _viewer_url(proc, lines)
        frames, deadline = 0, time.time() + 90
        while frames < 150 and time.time() < deadline:
            frames = json.loads(_get(url + "stats.json")[2]).get("frames", 0)
            time.sleep(0.2)
        assert frames >= 150, "".join(lines)
    finally:
        proc.kill()  # SIGKILL: nothing of ours runs after this
        proc.wait(timeout=30)
    (partial,) = tmp_path.glob(".rec.mp4.~rec*.partial")
    assert not rec.exists()
    decoded, fps = count_frames(partial)
    keyframe_gap = round(2 * fps)  # at most the fragment being written is lost
    assert decoded >= max(frames - keyframe_gap - 5, frames // 2), (decoded, frames, fps)

    again = run_cli("run", "--source", clip, "--model", tiny_onnx, "--record", rec, "--pace", "none", "--max-frames", 3)
    assert again.returncode == 0, again.stderr
    assert not list(tmp_path.glob(".rec.mp4.~rec*.partial"))  # the dead run's temp file is gone...
    assert count_frames(tmp_path / "rec.recovered.mp4")[0] == decoded  # ...its frames kept, under a name saying so
    assert "kept the recording of an earlier run" in again.stderr and count_frames(rec)[0] == 3


def test_stale_partials_of_dead_runs_are_cleaned_and_live_ones_left(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    empty = tmp_path / f".rec.mp4.~rec{dead}.partial"
    empty.write_bytes(b"\0\0\0\x18ftypisom")  # killed before its first complete frame
    live = tmp_path / f".rec.mp4.~rec{os.getppid()}.partial"  # a run still going: not ours to touch
    live.write_bytes(b"busy")
    notes = []
    rec = _recorder(tmp_path / "rec.mp4", notify=notes.append)
    assert rec.tmp.name == f".rec.mp4.~rec{os.getpid()}.partial"  # per-process temp name
    assert not empty.exists() and live.exists() and any("without a complete frame" in n for n in notes)


def test_a_file_appearing_at_the_target_meanwhile_is_never_clobbered(tmp_path):
    target = tmp_path / "rec.mp4"
    notes = []
    rec = _recorder(target, notify=notes.append)
    for v in _views(10):
        rec.write(v)
    target.write_bytes(b"someone else's")  # e.g. a second run to the same file finished first
    assert rec.close() == tmp_path / "rec-1.mp4" and target.read_bytes() == b"someone else's"
    assert count_frames(tmp_path / "rec-1.mp4")[0] == 10 and any("rec-1.mp4 instead" in n for n in notes)
    rec = _recorder(target, overwrite=True)
    for v in _views(4):
        rec.write(v)
    assert rec.close() == target and count_frames(target)[0] == 4


# ----------------------------------------------------------------------------- outputs: overwrite, free space, full disk

def test_outputs_are_never_overwritten_or_mixed_without_overwrite(tmp_path, video):
    rec, depth = tmp_path / "rec.mp4", tmp_path / "depth"
    rec.write_bytes(b"an earlier recording")
    with pytest.raises(UserError, match="rec.mp4 exists: pass --overwrite"):
        run_loop(str(video), pace="none", record=str(rec))
    depth.mkdir()
    (depth / "000000.npy").write_bytes(b"an earlier run's depth")
    with pytest.raises(UserError, match="depth is not empty .*pass --overwrite"):
        run_loop(str(video), pace="none", save_depth=str(depth))
    assert rec.read_bytes() == b"an earlier recording" and (depth / "000000.npy").read_bytes() == b"an earlier run's depth"
    _, s = run_loop(str(video), pace="none", record=str(rec), save_depth=str(depth), overwrite=True, max_frames=5)
    assert s.error is None and count_frames(rec)[0] == 5 and np.load(depth / "000000.npy").shape == (120, 160)


def test_run_cli_refusals_before_the_model_loads(tiny_onnx, tmp_path, video):
    (tmp_path / "r.mp4").write_bytes(b"x")
    assert_one_line_error(run_cli("run", "--source", video, "--model", tiny_onnx, "--record", tmp_path / "r.mp4"),
                          "exists: pass --overwrite")
    line = assert_one_line_error(run_cli("run", "--source", video, "--model", tiny_onnx, "--save-depth",
                                         tmp_path / "d", "--min-free-mb", 10 ** 9), "MB free in", "--min-free-mb")
    assert str(tmp_path / "d") in line


@contextlib.contextmanager
def tiny_disk(tmp_path, size_kb=64):
    """(folder, preexec_fn): a file system that is full after `size_kb`: a tmpfs where this user
    can mount one, else a file size limit (RLIMIT_FSIZE: EFBIG) on the child process."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount and os.geteuid() == 0 and subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True).returncode == 0:
        try:
            yield folder, None
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        return
    try:
        import resource
    except ImportError:
        pytest.skip("cannot mount a tmpfs here (not root) and no resource.setrlimit (not POSIX)")
    yield folder, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size_kb * 1024, size_kb * 1024))


@pytest.mark.parametrize("option,name", [("--record", "rec.mp4"), ("--save-depth", "depth")])
def test_full_disk_is_one_error_line_never_wrote(tiny_onnx, tmp_path, option, name):
    clip = make_video(tmp_path / "c.mp4", frames=300)
    with tiny_disk(tmp_path) as (disk, limit):
        proc = _start_run("--source", clip, "--model", tiny_onnx, "--pace", "none", option, disk / name,
                          "--min-free-mb", 0, preexec_fn=limit)
        out, err = proc.communicate(timeout=120)
    line = assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                                 f"{option} {disk / name}", "no space")
    assert re.search(r"\((ENOSPC|EFBIG|EDQUOT): ", line) and "wrote" not in out + err


# ----------------------------------------------------------------------------- NaN / Inf depth

def test_nonfinite_depth_is_one_warning_counted_marked_and_kept(tmp_path, video):
    def poison(n, out):  # every third frame: a NaN block and an Inf pixel
        if n % 3 == 0:
            out[..., :16, :16] = np.nan
            out[..., 5, 60] = np.inf

    spec = parse_source(str(video))
    warned, depth = [], tmp_path / "d"
    loop = DepthLoop(HookBackend(poison), open_source(spec), spec,
                     RunOptions(pace="none", save_depth=str(depth), record=str(tmp_path / "r.mp4")), warn=warned.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a numpy warning fails the output thread, so the run
        s = loop.run()
    assert s.error is None and s.frames == 60
    assert s.nonfinite_frames == 20 and loop.live_stats()["nonfinite_frames"] == 20
    assert len(warned) == 1 and "NaN/Inf" in warned[0]
    npy = np.load(depth / "000002.npy")
    assert np.isnan(npy[:20, :20]).all() and np.isfinite(npy[60:, 60:]).all()  # NaN kept (resized to 160x120)
    png = cv2.imread(str(depth / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert (png[:20, :20] == 0).all() and png.max() == 65535
    assert np.isfinite(np.load(depth / "000001.npy")).all()
    assert any("NaN/Inf depth" in line for line in loop._overlay(0.05))


def test_colourise_paints_nonfinite_pixels():
    d = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    d[0, 0], d[1, 1] = np.nan, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        img = Postprocessor().colourise(d)
    assert tuple(img[0, 0]) == tuple(img[1, 1]) == (255, 0, 255)
    assert len({tuple(px) for px in img.reshape(-1, 3)}) > 10  # the finite pixels still spread the colour map


# ----------------------------------------------------------------------------- viewer hardening

def _raw_request(addr, host, path="/healthz", timeout=5):
    """Status code of GET `path` with this Host header (None: no Host header)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "") + "Connection: close\r\n\r\n"
        s.sendall(head.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split()[1])


@contextlib.contextmanager
def viewer(host="127.0.0.1", hub=None, **kw):
    server = DepthServer(hub or FrameHub(), host, 0, **kw)
    try:
        yield server
    finally:
        server.close()


def test_viewer_answers_only_requests_addressed_to_it():
    with viewer() as srv:
        addr = ("127.0.0.1", srv.address[1])
        for ok in ("127.0.0.1", f"127.0.0.1:{addr[1]}", "localhost:1234", "LOCALHOST", "[::1]:80"):
            assert _raw_request(addr, ok) == 200, ok
        hostname = [socket.gethostname()] if socket.gethostname() != "localhost" else []
        for bad in ["evil.example", "evil.example:8080", "192.168.1.9", "", None, "[::1"] + hostname:
            assert _raw_request(addr, bad) in (400, 403, 421), bad
    with viewer("0.0.0.0") as srv:
        addr = ("127.0.0.1", srv.address[1])
        for ok in ("192.168.1.9:8080", "[fe80::1]", "10.0.0.2", socket.gethostname(), "localhost"):
            assert _raw_request(addr, ok) == 200, ok
        for bad in ("attacker.example", "attacker.example:80", "127.0.0.1.nip.io", None):
            assert _raw_request(addr, bad) in (400, 403, 421), bad  # DNS rebinding: names are not enough


def test_viewer_on_every_interface_prints_addresses_a_laptop_can_open():
    """`--serve 0.0.0.0:PORT` printed http://0.0.0.0:PORT/, which opens nothing from another
    machine: it names this host and its addresses, each of which the viewer answers."""
    from urllib.parse import urlsplit

    with viewer("0.0.0.0") as srv:
        port = srv.address[1]
        urls = srv.urls
        assert urls[0] == f"http://{socket.gethostname().lower()}:{port}/"
        assert not any("0.0.0.0" in u or "127.0.0.1" in u for u in urls)
        for url in urls[1:]:  # the addresses: reachable, and the Host check lets them in
            host = urlsplit(url).hostname
            assert _raw_request((host, port), f"{host}:{port}") == 200, url
    with viewer() as srv:
        assert srv.urls == [f"http://127.0.0.1:{srv.address[1]}/"]


def _wait(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and not cond():
        time.sleep(0.05)
    return cond()


def _hung_up(sock) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_viewer_drops_held_requests_and_bounds_its_threads():
    with viewer(timeout=0.5, max_clients=2) as srv:
        assert srv.httpd.request_queue_size >= 128  # a normal listen backlog
        addr = ("127.0.0.1", srv.address[1])
        held = [socket.create_connection(addr, timeout=5) for _ in range(2)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # half a request, then nothing
        time.sleep(0.1)
        t0 = time.monotonic()
        assert _raw_request(addr, "localhost") == 503 and time.monotonic() - t0 < 1.0  # over the limit: quick 503
        assert all(_hung_up(s) for s in held) and time.monotonic() - t0 < 3.0  # held requests time out...
        for s in held:
            s.close()
        assert _wait(lambda: _raw_request(addr, "localhost") == 200, 3)  # ...and free their threads


def test_viewer_clients_that_hang_up_are_quiet(capfd, caplog):
    hub, stop = FrameHub(), threading.Event()

    def publish():
        while not stop.is_set():
            hub.publish({"rgb": b"\xff\xd8" + os.urandom(200_000), "depth": b"\xff\xd8"}, {})
            time.sleep(0.01)

    threading.Thread(target=publish, daemon=True).start()
    with caplog.at_level(logging.DEBUG, logger="anydepth_edge.runtime.server"), viewer(hub=hub) as srv:
        for path in ("/stream/rgb.mjpg", "/", "/snapshot/rgb.jpg"):
            s = socket.create_connection(("127.0.0.1", srv.address[1]), timeout=5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # hang up with a reset
            s.close()
        time.sleep(0.5)
        stop.set()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)


# ----------------------------------------------------------------------------- secrets, broken model links

def test_rtsp_credentials_are_never_shown(tmp_path):
    url = RtspCamera.URL
    spec = parse_source(url)
    assert spec.target == url  # the real URL is what opens the stream...
    shown = spec.describe()
    assert shown == "rtsp://***@cam.local:554/live?token=***"  # ...never what is printed (and no rtsp:rtsp://)
    with pytest.raises(UserError) as bad:
        parse_source("rtsp://admin:hunter2@cam.local:99999/live")
    assert "hunter2" not in str(bad.value) and "rtsp://***@cam.local:99999/live" in str(bad.value)
    cam = RtspCamera()
    loop = DepthLoop(MeanBackend(), cam, cam.spec, RunOptions(reconnect_timeout=0.3, serve="127.0.0.1:0"))
    s = loop.run()
    assert s.error and "***@cam.local" in s.error and "hunter2" not in s.error and "s3cret" not in s.error
    stats = json.dumps(loop.live_stats())
    assert "hunter2" not in stats and "s3cret" not in stats and "rtsp://***@cam.local" in stats


def test_run_cli_rtsp_that_cannot_open_is_one_quiet_line(tiny_onnx):
    proc = run_cli("run", "--source", "rtsp://admin:hunter2@127.0.0.1:1/live", "--model", tiny_onnx)
    line = assert_one_line_error(proc, "rtsp://***@127.0.0.1:1/live", "cannot open")
    assert "hunter2" not in proc.stdout + proc.stderr
    noise = [ln for ln in proc.stderr.splitlines() if not ln.startswith(("info:", "warning:", "error:"))]
    assert not noise, proc.stderr  # no FFmpeg / OpenCV log lines around the one error
    assert "rtsp:rtsp://" not in line


def test_model_search_skips_symlink_loops_and_dangling_links(tiny_onnx):
    from anydepth_edge.resolver import find_model

    folder = tiny_onnx.parent
    for name in ("loop", "dangling"):  # sidecars that would match, beside links that cannot be read
        shutil.copy(tiny_onnx.with_suffix(".json"), folder / f"{name}.json")
    os.symlink("loop.onnx", str(folder / "loop.onnx"))
    os.symlink("gone.onnx", str(folder / "dangling.onnx"))
    warned = []
    assert find_model((64, 64), folder / "no-engines", folder, warn=warned.append).path == tiny_onnx
    assert len(warned) == 1 and "loop.onnx" in warned[0] and "dangling.onnx" in warned[0]
    proc = run_cli("run", "--source", make_video(folder / "c.mp4", frames=2), "--res", "64", "--export-dir", folder,
                   "--engines-dir", folder / "e", "--pace", "none")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "tiny.onnx" in proc.stderr, proc.stderr


def test_a_slow_run_killed_after_10_s_keeps_frames_at_real_speed(tmp_path):
    """Issue 24.2: fragments were cut every 2 s of *video* time (60 frames at the file's 30 FPS), so a
    1 FPS run killed 10 s in left a 760-byte file. Now also every 2 s of wall time. A live run's
    frames carry their wall-clock times (10 frames 1 s apart play for ~10 s, not 0.33 s)."""
    pytest.importorskip("av")
    for fps in (30.0, None):  # --pace none on a 30 FPS file; a live camera (rate measured)
        now = [100.0]
        rec = _recorder(tmp_path / f"slow{fps}.mp4", fps=fps, clock=lambda: now[0], calibrate_frames=2)
        for view in _views(10):
            rec.write(view)
            now[0] += 1.0  # a ~1 FPS model
        killed = tmp_path / "killed.mp4"
        shutil.copy(rec.tmp, killed)  # what kill -9 leaves: every muxed byte is already in the file
        assert count_frames(killed)[0] >= 3, fps
        assert rec.close() == tmp_path / f"slow{fps}.mp4"
        cap = cv2.VideoCapture(str(rec.path))
        n = 0
        while cap.grab():
            n += 1
            last_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        cap.release()
        expected_ms = 9 * 1000 / 30 if fps else 9000  # the file's timing / the wall clock's
        assert n == 10 and last_ms == pytest.approx(expected_ms, abs=60), (fps, n, last_ms)


@pytest.mark.parametrize("recorded", ["decoder", "label only"])
def test_run_prefers_the_sdt_engine_when_dpt_is_newer(tmp_path, recorded):
    """The entrypoint builds an engine for every export of the size (export --decoder all writes SDT
    and DPT); `run` without --model runs SDT, the product, even when DPT's engine was built last. By
    the sidecar's decoder; sidecars from before it was recorded, by their model label."""
    from anydepth_edge.engines.compat import TrtHost
    from anydepth_edge.artifacts import EngineArtifact
    from anydepth_edge.resolver import find_engine, find_model

    host = TrtHost("10.3.0", "Orin", (8, 7), "36.4.3")
    paths = {}
    for age, decoder in ((20, "SDT"), (10, "DPT")):  # DPT newer
        path = tmp_path / f"anydepth-{decoder.lower()}-vits-256x256-trt10-fp16.engine"
        path.write_bytes(b"engine")
        EngineArtifact(tensorrt_version="10.3.0", gpu_name="Orin", onnx_path="x.onnx", onnx_sha256="0", settings={},
                       compute_capability=[8, 7], jetson={"l4t": "36.4.3"},
                       model=f"AnyDepth ViT-S + {decoder}" if recorded == "label only" else "AnyDepth ViT-S",
                       decoder=decoder.lower() if recorded == "decoder" else "",
                       resolution=[256, 256], verification={"passed": True}, path=path).write_sidecar()
        os.utime(path, (time.time() - age, time.time() - age))
        paths[decoder] = path
    assert find_engine((256, 256), tmp_path, host) == paths["SDT"]
    found = find_model((256, 256), tmp_path, tmp_path / "no-exports", host)  # and run's start line says why
    assert found.path == paths["SDT"] and found.why == ("SDT's engine for 256x256 verified on this board, preferred "
                                                        f"over the newer {paths['DPT'].name}")
    paths["SDT"].with_suffix(".json").unlink()  # without SDT: the newest that runs here
    assert find_engine((256, 256), tmp_path, host) == paths["DPT"]


def test_pace_none_summary_says_end_to_end_includes_the_queue(tiny_onnx, tmp_path):
    """Issue 24.6: --pace none's end to end (8.5 s against 2.2 s of inference) was unexplained: every
    frame is kept, so each waits in the reader's queue behind the ones before it."""
    clip = make_video(tmp_path / "c.mp4", frames=4)
    common = ("--model", tiny_onnx, "--max-frames", "4")
    none = run_cli("run", "--source", clip, "--pace", "none", *common)
    assert none.returncode == 0, none.stderr
    assert "end to end includes the wait in the reader's queue" in none.stdout and "up to 2 before it" in none.stdout
    native = run_cli("run", "--source", clip, *common)
    assert native.returncode == 0 and "reader's queue" not in native.stdout, native.stderr


def test_loop_fps_never_exceeds_the_inference_rate():
    """A short run printed 'loop 213.88 FPS (inference alone 38.47 FPS)': outputs finish in bursts
    behind the output queue. The loop's rate is now the spacing of inference starts (one at a time)."""
    class SlowFirstWrite:  # the first output is slow (a viewer's first client, a disk): the rest queue up
        def __init__(self):
            self.n = 0

        def write(self, *frame):
            self.n += 1
            time.sleep(0.2 if self.n == 1 else 0)

        def close(self):
            return None

    cam = FastCamera(n=400)
    s = DepthLoop(MeanBackend(sleep_ms=15), cam, cam.spec, RunOptions(reconnect_timeout=0.1, max_frames=6),
                  sinks=[SlowFirstWrite()]).run()
    assert s.frames == 6 and s.loop_fps is not None and s.loop_fps <= 1.1 * s.inference_fps


def test_every_sink_gets_one_result_per_frame_computed_once(tmp_path):
    """Issue 21: each frame's outputs are computed once and shared by every sink: a passed sink gets
    the frame-size depth the depth files hold, and the side-by-side view is made once per frame
    however many sinks use it (here the recording and the passed sink)."""
    from anydepth_edge.runtime.sinks import Sink

    class Keep(Sink):
        def __init__(self):
            self.results = []

        def write(self, result):
            self.results.append(result)
            assert result.view() is result.view()

        def close(self):
            return f"kept {len(self.results)}"

    keep, cam = Keep(), FastCamera(n=400)
    opts = RunOptions(reconnect_timeout=0.1, max_frames=3, save_depth=str(tmp_path / "d"), record=str(tmp_path / "r.mp4"))
    loop = DepthLoop(MeanBackend(), cam, cam.spec, opts, sinks=[keep])
    made, make = [], loop._view
    loop._view = lambda result: made.append(result.frame.index) or make(result)
    summary = loop.run()
    assert summary.frames == 3 and "kept 3" in summary.outputs and len(keep.results) == 3
    assert made == [r.frame.index for r in keep.results]  # once per frame, not once per sink
    for r in keep.results:
        assert np.array_equal(np.load(tmp_path / "d" / f"{r.frame.index:06d}.npy"), r.depth_frame, equal_nan=True)
        assert r.depth.shape[-2:] == tuple(MeanBackend().resolution) and r.depth_frame.shape == r.frame.image.shape[:2]
    assert any(o.startswith(str(tmp_path / "r.mp4")) for o in summary.outputs)


def test_one_signal_policy_stops_the_loop_and_restores_the_handlers():
    """run and run --ros2 share runtime.loop.run_until_signal: SIGTERM stops the loop cleanly, and the
    handlers that were there before are back afterwards (run used to leave its own installed)."""
    import signal
    import threading

    from anydepth_edge.runtime.loop import run_until_signal

    def before(*_):
        pass

    saved = {s: signal.signal(s, before) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cam = FastCamera(n=400)
        loop = DepthLoop(MeanBackend(sleep_ms=15), cam, cam.spec, RunOptions(reconnect_timeout=0.1))
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        summary = run_until_signal(loop)
        assert summary.stopped_by == "signal" and 0 < summary.frames < 400
        assert signal.getsignal(signal.SIGTERM) is before and signal.getsignal(signal.SIGINT) is before
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_live_recordings_summary_gives_the_rate_the_file_plays_at(tmp_path):
    """The trial's run said '61 frames at 12.2 FPS' for a file that plays at 9.97: the rate measured
    over the first frames, not the wall-clock times the frames carry. The line is the file's rate now."""
    pytest.importorskip("av")
    from anydepth_edge.runtime.sinks import RecordingSink

    now = [0.0]
    rec = _recorder(tmp_path / "live.mp4", fps=None, clock=lambda: now[0], calibrate_frames=2)
    for i, view in enumerate(_views(10)):
        rec.write(view)
        now[0] += 1.0 if i == 0 else 0.25  # calibrated at 1 FPS, then the model speeds up to 4 FPS
    line = RecordingSink(rec).close()
    cap = cv2.VideoCapture(str(tmp_path / "live.mp4"))
    while cap.grab():
        last_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    cap.release()
    assert rec.fps == pytest.approx(1.0) and last_ms == pytest.approx(3000, abs=60)  # 9 gaps over 3 s
    assert line.endswith("(10 frames at 3.0 FPS)"), line
