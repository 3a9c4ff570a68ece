"""Engines you can trust: the reference bundle, the agreement metrics, the strongly typed FP16
form, the precision ladder (through the TensorRT fake, whose engines compute their ONNX on ONNX
Runtime and can be made wrong per rung), `verify`, and run / bench refusing unverified engines."""

import json
from pathlib import Path
import shutil

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from fakes.fake_device import FakeCuda
from fakes.fake_tensorrt import make_fake_tensorrt

from anydepth_edge.agreement import LIMITS, Bundle, depth_metrics, judge
from anydepth_edge.engines.ensure import ensure_engine
from anydepth_edge.engines.trt_common import DEVICE_PROFILES
from anydepth_edge.errors import UserError
from anydepth_edge.platform_info import PlatformInfo
from anydepth_edge.fileio import sha256_file
from anydepth_edge.artifacts import EngineArtifact, OnnxArtifact, reference_path, typed_fp16_path

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
X86 = PlatformInfo(machine="x86_64")
ORIN = DEVICE_PROFILES["orin-nano"]


@pytest.fixture
def export_copy(exported, tmp_path):
    """A private copy of the tiny trt10 export with everything beside it (bundle, FP16 form)."""
    _, res = exported
    src = res["trt10"].onnx_path
    for p in src.parent.glob(src.stem + ".*"):
        shutil.copy(p, tmp_path)
    return tmp_path / src.name


def _ort(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


# ----------------------------------------------------------------------------- the bundle

def test_reference_bundle_round_trip(export_copy):
    record = OnnxArtifact.load(export_copy)
    assert record.companion_matches("reference") and record.reference["inputs"] == ["photo", "photo-crop-flip",
                                                                                     "synthetic-room"]
    with np.load(reference_path(export_copy), allow_pickle=False) as z:  # numpy alone, no pickle
        assert z["inputs"].shape == (3, 3, 64, 64) and z["outputs"].shape == (3, 1, 64, 64)
    bundle = Bundle.read(reference_path(export_copy))
    for x, ref in zip(bundle.inputs, bundle.outputs):
        assert np.array_equal(_ort(export_copy, x[None])[0], ref)  # the FP32 export's own depth
        # real-looking, not noise: neighbouring pixels correlate
        assert np.corrcoef(x[:, :, 1:].ravel(), x[:, :, :-1].ravel())[0, 1] > 0.7
    assert not np.allclose(bundle.inputs[0], bundle.inputs[1])


def test_metrics_see_what_they_must():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 3.0, (64, 64)).astype(np.float32)
    ref += np.linspace(0, 1, 64)[None]  # structure
    same = depth_metrics(2 * ref + 1, ref)  # affine-invariant: a scaled and shifted map agrees
    assert same["abs_rel"] < 1e-6 and same["delta1"] == 1.0 and same["rmse_over_std"] < 1e-6
    assert judge({"a": same}, "fp32").passed
    flat = depth_metrics(np.full_like(ref, ref.mean()), ref)
    assert flat["rmse_over_std"] == pytest.approx(1.0) and not judge({"a": flat}, "fp16").passed
    noisy = depth_metrics(0.5 * ref + rng.normal(0, ref.std(), ref.shape), ref)
    assert not judge({"a": noisy}, "fp16").passed
    nan = depth_metrics(np.where(ref > 3, np.nan, ref), ref)
    verdict = judge({"a": nan}, "fp16")
    assert nan["non_finite"] > 0 and not verdict.passed and "NaN/Inf" in verdict.why
    assert LIMITS["fp32"].abs_rel < LIMITS["fp16"].abs_rel


# ----------------------------------------------------------------------------- strongly typed FP16

def test_strongly_typed_fp16_form(export_copy):
    from anydepth_edge.export.lint import lint_model

    record = OnnxArtifact.load(export_copy)
    typed = record.typed_fp16
    assert record.companion_matches("typed_fp16") and set(typed["fp32_regions"]) == {"dysample", "layernorm"}
    model = onnx.load(str(typed_fp16_path(export_copy)))
    onnx.checker.check_model(model, full_check=True)
    assert lint_model(model, "trt10") == []
    types = {t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types  # weights are FP16...
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # ...the IO stays FP32
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert casts and typed["casts"] == len(casts)
    grids = [n for n in model.graph.node if n.op_type == "GridSample"]
    inferred = onnx.shape_inference.infer_shapes(model)
    elem = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert all(elem[n.input[1]] == onnx.TensorProto.FLOAT for n in grids)  # sampling coordinates stay FP32
    # it runs on ONNX Runtime here and agrees with FP32 within the FP16 limits (measured at export)
    bundle = Bundle.read(reference_path(export_copy))
    got = _ort(typed_fp16_path(export_copy), bundle.inputs[:1])
    assert judge({"photo": depth_metrics(got, bundle.outputs[0])}, "fp16").passed
    assert typed["agreement"]["photo"]["rmse_over_std"] < LIMITS["fp16"].rmse_over_std
    # within the emulation's figures: ORT computes most FP16 nodes in FP32, so it is the optimistic bound
    emulated = record.fp16["with_pins"]
    assert typed["agreement"]["photo"]["abs_rel"] <= emulated["abs_rel"] + 1e-3


# ----------------------------------------------------------------------------- the ladder

def _ensure(export_copy, tmp_path, version="10.3.0", behaviour=None, **kw):
    cuda = FakeCuda()
    cuda.device.behaviour = behaviour or {}
    trt = make_fake_tensorrt(version, device=cuda.device)
    notes = []
    record, reused = ensure_engine(export_copy, tmp_path / "engines", ORIN, trt=trt, cuda=cuda, platform=X86,
                                   notify=notes.append, **kw)
    return trt, record, reused, notes


def _builds(trt):
    return [c[1] for c in trt.calls if c[0] == "build"]


def test_ladder_keeps_the_first_rung_that_agrees(export_copy, tmp_path):
    trt, record, _, _ = _ensure(export_copy, tmp_path)
    assert record.rung == "fp16" and record.status == "verified" and len(_builds(trt)) == 1
    assert record.decoder == OnnxArtifact.load(export_copy).decoder != ""  # run's SDT preference reads it
    assert record.verification["passed"] and set(record.verification["per_input"]) == {
        "photo", "photo-crop-flip", "synthetic-room"}
    assert [r["rung"] for r in record.ladder] == ["fp16"]


def test_ladder_lands_on_fp32_when_fp16_is_wrong_and_says_why(export_copy, tmp_path):
    """FP16 outputs NaN, the wider FP16 set outputs scaled noise, FP32 is right: FP32 is kept."""
    trt, record, _, _ = _ensure(export_copy, tmp_path, behaviour={"fp16": "nan", "fp16-wide": "noise"})
    assert record.rung == "fp32" and record.status == "verified" and len(_builds(trt)) == 3
    ladder = {r["rung"]: r for r in record.ladder}
    assert ladder["fp16"]["status"] == "failed" and "NaN/Inf" in ladder["fp16"]["why"]
    assert ladder["fp16-wide"]["status"] == "failed" and "RMSE/std" in ladder["fp16-wide"]["why"]
    assert "TF32" in _builds(trt)[0]["flags"] and "TF32" not in _builds(trt)[2]["flags"]  # true FP32 at the end
    wide = _builds(trt)[1]
    assert any(n.startswith("AttentionFP32/") for n in wide["fp32_layers"])  # the wider set was pinned
    assert any(n.startswith("ResidualFP32/") for n in wide["fp32_layers"])
    engines = sorted(p.name for p in (tmp_path / "engines").glob("*.engine"))
    assert engines == [record.path.name]  # wrong engines are not left where run could pick them up
    failed = EngineArtifact.load(tmp_path / "engines" / record.path.name.replace("-fp32-", "-fp16-"), require_file=False)
    assert failed.status == "failed" and failed.engine_sha256 == ""  # the record stays, without its engine
    # known failures are not rebuilt in vain, and the kept engine is reused
    trt2, again, reused, _ = _ensure(export_copy, tmp_path, behaviour={"fp16": "nan", "fp16-wide": "noise"})
    assert reused and again.path == record.path and _builds(trt2) == []


def test_no_rung_agrees_is_one_clear_error(export_copy, tmp_path):
    behaviour = {"fp16": "nan", "fp16-wide": "nan", "fp32": "zero"}
    with pytest.raises(UserError) as e:
        _ensure(export_copy, tmp_path, behaviour=behaviour)
    msg = str(e.value)
    assert "agrees with FP32 on TensorRT 10.3.0" in msg and "known to miscompile DINOv3" in msg
    assert "fp16: " in msg and "fp32: " in msg and "--dysample gather" in msg and "--backend ort" in msg
    assert not list((tmp_path / "engines").glob("*.engine"))


def test_forced_precision_is_still_verified(export_copy, tmp_path):
    with pytest.raises(UserError, match="fp16: .*NaN/Inf"):
        _ensure(export_copy, tmp_path, behaviour={"fp16": "nan"}, precision="fp16")
    _, record, _, _ = _ensure(export_copy, tmp_path, precision="fp32")
    assert record.rung == "fp32" and record.status == "verified" and "-fp32-" in record.path.name


def test_strongly_typed_build_from_tensorrt_10_12(export_copy, tmp_path):
    """10.16 (JetPack 7.2): an FP16 graph with Casts, built strongly typed: no FP16 flag, no pins."""
    trt, record, _, _ = _ensure(export_copy, tmp_path, version="10.16.0")
    (state,) = _builds(trt)
    # the network asked for exactly STRONGLY_TYPED, by the enum's own value (EXPLICIT_BATCH is implied on 10.x)
    strongly_typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert record.typing == "strong" and state["strongly_typed"] and state["network_flags"] == strongly_typed
    assert "FP16" not in state["flags"] and state["fp32_layers"] == []
    assert sorted(state["fp32_regions"]) == ["dysample", "layernorm"]  # parsed the typed graph
    assert record.status == "verified" and record.settings["strongly_typed"]
    # the wide rung converts on the fly (attention and residual regions FP32 in the graph)
    trt, record, _, _ = _ensure(export_copy, tmp_path / "wide", version="10.16.0", precision="fp16-wide")
    (state,) = _builds(trt)
    assert "attention" in state["fp32_regions"] and "residual" in state["fp32_regions"]
    assert not list((tmp_path / "wide" / "engines").glob("*.partial"))  # the converted graph is not kept


def test_the_fake_refuses_precision_controls_on_a_strongly_typed_network():
    """As TensorRT does: the FP16 flag or a layer precision on a strongly typed network fails the build."""
    trt = make_fake_tensorrt("10.16.0")
    log = []

    class Logger(trt.ILogger):
        def log(self, severity, msg):
            log.append(msg)

    builder = trt.Builder(Logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    assert builder.build_serialized_network(network, config) is None and "strongly typed" in log[-1]
    assert "STRONGLY_TYPED" not in vars(make_fake_tensorrt("8.6.2").NetworkDefinitionCreationFlag)


def test_weak_typing_is_refused_where_it_does_not_exist(export_copy, tmp_path):
    with pytest.raises(UserError, match="no strongly typed networks"):
        _ensure(export_copy, tmp_path, version="8.6.2", typing="strong")
    with pytest.raises(UserError, match="strongly typed only"):  # TensorRT 11 removed weak typing
        _ensure(export_copy, tmp_path, version="11.4.0", typing="weak")


@pytest.mark.parametrize("precision", ["auto", "fp16-wide", "fp32"])
def test_tensorrt_11_builds_every_rung_strongly_typed(export_copy, tmp_path, precision):
    """Issue 22: every Python-API build evaluated BuilderFlag.OBEY/PREFER_PRECISION_CONSTRAINTS, which 11
    does not register (an AttributeError on every TensorRT 11 build). The fake of 11 has none of the
    weak-typing API, so touching any of it fails here as it would there."""
    trt, record, _, _ = _ensure(export_copy, tmp_path, version="11.4.0", precision=precision)
    (state,) = _builds(trt)
    assert record.typing == "strong" and state["strongly_typed"] and state["fp32_layers"] == []
    assert record.status == "verified" and record.settings["strongly_typed"]
    assert ("TF32" in state["flags"]) == (record.rung != "fp32")  # the last rung is true FP32 on 11 too


def test_trtexec_command_lines_for_tensorrt_11():
    """11: --stronglyTyped is always on and gone as a flag, like --fp16; weak typing is refused."""
    from anydepth_edge.engines.trt_build import BuildSettings, trtexec_command
    from anydepth_edge.targets import TARGETS

    typed = BuildSettings(precision="fp16", strongly_typed=True, pin_regions=(), pin_names=(), workspace_mib=512)
    cmd11 = trtexec_command("trtexec", Path("m.onnx"), Path("m.engine"), typed, "11.4.0")
    cmd10 = trtexec_command("trtexec", Path("m.onnx"), Path("m.engine"), typed, "10.16.0")
    assert "--stronglyTyped" in cmd10 and not any(c in cmd11 for c in ("--stronglyTyped", "--fp16"))
    assert not any(c.startswith("--workspace") for c in cmd11)
    weak = BuildSettings(precision="fp16", strongly_typed=False, pin_regions=("dysample",), pin_names=("a",),
                         workspace_mib=512)
    with pytest.raises(UserError, match="strongly typed only"):
        trtexec_command("trtexec", Path("m.onnx"), Path("m.engine"), weak, "11.4.0")
    assert TARGETS["trt10"].fits("11.4.0") and "11.4" in TARGETS["trt10"].help


# ----------------------------------------------------------------------------- verify, run, bench

def test_verify_cli_on_onnx_files(export_copy, tmp_path):
    ok = run_cli("verify", export_copy)
    assert ok.returncode == 0 and "pass" in ok.stdout and "synthetic-room" in ok.stdout, ok.stderr
    typed = run_cli("verify", typed_fp16_path(export_copy), "--json")
    verdict = json.loads(typed.stdout)
    assert typed.returncode == 0 and verdict["passed"] and verdict["precision"] == "fp16"
    # a corrupted copy (a weight perturbed, its sidecar updated to match) must fail
    bad = tmp_path / "bad" / export_copy.name
    bad.parent.mkdir()
    for p in export_copy.parent.glob(export_copy.stem + ".*"):
        shutil.copy(p, bad.parent)
    model = onnx.load(str(bad))
    conv = max((t for t in model.graph.initializer if t.dims and len(t.dims) == 4), key=lambda t: np.prod(t.dims))
    w = onnx.numpy_helper.to_array(conv).copy()
    w += np.random.default_rng(0).normal(0, 3 * w.std(), w.shape).astype(w.dtype)
    conv.CopyFrom(onnx.numpy_helper.from_array(w, conv.name))
    onnx.save(model, str(bad))
    record = OnnxArtifact.load(bad)
    from anydepth_edge.fileio import sha256_file

    record.onnx_sha256 = sha256_file(bad)
    record.write_sidecar()
    proc = run_cli("verify", bad)
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout
    for wrong in (export_copy.with_suffix(".json"), export_copy.with_suffix(".ref.npz")):  # what a user might pass
        assert_one_line_error(run_cli("verify", wrong), f"verify takes the model: an .onnx export or a TensorRT "
                                                        f".engine, not {wrong.name}")


def test_verify_with_images_folder(export_copy, tmp_path):
    from anydepth_edge.export.reference import synthetic_scene
    from anydepth_edge.model_input import load_sample_image

    pytest.importorskip("cv2")
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), synthetic_scene((90, 120))[:, :, ::-1])
    cv2.imwrite(str(folder / "1.png"), load_sample_image((90, 120))[:, :, ::-1])
    proc = run_cli("verify", typed_fp16_path(export_copy), "--images", folder)
    assert proc.returncode == 0 and "0.png" in proc.stdout and "FP32 ONNX Runtime CPU as reference" in proc.stdout
    assert_one_line_error(run_cli("verify", typed_fp16_path(export_copy), "--images", tmp_path / "none"), "0 image(s)")
    # issue 23.13: the FP32 export is the reference of --images: checking it against itself always passed
    assert_one_line_error(run_cli("verify", export_copy, "--images", folder), "checked against itself")
    (folder / "1.png").unlink()  # one image cannot show the engine follows its input
    assert_one_line_error(run_cli("verify", typed_fp16_path(export_copy), "--images", folder), "at least 2")


def _doctored(export_copy, tmp_path, what):
    """The export with its depth negated, or with its input multiplied by 0 (a graph that ignores
    the camera), run on ONNX Runtime: the real graph and runtime, wrongly wired."""
    from anydepth_edge.engines.ort_backend import OrtBackend

    model = onnx.load(str(export_copy))
    g = model.graph
    if what == "negated":
        out = g.output[0].name
        for n in g.node:
            n.output[:] = [o + "_raw" if o == out else o for o in n.output]
        g.node.append(onnx.helper.make_node("Neg", [out + "_raw"], [out]))
    else:  # image * 0
        inp = g.input[0].name
        for n in g.node:
            n.input[:] = [i + "_ignored" if i == inp else i for i in n.input]
        g.initializer.append(onnx.numpy_helper.from_array(np.zeros((), np.float32), "zero"))
        g.node.insert(0, onnx.helper.make_node("Mul", [inp, "zero"], [inp + "_ignored"]))
    path = tmp_path / f"{what}.onnx"
    onnx.save(model, str(path))
    return OrtBackend(path)


class _FirstFrameOnly:
    """An engine stuck on its first frame: the honest graph's depth of the first input it saw, forever."""

    def __init__(self, backend):
        self.backend, self.first = backend, None

    def infer(self, x):
        self.first = self.backend.infer(x).copy() if self.first is None else self.first
        return self.first


@pytest.mark.parametrize("what, why", [("negated", "depth inverted"), ("ignores-input", "AbsRel"),
                                       ("first-frame", "does not follow its input")])
def test_verify_fails_a_graph_with_inverted_depth_or_one_that_ignores_its_input(export_copy, tmp_path, what, why):
    """Issue 23.3/23.4: the affine fit allowed a negative scale (NaN metrics then passed), and a
    random SDT's references were so alike that an input-blind graph passed even the FP32 limits."""
    from anydepth_edge.agreement import verify_backend

    bundle = Bundle.read(reference_path(export_copy))
    backend = _FirstFrameOnly(_doctored_identity(export_copy)) if what == "first-frame" else \
        _doctored(export_copy, tmp_path, what)
    verdict = verify_backend(backend, bundle, "fp16")
    assert not verdict.passed and why in verdict.why, verdict.why
    json.dumps(verdict.to_dict(), allow_nan=False)  # strict JSON: it can be recorded
    # the honest graph passes the same check, and the bundle tells its inputs apart by far
    honest = verify_backend(_doctored_identity(export_copy), bundle, "fp32")
    assert honest.passed and honest.separation > 4 * LIMITS["fp32"].rmse_over_std


def _doctored_identity(export_copy):
    from anydepth_edge.engines.ort_backend import OrtBackend

    return OrtBackend(export_copy)


def test_verify_fails_a_doctored_onnx_from_the_command_line(export_copy, tmp_path):
    """End to end: a negated FP16 form whose sidecar sha256 was updated (a bad copy) is a FAIL, exit 1."""
    typed = typed_fp16_path(export_copy)
    _doctored(typed, tmp_path, "negated")
    shutil.copy(tmp_path / "negated.onnx", typed)
    record = OnnxArtifact.load(export_copy)
    record.typed_fp16 = {**record.typed_fp16, "sha256": sha256_file(typed)}
    record.write_sidecar()
    proc = run_cli("verify", typed, "--json")
    assert proc.returncode != 0, proc.stdout
    doc = json.loads(proc.stdout)  # strict JSON, no NaN
    assert "depth inverted" in json.dumps(doc)


@pytest.mark.parametrize("change, message", [
    (lambda z: {**z, "names": np.array([], dtype="<U1"), "inputs": z["inputs"][:0], "outputs": z["outputs"][:0]},
     "0 input(s)"),
    (lambda z: {**z, "names": np.array(["a", "a", "a"])}, "duplicate"),
    (lambda z: {**z, "names": np.array("photo")}, "names of shape ()"),
    (lambda z: {**z, "outputs": z["outputs"][:, :, :32]}, "depth of shape"),
    (lambda z: {**z, "inputs": z["inputs"].astype("U8")}, "not floating point"),
    (lambda z: {**z, "outputs": np.full_like(z["outputs"], np.inf)}, "NaN or Inf"),
    (lambda z: {**z, "outputs": np.ones_like(z["outputs"])}, "flat reference"),
])
def test_a_bundle_that_cannot_fail_an_engine_is_refused(export_copy, change, message):
    """Issue 23.5/23.15/23.16: empty, duplicate-named, misshapen, non-float or non-finite bundles passed
    vacuously or gave tracebacks; now each is one line naming what is wrong."""
    path = reference_path(export_copy)
    with np.load(path, allow_pickle=False) as z:
        arrays = change({k: z[k] for k in z.files})
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Bundle.read(path)


def test_the_bundle_must_have_the_inputs_the_sidecar_lists(export_copy):
    record = OnnxArtifact.load(export_copy)
    record.reference = {**record.reference, "inputs": ["photo"]}
    record.write_sidecar()
    assert_one_line_error(run_cli("verify", typed_fp16_path(export_copy)), "its sidecar lists ['photo']")


def test_metrics_are_never_nan_and_a_missing_figure_fails():
    """Issue 23.3/23.21: NaN metrics are None in the record and count as failures."""
    ref = np.linspace(1, 2, 256, dtype=np.float32).reshape(16, 16)
    m = depth_metrics(np.zeros_like(ref), ref)  # a constant engine: no scale to fit
    json.dumps(m, allow_nan=False)
    assert not judge({"a": {**depth_metrics(ref, ref), "abs_rel": None}}, "fp16").passed


def test_verify_records_an_engines_verdict(export_copy, tmp_path):
    """An engine built before bundles existed is unverified: `verify` checks and records it."""
    _, record, _, _ = _ensure(export_copy, tmp_path)
    record.verification = None
    record.write_sidecar()
    assert EngineArtifact.load(record.path).status == "unverified"
    proc = run_cli("verify", record.path, fake_tensorrt="10.3.0")
    assert proc.returncode == 0 and "run and bench will use it" in proc.stdout, proc.stderr
    assert EngineArtifact.load(record.path).status == "verified"


def test_run_uses_only_verified_engines(export_copy, tmp_path):
    from conftest import REPO

    _, record, _, _ = _ensure(export_copy, tmp_path)
    record.verification = None  # unverified
    record.write_sidecar()
    folder = REPO / "anydepth_edge" / "data"
    common = ("--source", folder, "--max-frames", "1", "--engines-dir", tmp_path / "engines")
    refused = run_cli("run", *common, "--model", record.path, "--backend", "trt", fake_tensorrt="10.3.0")
    assert_one_line_error(refused, "is unverified", "anydepth-edge verify")
    allowed = run_cli("run", *common, "--model", record.path, "--backend", "trt", "--allow-unverified",
                      fake_tensorrt="10.3.0")
    assert allowed.returncode == 0 and "TensorRT (cuda)" in allowed.stderr, allowed.stderr
    # auto: the unverified engine is skipped with one line, the export runs (its engine re-verified)
    auto = run_cli("run", *common, "--res", "64", "--export-dir", export_copy.parent, fake_tensorrt="10.3.0")
    assert auto.returncode == 0, auto.stderr
    assert "not using" in auto.stderr and "(unverified)" in auto.stderr


def test_run_falls_back_when_no_rung_agrees(export_copy, tmp_path):
    from conftest import REPO

    env = {"FAKE_GPU_BEHAVIOUR": "fp16=nan,fp16-wide=nan,fp32=zero"}
    proc = run_cli("run", "--source", REPO / "anydepth_edge" / "data", "--max-frames", "1", "--model", export_copy,
                   "--engines-dir", tmp_path / "engines", fake_tensorrt="10.3.0", env=env)
    assert proc.returncode == 0 and "on the next backend instead" in proc.stderr and "ONNX Runtime" in proc.stderr
    assert f"ONNX Runtime (cpu) on {export_copy} (--model, no engine agrees with FP32" in proc.stderr
    forced = run_cli("run", "--source", REPO / "anydepth_edge" / "data", "--max-frames", "1", "--model", export_copy,
                     "--backend", "trt", "--engines-dir", tmp_path / "engines", fake_tensorrt="10.3.0", env=env)
    assert_one_line_error(forced, "agrees with FP32")


def test_bench_does_not_fall_back_when_no_rung_agrees(export_copy, tmp_path):
    """The resolver's policy step 3: `run --backend auto` goes on with ONNX Runtime (above), `bench`
    stops with the ladder's error (its table holds one backend); nothing is recorded."""
    out = tmp_path / "results"
    proc = run_cli("bench", "--device", "cuda", "--backend", "auto", "--decoder", "sdt", "--res", "64", "--iters", "2",
                   "--warmup", "0", "--e2e-iters", "0", "--export-dir", export_copy.parent,
                   "--engines-dir", tmp_path / "engines", "--out-dir", out, fake_tensorrt="10.3.0",
                   env={"FAKE_GPU_BEHAVIOUR": "fp16=nan,fp16-wide=nan,fp32=zero"}, timeout=300)
    assert_one_line_error(proc, "agrees with FP32")
    assert not list(out.glob("*.json")) and "next backend" not in proc.stderr


def test_bench_reports_the_rung(export_copy, tmp_path):
    out = tmp_path / "results"
    proc = run_cli("bench", "--device", "cuda", "--backend", "trt", "--decoder", "sdt", "--res", "64", "--iters", "2",
                   "--warmup", "0", "--e2e-iters", "0", "--export-dir", export_copy.parent,
                   "--engines-dir", tmp_path / "engines", "--out-dir", out, fake_tensorrt="10.3.0",
                   env={"FAKE_GPU_BEHAVIOUR": "fp16=nan"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(next(out.glob("*.json")).read_text())
    (row,) = record["results"]
    assert row["rung"] == "fp16-wide" and row["verification"] == "verified"
    assert "fp16-wide" in next(out.glob("*.md")).read_text()


@pytest.mark.integration
def test_verify_a_real_vits_export_and_a_broken_copy(tmp_path):
    """A real ViT-S export passes `verify`; the same file with one convolution's weights perturbed fails.
    (Removing LayerNorms is no test with random weights: their inputs are already near unit scale, so
    the depth moves by 1e-4 only.)"""
    proc = run_cli("export", "--res", "64", "--target", "trt10", "--no-fp16-check", "--out-dir", tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1500:]
    good = tmp_path / "anydepth-sdt-vits-64x64-trt10.onnx"
    assert run_cli("verify", good).returncode == 0
    model = onnx.load(str(good))
    conv = max((t for t in model.graph.initializer if len(t.dims) == 4), key=lambda t: int(np.prod(t.dims)))
    w = onnx.numpy_helper.to_array(conv).copy()
    w += np.random.default_rng(0).normal(0, 2 * float(w.std()), w.shape).astype(w.dtype)
    conv.CopyFrom(onnx.numpy_helper.from_array(w, conv.name))
    onnx.save(model, str(good))
    record = OnnxArtifact.load(good)
    from anydepth_edge.fileio import sha256_file

    record.onnx_sha256 = sha256_file(good)  # as if the export itself had been wrong
    record.write_sidecar()
    proc = run_cli("verify", good)
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout


def test_doctor_knows_jetpack_72_and_warns_on_tensorrt_103(tmp_path):
    from conftest import REPO
    from fakes.platforms import fixture

    from anydepth_edge.doctor import diagnose

    jp6 = REPO / "tests" / "fixtures" / "platforms" / "orin-nano-4gb-jp6"  # TensorRT 10.3.0
    checks = {c.name: c for c in diagnose(jp6, "export", "engines", **fixture(jp6))["checks"]}
    assert "known to miscompile DINOv3" in checks["TensorRT and DINOv3"].detail
    assert "anydepth-edge verify" in checks["TensorRT and DINOv3"].fix
    jp72 = tmp_path / "jp72"
    shutil.copytree(jp6, jp72)
    (jp72 / "etc" / "nv_tegra_release").write_text("# R39 (release), REVISION: 2.0, GCID: 1, BOARD: generic\n")
    data = json.loads((jp72 / "fixture-modules.json").read_text())
    data["modules"]["tensorrt"] = "10.16.0"
    (jp72 / "fixture-modules.json").write_text(json.dumps(data))
    report = diagnose(jp72, "export", "engines", **fixture(jp72))
    checks = {c.name: c for c in report["checks"]}
    assert report["platform"]["jetpack"] == "7.2" and report["platform"]["expected_tensorrt"] == "10.16"
    assert checks["TensorRT"].status == "ok" and "TensorRT and DINOv3" not in checks
