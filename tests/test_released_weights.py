"""The released DINOv2-based weights: Depth Anything V2 layout files (`pretrained.*` + `depth_head.*`)
load as they are, the DINOv2 position embedding is resampled the DAv2 way, 14-px input rules, output
kind (disparity), licences, and `--weights` through huggingface_hub against a loopback hub.

The checkpoints are made here from this package's modules in the released key layout; the parity
against the public DAv2 / AnyDepth code itself is a scratch check (README "Use the released weights").
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("timm")


def dav2_layout(model, extra=None):
    """The model's weights in the released layout: pretrained.<DINOv2 key>, depth_head.<head key>,
    plus DINOv2's mask token (the released files carry it)."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoder.backbone."):
            sd["pretrained." + key[len("encoder.backbone."):]] = value.clone()
        elif key.startswith("decoder."):
            sd["depth_head." + key[len("decoder."):]] = value.clone()
        else:
            raise AssertionError(f"unexpected key {key}")
    sd["pretrained.mask_token"] = torch.zeros(1, model.encoder.embed_dim)
    sd.update(extra or {})
    return sd


def released_model(decoder="sdt", seed=0, **config):
    from anydepth_edge.models.anydepth import build_model, spread_random_init

    torch.manual_seed(seed)
    return spread_random_init(build_model("vits", decoder, family="dinov2", **config), seed)


@pytest.fixture(scope="module")
def sdt_b128():
    return released_model("sdt", fusion_channels=128)


@pytest.fixture(scope="module")
def dav2_s():
    return released_model("dav2", seed=1)


def _out(model, x):
    with torch.no_grad():
        return model(x)


WRAPPERS = {
    "plain": lambda sd: sd,
    "model-dict": lambda sd: {"model": sd},
    "state_dict-dict": lambda sd: {"state_dict": sd},
    "model-prefix": lambda sd: {"model." + k: v for k, v in sd.items()},
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_sdt_in_the_released_layout_loads_as_it_is(tmp_path, sdt_b128, wrapper):
    from anydepth_edge.models.factory import resolve_model

    path = tmp_path / "dav2_sdt_vitb.pth"
    torch.save(WRAPPERS[wrapper](dav2_layout(sdt_b128)), path)
    said, warned = [], []
    model, report = resolve_model(str(path), say=said.append, warn=warned.append)
    cfg = model.config
    assert (cfg.family, cfg.encoder, cfg.decoder, cfg.fusion_channels) == ("dinov2", "vits", "sdt", 128)
    assert cfg.sdt_cls_token and cfg.sdt_detail_enhancer and cfg.output_kind == "depth"
    assert report.dropped == ["pretrained.mask_token"] and not report.unexpected and not warned
    assert len(said) == 1 and "DINOv2 ViT-S/14" in said[0] and "fusion 128" in said[0] and "native 518x518" in said[0]
    x = torch.randn(1, 3, 42, 56)
    assert torch.equal(_out(model, x), _out(sdt_b128, x))


def test_sdt_options_come_from_the_keys(tmp_path):
    """The DA3 ViT-L release: fusion 256, no class-token readout, no detail enhancer."""
    from anydepth_edge.models.factory import resolve_model

    source = released_model("sdt", fusion_channels=64, sdt_cls_token=False, sdt_detail_enhancer=False)
    path = tmp_path / "da3_sdt_vitl.pth"
    torch.save(dav2_layout(source), path)
    said = []
    model, _ = resolve_model(str(path), say=said.append)
    assert not model.config.sdt_cls_token and not model.config.sdt_detail_enhancer
    assert "no class token" in said[0] and "no detail enhancer" in said[0]
    x = torch.randn(1, 3, 28, 28)
    assert torch.equal(_out(model, x), _out(source, x))


def test_dav2_dpt_loads_as_disparity(tmp_path, dav2_s):
    from anydepth_edge.models.factory import resolve_model

    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(dav2_layout(dav2_s), path)
    model, report = resolve_model(str(path))
    assert model.config.decoder == "dav2" and model.config.output_kind == "disparity"
    assert "Depth Anything V2 DPT head" in report.recognised and "output disparity" in report.recognised
    x = torch.randn(1, 3, 42, 42)
    got = _out(model, x)
    assert torch.equal(got, _out(dav2_s, x)) and got.shape == (1, 1, 42, 42)


def test_unmatched_keys_are_named_and_missing_ones_refused(tmp_path, dav2_s):
    from anydepth_edge.errors import UserError
    from anydepth_edge.models.factory import resolve_model

    extra = dav2_layout(dav2_s, {"depth_head.unused.weight": torch.zeros(2)})
    torch.save(extra, tmp_path / "extra.pth")
    warned = []
    resolve_model(str(tmp_path / "extra.pth"), warn=warned.append)
    assert any("decoder.unused.weight" in w and "1 keys" in w for w in warned), warned

    short = dav2_layout(dav2_s)
    del short["depth_head.scratch.output_conv1.weight"]
    torch.save(short, tmp_path / "short.pth")
    with pytest.raises(UserError, match=r"lacks 1 weights .*scratch\.output_conv1\.weight"):
        resolve_model(str(tmp_path / "short.pth"))


class TrainingState:  # a pickled object a checkpoint must not smuggle in
    pass


def test_only_allowlisted_globals_load(tmp_path, dav2_s):
    from anydepth_edge.errors import UserError
    from anydepth_edge.models.factory import resolve_model

    sd = dav2_layout(dav2_s)
    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-4, encoder="vits")}, tmp_path / "with_args.pth")
    model, _ = resolve_model(str(tmp_path / "with_args.pth"))
    assert model.config.decoder == "dav2"

    torch.save({"model": sd, "state": TrainingState()}, tmp_path / "with_object.pth")
    with pytest.raises(UserError, match=r"pickled Python code or objects \(.*TrainingState\)"):
        resolve_model(str(tmp_path / "with_object.pth"))


def test_position_embedding_is_resampled_the_dav2_way():
    """Transcribed facts: bicubic by scale factor (grid + 0.1) / 37 per axis, antialias off, class
    position untouched, 37 x 37 returned as is. timm's size-based resampling gives other values."""
    import torch.nn.functional as F

    from anydepth_edge.models.dinov2 import interpolate_pos_embed

    g = torch.Generator().manual_seed(3)
    pos = torch.randn(1, 1 + 37 * 37, 8, generator=g)
    assert interpolate_pos_embed(pos, (37, 37)) is pos
    got = interpolate_pos_embed(pos, (19, 24))
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    want = F.interpolate(grid, scale_factor=(19.1 / 37, 24.1 / 37), mode="bicubic", antialias=False)
    want = want.permute(0, 2, 3, 1).reshape(1, 19 * 24, 8)
    assert got.shape == (1, 1 + 19 * 24, 8)
    assert torch.equal(got[:, :1], pos[:, :1]) and torch.allclose(got[:, 1:], want, atol=0, rtol=0)
    by_size = F.interpolate(grid, size=(19, 24), mode="bicubic", antialias=False).permute(0, 2, 3, 1).reshape(1, -1, 8)
    assert float((by_size - want).abs().max()) > 1e-3  # the two ways really differ


def test_baked_embedding_is_the_dynamic_one():
    model = released_model("dav2", encoder_depth=None)
    x = torch.randn(1, 3, 56, 70)
    dynamic = _out(model, x)
    model.encoder.bake_grid(56, 70)
    assert model.encoder.baked_grid == (4, 5)
    assert torch.equal(_out(model, x), dynamic)


def test_resolution_rules_follow_the_patch():
    from anydepth_edge.errors import UserError
    from anydepth_edge.resolution import check_multiple, default_resolution, parse_res

    assert default_resolution(16) == (256, 256) and default_resolution(14) == (266, 266)
    assert check_multiple((266, 518), 14) == (266, 518)
    with pytest.raises(UserError, match=r"resolution 256 is not a multiple of 14 .*use 252 or 266 \(518"):
        check_multiple((256, 256), 14)
    assert parse_res("266", multiple=None) == (266, 266)
    with pytest.raises(UserError, match="multiple of 16"):
        parse_res("266")


def test_metric_fit_of_a_disparity_model_is_in_inverse_depth():
    from anydepth_edge.runtime.metric import fit_scale_shift

    rng = np.random.default_rng(0)
    metres = rng.uniform(0.5, 6.0, size=(60, 80))
    disparity = 2.0 / metres + 0.1  # what a perfect relative-disparity model outputs
    fit = fit_scale_shift(disparity, metres, space="disparity")
    assert fit.space == "disparity" and fit.rmse_m < 1e-6
    assert np.allclose(fit.apply(disparity), metres, rtol=1e-5)
    wrong = fit_scale_shift(disparity, metres)  # fit as if it were depth
    assert wrong.rmse_m > 0.3


def test_disparity_is_drawn_near_bright():
    pytest.importorskip("cv2")
    from anydepth_edge.runtime.processing import Postprocessor

    ramp = np.tile(np.linspace(1.0, 5.0, 64, dtype=np.float32), (64, 1))  # larger to the right
    as_depth = Postprocessor(output_kind="depth").colourise(ramp).sum(axis=2)
    as_disparity = Postprocessor(output_kind="disparity").colourise(ramp).sum(axis=2)
    assert as_depth[32, 2] > as_depth[32, -3]  # depth: left (small) is near, bright
    assert as_disparity[32, -3] > as_disparity[32, 2]  # disparity: right (large) is near, bright


@pytest.mark.integration
def test_released_dav2_layout_exports_at_266_without_flags(tmp_path, dav2_s):
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(dav2_layout(dav2_s), path)
    refused = run_cli("export", "--res", "256", "--checkpoint", path, "--target", "ort", "-o", tmp_path / "x")
    assert_one_line_error(refused, "not a multiple of 14", "252 or 266")

    done = run_cli("export", "--checkpoint", path, "--target", "ort", "-o", tmp_path / "export", "--no-fp16-check")
    assert done.returncode == 0, done.stderr
    assert "no --res: 266" in done.stderr and "Apache-2.0" in done.stderr and "RANDOM" not in done.stderr
    (onnx,) = (tmp_path / "export").glob("anydepth-dav2-vits14-266x266-ort-ckpt*.onnx")
    side = json.loads(onnx.with_suffix(".json").read_text())
    assert side["family"] == "dinov2" and side["output_kind"] == "disparity" and side["licence"].startswith("Apache")
    assert side["resolution"] == [266, 266] and "disparity" in side["outputs"][0]["meaning"]

    import onnxruntime as ort

    x = torch.randn(1, 3, 266, 266, generator=torch.Generator().manual_seed(2))
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})[0]
    want = _out(dav2_s, x).numpy()
    assert float(np.abs(got - want).max() / np.abs(want).max()) < 1e-4


def test_weights_by_name_come_from_the_hub(tmp_path, dav2_s):
    sys.path.insert(0, str(Path(__file__).parent))
    from hub_server import HubServer

    import io

    buf = io.BytesIO()
    torch.save(dav2_layout(dav2_s), buf)
    files = {("depth-anything/Depth-Anything-V2-Small", "depth_anything_v2_vits.pth"): buf.getvalue()}
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    with HubServer(files) as hub:
        proc = run_cli("info", "--weights", "dav2-vits", "--json", env={**env, "HF_ENDPOINT": hub.url})
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["decoder"] == "dav2" and record["output_kind"] == "disparity"
    assert record["input"]["multiple_of"] == 14 and record["res"] == [266, 266]
    assert record["licence"].startswith("Apache-2.0")
    assert any(r.startswith("GET /depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth")
               for r in hub.requests)

    # Cached now: offline works; a file never fetched fails offline with the manual command.
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    assert run_cli("info", "--weights", "dav2-vits", "--json", env=offline).returncode == 0
    missing = run_cli("info", "--weights", "dav2-sdt-vitb", env=offline)
    assert_one_line_error(missing, "HF_HUB_OFFLINE", "hf download AIGeeksGroup/AnyDepth dav2_sdt_vitb.pth")


def test_an_unreachable_hub_is_one_line_at_once(tmp_path):
    """A new user's trial: without network the hub client retried for ~25 s and logged a dozen lines first."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HTTPS_PROXY": "",
           "https_proxy": ""}
    proc = run_cli("info", "--weights", "dav2-vits", env=env)
    assert_one_line_error(proc, "the hub is unreachable", "hf download depth-anything/Depth-Anything-V2-Small")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unknown_weights_name_lists_the_table():
    proc = run_cli("info", "--weights", "dav2-vitx")
    assert_one_line_error(proc, "unknown weights 'dav2-vitx'", "dav2-sdt-vitb", "dav2-vits")


def test_fp16_figures_of_a_head_that_outputs_zeros_are_finite():
    """A new user's trial: DAv2's ReLU disparity has zeros, AbsRel divided by them, and the export was
    refused as 'FP16 gives NaN or Inf depth' although the depth was finite."""
    from anydepth_edge.export.fp16_emulation import depth_agreement

    ref = torch.linspace(0, 2, 400).reshape(20, 20)
    ref[:5] = 0  # a quarter of the map at the ReLU floor
    figures = depth_agreement(ref * 1.001, ref)
    assert all(np.isfinite(v) for v in figures.values()) and figures["delta1"] == 1.0
    assert figures["abs_rel"] == pytest.approx(1e-3, rel=1e-3)
