"""Engine stage. TensorRT does not run here: the builder and runtime logic is tested against a
recording fake of the TensorRT 8.5 / 8.6 / 10.x API surface; real-hardware tests skip without
`tensorrt`. ONNX Runtime and PyTorch backends run for real."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, have, run_cli
from fakes.fake_tensorrt import FakeCuda, make_fake_tensorrt

from anydepth_edge.engines import choose_backend
from anydepth_edge.engines.trt_backend import TensorRTBackend
from anydepth_edge.engines.trt_build import (
    BuildSettings,
    EngineJob,
    build,
    default_timing_cache,
    network_flags,
    trtexec_command,
)
from anydepth_edge.engines.trt_common import DEVICE_PROFILES, engine_path, gpu_tag
from anydepth_edge.errors import HardwareMissing, UserError

VERSIONS = ["8.5.2.2", "8.6.2", "10.3.0"]
ORIN = DEVICE_PROFILES["orin-nano"]


@pytest.fixture
def onnx_copy(exported, tmp_path):
    """A private copy of the tiny exports (ONNX + sidecar) per test."""
    _, res = exported
    out = {}
    for key, r in res.items():
        for suffix in (".onnx", ".json"):
            shutil.copy(r.onnx_path.with_suffix(suffix), tmp_path / (r.onnx_path.stem + suffix))
        out[key] = tmp_path / r.onnx_path.name
    return out


def _fake(version, **kw):
    trt = make_fake_tensorrt(version, **kw)
    cuda = FakeCuda()
    trt.cuda = cuda
    return trt, cuda


def _build(onnx, version, tmp_path, **kw):
    fake_kw = {k: kw.pop(k) for k in ("fail_obey", "oom", "parse_error") if k in kw}
    trt, cuda = _fake(version, **fake_kw)
    job = EngineJob(onnx, tmp_path / "engines", ORIN, timing_cache=tmp_path / "engines" / "timing.cache", **kw)
    notes = []
    path, side, reused = build(job, trt=trt, cuda=cuda, notify=notes.append)
    return trt, cuda, path, side, reused, notes


def _calls(trt, name):
    return [c for c in trt.calls if c[0] == name]


# ----------------------------------------------------------------------------- builder, per version

@pytest.mark.parametrize("version", VERSIONS)
def test_builder_sets_what_the_spec_says(onnx_copy, tmp_path, version):
    onnx = onnx_copy["trt8.5" if version.startswith("8.5") else "trt10"]
    trt, _, path, side, reused, notes = _build(onnx, version, tmp_path)
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    (_, flags), = _calls(trt, "create_network")
    assert flags == (1 if major_minor < (10, 0) else 0)  # EXPLICIT_BATCH on 8.x only
    (_, state), = _calls(trt, "build")
    assert state["pools"] == {"WORKSPACE": 1024 << 20}  # orin-nano cap
    assert "FP16" in state["flags"] and "OBEY" in state["flags"]
    assert state["opt_level"] == (None if major_minor == (8, 5) else 3)  # no optimisation level on 8.5
    # progress: IProgressMonitor on 10.x, a phase message on 8.x
    assert bool(_calls(trt, "progress_monitor")) == (major_minor >= (10, 0))
    assert any("reports no progress" in n for n in notes) == (major_minor < (10, 0))
    # the FP32 pins: every node the export named, and the constants that feed them
    onnx_side = json.loads(onnx.with_suffix(".json").read_text())
    pinned = set(state["fp32_layers"])
    assert set(onnx_side["fp32_nodes"]) <= pinned
    assert any(not n.startswith(("DySampleFP32/", "LayerNormFP32/")) for n in pinned)  # constants, e.g. base grids
    unpinned_convs = [n for n in pinned if "/Conv" in n and "FP32" not in n]
    assert not unpinned_convs  # convolutions stay FP16
    ln_pins = [n for n in pinned if n.startswith("LayerNormFP32/")]
    assert bool(ln_pins) == version.startswith("8.5")  # decomposed LayerNorm is pinned on 8.5 only
    # artifacts: engine, sidecar, inspector JSON, build log, timing cache
    assert path.name == f"{onnx.stem}-fp16-trt{'.'.join(version.split('.')[:3])}-orin.engine"
    assert side["tensorrt_version"] == version and side["gpu_name"] == "Orin" and side["compute_capability"] == [8, 7]
    assert side["onnx_sha256"] and side["settings"]["workspace_mib"] == 1024 and side["build_seconds"] >= 0
    assert side["device_memory_bytes"] == 123 << 20
    assert any("MemUsageChange" in line for line in side["memory_log"])
    assert json.loads(path.with_suffix(".inspector.json").read_text())["Layers"]
    assert "MemUsageChange" in path.with_suffix(".build.log").read_text()
    assert (tmp_path / "engines" / "timing.cache").read_bytes() == b"+tuned"
    assert not reused


def test_fp32_build_sets_no_pins(onnx_copy, tmp_path):
    trt, _, path, side, _, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path, precision="fp32")
    (_, state), = _calls(trt, "build")
    assert "FP16" not in state["flags"] and state["fp32_layers"] == [] and "-fp32-" in path.name


def test_timing_cache_is_read_back(onnx_copy, tmp_path):
    cache = tmp_path / "engines" / "timing.cache"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"old")
    trt, *_ = _build(onnx_copy["trt10"], "10.3.0", tmp_path)
    assert ("create_timing_cache", b"old") in trt.calls
    assert cache.read_bytes() == b"old+tuned"


def test_default_timing_cache_is_shared_so_every_caller_reuses_the_engine(onnx_copy, tmp_path):
    """`build`, `bench` and `run` pass no timing cache: one default per TensorRT and GPU, so an
    engine built by one is up to date for the others (the cache path is part of the settings)."""
    trt, cuda = _fake("10.3.0")
    job = EngineJob(onnx_copy["trt10"], tmp_path / "engines", ORIN)
    path, side, reused = build(job, trt=trt, cuda=cuda)
    expected = default_timing_cache(tmp_path / "engines", "10.3.0", cuda.device_name())
    assert not reused and side["settings"]["timing_cache"] == str(expected) and expected.exists()
    assert expected.name.startswith("timing-trt10.3.0-")
    again, _, reused = build(EngineJob(onnx_copy["trt10"], tmp_path / "engines", ORIN), trt=trt, cuda=cuda)
    assert reused and again == path and len(_calls(trt, "build")) == 1


def test_obey_falls_back_to_prefer_with_a_warning(onnx_copy, tmp_path):
    trt, _, _, side, _, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path, fail_obey=True)
    builds = _calls(trt, "build")
    assert len(builds) == 2 and "OBEY" in builds[0][1]["flags"] and "PREFER" in builds[1][1]["flags"]
    assert "OBEY" not in builds[1][1]["flags"]
    assert side["precision_constraints"] == "prefer"
    assert any("retrying with 'prefer'" in w for w in side["warnings"])


def test_out_of_memory_gives_the_orin_hint(onnx_copy, tmp_path):
    with pytest.raises(UserError, match="out of memory.*swap.*--workspace"):
        _build(onnx_copy["trt10"], "10.3.0", tmp_path, oom=True)
    assert not list((tmp_path / "engines").glob("*.engine"))  # nothing half-written


def test_parse_error_points_to_check_onnx(onnx_copy, tmp_path):
    with pytest.raises(UserError, match="cannot parse.*check-onnx"):
        _build(onnx_copy["trt10"], "10.3.0", tmp_path, parse_error="Unsupported ONNX op")


def test_up_to_date_engine_is_reused(onnx_copy, tmp_path):
    _build(onnx_copy["trt10"], "10.3.0", tmp_path)
    trt, _, _, _, reused, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path)
    assert reused and not _calls(trt, "build")
    trt, _, _, _, reused, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path, force=True)
    assert not reused and _calls(trt, "build")


def test_onnx_for_trt10_is_refused_by_trt85(onnx_copy, tmp_path):
    with pytest.raises(UserError, match="needs: anydepth-edge export --target trt8.5"):
        _build(onnx_copy["trt10"], "8.5.2.2", tmp_path)


def test_missing_onnx_sidecar(onnx_copy, tmp_path):
    onnx_copy["trt10"].with_suffix(".json").unlink()
    with pytest.raises(UserError, match="names the FP32 pins"):
        _build(onnx_copy["trt10"], "10.3.0", tmp_path)


def test_network_flags_helper():
    assert network_flags(make_fake_tensorrt("8.6.2")) == 1
    assert network_flags(make_fake_tensorrt("10.3.0")) == 0


# ----------------------------------------------------------------------------- trtexec

@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_trtexec_command_mirrors_the_python_builder(version, tmp_path):
    s = BuildSettings(precision="fp16", workspace_mib=768, builder_optimization_level=3,
                      fp32_pins=["DySampleFP32/a/coords/Add", "DySampleFP32/a/sampler/GridSample"],
                      timing_cache=tmp_path / "t.cache")
    cmd = trtexec_command("/usr/src/tensorrt/bin/trtexec", Path("m.onnx"), Path("m.engine"), s, version)
    assert cmd[0] == "/usr/src/tensorrt/bin/trtexec"
    assert "--fp16" in cmd and "--precisionConstraints=obey" in cmd and "--memPoolSize=workspace:768" in cmd
    assert "--layerPrecisions=DySampleFP32/a/coords/Add:fp32,DySampleFP32/a/sampler/GridSample:fp32" in cmd
    assert f"--timingCacheFile={tmp_path / 't.cache'}" in cmd and "--saveEngine=m.engine" in cmd
    assert any(c.startswith("--builderOptimizationLevel") for c in cmd) == (not version.startswith("8.5"))


def test_trtexec_build_records_its_command(onnx_copy, tmp_path):
    trtexec = tmp_path / "trtexec"
    trtexec.write_text("#!/bin/sh\n")
    seen = {}

    def fake_run(cmd, capture_output, text):
        seen["cmd"] = cmd
        out = next(c.split("=", 1)[1] for c in cmd if c.startswith("--saveEngine="))
        Path(out).write_bytes(b"ENGINE")
        return type("P", (), {"returncode": 0, "stdout": "[I] [MemUsageChange] GPU +5\n", "stderr": ""})()

    trt, cuda = _fake("10.3.0")
    job = EngineJob(onnx_copy["trt10"], tmp_path / "engines", ORIN, builder="trtexec", trtexec=str(trtexec))
    path, side, _ = build(job, trt=trt, cuda=cuda, run=fake_run)
    assert path.read_bytes() == b"ENGINE"
    assert side["builder"] == "trtexec" and "--fp16" in side["trtexec_command"]
    assert "--precisionConstraints=obey" in seen["cmd"]


# ----------------------------------------------------------------------------- loading and running

def _engine(onnx_copy, tmp_path, version="10.3.0"):
    _, _, path, side, _, _ = _build(onnx_copy["trt10"], version, tmp_path)
    return path


@pytest.mark.parametrize("graph", [False, True])
def test_runtime_data_path(onnx_copy, tmp_path, graph):
    path = _engine(onnx_copy, tmp_path)
    trt, cuda = _fake("10.3.0")
    be = TensorRTBackend(path, cuda_graph=graph, trt=trt, cuda=cuda)
    assert be.input_name == "image" and be.input_shape == (1, 3, 64, 64) and be.output_shape == (1, 1, 64, 64)
    addresses = {c[1]: c[2] for c in _calls(trt, "set_tensor_address")}
    assert set(addresses) == {"image", "depth"} and addresses["image"] != addresses["depth"]
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    executes_before = len(_calls(trt, "execute_async_v3"))
    y = be.infer(x)
    assert np.allclose(y.reshape(-1), x.sum(axis=1).reshape(-1), atol=1e-5)  # copied in, run, copied out
    y2 = be.infer(2 * x).copy()
    assert np.allclose(y2.reshape(-1), 2 * x.sum(axis=1).reshape(-1), atol=1e-5)
    if graph:
        assert "launch_graph" in cuda.log and len(_calls(trt, "execute_async_v3")) == executes_before
    else:
        assert len(_calls(trt, "execute_async_v3")) == executes_before + 2
    assert all(c[1] == 0xABC for c in _calls(trt, "execute_async_v3"))  # one stream for copies and inference
    mem = be.memory()
    assert mem["engine_device_memory_bytes"] == 123 << 20 and mem["cuda_meminfo_delta_bytes"] > 0
    with pytest.raises(UserError, match="does not match"):
        be.infer(np.zeros((1, 3, 32, 32), np.float32))
    be.close()


def test_graphs_without_cuda_python_fall_back(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path)
    trt, _ = _fake("10.3.0")
    cuda = FakeCuda(name="pycuda", supports_graphs=False)
    trt.cuda = cuda
    be = TensorRTBackend(path, cuda_graph=True, trt=trt, cuda=cuda)
    assert be.graph is None and "cuda-python" in be.describe()["note"]


def test_engine_from_another_tensorrt_is_refused(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path, version="8.6.2")
    trt, cuda = _fake("10.3.0")
    with pytest.raises(UserError) as e:
        TensorRTBackend(path, trt=trt, cuda=cuda)
    msg = str(e.value)
    assert "built with TensorRT 8.6.2 on Orin; this is 10.3.0: rebuild with anydepth-edge build" in msg
    assert str(onnx_copy["trt10"]) in msg
    assert not _calls(trt, "deserialize")  # refused before TensorRT touches it


def test_engine_for_another_gpu_is_refused(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path)
    trt, _ = _fake("10.3.0")
    with pytest.raises(UserError, match="built for Orin.*this GPU is NVIDIA H100"):
        TensorRTBackend(path, trt=trt, cuda=FakeCuda(gpu="NVIDIA H100", cc=(9, 0)))


def test_corrupt_engine_is_a_clear_error(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path)
    path.write_bytes(b"\x00" * 100)
    trt, cuda = _fake("10.3.0")
    with pytest.raises(UserError, match="corrupt or was built by another TensorRT.*Magic tag"):
        TensorRTBackend(path, trt=trt, cuda=cuda)
    with pytest.raises(UserError, match="engine not found"):
        TensorRTBackend(tmp_path / "none.engine", trt=trt, cuda=cuda)


def test_engine_names():
    assert gpu_tag("Orin (nvgpu)") == "orin"
    assert gpu_tag("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    p = engine_path("export/anydepth-sdt-vits-256x256-trt10.onnx", "fp16", "10.3.0.26", "Orin", "engines")
    assert str(p) == "engines/anydepth-sdt-vits-256x256-trt10-fp16-trt10.3.0-orin.engine"


# ----------------------------------------------------------------------------- the CLI on this host

def test_build_without_tensorrt_is_one_line(exported):
    if have("tensorrt"):
        pytest.skip("TensorRT is installed here")
    _, res = exported
    line = assert_one_line_error(run_cli("build", res["trt10"].onnx_path), "TensorRT is not installed here")
    assert "python3-libnvinfer" in line and "anydepth-edge[trt]" in line


def test_build_bad_arguments(exported):
    _, res = exported
    assert_one_line_error(run_cli("build", "missing.onnx"), "not found")
    assert_one_line_error(run_cli("build", res["trt10"].onnx_path, "--precision", "int8"), "unknown precision")
    assert_one_line_error(run_cli("build", res["trt10"].onnx_path, "--device", "xavier"), "unknown device profile")


# ----------------------------------------------------------------------------- backends that run here

def test_auto_backend_here_is_ort_cpu_and_says_why():
    if have("tensorrt"):
        pytest.skip("TensorRT is installed here")
    choice = choose_backend("auto")
    assert choice.kind == "onnxruntime" and choice.device == "cpu"
    assert "no TensorRT" in choice.reason
    with pytest.raises(HardwareMissing, match="TensorRT is not installed"):
        choose_backend("trt")
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend("tflite")


def test_ort_and_torch_backends_agree(exported):
    pytest.importorskip("torch")
    from anydepth_edge.engines import BackendChoice, open_backend
    from anydepth_edge.engines.torch_backend import TorchBackend
    from anydepth_edge.preprocess import load_sample_image, normalise

    model, res = exported
    x = normalise(load_sample_image((64, 64)))
    with open_backend(BackendChoice("onnxruntime", "cpu", "test"), onnx_path=res["trt10"].onnx_path) as ort_be:
        a = ort_be.infer(x).copy()
        assert ort_be.memory()["rss_bytes"] > 0 and ort_be.resolution == (64, 64)
    with TorchBackend(model, (64, 64)) as torch_be:
        b = torch_be.infer(x).copy()
    assert a.shape == b.shape == (1, 1, 64, 64)
    assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 1e-4
    assert a.std() > 0.01  # a real, varying depth map


def test_torch_backend_from_sidecar(exported):
    pytest.importorskip("torch")
    from anydepth_edge.engines import BackendChoice, open_backend

    model, res = exported
    be = open_backend(BackendChoice("torch", "cpu", "test"), onnx_path=res["trt10"].onnx_path)
    assert be.input_shape == (1, 3, 64, 64) and be.model.config.encoder_depth == 4


# ----------------------------------------------------------------------------- real hardware

@pytest.mark.tensorrt
def test_real_tensorrt_engine_matches_onnxruntime(exported, tmp_path):
    trt = pytest.importorskip("tensorrt")
    from anydepth_edge.engines.cuda_api import load_cuda_api
    from anydepth_edge.engines.ort_backend import OrtBackend

    _, res = exported
    cuda = load_cuda_api()
    job = EngineJob(res["trt10"].onnx_path, tmp_path, DEVICE_PROFILES["generic"], precision="fp32")
    path, side, _ = build(job, trt=trt, cuda=cuda)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = TensorRTBackend(path, trt=trt, cuda=cuda).infer(x)
    want = OrtBackend(res["trt10"].onnx_path).infer(x)
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-3
