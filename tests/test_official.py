"""The official-code comparison (benchmarks/official_compare.py, anydepth_edge/bench/official.py).

The official AnyDepth code is never vendored (CC BY-NC-SA): the agreement test runs only where
ANYDEPTH_OFFICIAL points at a clone of github.com/AIGeeksGroup/AnyDepth."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY_RES


def test_backbone_shim_gives_the_official_code_our_encoders_features(torch, tiny_model):
    from anydepth_edge.bench.official import TimmBackbone

    encoder = tiny_model("sdt").encoder.eval()
    shim = TimmBackbone(encoder)
    x = torch.randn(1, 3, *TINY_RES)
    with torch.inference_mode():
        theirs = shim.get_intermediate_layers(x, n=list(encoder.taken_layers), reshape=True,
                                              return_class_token=True, norm=encoder.use_backbone_norm)
        ours = encoder(x)
    assert len(theirs) == len(ours) == 4
    for (patch_a, cls_a), (patch_b, cls_b) in zip(theirs, ours):
        assert patch_a.shape == (1, encoder.backbone.embed_dim, TINY_RES[0] // 16, TINY_RES[1] // 16)
        assert torch.equal(patch_a, patch_b) and torch.equal(cls_a, cls_b)
    assert (shim.embed_dim, shim.n_blocks, shim.patch_size) == (encoder.backbone.embed_dim, 4, 16)
    with pytest.raises(ValueError, match="layers"):  # a call it cannot honour is refused, not approximated
        shim.get_intermediate_layers(x, n=[0, 1, 2, 2], norm=encoder.use_backbone_norm)
    with pytest.raises(ValueError, match="norm"):
        shim.get_intermediate_layers(x, n=list(encoder.taken_layers), norm=not encoder.use_backbone_norm)


@pytest.mark.parametrize("args", [["--official", "{tmp}"], ["--official", "{tmp}/absent"]])
def test_compare_refuses_a_folder_that_is_not_the_official_clone(tmp_path, args):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "official_compare.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a clone of the official AnyDepth" in lines[0]
    assert "git clone https://github.com/AIGeeksGroup/AnyDepth" in lines[0]
    assert not list(tmp_path.glob("official-compare-*")), "nothing is written when the clone is wrong"


@pytest.mark.integration
@pytest.mark.parametrize("decoder", ["sdt", "dpt"])
def test_official_code_and_ours_agree_on_the_same_weights(decoder):
    official = os.environ.get("ANYDEPTH_OFFICIAL")
    if not official:
        pytest.skip("set ANYDEPTH_OFFICIAL to a clone of github.com/AIGeeksGroup/AnyDepth")
    from anydepth_edge.bench.official import agreement

    result = agreement(official, "vits", decoder, (64, 96))
    assert result["unloaded_official_keys"] == 0 and result["unused_our_keys"] == 0
    assert result["params_ours_decoder"] == result["params_official_decoder"]
    assert result["max_rel_diff"] < 1e-4
