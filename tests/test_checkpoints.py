"""Checkpoint formats: official AnyDepth, Meta DINOv3 backbone, the toolkit's safetensors; errors."""

import json
import re

import pytest

torch = pytest.importorskip("torch")

from conftest import TINY  # noqa: E402

from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.models.checkpoint_keys import (  # noqa: E402
    FORMAT_ANYDEPTH,
    FORMAT_DINOV3,
    FORMAT_TOOLKIT,
    detect_format,
    split_official,
    unwrap_state_dict,
)
from anydepth_edge.models.checkpoints import (  # noqa: E402
    load_checkpoint,
    save_checkpoint,
    timm_backbone_keys,
)
from anydepth_edge.models.factory import resolve_model  # noqa: E402

TINY_OVERRIDES = dict(taken_layers=TINY["taken_layers"])


def to_dinov3_layout(timm_sd, with_bias=True):
    """Written independently of the loader: timm Eva names -> Meta DinoVisionTransformer names,
    with the extra tensors Meta checkpoints carry (RoPE periods, k-bias masks, mask token)."""
    out = {}
    n_blocks = 0
    for k, v in timm_sd.items():
        m = re.match(r"blocks\.(\d+)\.(.*)", k)
        if m:
            n_blocks = max(n_blocks, int(m.group(1)) + 1)
            rest = m.group(2)
            rest = {"gamma_1": "ls1.gamma", "gamma_2": "ls2.gamma"}.get(rest, rest)
            if rest in ("attn.q_bias", "attn.v_bias"):
                continue
            out[f"blocks.{m.group(1)}.{rest}"] = v
        elif k == "reg_token":
            out["storage_tokens"] = v
        else:
            out[k] = v
    dim = timm_sd["cls_token"].shape[-1]
    for i in range(n_blocks):
        if with_bias:
            q = timm_sd.get(f"blocks.{i}.attn.q_bias", torch.zeros(dim))
            vb = timm_sd.get(f"blocks.{i}.attn.v_bias", torch.zeros(dim))
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q, torch.zeros(dim), vb])
            out[f"blocks.{i}.attn.qkv.bias_mask"] = torch.cat([torch.ones(dim), torch.zeros(dim), torch.ones(dim)])
    out["rope_embed.periods"] = torch.ones(dim // 24).bfloat16()
    out["mask_token"] = torch.zeros(1, dim)
    return out


def to_official_layout(model):
    sd = model.state_dict()
    bb = {k[len("encoder.backbone."):]: v for k, v in sd.items() if k.startswith("encoder.backbone.")}
    out = {"0.encoder.backbone." + k: v for k, v in to_dinov3_layout(bb).items()}
    out.update({"0." + k: v for k, v in sd.items() if k.startswith("decoder.")})
    return out


def outputs_equal(a, b, shape=(1, 3, 32, 48)):
    x = torch.randn(*shape)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


# ----------------------------------------------------------------------------- pure functions

def _eva(qkv_bias=False):
    from anydepth_edge.models.dinov3 import create_backbone
    from anydepth_edge.model_facts import ENCODERS

    return create_backbone(ENCODERS["vits"], qkv_bias=qkv_bias, depth=2)


def test_dinov3_keys_map_to_timm():
    """Meta's names -> timm's (through timm's own checkpoint_filter_fn), extras dropped."""
    eva = _eva()
    meta = to_dinov3_layout(eva.state_dict())
    mapped = timm_backbone_keys(meta, eva)
    assert set(mapped) == {"encoder.backbone." + k for k in eva.state_dict() if "rope" not in k}
    assert torch.equal(mapped["encoder.backbone.reg_token"], meta["storage_tokens"])
    assert torch.equal(mapped["encoder.backbone.blocks.1.gamma_2"], meta["blocks.1.ls2.gamma"])
    assert not any(k.endswith(("periods", "bias_mask", "mask_token", "qkv.bias")) for k in mapped)


def test_qkv_bias_split_drops_the_k_part():
    eva = _eva(qkv_bias=True)
    meta = to_dinov3_layout(eva.state_dict())
    dim = meta["cls_token"].shape[-1]
    meta["blocks.0.attn.qkv.bias"] = torch.arange(3.0 * dim)
    mapped = timm_backbone_keys(meta, eva)
    assert torch.equal(mapped["encoder.backbone.blocks.0.attn.q_bias"], torch.arange(0.0, dim))
    assert torch.equal(mapped["encoder.backbone.blocks.0.attn.v_bias"], torch.arange(2.0 * dim, 3.0 * dim))


def test_official_split_examples():
    t = torch.zeros(1)
    sd = {
        "0.encoder.backbone.storage_tokens": t,
        "0.encoder.backbone.blocks.2.ls1.gamma": t,
        "0.decoder.weighted_fusion.readout_projects.2.0.weight": t,
        "0.decoder.upsample_1.dysample2.0.scope.weight": t,
        "1.something.else": t,
    }
    backbone, decoder, foreign = split_official(sd)
    assert set(backbone) == {"storage_tokens", "blocks.2.ls1.gamma"}
    assert set(decoder) == {"decoder.weighted_fusion.readout_projects.2.0.weight",
                            "decoder.upsample_1.dysample2.0.scope.weight"}
    assert foreign == ["1.something.else"]


def test_unwrap_and_detect():
    t = torch.zeros(1)
    assert unwrap_state_dict({"state_dict": {"module.0.decoder.x": t}}) == {"0.decoder.x": t}
    assert unwrap_state_dict({"model": {"a": t}, "epoch": 3}) == {"a": t}
    assert detect_format(["0.encoder.backbone.cls_token"]) == FORMAT_ANYDEPTH
    assert detect_format(["storage_tokens", "blocks.0.ls1.gamma"]) == FORMAT_DINOV3
    assert detect_format(["encoder.backbone.cls_token", "decoder.x"]) == FORMAT_TOOLKIT
    with pytest.raises(ValueError, match="unrecognised"):
        detect_format(["conv1.weight"])


# ----------------------------------------------------------------------------- loading

@pytest.mark.parametrize("decoder", ["sdt", "dpt"])
def test_official_checkpoint_round_trip(tmp_path, tiny_model, decoder):
    src = tiny_model(decoder)
    path = tmp_path / "anydepth.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in to_official_layout(src).items()}}, path)
    model, report = load_checkpoint(path, decoder=decoder, **TINY_OVERRIDES)
    assert report.format == FORMAT_ANYDEPTH
    assert model.config.decoder == decoder and model.config.encoder_depth == 4
    assert model.config.fusion_channels == 32 if decoder == "sdt" else model.config.dpt_channels == 32
    assert not report.missing and not report.unexpected
    assert outputs_equal(src, model)


def test_nonzero_qkv_bias_selects_qkvb_variant_and_matches_timm(tmp_path, tiny_model):
    """Our DINOv3 loading agrees with timm's own checkpoint filter for Meta checkpoints."""
    import timm
    from timm.models.eva import checkpoint_filter_fn

    src = tiny_model(qkv_bias=True)
    with torch.no_grad():
        for name, p in src.encoder.backbone.named_parameters():
            if name.endswith(("q_bias", "v_bias")):
                p.normal_(0, 0.1)
    meta_sd = to_dinov3_layout(src.encoder.backbone.state_dict())
    path = tmp_path / "dinov3_vits16.pth"
    torch.save(meta_sd, path)
    model, report = load_checkpoint(path, decoder="sdt", **TINY_OVERRIDES)
    assert report.format == FORMAT_DINOV3 and model.config.qkv_bias
    assert any("random weights" in n for n in report.notes)

    ref = timm.create_model("vit_small_patch16_dinov3_qkvb", pretrained=False, num_classes=0,
                            dynamic_img_size=True, depth=4)
    ref.load_state_dict(checkpoint_filter_fn(dict(meta_sd), ref))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = model.encoder(x)
        theirs = ref.forward_intermediates(x, indices=[0, 1, 2, 3], return_prefix_tokens=True,
                                           intermediates_only=True)
    for (p, c), (rp, rprefix) in zip(ours, theirs):
        assert torch.allclose(p, rp, atol=1e-6) and torch.allclose(c, rprefix[:, 0], atol=1e-6)


def test_zero_qkv_bias_uses_plain_variant(tmp_path, tiny_model):
    src = tiny_model()
    path = tmp_path / "backbone.pth"
    torch.save(to_dinov3_layout(src.encoder.backbone.state_dict()), path)
    model, report = load_checkpoint(path, decoder="dpt", **TINY_OVERRIDES)
    assert not model.config.qkv_bias and model.config.decoder == "dpt"
    assert report.missing == []  # the random decoder is a note, not a missing-weights error
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(model.encoder(x)[-1][0], src.encoder(x)[-1][0])


def test_toolkit_format_round_trip(tmp_path, tiny_model):
    src = tiny_model("dpt")
    path = save_checkpoint(src, tmp_path / "mine")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    cfg = json.loads(path.with_suffix(".json").read_text())["config"]
    assert cfg["decoder"] == "dpt" and cfg["encoder_depth"] == 4
    model, report = load_checkpoint(path)
    assert report.format == FORMAT_TOOLKIT and report.sha256 and len(report.sha256) == 64
    assert outputs_equal(src, model)
    # config also travels inside the safetensors metadata
    path.with_suffix(".json").unlink()
    model2, _ = load_checkpoint(path)
    assert outputs_equal(src, model2)


# ----------------------------------------------------------------------------- errors

def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(bad)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\xff" * 64)
    with pytest.raises(UserError, match="not a valid safetensors"):
        load_checkpoint(bad_st)


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.target = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": payload}, path)
    assert not marker.exists()
    with pytest.raises(UserError, match="pickled Python code or objects"):
        load_checkpoint(path)
    assert not marker.exists()


def test_shape_mismatch_names_the_tensor(tmp_path, tiny_model):
    sd = to_official_layout(tiny_model())
    sd["0.decoder.detail_enhancer.dwconv.weight"] = torch.zeros(16, 1, 3, 3)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    with pytest.raises(UserError, match=r"detail_enhancer\.dwconv\.weight has shape \(16, 1, 3, 3\)"):
        load_checkpoint(path, **TINY_OVERRIDES)


def test_missing_keys_are_named(tmp_path, tiny_model):
    sd = to_official_layout(tiny_model())
    del sd["0.decoder.output_conv.4.bias"]
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(UserError, match=r"lacks 1 weights.*decoder\.output_conv\.4\.bias"):
        load_checkpoint(path, **TINY_OVERRIDES)


def test_unexpected_keys_are_reported(tmp_path, tiny_model):
    sd = to_official_layout(tiny_model())
    sd["0.decoder.extra_layer.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(sd, path)
    notes = []
    _, report = resolve_model(path, "vits", "sdt", warn=notes.append, **TINY_OVERRIDES)
    assert report.unexpected == ["decoder.extra_layer.weight"]
    assert any("decoder.extra_layer.weight" in n for n in notes)


def test_encoder_or_decoder_mismatch_is_clear(tmp_path, tiny_model):
    path = tmp_path / "s.pth"
    torch.save(to_official_layout(tiny_model()), path)
    with pytest.raises(UserError, match="is a ViT-S model but --encoder vitb"):
        load_checkpoint(path, encoder="vitb")
    with pytest.raises(UserError, match="holds a SDT decoder but --decoder dpt"):
        load_checkpoint(path, decoder="dpt")


def test_no_checkpoint_warns_loudly_once():
    notes = []
    model, report = resolve_model(None, "vits", "sdt", warn=notes.append, **TINY)
    assert report.format == "random" and report.ref.sha256 == "random" and report.ref.random
    assert notes == ["no checkpoint: random weights (latency and memory figures are valid; depth is not)"]
