"""Shared fixtures. Unit tests use tiny models (shallow encoder, narrow decoders, small inputs);
tests marked `integration` use the real ViT-S sizes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_SITE = Path(__file__).resolve().parent / "fakes" / "site"  # importable fake tensorrt / pycuda

# A 4-block ViT-S encoder reading all four blocks, and decoders a fraction of their real width.
TINY = dict(encoder_depth=4, taken_layers=(0, 1, 2, 3), fusion_channels=32, dpt_channels=32)
TINY_RES = (32, 48)


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def tiny_model(torch):
    from anydepth_edge.models import build_model

    def make(decoder="sdt", encoder="vits", seed=0, **over):
        torch.manual_seed(seed)
        model = build_model(encoder, decoder, **{**TINY, **over})
        randomise_norms(model, seed)
        return model

    return make


def randomise_norms(model, seed=0):
    """Non-degenerate random weights (see spread_random_init), so tests compare outputs that vary."""
    from anydepth_edge.models.anydepth import spread_random_init

    return spread_random_init(model, seed)


def run_cli(*args, env=None, timeout=600, cwd=None, fake_tensorrt=None):
    """Run `anydepth-edge ARGS` in a subprocess; returns CompletedProcess (text). `fake_tensorrt`
    (a version) puts the fake tensorrt / pycuda packages on its path."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    if fake_tensorrt:
        full_env["PYTHONPATH"] = os.pathsep.join([str(FAKE_SITE), str(REPO)] + [p for p in [full_env.get("PYTHONPATH")] if p])
        full_env["FAKE_TENSORRT_VERSION"] = fake_tensorrt
    return subprocess.run(
        [sys.executable, "-m", "anydepth_edge", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or str(REPO),
    )


def assert_one_line_error(proc, *needles):
    """A user error: non-zero exit, one 'error:' line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def python38():
    """A working Python 3.8 interpreter (pyenv's shim exists even when it cannot run), or None."""
    import glob

    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8.*/bin/python3.8")), reverse=True)
    candidates.append(shutil.which("python3.8"))
    for cand in candidates:
        if not cand:
            continue
        try:
            proc = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip() == "(3, 8)":
            return cand
    return None


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Tiny SDT exports made once per session: trt8.5, trt10 and the gather form at 64x64, trt10 at 32x32."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from anydepth_edge.export.onnx_export import ExportJob, export_onnx
    from anydepth_edge.models import build_model
    from anydepth_edge.models.anydepth import spread_random_init
    from anydepth_edge.artifacts import RANDOM_CHECKPOINT as random
    from anydepth_edge.targets import TARGETS

    torch.manual_seed(0)
    model = spread_random_init(build_model("vits", "sdt", **TINY))
    out = tmp_path_factory.mktemp("export")
    results = {}
    for target in ("trt8.5", "trt10"):
        results[target] = export_onnx(ExportJob(model, (64, 64), TARGETS[target], random, out))
    results["gather"] = export_onnx(ExportJob(model, (64, 64), TARGETS["trt10"], random, out, dysample="gather"))
    results["trt10-32"] = export_onnx(ExportJob(model, (32, 32), TARGETS["trt10"], random, out, fp16_check=False))
    return model, results
