"""CLI basics: `info`, one-line errors, no PyTorch on the robot side, Python 3.8 syntax."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, assert_one_line_error, python38, run_cli

SIX = [(e, d) for e in ("vits", "vitb", "vitl") for d in ("sdt", "dpt")]
DECODER_M = {("vits", "sdt"): 5.517, ("vitb", "sdt"): 9.451, ("vitl", "sdt"): 13.384,
             ("vits", "dpt"): 50.825, ("vitb", "dpt"): 76.047, ("vitl", "dpt"): 99.580}

# The modules that run on the robot (JetPack 5 = Python 3.8, no PyTorch), and among them the ones
# that are PyTorch features (imported only when that feature is used).
PYTORCH_FEATURES = {"torch_backend.py", "official.py"}  # dev-machine features: import torch
ROBOT_SIDE = ["__init__.py", "__main__.py", "cli", "errors.py", "checks.py", "images.py", "model_facts.py", "resolution.py",
              "targets.py", "artifacts.py", "sidecars.py", "pins.py", "host_memory.py", "model_input.py", "fileio.py",
              "typed_fp16.py", "resolver.py", "console.py", "engines", "runtime", "bench", "evaluation", "doctor.py",
              "platform_info.py"]


@pytest.mark.integration
@pytest.mark.parametrize("encoder,decoder", SIX)
def test_info_json_counts(encoder, decoder):
    proc = run_cli("info", "--json", "--encoder", encoder, "--decoder", decoder, "--res", "256")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["encoder"] == encoder and rec["decoder"] == decoder and rec["res"] == [256, 256]
    assert all(isinstance(rec["params"][k], int) for k in ("encoder", "decoder", "total"))
    assert abs(rec["params"]["decoder"] / 1e6 - DECODER_M[(encoder, decoder)]) < 0.01
    assert rec["params"]["total"] == rec["params"]["encoder"] + rec["params"]["decoder"]
    g = rec["gflops"]
    assert g["total"] == pytest.approx(g["encoder"] + g["decoder"], abs=0.01) and g["decoder"] > 200
    assert "random weights" in proc.stderr  # the loud warning, on stderr so stdout stays JSON


def test_info_non_square_resolution():
    proc = run_cli("info", "--json", "--res", "256x320")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["res"] == [256, 320]


@pytest.mark.parametrize("res,needle", [("250", "use 240 or 256"), ("256x250", "width 250"), ("abc", "cannot read"),
                                        ("0", "positive")])
def test_bad_resolution_is_one_line(res, needle):
    assert_one_line_error(run_cli("info", "--res", res), needle)


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert_one_line_error(run_cli("info", "--checkpoint", bad), "corrupt or truncated")
    assert_one_line_error(run_cli("info", "--checkpoint", tmp_path / "missing.pth"), "not found")


def test_help_and_import_do_not_need_torch():
    code = (
        "import sys\n"
        "sys.argv = ['anydepth-edge', '--help']\n"
        "import anydepth_edge\n"
        "from anydepth_edge import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'timm', 'onnx', 'cv2', 'tensorrt') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "info" in proc.stdout


def _robot_files():
    pkg = REPO / "anydepth_edge"
    files = []
    for name in ROBOT_SIDE:
        p = pkg / name
        if p.is_dir():
            files.extend(sorted(p.rglob("*.py")))
        elif p.exists():
            files.append(p)
    return files


COMPILE_CHECK = (
    "import sys\n"
    "bad = []\n"
    "for f in sys.argv[1:]:\n"
    "    try:\n        compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
    "    except SyntaxError as e:\n        bad.append(f'{f}:{e.lineno}: {e.msg}')\n"
    "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
)


def _compiles_on_python38(files):
    py38 = python38()
    if py38 is None:
        pytest.skip("no Python 3.8 interpreter here")
    return subprocess.run([py38, "-c", COMPILE_CHECK, *map(str, files)], capture_output=True, text=True)


def test_robot_side_compiles_with_python38():
    files = _robot_files()
    assert len(files) >= 6
    proc = _compiles_on_python38(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python38_check_catches_new_syntax(tmp_path):
    """The same check fails on 3.10+ syntax: a `match` statement among the robot files."""
    f = tmp_path / "new.py"
    f.write_text("match 1:\n    case 1:\n        pass\n")
    proc = _compiles_on_python38(_robot_files() + [f])
    assert proc.returncode == 1 and "new.py:1" in proc.stdout


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("anydepth-edge ")


@pytest.mark.parametrize("venv,version", [(".venv38", (3, 8)), (".venv312", (3, 12))])
def test_robot_side_imports_and_runs_on_jetpack_pythons(venv, version):
    """JetPack 5 has Python 3.8, JetPack 7.2 Python 3.12. Syntax is not enough (3.9+ builtins,
    `list[int]` in evaluated annotations; 3.12's removed distutils/imp): import every robot-side
    module and run the CLI under the venvs `make test` creates with each image's constraints."""
    py = REPO / venv / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no {venv} (needs a Python {version[0]}.{version[1]} interpreter; `make {venv[1:]}`)")
    modules = []
    for f in _robot_files():
        rel = f.relative_to(REPO).with_suffix("")
        if rel.name != "__main__" and f.name not in PYTORCH_FEATURES:
            modules.append(".".join(rel.parts).replace(".__init__", ""))
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('OK', sys.version_info[:2])\n"
    proc = subprocess.run([str(py), "-c", code, *modules], capture_output=True, text=True, cwd=str(REPO))
    assert proc.returncode == 0 and f"OK {version}" in proc.stdout, proc.stderr
    proc = subprocess.run([str(py), "-m", "anydepth_edge", "--help"], capture_output=True, text=True, cwd=str(REPO))
    assert proc.returncode == 0 and "info" in proc.stdout, proc.stderr


@pytest.mark.parametrize("verb", ["run", "export", "bench", "eval"])
def test_help_at_80_columns_cuts_nothing(verb):
    """An 80-column SSH session: rich's option table left ~20 columns and cut values with an
    ellipsis (`csi://0?mode=2&w…`, `--allow-unverifi…`); the help wraps instead, whole."""
    proc = run_cli(verb, "--help", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80 or verb == "run"  # run: one URL is longer
    if verb == "run":
        for whole in ("csi://0?mode=2&width=1280&height=720&fps=30", "--reconnect-timeout", "--allow-unverified"):
            assert whole in proc.stdout, whole
    wide = run_cli(verb, "--help", env={"COLUMNS": "160"})
    assert "╭" in wide.stdout  # a wide terminal keeps the panels
