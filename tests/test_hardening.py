"""Regression tests from the adversarial trial (artifacts, checkpoints, exports, bench): hostile or
damaged inputs are one clear line, nothing untrusted is used under another artifact's label, and
crashes leave no debris that looks valid. The runtime's cases (recordings, the viewer, depth
files) are in test_runtime.py."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, assert_one_line_error, run_cli
from hostile import png_declaring

from anydepth_edge.fileio import atomic_path, read_json, write_json_atomic
from anydepth_edge.errors import UserError
from anydepth_edge.artifacts import OnnxArtifact, onnx_stem
from anydepth_edge.resolution import check_fits_memory, parse_res

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- strict JSON, debris

def test_sidecars_are_strict_json(tmp_path):
    with pytest.raises(ValueError, match="not finite at parity.image.rel"):
        write_json_atomic(tmp_path / "a.json", {"parity": {"image": {"rel": float("nan")}}})
    assert not list(tmp_path.iterdir())  # nothing written, not even a temp file
    (tmp_path / "b.json").write_text('{"rel": NaN}')
    assert read_json(tmp_path / "b.json") is None


def test_stale_partials_of_dead_writers_are_removed(tmp_path):
    final = tmp_path / "m.onnx"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.onnx.~w{int(dead.stdout)}~abc.partial"
    stale_png = tmp_path / f".c.png.~w{int(dead.stdout)}~k2_x.png.partial"
    live = tmp_path / f".m.onnx.~w{os.getpid()}~xyz.partial"  # a concurrent writer: left alone
    recording = tmp_path / f".rec.mp4.~rec{int(dead.stdout)}.partial"  # the recorder's: it recovers those itself
    for p in (stale, stale_png, live, recording):
        p.write_bytes(b"half")
    with atomic_path(final) as tmp:
        assert f".m.onnx.~w{os.getpid()}~" in tmp.name  # per-process temp names
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole" and not stale.exists() and not stale_png.exists()
    assert live.exists() and recording.exists()
    later = tmp_path / f".m.onnx.~w{int(dead.stdout)}~def.partial"
    later.write_bytes(b"half")
    write_json_atomic(tmp_path / "x.json", {})  # the folder is scanned once per process, not per write
    assert later.exists()


def test_digits_in_a_users_file_name_are_never_read_as_a_pid(tmp_path):
    """Issue 23.1: `.2024.12.25.mcap.<pid>.partial` was read as pid 25's temporary and deleted
    while it was being written. Live recordings, and dead ones (recovered by their next run), stay."""
    from anydepth_edge.fileio import recording_partial_name
    from anydepth_edge.runtime.outputs import partial_path

    live = partial_path(tmp_path / "2024.12.25.mcap")
    live.write_bytes(b"recording")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = tmp_path / recording_partial_name("take.99999.mp4", int(dead.stdout))
    crashed.write_bytes(b"frames")
    user = tmp_path / ".notes.12.txt.partial"  # a user's own hidden file that merely looks like ours
    user.write_bytes(b"mine")
    write_json_atomic(tmp_path / "depth_scale.json", {})  # what --save-depth into that folder does
    assert live.read_bytes() == b"recording" and crashed.exists() and user.exists()


def test_a_folder_with_the_artifacts_name_is_one_line_before_any_work(exported, tmp_path):
    from anydepth_edge.export.onnx_export import ExportJob, export_onnx
    from anydepth_edge.artifacts import RANDOM_CHECKPOINT
    from anydepth_edge.targets import TARGETS

    model, _ = exported
    (tmp_path / "anydepth-sdt-vits-32x32-trt10.onnx").mkdir()
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="is a folder: cannot write the artifact there"):
        export_onnx(ExportJob(model, (32, 32), TARGETS["trt10"], RANDOM_CHECKPOINT, tmp_path))
    assert time.perf_counter() - t0 < 2  # refused before tracing


# ----------------------------------------------------------------------------- sizes and configs

@pytest.mark.parametrize("res,needle", [("1000000000000000", "larger than 2048"), ("4096", "larger than 2048"),
                                        ("64x99999999999999999999", "larger than 2048")])
def test_absurd_resolutions_are_refused(res, needle):
    with pytest.raises(UserError, match=needle):
        parse_res(res)


def test_memory_estimate_refuses_what_does_not_fit():
    with pytest.raises(UserError, match="needs about .* GB of memory; 1.0 GB is available here"):
        check_fits_memory((1024, 1024), "exporting SDT", factor=2.0, available_bytes=1 << 30)
    check_fits_memory((256, 256), "exporting SDT", available_bytes=8 << 30)  # fits: no error


def test_info_with_absurd_resolution_is_one_line():
    assert_one_line_error(run_cli("info", "--res", "1000000000000000"), "larger than 2048")


def _toolkit_checkpoint(tmp_path, tiny_model, config_edit):
    from anydepth_edge.models.checkpoints import save_checkpoint

    path = save_checkpoint(tiny_model(), tmp_path / "mine")
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    config_edit(data)
    side.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["config"].update(encoder_depth=100000), "encoder_depth = 100000 is outside 1..48"),
    (lambda d: d["config"].update(fusion_channels=10_000_000), "fusion_channels = 10000000 is outside 8..2048"),
    (lambda d: d["config"].update(fusion_channels=1e7), "fusion_channels = 10000000.0 is outside"),
    (lambda d: d.update(config=[1, 2]), "is not an object"),
    (lambda d: d.update(config="vits"), "is not an object"),
    (lambda d: d["config"].update(encoder=None), "encoder and decoder must be names"),
    (lambda d: d["config"].update(taken_layers=[0, 1, 2, 99]), "taken_layers"),
])
def test_hostile_checkpoint_configs_are_one_line_before_allocation(tmp_path, tiny_model, edit, needle):
    from anydepth_edge.models.checkpoints import load_checkpoint

    path = _toolkit_checkpoint(tmp_path, tiny_model, edit)
    with pytest.raises(UserError, match=needle):
        load_checkpoint(path)


def test_hostile_config_through_the_cli_is_one_line(tmp_path, tiny_model):
    path = _toolkit_checkpoint(tmp_path, tiny_model, lambda d: d["config"].update(encoder_depth=100000))
    assert_one_line_error(run_cli("info", "-c", path), "encoder_depth = 100000")


def test_zip_bomb_checkpoint_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data/0", "w", force_zip64=True) as fh:
            block = bytes(1 << 20)
            for _ in range(300):  # 300 MB of zeros, ~300 KB on disk
                fh.write(block)
    assert bomb.stat().st_size < 2 << 20
    from anydepth_edge.models.checkpoints import load_checkpoint

    with pytest.raises(UserError, match="inflates from .* MB to 300 MB"):
        load_checkpoint(bomb)


def test_pickled_code_is_named_as_such(tmp_path):
    """torch 2.14 words the refusal 'unsupported GLOBAL posix.system ... is blocked'."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    from anydepth_edge.models.checkpoints import load_checkpoint

    with pytest.raises(UserError, match="contains pickled Python code or objects"):
        load_checkpoint(path)
    assert not marker.exists()


def test_non_finite_checkpoint_is_refused(tmp_path, tiny_model):
    from anydepth_edge.models.checkpoints import load_checkpoint, save_checkpoint

    model = tiny_model()
    with torch.no_grad():
        model.encoder.backbone.patch_embed.proj.weight[0, 0, 0, 0] = float("inf")
    path = save_checkpoint(model, tmp_path / "inf")
    with pytest.raises(UserError, match="holds NaN, Inf .in float32. or complex values in 1 tensors.*patch_embed"):
        load_checkpoint(path)


@pytest.mark.parametrize("value, message", [
    (lambda w: torch.full_like(w, 1e300, dtype=torch.float64), "NaN, Inf .in float32."),  # finite in float64 only
    (lambda w: torch.complex(w, w), "complex"),
    (lambda w: (w > 0), "as bool, where the model has weights"),
    (lambda w: w.to(torch.int8), "as int8, where the model has weights"),
])
def test_a_checkpoint_tensor_the_model_cannot_hold_is_refused(tmp_path, tiny_model, value, message):
    """23.14: a float64 1e300 passed the finiteness check and became Inf (the export then died with an
    IndexError in DySample's gather); int8/bool/complex tensors were converted silently."""
    from anydepth_edge.models.checkpoints import load_checkpoint, save_checkpoint

    model = tiny_model()
    proj = model.encoder.backbone.patch_embed.proj
    proj.weight = torch.nn.Parameter(value(proj.weight.detach()), requires_grad=False)
    path = save_checkpoint(model, tmp_path / "odd")
    with pytest.raises(UserError, match=message):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- non-finite exports

def test_nan_weights_fail_the_export_and_write_nothing(tiny_model, tmp_path):
    from anydepth_edge.export.onnx_export import ExportJob, export_onnx
    from anydepth_edge.artifacts import RANDOM_CHECKPOINT
    from anydepth_edge.targets import TARGETS

    model = tiny_model()
    with torch.no_grad():
        model.decoder.output_conv[0].weight.fill_(float("nan"))
    with pytest.raises(UserError, match="NaN or Inf on the test inputs.*not exported"):
        export_onnx(ExportJob(model, (32, 32), TARGETS["trt10"], RANDOM_CHECKPOINT, tmp_path, fp16_check=False))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- trusted by content

@pytest.fixture
def two_exports(exported, tmp_path):
    """Copies of two exports (64 and 32 px) with their sidecars."""
    _, res = exported
    paths = {}
    for key in ("trt10", "trt10-32"):
        for suffix in (".onnx", ".json"):
            shutil.copy(res[key].onnx_path.with_suffix(suffix), tmp_path)
        paths[key] = tmp_path / res[key].onnx_path.name
    return paths


def test_swapped_onnx_files_are_refused_by_run_and_build(two_exports, tmp_path):
    from fakes.fake_device import FakeCuda
    from fakes.fake_tensorrt import make_fake_tensorrt

    from anydepth_edge.engines import BackendSpec, open_backend
    from anydepth_edge.engines.ensure import ensure_engine
    from anydepth_edge.engines.trt_common import DEVICE_PROFILES
    from anydepth_edge.platform_info import PlatformInfo

    a, b = two_exports["trt10"], two_exports["trt10-32"]
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(UserError, match="not the file its sidecar describes.*anydepth-edge export"):
        open_backend(BackendSpec("onnxruntime", "cpu", str(a)))
    cuda = FakeCuda()
    with pytest.raises(UserError, match="not the file its sidecar describes"):
        ensure_engine(a, tmp_path / "engines", DEVICE_PROFILES["generic"], trt=make_fake_tensorrt(device=cuda.device),
                      cuda=cuda, platform=PlatformInfo())
    proc = run_cli("run", "--source", REPO / "anydepth_edge" / "data", "--model", a, "--max-frames", "1")
    assert_one_line_error(proc, "not the file its sidecar describes")


def test_edited_sidecar_resolution_is_caught(two_exports):
    """Hash unchanged (only the sidecar was edited): the loaded model's own input shape disagrees."""
    from anydepth_edge.engines import BackendSpec, open_backend

    side = two_exports["trt10"].with_suffix(".json")
    data = json.loads(side.read_text())
    data["resolution"] = [128, 128]
    data["inputs"][0]["shape"] = [1, 3, 128, 128]
    side.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"takes \(1, 3, 64, 64\) but its sidecar says \(1, 3, 128, 128\)"):
        open_backend(BackendSpec("onnxruntime", "cpu", str(two_exports["trt10"])))


def test_bench_reexports_an_export_that_is_not_what_its_sidecar_says(two_exports, monkeypatch):
    from anydepth_edge.bench.harness import BenchOptions, find_onnx

    opts = BenchOptions(export_dir=two_exports["trt10"].parent)
    assert find_onnx(opts, "sdt", (64, 64), "trt10") == two_exports["trt10"]
    with open(two_exports["trt10"], "ab") as fh:
        fh.write(b"\0")  # damaged (or swapped): not used under its label, exported again
    assert find_onnx(opts, "sdt", (64, 64), "trt10") is None


def test_exports_of_two_checkpoints_never_share_a_name():
    assert onnx_stem("sdt", "vits", (256, 256), "trt10") == "anydepth-sdt-vits-256x256-trt10"
    a = onnx_stem("sdt", "vits", (256, 256), "trt10", checkpoint_sha256="1a2b3c4d" + "0" * 56)
    b = onnx_stem("sdt", "vits", (256, 256), "trt10", "gather", checkpoint_sha256="ffeeddcc" + "0" * 56)
    assert a == "anydepth-sdt-vits-256x256-trt10-ckpt1a2b3c4d" and b.endswith("-gather-ckptffeeddcc")
    assert "--checkpoint" in OnnxArtifact._generic_rebuild(Path(a + ".onnx"))


def test_doctor_does_not_call_a_tampered_export_ok(two_exports, tmp_path):
    from fakes.platforms import fixture

    from anydepth_edge.doctor import diagnose

    with open(two_exports["trt10"], "ab") as fh:
        fh.write(b"\0")
    root = REPO / "tests" / "fixtures" / "platforms" / "x86-host"
    checks = {c.name: c for c in diagnose(root, str(two_exports["trt10"].parent), str(tmp_path / "e"),
                                          **fixture(root))["checks"]}
    bad = checks[f"export {two_exports['trt10'].name}"]
    assert bad.status == "wrong" and "sha256 differs" in bad.detail and "--force" in bad.fix


# ----------------------------------------------------------------------------- bench and signals

def test_bench_forwards_sigterm_to_its_child_and_cleans_up(tmp_path):
    """SIGTERM to the benchmark stops its child and removes the child's temporary folder."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import sys, json\n"
        "from anydepth_edge.console import interrupt_on_sigterm\n"
        "from anydepth_edge.bench.process import run_child\n"
        "interrupt_on_sigterm()\n"
        f"spec = {{'res': [32, 32], 'warmup': 0, 'iters': 100000, 'e2e_iters': 0, 'measure_peak': False,\n"
        f"        'backend': {{'kind': 'custom', 'factory': 'fakes.synthetic:SyntheticBackend',\n"
        f"                    'options': {{'res': [32, 32], 'sleep_ms': 50, 'pid_file': {str(pid_file)!r}}}}}}}\n"
        "try:\n    run_child(spec)\nexcept KeyboardInterrupt:\n    sys.exit(143)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}{os.pathsep}{REPO}", TMPDIR=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=str(REPO))
    child = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not pid_file.exists():
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert list(tmp_path.glob("anydepth-bench-*"))
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 143
        time.sleep(0.5)
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
        assert not list(tmp_path.glob("anydepth-bench-*"))
    finally:  # a failed run leaves nothing behind either
        for pid in (parent.pid, child):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_fixture_tiny_config_is_valid():
    """The test suite's tiny config passes the same validation as a user's."""
    from anydepth_edge.models.anydepth import AnyDepthConfig

    assert AnyDepthConfig(**TINY).encoder_depth == 4


# ----------------------------------------------------------------------------- issue 23: images and sources

def test_a_folder_source_is_the_folder_named_and_skips_what_it_must_not_decode(tmp_path):
    """23.11: 'data[1]' was globbed (it read data1/); 23.9/23.17: a PNG declaring 15000x15000 cost 4.5 GB,
    one declaring 60000x60000 stopped the run with an OpenCV assertion; 23.25: a truncated JPEG was used."""
    cv2 = pytest.importorskip("cv2")
    from anydepth_edge.runtime.sources import FolderSource, parse_source

    (tmp_path / "data1").mkdir()
    cv2.imwrite(str(tmp_path / "data1" / "decoy.png"), np.zeros((8, 8, 3), np.uint8))
    folder = tmp_path / "data[1]"
    folder.mkdir()
    good = np.full((8, 8, 3), 200, np.uint8)
    cv2.imwrite(str(folder / "d_good.png"), good)
    (folder / "a_bomb.png").write_bytes(png_declaring(15000, 15000))
    (folder / "b_huge.png").write_bytes(png_declaring(60000, 60000))
    ok, jpg = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    (folder / "c_cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    warned = []
    src = FolderSource(parse_source(str(folder)), cv2, warn=warned.append)
    src.open()
    frame, _ = src.read()
    assert np.array_equal(frame, good) and src.current_name == "d_good.png"
    assert src.refused == 3 and "15000x15000" in warned[0] and "60000x60000" in warned[1] and "truncated" in warned[2]
    with pytest.raises(StopIteration):
        src.read()


def test_verify_images_refuses_a_fifo_and_a_bomb_in_one_line(tmp_path):
    """23.25: a FIFO named *.png blocked `verify --images` forever; 23.9: a bomb cost 1.4 GB."""
    from anydepth_edge.engines.verify import _read_rgb

    fifo = tmp_path / "cam.png"
    os.mkfifo(str(fifo))
    with pytest.raises(UserError, match="not a regular file"):
        _read_rgb(fifo, (64, 64))
    (tmp_path / "bomb.png").write_bytes(png_declaring(15000, 15000))
    with pytest.raises(UserError, match="15000x15000"):
        _read_rgb(tmp_path / "bomb.png", (64, 64))


@pytest.mark.parametrize("text", ["csi://²", "csi://٣", "csi://0x1"])
def test_a_csi_sensor_id_is_ascii_digits(text):
    """23.19: 'csi://²' passed isdigit() and int() raised a traceback."""
    from anydepth_edge.runtime.sources import parse_source

    with pytest.raises(UserError, match="CSI sensor id must be a number"):
        parse_source(text)


def test_url_secrets_are_redacted_by_key_pattern():
    """23.8: access_token=, apikey=, pw=, ;password=, #token= reached error lines, /stats.json and bags."""
    from anydepth_edge.runtime.sources import redact

    url = "rtsp://cam/x?access_token=A1&apikey=B2&pw=C3;password=D4#token=E5&X-Amz-Signature=F6&fps=30"
    shown = redact(url)
    assert not any(s in shown for s in ("A1", "B2", "C3", "D4", "E5", "F6")) and "fps=30" in shown


def test_save_depth_into_the_source_folder_is_refused_before_any_work(tmp_path):
    """23.26: with --overwrite the depth PNGs (named after their images) replaced the input photos."""
    cv2 = pytest.importorskip("cv2")
    photo = tmp_path / "shots" / "a.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), np.full((8, 8, 3), 7, np.uint8))
    before = photo.read_bytes()
    proc = run_cli("run", "--source", photo.parent, "--model", "none.onnx", "--save-depth", tmp_path / "shots" / ".",
                   "--overwrite", "--max-frames", 1)
    assert_one_line_error(proc, "is the source folder")
    assert photo.read_bytes() == before


def test_ros_options_without_a_ros_output_are_an_error_not_ignored():
    """23.23: --camera-info (even an invalid file) and the other ROS options were silently ignored."""
    proc = run_cli("run", "--source", "0", "--model", "none.onnx", "--camera-info", "missing.yaml", "--colored")
    assert_one_line_error(proc, "--camera-info, --colored", "--ros2, --record-bag")


def test_serve_hosts_are_read_as_the_socket_reads_them():
    """23.24: '--serve 0:PORT' / '0000:PORT' bound every interface (inet_aton reads them as 0.0.0.0) while the
    Host check and the exposure warning saw '0' and '0000'; LAN clients then got 421."""
    from anydepth_edge.runtime.server import allowed_hosts, exposed, parse_serve

    for text in ("0:8080", "0000:8080", "0.0.0.0:8080"):
        host, port = parse_serve(text)
        assert (host, port) == ("0.0.0.0", 8080) and exposed(host) and allowed_hosts(host, host)[1]
    assert parse_serve("127.1:80")[0] == "127.0.0.1" and not exposed("127.0.0.1") and not exposed("::1")
    assert parse_serve("[::]:80")[0] == "::" and exposed("::")


def test_record_bag_into_a_folder_names_a_file_to_give(tmp_path):
    from anydepth_edge.ros2.bag import check_bag_target

    with pytest.raises(UserError, match="is a folder: give a file in it, e.g. .*depth.mcap"):
        check_bag_target(tmp_path, False, 0)


def test_a_folder_given_as_the_model_is_named_a_folder(tmp_path):
    """Issue 24.6: `run --model export/` said "file not found", `verify export` "not found"."""
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "m.onnx").write_bytes(b"x")
    proc = run_cli("run", "--source", "0", "--model", tmp_path / "export")
    assert_one_line_error(proc, "is a folder: give a model file in it (m.onnx)")
    assert_one_line_error(run_cli("verify", tmp_path / "export"), "is a folder")


def test_decoder_all_means_the_papers_pair_for_export_and_bench():
    """Issue 24.6: `bench --decoder all` was refused while `export --decoder all` worked."""
    from anydepth_edge.model_facts import expand_decoders

    assert expand_decoders(["all"]) == ["sdt", "dpt"] and expand_decoders(["dav2", "all", "sdt"]) == ["dav2", "sdt", "dpt"]
    proc = run_cli("bench", "--decoder", "all", "--device", "orin-nano", "--res", "64")
    assert_one_line_error(proc, "this host is not a Jetson Orin Nano")  # parsed: refused later, for the device


def test_ctrl_c_inside_a_verb_says_interrupted(monkeypatch, capsys):
    """Typer turns a KeyboardInterrupt inside a verb into exit code 130 and prints nothing; the user
    still gets one line saying why the command stopped (an export interrupted mid-way printed
    nothing at all)."""
    import anydepth_edge.export.onnx_export as onnx_export
    from anydepth_edge.cli import main

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "export_models", interrupted)
    with pytest.raises(SystemExit) as stop:
        main(["export", "--res", "32", "--out-dir", "unused-dir"])
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
