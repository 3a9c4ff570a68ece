"""ONNX export: forms equal the training form, the graph has the properties TensorRT needs
(read from the file), lint catches each trap, parity and FP16 figures are recorded."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import TINY_RES, assert_one_line_error, run_cli  # noqa: E402

from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.export.forms import DySampleExport, to_export_form  # noqa: E402
from anydepth_edge.export.lint import lint_model  # noqa: E402
from anydepth_edge.export.onnx_export import ExportJob, export_onnx  # noqa: E402
from anydepth_edge.models.dysample import DySample  # noqa: E402
from anydepth_edge.pins import REGIONS  # noqa: E402
from anydepth_edge.artifacts import RANDOM_CHECKPOINT as RANDOM  # noqa: E402
from anydepth_edge.targets import (  # noqa: E402
    TARGETS,
    resolve_target,
    target_for_tensorrt_version,
)

DYSAMPLE_PREFIX = REGIONS["dysample"].prefix
LAYERNORM_PREFIX = REGIONS["layernorm"].prefix


# ----------------------------------------------------------------------------- export forms

@pytest.mark.parametrize("sampler", ["grid_sample", "gather"])
@pytest.mark.parametrize("hw", [(6, 6), (5, 9)])
def test_dysample_export_forms_equal_training_form(sampler, hw):
    torch.manual_seed(3)
    src = DySample(16, scale=2, style="lp", groups=4, dyscope=True).eval()
    with torch.no_grad():
        src.offset.weight.normal_(0, 0.5)  # offsets beyond the border too
        src.scope.weight.normal_(0, 1.0)
        x = torch.randn(2, 16, *hw)
        want = src(x)
        got = DySampleExport(src, hw, sampler)(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("decoder", ["sdt", "dpt"])
def test_model_export_form_equals_training_form(tiny_model, decoder):
    model = tiny_model(decoder)
    x = torch.randn(1, 3, *TINY_RES)
    with torch.no_grad():
        want = model(x)
        for sampler in ("grid_sample", "gather"):
            form = to_export_form(model, TINY_RES, sampler)
            assert torch.allclose(form(x), want, atol=1e-5)
    assert model.encoder.baked_grid is None  # the caller's model is untouched


# ----------------------------------------------------------------------------- the exported graph

def _graph(result):
    return onnx.load(str(result.onnx_path))


def test_opsets_and_layernorm_per_target(exported):
    _, res = exported
    g85, g10 = _graph(res["trt8.5"]), _graph(res["trt10"])
    assert [o.version for o in g85.opset_import if o.domain in ("", "ai.onnx")] == [16]
    assert [o.version for o in g10.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops85 = {n.op_type for n in g85.graph.node}
    ops10 = {n.op_type for n in g10.graph.node}
    assert "LayerNormalization" not in ops85 and {"ReduceMean", "Sqrt"} <= ops85
    assert "LayerNormalization" in ops10


def test_graph_has_no_dynamic_machinery(exported):
    _, res = exported
    for key in ("trt8.5", "trt10", "gather"):
        g = _graph(res[key])
        ops = {n.op_type for n in g.graph.node}
        # constant grids and baked RoPE: no Range/meshgrid/Shape arithmetic, no If/Loop, no SDPA
        assert not ops & {"Range", "Shape", "If", "Loop", "ConstantOfShape", "Tile"}, ops
        assert "MatMul" in ops and "Softmax" in ops
        for vi in list(g.graph.input) + list(g.graph.output):
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            assert dims[0] == 1 and all(d > 0 for d in dims), dims


def test_gridsample_attributes_and_pins(exported):
    _, res = exported
    g = _graph(res["trt10"])
    grid_nodes = [n for n in g.graph.node if n.op_type == "GridSample"]
    assert len(grid_nodes) == 4  # two DySample stages in each of two upsample blocks
    for n in grid_nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["mode"] == b"bilinear" and attrs["align_corners"] == 0 and attrs["padding_mode"] == b"border"
        assert n.name.startswith(DYSAMPLE_PREFIX)
    inferred = onnx.shape_inference.infer_shapes(g)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info}
    assert all(ranks[n.input[0]] == 4 for n in grid_nodes)
    side = res["trt10"].artifact.to_dict()
    pinned = set(side["fp32_nodes"])
    names = {n.name for n in g.graph.node}
    assert pinned <= names
    # the coordinate Add with the constant base grid is pinned in every DySample
    adds = [n for n in pinned if n.endswith(".coords/Add")]
    assert len(adds) == 4
    assert not any(n.startswith(LAYERNORM_PREFIX) for n in pinned)  # native LN on trt10
    ln85 = [n for n in res["trt8.5"].artifact.fp32_nodes if n.startswith(LAYERNORM_PREFIX)]
    assert len(ln85) >= 8 * 2  # 4 blocks x 2 norms, several pieces each
    # every region is named (by module type) for the wider pin sets: attention ops and residual adds
    regions = side["pin_nodes"]
    assert len(regions["layernorm"]) == 8  # 4 blocks x 2 (the final norm is off), one native node each
    assert {n.rsplit("/", 1)[-1].rstrip("_0123456789") for n in regions["attention"]} >= {"MatMul", "Softmax"}
    assert not any("/qkv" in n or ".qkv/" in n or ".proj/" in n for n in regions["attention"])  # projections stay
    assert len([n for n in regions["residual"] if n.rsplit("/", 1)[-1].startswith("Add")]) == 8


def test_gather_form_has_no_gridsample(exported):
    _, res = exported
    g = _graph(res["gather"])
    ops = {n.op_type for n in g.graph.node}
    assert "GridSample" not in ops and "Gather" in ops
    # indices are integer maths (exact in an FP16 engine); TensorRT's Clip takes floats only
    inferred = onnx.shape_inference.infer_shapes(g)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({t.name: t.data_type for t in g.graph.initializer})
    sampler = [n for n in g.graph.node if ".sampler/" in n.name]
    assert sampler and all(n.name.startswith(DYSAMPLE_PREFIX) for n in sampler)
    gathers = [n for n in sampler if n.op_type == "Gather"]
    assert len(gathers) == 4 * (2 + 4 * 4)  # per DySample: x and y picked from the grid, 4 corners x 4 groups read
    assert all(types[n.input[1]] in (onnx.TensorProto.INT32, onnx.TensorProto.INT64) for n in gathers)
    for n in sampler:
        if n.op_type == "Clip":
            assert types[n.input[0]] == onnx.TensorProto.FLOAT, n.name
    assert res["gather"].onnx_path.name.endswith("-trt10-gather.onnx")
    # the Orin bound's figure: the Gather export's traffic with its samplers counted as GridSample
    traffic, trt_traffic = res["gather"].artifact.traffic, res["trt10"].artifact.traffic
    assert traffic["tensorrt_form_fused_bytes"] == pytest.approx(trt_traffic["fused_bytes"], rel=1e-3)
    assert traffic["tensorrt_form_fused_bytes"] < traffic["fused_bytes"] and "tensorrt_form_bytes" not in trt_traffic


def test_sidecar_and_metadata(exported):
    _, res = exported
    r = res["trt10"]
    side = json.loads(r.onnx_path.with_suffix(".json").read_text())
    assert r.onnx_path.name == "anydepth-sdt-vits-64x64-trt10.onnx"
    for key in ("model", "encoder", "decoder", "resolution", "opset", "target", "inputs", "outputs", "mean", "std",
                "checkpoint", "toolkit_version", "parity", "fp16", "fp32_nodes", "onnx_sha256"):
        assert key in side, key
    assert side["inputs"][0]["shape"] == [1, 3, 64, 64] and side["checkpoint"]["sha256"] == "random"
    meta = {p.key: p.value for p in _graph(r).metadata_props}
    assert meta["target"] == "trt10" and json.loads(meta["resolution"]) == [64, 64]
    assert json.loads(meta["fp32_nodes"]) == side["fp32_nodes"] and side["schema"] == "anydepth-edge/onnx/2"
    assert side["nodes"]["after_slim"] < side["nodes"]["before_slim"]
    # this export's peak resident memory (PyTorch alone is > 100 MB), within the machine's
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert 100 < side["export_peak_rss_mb"] < total_mb
    for key in ("random", "image"):
        assert side["parity"][key]["rel"] < 1e-4 and side["parity"][key]["reference_std"] > 0.01
    fp = side["fp16"]
    for pins in ("with_pins", "without_pins"):
        assert 0 <= fp[pins]["abs_rel"] < 0.05 and 0.9 < fp[pins]["delta1"] <= 1.0
    probe = fp["dysample_probe"]
    assert probe["input"] == [32, 32]
    assert probe["with_pins"]["max_abs_levels"] < probe["without_pins"]["max_abs_levels"]


def test_onnx_runs_and_matches_pytorch(exported):
    model, res = exported
    x = np.random.default_rng(5).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for key in ("trt8.5", "trt10", "gather"):
        sess = ort.InferenceSession(str(res[key].onnx_path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"image": x})[0]
        assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-4


def test_up_to_date_export_is_reused_and_force_rebuilds(exported):
    model, res = exported
    r = res["trt10"]
    job = ExportJob(model, (64, 64), TARGETS["trt10"], RANDOM, r.onnx_path.parent)
    again = export_onnx(job)
    assert again.reused and again.onnx_path == r.onnx_path
    # a damaged file is not reused
    data = r.onnx_path.read_bytes()
    r.onnx_path.write_bytes(data[:-10])
    rebuilt = export_onnx(job)
    assert not rebuilt.reused and rebuilt.onnx_path.read_bytes() != data[:-10]
    forced = export_onnx(ExportJob(model, (64, 64), TARGETS["trt10"], RANDOM, r.onnx_path.parent, force=True))
    assert not forced.reused


# ----------------------------------------------------------------------------- lint

def _tiny_graph(opset, nodes, inputs, outputs):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_lint_flags_each_trap():
    from onnx import helper

    gs20 = _tiny_graph(20, [helper.make_node("GridSample", ["x", "g"], ["y"], name="gs", mode="linear")],
                       [_vi("x", [1, 4, 8, 8]), _vi("g", [1, 8, 8, 2])], [_vi("y", [1, 4, 8, 8])])
    kinds = {p.kind for p in lint_model(gs20, "trt10")}
    assert {"opset", "gridsample"} <= kinds
    ln = _tiny_graph(17, [helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln")],
                     [_vi("x", [1, 4]), _vi("s", [4])], [_vi("y", [1, 4])])
    assert [p.kind for p in lint_model(ln, "trt8.5")] == ["unsupported-op"]
    assert lint_model(ln, "trt8.6") == []
    dyn = _tiny_graph(17, [helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", ["batch", 4])], [_vi("y", ["batch", 4])])
    assert {p.kind for p in lint_model(dyn, "trt10")} == {"dynamic-shape"}
    gs5d = _tiny_graph(17, [helper.make_node("GridSample", ["x", "g"], ["y"], name="gs5", mode="bilinear")],
                       [_vi("x", [1, 4, 2, 8, 8]), _vi("g", [1, 2, 8, 8, 3])], [_vi("y", [1, 4, 2, 8, 8])])
    assert any("4-D" in p.message for p in lint_model(gs5d, "trt10"))
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [_vi("t", [1])])
    iff = _tiny_graph(17, [helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=then)],
                      [helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [1])], [_vi("y", [1])])
    assert "control-flow" in {p.kind for p in lint_model(iff, "trt10")}
    custom = _tiny_graph(17, [helper.make_node("Foo", ["x"], ["y"], name="f", domain="com.acme")],
                         [_vi("x", [1])], [_vi("y", [1])])
    assert {p.kind for p in lint_model(custom, "trt10")} == {"custom-domain"}


# ----------------------------------------------------------------------------- targets

def test_targets(monkeypatch):
    assert target_for_tensorrt_version("8.5.2.2") == "trt8.5"
    assert target_for_tensorrt_version("8.6.2") == "trt8.6"
    assert target_for_tensorrt_version("10.3.0") == "trt10"
    with pytest.raises(UserError, match="needs >= 8.5"):
        target_for_tensorrt_version("8.4.1")
    import anydepth_edge.targets as targets

    monkeypatch.setattr(targets, "installed_tensorrt_version", lambda: None)
    assert resolve_target("auto").name == "trt10"  # no TensorRT: JetPack 6.1/6.2's target
    monkeypatch.setattr(targets, "installed_tensorrt_version", lambda: "8.5.2.2")
    assert resolve_target("auto").name == "trt8.5"  # the TensorRT installed here decides
    assert resolve_target("auto", installed="8.6.2").name == "trt8.6"
    assert all(t.opset < 20 for t in TARGETS.values())
    with pytest.raises(UserError, match="unknown target"):
        resolve_target("trt7")


def test_the_readme_hardware_table_is_the_target_table():
    from conftest import REPO

    from anydepth_edge.targets import hardware_table

    assert hardware_table() in (REPO / "README.md").read_text()


# ----------------------------------------------------------------------------- CLI

def test_check_onnx_cli(exported, tmp_path):
    _, res = exported
    ok = run_cli("check-onnx", res["trt8.5"].onnx_path, "--target", "trt8.5")
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stdout + ok.stderr
    bad = run_cli("check-onnx", res["trt10"].onnx_path, "--target", "trt8.5")  # LayerNormalization on 8.5
    assert bad.returncode == 1 and "LayerNormalization" in bad.stdout
    corrupt = tmp_path / "x.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    assert_one_line_error(run_cli("check-onnx", corrupt, "--target", "trt10"), "not a valid ONNX")
    assert_one_line_error(run_cli("check-onnx", tmp_path / "none.onnx"), "not found")


@pytest.mark.parametrize("args,needle", [
    (["--res", "250"], "use 240 or 256"),
    (["--target", "trt7"], "'trt7' is not one of 'auto', 'trt8.5', 'trt8.6', 'trt10', 'ort'"),
    (["--checkpoint", "/nonexistent/x.pth"], "not found"),
    (["--dysample", "nearest"], "'nearest' is not one of 'auto', 'gridsample', 'gather'"),
    (["--decoder", "unet"], "'unet' is not one of 'sdt', 'dpt', 'dav2', 'all'"),
])
def test_export_bad_inputs_are_one_line(args, needle, tmp_path):
    assert_one_line_error(run_cli("export", "--out-dir", tmp_path, *args), needle)


def test_export_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli("export", "--out-dir", blocker / "sub", "--res", "64"), "cannot create output folder")


# ----------------------------------------------------------------------------- issue 16: forms per target, traffic

def test_each_target_exports_its_measured_dysample_form(tiny_model, tmp_path, monkeypatch):
    """`--dysample auto`: gather for ONNX Runtime (measured 2x faster there), GridSample for TensorRT;
    an explicit choice wins."""
    import anydepth_edge.export.onnx_export as onnx_export
    from anydepth_edge.models import factory

    jobs = []
    monkeypatch.setattr(factory, "resolve_model", lambda *a, **k: (tiny_model("sdt"), types_ns(ref=None)))
    monkeypatch.setattr(onnx_export, "export_onnx", lambda job, step: jobs.append(job) or job)
    for target, choice in (("ort", None), ("trt10", None), ("ort", "grid_sample"), ("trt8.5", "gather")):
        onnx_export.export_models("vits", ["sdt"], [TINY_RES], TARGETS[target], tmp_path, dysample=choice,
                                  fp16_check=False)
    assert [j.dysample for j in jobs] == ["gather", "grid_sample", "grid_sample", "gather"]
    assert TARGETS["ort"].sampler_for("dpt") == TARGETS["ort"].sampler_for("dpt", "gather") == "grid_sample"
    with pytest.raises(UserError, match="unknown DySample form 'nearest'"):
        TARGETS["ort"].sampler_for("sdt", "nearest")


def types_ns(**kw):
    import types

    return types.SimpleNamespace(**kw)


def test_graph_traffic_counts_every_read_and_write():
    from onnx import TensorProto, helper, numpy_helper

    from anydepth_edge.export.traffic import graph_traffic

    w = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10, 10])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 10, 10])], [w])
    t = graph_traffic(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x, y, wb = 4 * 100 * 4, 8 * 100 * 4, 8 * 4 * 9 * 4
    assert t["weight_bytes"] == wb and t["activation_bytes"] == x + y + y + y  # conv reads x, writes y; relu reads y, writes z
    assert t["bytes"] == x + 3 * y + wb and t["fused_bytes"] == x + y + wb  # the Relu fuses into the Conv
    assert t["largest_tensor_bytes"] == y


def test_tensorrt_form_traffic_of_a_gather_export_is_the_grid_sample_exports(tiny_model):
    """An `ort` export (Gather sampler) counts what the TensorRT form moves: the same figure a
    GridSample export of the same model, traced on its own, gives."""
    from anydepth_edge.export.forms import to_export_form
    from anydepth_edge.export.graph import slim, trace_to_onnx
    from anydepth_edge.export.traffic import graph_traffic, tensorrt_form_traffic

    model, res = tiny_model("sdt").eval(), (64, 64)
    counts = {}
    for sampler in ("gather", "grid_sample"):
        form = to_export_form(model, res, sampler)
        counts[sampler] = (form, graph_traffic(slim(trace_to_onnx(form, res, 17))))
    gather_form, gather = counts["gather"]
    grid = counts["grid_sample"][1]
    assert gather["fused_bytes"] > grid["fused_bytes"]  # the premise: Gather moves more
    trt = tensorrt_form_traffic(gather_form, res, gather)
    assert trt["tensorrt_form_fused_bytes"] == pytest.approx(grid["fused_bytes"], rel=1e-3)
    assert trt["tensorrt_form_bytes"] == pytest.approx(grid["bytes"], rel=0.05)
