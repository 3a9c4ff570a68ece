"""Engine stage. TensorRT does not run here: the builder and runtime logic is tested against a
recording fake of the TensorRT 8.5 / 8.6 / 10.x API surface; real-hardware tests skip without
`tensorrt`. ONNX Runtime and PyTorch backends run for real."""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FAKE_SITE, assert_one_line_error, have, run_cli
from fakes.fake_device import FakeCuda
from fakes.fake_tensorrt import FAKE_DEFAULT_OPT_LEVEL, make_fake_tensorrt

from anydepth_edge.fileio import sha256_file
from anydepth_edge.engines import choose_backend
from anydepth_edge.engines.ensure import default_timing_cache, ensure_engine
from anydepth_edge.engines.trt_backend import TensorRTBackend
from anydepth_edge.engines.trt_build import (
    BuildSettings,
    network_flags,
    trtexec_command,
)
from anydepth_edge.engines.trt_common import DEVICE_PROFILES, numpy_dtype
from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.platform_info import PlatformInfo
from anydepth_edge.artifacts import EngineArtifact, engine_path, gpu_tag

VERSIONS = ["8.5.2.2", "8.6.2", "10.3.0"]
ORIN = DEVICE_PROFILES["orin-nano"]
X86 = PlatformInfo(machine="x86_64")


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


def _fake(version, gpu="Orin", cc=(8, 7), **kw):
    cuda = FakeCuda(gpu=gpu, cc=cc)
    return make_fake_tensorrt(version, device=cuda.device, **kw), cuda


def _build(onnx, version, tmp_path, platform=X86, **kw):
    fake_kw = {k: kw.pop(k) for k in ("fail_obey", "oom", "parse_error") if k in kw}
    trt, cuda = _fake(version, **fake_kw)
    kw.setdefault("timing_cache", tmp_path / "engines" / "timing.cache")
    notes = []
    record, reused = ensure_engine(onnx, tmp_path / "engines", ORIN, trt=trt, cuda=cuda, platform=platform,
                                   notify=notes.append, **kw)
    return trt, cuda, record.path, record.to_dict(), reused, notes


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
    # set explicitly (the fake's default is not TensorRT's 3); absent on 8.5
    assert state["opt_level"] == (None if major_minor == (8, 5) else 3) and FAKE_DEFAULT_OPT_LEVEL != 3
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
    assert not [n for n in pinned if n.startswith(("AttentionFP32/", "ResidualFP32/"))]  # the wide set is not default
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
    record, reused = ensure_engine(onnx_copy["trt10"], tmp_path / "engines", ORIN, trt=trt, cuda=cuda, platform=X86)
    expected = default_timing_cache(tmp_path / "engines", "10.3.0", cuda.device_name())
    assert not reused and record.settings["timing_cache"] == str(expected) and expected.exists()
    assert expected.name.startswith("timing-trt10.3.0-")
    again, reused = ensure_engine(onnx_copy["trt10"], tmp_path / "engines", ORIN, trt=trt, cuda=cuda, platform=X86)
    assert reused and again.path == record.path and len(_calls(trt, "build")) == 1


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
    with pytest.raises(UserError, match="is missing beside.*re-export it: anydepth-edge export --decoder sdt"):
        _build(onnx_copy["trt10"], "10.3.0", tmp_path)


def test_foreign_sidecar_schema_names_the_export_command(onnx_copy, tmp_path):
    side = onnx_copy["trt10"].with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "schema": "anydepth-edge/onnx/99"}))
    with pytest.raises(UserError, match="schema 'anydepth-edge/onnx/99'.*--res 64x64 --target trt10"):
        _build(onnx_copy["trt10"], "10.3.0", tmp_path)


def test_engine_rebuilt_after_a_jetpack_upgrade(onnx_copy, tmp_path):
    """The same TensorRT version on another L4T release family is not the same platform."""
    jp6 = PlatformInfo(machine="aarch64", is_jetson=True, l4t="36.3.0", jetpack="6.0")
    _build(onnx_copy["trt10"], "10.3.0", tmp_path, platform=jp6)
    trt, _, path, side, reused, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path, platform=jp6)
    assert reused and side["jetson"]["l4t"] == "36.3.0"
    newer = PlatformInfo(machine="aarch64", is_jetson=True, l4t="36.4.3", jetpack="6.2")
    trt, _, _, side, reused, _ = _build(onnx_copy["trt10"], "10.3.0", tmp_path, platform=newer)
    assert not reused and _calls(trt, "build") and side["jetson"]["l4t"] == "36.4.3"


def test_network_flags_are_read_from_the_enum():
    """1 << flag for each flag the build needs, read from TensorRT's enum (NvInfer.h: kEXPLICIT_BATCH
    = 0, kSTRONGLY_TYPED = 1), never assumed: an enum with other values gives other bits."""
    assert network_flags(make_fake_tensorrt("8.6.2")) == 1 << 0
    assert network_flags(make_fake_tensorrt("10.3.0")) == 0  # EXPLICIT_BATCH is deprecated and implied on 10.x
    assert network_flags(make_fake_tensorrt("10.3.0"), strongly_typed=True) == 1 << 1
    odd = make_fake_tensorrt("8.6.2")
    odd.NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=5)
    assert network_flags(odd) == 1 << 5
    with pytest.raises(UserError, match="no strongly typed networks"):
        network_flags(make_fake_tensorrt("8.6.2"), strongly_typed=True)


# ----------------------------------------------------------------------------- trtexec

@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_trtexec_command_mirrors_the_python_builder(version, tmp_path):
    s = BuildSettings(precision="fp16", workspace_mib=768, builder_optimization_level=3,
                      pin_regions=("dysample",), pin_names=["DySampleFP32/a/coords/Add", "DySampleFP32/a/sampler/GridSample"],
                      timing_cache=tmp_path / "t.cache")
    cmd = trtexec_command("/usr/src/tensorrt/bin/trtexec", Path("m.onnx"), Path("m.engine"), s, version)
    assert cmd[0] == "/usr/src/tensorrt/bin/trtexec"
    assert "--fp16" in cmd and "--precisionConstraints=obey" in cmd and "--memPoolSize=workspace:768" in cmd
    assert "--layerPrecisions=DySampleFP32/a/coords/Add:fp32,DySampleFP32/a/sampler/GridSample:fp32" in cmd
    assert f"--timingCacheFile={tmp_path / 't.cache'}" in cmd and "--saveEngine=m.engine" in cmd
    assert any(c.startswith("--builderOptimizationLevel") for c in cmd) == (not version.startswith("8.5"))


def _trtexec(tmp_path, returncode=0, stdout="[I] [MemUsageChange] GPU +5\n", write_engine=True):
    """A fake `subprocess.run` for trtexec, and the (existing) trtexec path it checks."""
    trtexec = tmp_path / "trtexec"
    trtexec.write_text("#!/bin/sh\n")
    seen = {}

    def fake_run(cmd, capture_output, text):
        seen["cmd"] = cmd
        if write_engine:
            out = next(c.split("=", 1)[1] for c in cmd if c.startswith("--saveEngine="))
            Path(out).write_bytes(b"ENGINE")
        return type("P", (), {"returncode": returncode, "stdout": stdout, "stderr": ""})()

    return str(trtexec), fake_run, seen


def test_trtexec_build_records_its_command(onnx_copy, tmp_path):
    trtexec, fake_run, seen = _trtexec(tmp_path)
    trt, cuda = _fake("10.3.0")
    record, _ = ensure_engine(onnx_copy["trt10"], tmp_path / "engines", ORIN, builder="trtexec", trtexec=trtexec,
                              trt=trt, cuda=cuda, platform=X86, run=fake_run)
    assert record.path.read_bytes() == b"ENGINE"
    assert record.builder == "trtexec" and "--fp16" in record.trtexec_command
    assert "--precisionConstraints=obey" in seen["cmd"]
    assert any(c.startswith("--layerPrecisions=DySampleFP32/") for c in seen["cmd"])


@pytest.mark.parametrize("case,needle", [
    ("failure", "trtexec failed \\(exit 1\\): \\[E\\] Error\\[4\\]: bad network"),
    ("oom", "out of memory while building.*swap"),
    ("missing", "trtexec not found"),
])
def test_trtexec_failures_are_one_clear_error(onnx_copy, tmp_path, case, needle):
    stdout = {"failure": "[I] parsing\n[E] Error[4]: bad network\n", "oom": "[E] [defaultAllocator.cpp] out of memory\n",
              "missing": ""}[case]
    trtexec, fake_run, _ = _trtexec(tmp_path, returncode=1, stdout=stdout, write_engine=False)
    if case == "missing":
        trtexec = str(tmp_path / "nowhere" / "trtexec")
    trt, cuda = _fake("10.3.0")
    with pytest.raises((UserError, HardwareMissing), match=needle):
        ensure_engine(onnx_copy["trt10"], tmp_path / "engines", ORIN, builder="trtexec", trtexec=trtexec, trt=trt,
                      cuda=cuda, platform=X86, run=fake_run)
    assert not list((tmp_path / "engines").glob("*.engine"))  # nothing half-written


# ----------------------------------------------------------------------------- loading and running

def _engine(onnx_copy, tmp_path, version="10.3.0"):
    _, _, path, side, _, _ = _build(onnx_copy["trt10"], version, tmp_path)
    return path


def _fp32_reference(onnx, x):
    """The export's FP32 depth for `x` (ONNX Runtime CPU): what an FP16 engine must agree with."""
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def _backend(path, version="10.3.0", graph=False, cuda=None):
    cuda = cuda or FakeCuda()
    trt = make_fake_tensorrt(version, device=cuda.device)
    return trt, cuda, TensorRTBackend(path, cuda_graph=graph, trt=trt, cuda=cuda, platform=X86)


@pytest.mark.parametrize("graph", [False, True])
def test_runtime_data_path(onnx_copy, tmp_path, graph):
    path = _engine(onnx_copy, tmp_path)
    trt, cuda, be = _backend(path, graph=graph)
    assert be.input_name == "image" and be.input_shape == (1, 3, 64, 64) and be.output_shape == (1, 1, 64, 64)
    addresses = {c[1]: c[2] for c in _calls(trt, "set_tensor_address")}
    assert set(addresses) == {"image", "depth"} and addresses["image"] != addresses["depth"]
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    executes_before = len(_calls(trt, "execute_async_v3"))
    y = be.infer(x).copy()  # infer() returns the backend's reused output buffer
    # copied in, run, copied out: this input's depth (FP16 rounding: within 1e-3 of FP32), not a stale buffer
    want, want2 = _fp32_reference(onnx_copy["trt10"], x), _fp32_reference(onnx_copy["trt10"], 2 * x)
    assert y.dtype == np.float32 and np.allclose(y, want, rtol=1e-3, atol=1e-3) and not np.array_equal(y, want)
    y2 = be.infer(2 * x).copy()
    assert np.allclose(y2, want2, rtol=1e-3, atol=1e-3) and not np.allclose(y2, y, rtol=1e-3, atol=1e-3)
    if graph:
        assert "launch_graph" in cuda.log and len(_calls(trt, "execute_async_v3")) == executes_before
    else:
        assert len(_calls(trt, "execute_async_v3")) == executes_before + 2
    # one stream, the backend's own, for copies and inference (the fake hands out a new handle per stream)
    streams = {h for kind, h in cuda.device.log if kind in ("htod", "dtoh", "sync")}
    assert streams == {be.handle} and {c[1] for c in _calls(trt, "execute_async_v3")} == {be.handle}
    assert be.handle in cuda.device.queues
    mem = be.memory()
    assert mem["engine_device_memory_bytes"] == 123 << 20 and mem["cuda_meminfo_delta_bytes"] > 0
    with pytest.raises(UserError, match="does not match"):
        be.infer(np.zeros((1, 3, 32, 32), np.float32))
    be.close()


@pytest.mark.parametrize("graph", [False, True])
def test_close_frees_everything_it_allocated(onnx_copy, tmp_path, graph):
    path = _engine(onnx_copy, tmp_path)
    _, cuda, be = _backend(path, graph=graph)
    device_buffers, handle = set(be.device.values()), be.handle
    host_buffers = {a.ctypes.data for a in be.host.values()}
    assert len(device_buffers) == 2 and device_buffers <= set(cuda.device.mem)
    be.close()
    assert device_buffers <= set(cuda.device.freed) and not device_buffers & set(cuda.device.mem)
    assert set(cuda.host_freed) == host_buffers  # pinned host memory too
    assert handle in cuda.device.destroyed_streams
    assert len(cuda.graphs_destroyed) == (1 if graph else 0)
    assert not cuda.closed  # the caller's CUDA API stays open: the backend did not create it


def test_pycuda_path_runs_and_frees(onnx_copy, tmp_path, monkeypatch):
    """The real PyCudaApi (the runtime image's CUDA library) against a fake pycuda package."""
    monkeypatch.syspath_prepend(str(FAKE_SITE))
    for name in [m for m in sys.modules if m == "pycuda" or m.startswith("pycuda.")]:
        monkeypatch.delitem(sys.modules, name)
    from fakes.fake_device import DEVICE

    from anydepth_edge.engines.cuda_api import PyCudaApi, load_cuda_api

    api = load_cuda_api(prefer="pycuda")
    assert isinstance(api, PyCudaApi) and api.device_name() == "Orin" and api.compute_capability() == (8, 7)
    path = _engine(onnx_copy, tmp_path)
    trt = make_fake_tensorrt("10.3.0", device=DEVICE)
    be = TensorRTBackend(path, cuda_graph=True, trt=trt, cuda=api, platform=X86)
    assert be.graph is None and "cuda-python" in be.describe()["note"]  # pycuda: plain enqueue
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    assert np.allclose(be.infer(x), _fp32_reference(onnx_copy["trt10"], x), rtol=1e-3, atol=1e-3)
    import pycuda.driver as fake_driver

    buffers = set(be.device.values())
    host_freed_before = len(fake_driver.FREED_HOST)
    be.close()
    assert buffers <= set(DEVICE.freed) and len(fake_driver.FREED_HOST) == host_freed_before + 2


def test_engine_dtypes_map_without_trt_nptype():
    """TensorRT 8.5's `nptype` breaks under NumPy >= 1.24 (np.bool): our own table is used, keyed by
    the names TensorRT's DataType enum has (str(trt.float16) is 'DataType.HALF'), not the fake's."""
    trt = make_fake_tensorrt("8.5.2.2")
    assert not hasattr(trt, "nptype")
    real_names = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
                  "UINT8": np.uint8, "INT64": np.int64}
    for name, dtype in real_names.items():
        as_str = type("DataType", (), {"__str__": lambda self, n=name: f"DataType.{n}"})()  # no .name: str form
        assert numpy_dtype(as_str) == dtype and numpy_dtype(SimpleNamespace(name=name)) == dtype
    assert numpy_dtype(trt.float16) == np.float16  # the fake's members are named like the real ones
    with pytest.raises(UserError, match="no numpy equivalent"):
        numpy_dtype(SimpleNamespace(name="FP8"))


def test_engine_from_another_tensorrt_is_refused(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path, version="8.6.2")
    trt, cuda = _fake("10.3.0")
    with pytest.raises(UserError) as e:
        TensorRTBackend(path, trt=trt, cuda=cuda, platform=X86)
    msg = str(e.value)
    assert "built with TensorRT 8.6.2 on Orin; this is TensorRT 10.3.0: rebuild with anydepth-edge build" in msg
    assert str(onnx_copy["trt10"]) in msg
    assert not _calls(trt, "deserialize")  # refused before TensorRT touches it


def test_engine_for_another_gpu_is_refused(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path)
    trt, cuda = _fake("10.3.0", gpu="NVIDIA H100", cc=(9, 0))
    with pytest.raises(UserError, match="built for Orin.*this GPU is NVIDIA H100"):
        TensorRTBackend(path, trt=trt, cuda=cuda, platform=X86)


def test_corrupt_engine_is_a_clear_error(onnx_copy, tmp_path):
    path = _engine(onnx_copy, tmp_path)
    path.write_bytes(b"\x00" * 100)
    trt, cuda = _fake("10.3.0")
    with pytest.raises(UserError, match="not the engine its sidecar describes.*anydepth-edge build"):
        TensorRTBackend(path, trt=trt, cuda=cuda, platform=X86)
    record = EngineArtifact.load(path)  # recorded as built, yet TensorRT cannot read it
    record.engine_sha256 = sha256_file(path)
    record.write_sidecar()
    with pytest.raises(UserError, match="corrupt or was built by another TensorRT.*Magic tag"):
        TensorRTBackend(path, trt=trt, cuda=cuda, platform=X86)
    with pytest.raises(UserError, match="engine not found"):
        TensorRTBackend(tmp_path / "none.engine", trt=trt, cuda=cuda, platform=X86)


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
    assert_one_line_error(run_cli("build", res["trt10"].onnx_path, "--precision", "int8"),
                          "'int8' is not one of 'auto', 'fp16', 'fp16-wide', 'fp32'", "build --help")
    assert_one_line_error(run_cli("build", res["trt10"].onnx_path, "--device", "xavier"),
                          "'xavier' is not one of 'auto', 'orin-nano', 'generic'")


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
    from anydepth_edge.engines import BackendSpec, open_backend
    from anydepth_edge.engines.torch_backend import TorchBackend
    from anydepth_edge.model_input import load_sample_image, normalise

    model, res = exported
    x = normalise(load_sample_image((64, 64)))
    with open_backend(BackendSpec("onnxruntime", "cpu", str(res["trt10"].onnx_path))) as ort_be:
        a = ort_be.infer(x).copy()
        assert ort_be.memory()["rss_bytes"] > 0 and ort_be.resolution == (64, 64)
    with TorchBackend(model, (64, 64)) as torch_be:
        b = torch_be.infer(x).copy()
    assert a.shape == b.shape == (1, 1, 64, 64)
    assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 1e-4
    assert a.std() > 0.01  # a real, varying depth map


def test_torch_backend_from_sidecar(exported):
    pytest.importorskip("torch")
    from anydepth_edge.engines import BackendSpec, open_backend

    model, res = exported
    be = open_backend(BackendSpec("torch", "cpu", str(res["trt10"].onnx_path)))
    assert be.input_shape == (1, 3, 64, 64) and be.model.config.encoder_depth == 4
    assert set(be.layout_ms) == {"nchw", "channels-last"} and be.layout in be.layout_ms  # auto: measured
    be = open_backend(BackendSpec("torch", "cpu", str(res["trt10"].onnx_path), layout="channels-last"))
    assert be.layout == "channels-last" and be.layout_ms == {} and be.describe()["layout"] == "channels-last"


def _conv_layout(model) -> str:
    import torch

    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
                and m.weight.shape[1] > 1)
    return "channels-last" if conv.weight.is_contiguous(memory_format=torch.channels_last) else "nchw"


def test_torch_layouts_agree_and_auto_keeps_the_faster(tiny_model, monkeypatch):
    pytest.importorskip("torch")
    from anydepth_edge.engines.torch_backend import TorchBackend
    from anydepth_edge.model_input import load_sample_image, normalise

    x = normalise(load_sample_image((64, 64)))
    outputs = {}
    for layout in ("nchw", "channels-last"):
        with TorchBackend(tiny_model("dpt"), (64, 64), layout=layout) as be:
            assert be.layout == layout and _conv_layout(be.model) == layout
            outputs[layout] = be.infer(x).copy()
    a, b = outputs.values()
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 1e-5  # same depth, float rounding apart

    for timings in ({"nchw": 9.0, "channels-last": 4.0}, {"nchw": 4.0, "channels-last": 9.0}):
        timed = []
        monkeypatch.setattr(TorchBackend, "_forward_ms", lambda self, t=timings: timed.append(_conv_layout(self.model))
                            or t[timed[-1]])
        be = TorchBackend(tiny_model("sdt"), (64, 64))
        faster = min(timings, key=timings.get)
        assert timed == ["nchw", "channels-last"] and be.layout_ms == timings
        assert be.layout == faster and _conv_layout(be.model) == faster and be.describe()["layout_ms"] == timings
    with pytest.raises(UserError, match="unknown layout 'nhwc'"):
        TorchBackend(tiny_model("sdt"), (64, 64), layout="nhwc")


def test_backend_spec_refuses_the_wrong_artifact(exported, tmp_path):
    from anydepth_edge.engines import BackendSpec, open_backend

    _, res = exported
    with pytest.raises(UserError, match="ONNX Runtime needs the .onnx export"):
        open_backend(BackendSpec("onnxruntime", "cpu", str(tmp_path / "x.engine")))
    with pytest.raises(UserError, match="TensorRT needs an engine"):
        open_backend(BackendSpec("tensorrt", "cuda", str(res["trt10"].onnx_path)))
    spec = BackendSpec("custom", factory="fakes.synthetic:SyntheticBackend", options={"res": [32, 32]})
    assert BackendSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert open_backend(spec).input_shape == (1, 3, 32, 32)


# ----------------------------------------------------------------------------- real hardware

@pytest.mark.tensorrt
def test_real_tensorrt_engine_matches_onnxruntime(exported, tmp_path):
    trt = pytest.importorskip("tensorrt")
    if "fakes" in str(getattr(trt, "__file__", "")):
        pytest.skip("the fake tensorrt is on the path")
    from anydepth_edge.engines.cuda_api import load_cuda_api
    from anydepth_edge.engines.ort_backend import OrtBackend

    _, res = exported
    cuda = load_cuda_api()
    record, _ = ensure_engine(res["trt10"].onnx_path, tmp_path, DEVICE_PROFILES["generic"], precision="fp32",
                              trt=trt, cuda=cuda)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = TensorRTBackend(record.path, trt=trt, cuda=cuda).infer(x)
    want = OrtBackend(res["trt10"].onnx_path).infer(x)
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-3


@pytest.mark.integration
def test_export_builds_engines_where_tensorrt_runs(tmp_path):
    proc = run_cli("export", "--res", "64", "--target", "trt10", "--no-fp16-check", "--engine", "always",
                   "--out-dir", tmp_path / "export", "--engines-dir", tmp_path / "engines", fake_tensorrt="10.3.0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (engine,) = (tmp_path / "engines").glob("*.engine")
    assert engine.name == "anydepth-sdt-vits-64x64-trt10-fp16-trt10.3.0-orin.engine" and "built" in proc.stdout


def test_export_engine_always_without_tensorrt_fails_before_exporting(tmp_path):
    if have("tensorrt"):
        pytest.skip("TensorRT is installed here")
    proc = run_cli("export", "--res", "64", "--engine", "always", "--out-dir", tmp_path / "export")
    assert_one_line_error(proc, "--engine always: TensorRT is not installed here")
    assert proc.returncode == 3 and not (tmp_path / "export").exists()
