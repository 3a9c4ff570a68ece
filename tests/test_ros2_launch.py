"""The ROS 2 launch file (anydepth_edge/ros2/anydepth_edge.launch.py) against a stand-in for ROS 2's
`launch` package (not installable here): the same classes and keywords, resolved as `ros2 launch`
resolves them (declared defaults, then `name:=value` overrides), and the command it starts parsed by
the real CLI."""

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import REPO

LAUNCH_FILE = REPO / "anydepth_edge" / "ros2" / "anydepth_edge.launch.py"
CLI = Path(sys.executable).parent / "anydepth-edge"


class SubstitutionFailure(Exception):
    pass


class LaunchDescription:
    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description="no description given", choices=None):
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None):
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}


class ExecuteProcess:
    def __init__(self, *, cmd, name=None, cwd=None, env=None, output="log", sigterm_timeout="5", sigkill_timeout="5",
                 shell=False, **other):
        self.cmd, self.name, self.output, self.sigterm_timeout, self.shell = cmd, name, output, sigterm_timeout, shell


class LaunchConfiguration:
    def __init__(self, variable_name, *, default=None):
        self.variable_name, self.default = variable_name, default

    def perform(self, context):
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise SubstitutionFailure(f"launch configuration '{self.variable_name}' does not exist")
        return self.default


@pytest.fixture
def launch_file(monkeypatch):
    pkg = types.ModuleType("launch")
    pkg.LaunchDescription = LaunchDescription
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument, actions.OpaqueFunction, actions.ExecuteProcess = (
        DeclareLaunchArgument, OpaqueFunction, ExecuteProcess)
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    for name, module in (("launch", pkg), ("launch.actions", actions), ("launch.substitutions", subs)):
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("anydepth_edge_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch(module, **overrides):
    """What `ros2 launch FILE a:=b ...` starts: the ExecuteProcess of the resolved description."""
    description = module.generate_launch_description()
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    unknown = set(overrides) - {d.name for d in declared}
    assert not unknown, unknown  # ros2 launch would ignore a misspelt argument silently
    context = types.SimpleNamespace(launch_configurations={**{d.name: d.default_value for d in declared}, **overrides})
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    (process,) = opaque.function(context, *opaque.args, **opaque.kwargs)
    return process


def _parses(cmd):
    assert cmd[0] in ("anydepth-edge", "/opt/anydepth-edge/venv/bin/anydepth-edge")
    return subprocess.run([str(CLI), *cmd[1:], "--help"], capture_output=True, text=True, timeout=120)


def test_default_launch_runs_the_ros2_node_with_the_clis_defaults(launch_file):
    process = _launch(launch_file)
    assert process.cmd == ["anydepth-edge", "run", "--ros2", "--source", "0", "--res", "256"]
    assert process.output == "screen" and process.sigterm_timeout == "30" and not process.shell
    assert _parses(process.cmd).returncode == 0
    native = _launch(launch_file, cli="/opt/anydepth-edge/venv/bin/anydepth-edge")
    assert native.cmd[0] == "/opt/anydepth-edge/venv/bin/anydepth-edge" and native.cmd[1:] == process.cmd[1:]


def test_launch_arguments_become_the_run_options(launch_file):
    process = _launch(launch_file, source="realsense", metric="floor", camera_height="0.4", camera_pitch="10",
                      tf_parent="base_link", namespace="/front", colored="true", extra="--points-decimation 2")
    cmd = process.cmd
    pairs = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--") and not cmd[i + 1].startswith("--")}
    assert pairs["--source"] == "realsense" and pairs["--metric"] == "floor" and pairs["--camera-height"] == "0.4"
    assert pairs["--tf-parent"] == "base_link" and pairs["--namespace"] == "/front"
    assert "--colored" in cmd and cmd[-2:] == ["--points-decimation", "2"]
    assert "--frame-id" not in cmd  # empty: not passed, the CLI's default holds
    assert _parses(cmd).returncode == 0
    for name, option, *_ in launch_file.ARGUMENTS + launch_file.FLAGS:  # every option exists in the CLI
        proc = subprocess.run([str(CLI), "run", option, "--help"] if option in [f[1] for f in launch_file.FLAGS]
                              else [str(CLI), "run", option, "x", "--help"], capture_output=True, text=True, timeout=120)
        assert "No such option" not in proc.stderr, (name, option, proc.stderr)
    bad = _parses(cmd + ["--no-such-option"])
    assert bad.returncode != 0  # the check can fail
