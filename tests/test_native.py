"""The Jetson install without Docker (deploy/): install-native.sh run dry on fixture hosts of each
JetPack line, the systemd unit checked by systemd-analyze and its command lines parsed by the real
CLI with the settings file's values, as systemd would expand them."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_docker import _host_root  # shellcheck: test_docker.py's test covers deploy/*.sh

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "anydepth-edge.service"
CLI = Path(sys.executable).parent / "anydepth-edge"
WRAPPER = DEPLOY / "anydepth-edge-service"
INSTALLED = {"/opt/anydepth-edge/venv/bin/anydepth-edge": CLI, "/opt/anydepth-edge/bin/anydepth-edge-service": WRAPPER}


def _dry_install(tmp_path: Path, l4t: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "ANYDEPTH_HOST_ROOT": str(_host_root(tmp_path, l4t))}
    return subprocess.run(["bash", str(DEPLOY / "install-native.sh")], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("l4t,jetpack,opencv", [("35.4.1", "5", "libopencv-python"),
                                                ("36.4.3", "6", "libopencv-python"),
                                                ("39.2.0", "7", "python3-opencv")])
def test_native_install_dry_run_per_jetpack(tmp_path, l4t, jetpack, opencv):
    """The image's choices on the host: one OpenCV (JetPack's), the JetPack's pip constraints
    everywhere, a venv that sees the apt TensorRT, pycuda built against the pinned NumPy; the unit
    installed but not enabled (the exports come first)."""
    proc = _dry_install(tmp_path, l4t)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    apt = next(ln for ln in lines if ln.startswith("apt-get install"))
    assert opencv in apt.split() and "python3-libnvinfer" in apt.split()
    assert {"libopencv-python", "python3-opencv"} - {opencv} not in apt.split()  # one OpenCV
    assert not any("opencv-python" in ln and "pip" in ln for ln in lines)  # never pip's (no GStreamer)
    assert "python3 -m venv --system-site-packages /opt/anydepth-edge/venv" in lines
    pips = [ln for ln in lines if " -m pip install" in ln]
    assert pips and all(f"PIP_CONSTRAINT={REPO}/docker/constraints/jp{jetpack}.txt" in ln for ln in pips)
    assert any("--no-build-isolation --no-binary=pycuda pycuda" in ln for ln in pips)
    assert f"install -m 0644 {UNIT} /etc/systemd/system/anydepth-edge.service" in lines
    assert "systemctl daemon-reload" in lines and not any("systemctl enable" in ln for ln in lines)
    assert "install -m 0755 " + str(DEPLOY / "anydepth-edge-service") + " /opt/anydepth-edge/bin/anydepth-edge-service" in lines
    target = {"5": "trt8.5", "6": "trt10", "7": "trt10"}[jetpack]
    assert f"JetPack {jetpack}: exports for --target {target}" in proc.stderr
    assert "dry run: the commands above were printed, nothing was changed" in proc.stderr


def test_native_install_refuses_a_host_no_image_serves(tmp_path):
    proc = _dry_install(tmp_path, "35.2.1")
    assert proc.returncode != 0 and "older than JetPack 5.1.1" in proc.stderr and "Traceback" not in proc.stderr


def _local_unit(tmp_path: Path) -> Path:
    """The unit with its paths pointed at this machine's CLI and the shipped settings file."""
    text = UNIT.read_text()
    for installed, here in INSTALLED.items():
        text = text.replace(installed, str(here))
    text = text.replace("/etc/anydepth-edge/anydepth-edge.env", str(DEPLOY / "anydepth-edge.env"))
    path = tmp_path / "anydepth-edge.service"
    path.write_text(text)
    return path


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    proc = subprocess.run([analyze, "verify", str(_local_unit(tmp_path))], capture_output=True, text=True)
    assert proc.returncode == 0 and "anydepth-edge.service" not in proc.stderr, proc.stderr
    bad = tmp_path / "bad.service"  # the check can fail: a missing program, a bad Restart=
    bad.write_text(_local_unit(tmp_path).read_text().replace(str(WRAPPER), "/nonexistent/anydepth-edge")
                   .replace("Restart=on-failure", "Restart=sometimes"))
    proc = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "not executable" in proc.stderr


def _settings() -> dict:
    values = {}
    for line in (DEPLOY / "anydepth-edge.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _expand(command: str, env: dict) -> list:
    """systemd's expansion: ${VAR} is one word, $VAR is split into words (empty: none)."""
    words = []
    for word in shlex.split(command):
        if re.fullmatch(r"\$[A-Za-z_]+", word):
            words += env.get(word[1:], "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_]+)\}", lambda m: env[m.group(1)], word))
    return words


@pytest.mark.parametrize("key", ["ExecStartPre", "ExecStart"])
def test_unit_command_lines_are_options_the_cli_takes(key):
    """Each command of the unit, with the shipped settings (and extra options in EXTRA_ARGS), is one
    the CLI parses: click refuses an unknown option or a bad choice before it prints --help."""
    line = next(ln for ln in UNIT.read_text().splitlines() if ln.startswith(key + "="))
    command = line.split("=", 1)[1].lstrip("-")
    env = {**_settings(), "PATH": "/usr/bin:/bin", "ANYDEPTH_CLI": str(CLI)}  # the wrapper runs this CLI
    for extra in ("", "--ros2 --metric floor --camera-height 0.4"):
        words = _expand(command, {**env, "EXTRA_ARGS": extra})
        assert words[0] in INSTALLED
        run = [str(INSTALLED[words[0]]), *words[1:]]
        proc = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, (words, proc.stderr)
    proc = subprocess.run(run + ["--no-such-option", "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0  # the check can fail


def test_service_wrapper_sources_ros_and_refuses_a_missing_setup(tmp_path):
    """--ros2 in a unit needs ROS sourced first: ROS_SETUP is, before the CLI runs."""
    setup = tmp_path / "setup.bash"
    setup.write_text("export ROS_DISTRO=humble\n")
    probe = tmp_path / "cli"
    probe.write_text("#!/bin/bash\necho \"ros=$ROS_DISTRO args=$*\"\n")
    probe.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "ANYDEPTH_CLI": str(probe), "ROS_SETUP": str(setup)}
    proc = subprocess.run([str(WRAPPER), "run", "--ros2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ros=humble args=run --ros2"
    proc = subprocess.run([str(WRAPPER), "run"], capture_output=True, text=True, env={**env, "ROS_SETUP": "/nope"})
    assert proc.returncode == 2 and "ROS_SETUP=/nope" in proc.stderr
    assert "RestartPreventExitStatus=2 3" in UNIT.read_text()  # a refused setting does not restart forever
