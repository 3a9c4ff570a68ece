"""The AnyDepth models: sizes from the paper, encoder equal to timm's, shapes, input rules."""

import pytest

torch = pytest.importorskip("torch")

from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.models import build_model  # noqa: E402
from anydepth_edge.models.flops import count_gflops, count_params  # noqa: E402

# Decoder parameter counts (millions) the paper's configuration must reproduce, within 0.01 M.
DECODER_PARAMS_M = {
    ("vits", "sdt"): 5.517, ("vitb", "sdt"): 9.451, ("vitl", "sdt"): 13.384,
    ("vits", "dpt"): 50.825, ("vitb", "dpt"): 76.047, ("vitl", "dpt"): 99.580,
}


@pytest.mark.integration
@pytest.mark.parametrize("encoder,decoder", sorted(DECODER_PARAMS_M))
def test_decoder_parameter_counts(encoder, decoder):
    model = build_model(encoder, decoder)
    params = count_params(model)
    assert abs(params["decoder"] / 1e6 - DECODER_PARAMS_M[(encoder, decoder)]) < 0.01
    assert params["total"] == params["encoder"] + params["decoder"]
    # DINOv3 ViT encoders: S ~21.6M, B ~85.6M, L ~303M parameters
    assert {"vits": 21.6e6, "vitb": 85.6e6, "vitl": 303.1e6}[encoder] == pytest.approx(params["encoder"], rel=0.01)


@pytest.mark.integration
def test_gflops_at_256_match_reference():
    # Reference (flop counter, 256x256): SDT head 229.8, DPT head ~262, ViT-S encoder 11.2 without
    # the attention score/value products (1.26 GFLOPs, which our count includes).
    sdt = count_gflops(build_model("vits", "sdt"), (256, 256))
    dpt = count_gflops(build_model("vits", "dpt"), (256, 256))
    assert sdt["decoder"] == pytest.approx(229.8, abs=0.1)
    assert dpt["decoder"] == pytest.approx(262, rel=0.01)
    attention = 12 * 2 * (2 * 261 * 261 * 384) / 1e9
    assert sdt["encoder"] - attention == pytest.approx(11.2, abs=0.1)
    # compute grows 4x per 2x side for the decoder (fully convolutional at fixed width)
    sdt512 = count_gflops(build_model("vits", "sdt"), (512, 512))
    assert sdt512["decoder"] / sdt["decoder"] == pytest.approx(4.0, rel=0.01)


def test_encoder_equals_timm_intermediates(tiny_model):
    model = tiny_model()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ours = model.encoder(x)
        ref = model.encoder.backbone.forward_intermediates(
            x, indices=[0, 1, 2, 3], return_prefix_tokens=True, intermediates_only=True, norm=False
        )
    assert len(ours) == 4
    for (patch, cls), (ref_patch, ref_prefix) in zip(ours, ref):
        assert patch.shape == (2, 384, 2, 3)
        assert cls.shape == (2, 384)
        assert torch.equal(patch, ref_patch)
        assert torch.equal(cls, ref_prefix[:, 0])


def test_backbone_norm_is_off_by_default_and_can_be_enabled(tiny_model):
    x = torch.randn(1, 3, 32, 32)
    plain = tiny_model()
    normed = tiny_model(use_backbone_norm=True)
    normed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a = plain.encoder(x)[-1][0]
        b = normed.encoder(x)[-1][0]
    assert not torch.allclose(a, b)
    # normed output is LayerNorm'd over channels: per-token mean ~ bias mean
    assert b.mean(dim=1).std() < a.mean(dim=1).std()


def test_taken_layers_follow_the_spec():
    from anydepth_edge.model_facts import ENCODERS

    assert ENCODERS["vits"].taken_layers == (2, 5, 8, 11)
    assert ENCODERS["vitb"].taken_layers == (2, 5, 8, 11)
    assert ENCODERS["vitl"].taken_layers == (4, 11, 17, 23)


@pytest.mark.parametrize("decoder", ["sdt", "dpt"])
def test_depth_output_shape_and_floor(tiny_model, decoder):
    model = tiny_model(decoder)
    with torch.no_grad():
        y = model(torch.randn(1, 3, 32, 48))
    assert y.shape == (1, 1, 32, 48)
    assert float(y.min()) >= 0.001 - 1e-7  # relu + 0.001
    assert float(y.std()) > 0


def test_input_not_multiple_of_16_is_a_user_error(tiny_model):
    with pytest.raises(UserError, match="multiples of 16"):
        tiny_model()(torch.randn(1, 3, 40, 48))


def test_encoder_is_frozen_decoder_trainable(tiny_model):
    model = tiny_model()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_baked_rope_is_used_only_for_its_grid(tiny_model):
    model = tiny_model()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        before = model(x)
        model.encoder.bake_rope(32, 48)
        assert model.encoder.baked_grid == (2, 3)
        assert torch.equal(model(x), before)
        other = model(torch.randn(1, 3, 48, 48))  # another size still runs (table recomputed)
    assert other.shape == (1, 1, 48, 48)
    model.encoder.backbone.rope.table.fill_(0)  # a zeroed table changes the result for the baked size...
    with torch.no_grad():
        assert not torch.equal(model(x), before)


def test_unknown_encoder_or_decoder():
    with pytest.raises(UserError, match="unknown encoder"):
        build_model("vith", "sdt")
    with pytest.raises(UserError, match="unknown decoder"):
        build_model("vits", "unet")
