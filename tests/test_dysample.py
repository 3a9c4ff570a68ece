"""DySample (training form) against independent formulations of the published definition."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from anydepth_edge.models.dysample import DySample, initial_positions  # noqa: E402


def naive_dysample(x, offsets, scale, groups):
    """Loop-level reference: output pixel (Y, X) of group g samples input point
    (x_c + 0.5 + dx, y_c + 0.5 + dy) with x_c = X // s, sub-column X % s, bilinear, border-clamped,
    pixel centres at integer + 0.5 (align_corners=False)."""
    x = x.double().numpy()
    off = offsets.double().numpy()
    b, c, h, w = x.shape
    cg = c // groups
    out = np.zeros((b, c, h * scale, w * scale))
    off = off.reshape(b, 2, groups, scale, scale, h, w)  # [coord][group][sub-row][sub-col]
    for n in range(b):
        for g in range(groups):
            for yy in range(h * scale):
                for xx in range(w * scale):
                    yc, xc, i, j = yy // scale, xx // scale, yy % scale, xx % scale
                    px = xc + 0.5 + off[n, 0, g, i, j, yc, xc] - 0.5  # to pixel-index space
                    py = yc + 0.5 + off[n, 1, g, i, j, yc, xc] - 0.5
                    px, py = min(max(px, 0), w - 1), min(max(py, 0), h - 1)  # border padding
                    x0, y0 = int(np.floor(px)), int(np.floor(py))
                    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                    ax, ay = px - x0, py - y0
                    src = x[n, g * cg:(g + 1) * cg]
                    out[n, g * cg:(g + 1) * cg, yy, xx] = (
                        src[:, y0, x0] * (1 - ax) * (1 - ay) + src[:, y0, x1] * ax * (1 - ay)
                        + src[:, y1, x0] * (1 - ax) * ay + src[:, y1, x1] * ax * ay
                    )
    return torch.from_numpy(out)


def test_initial_positions_layout():
    pos = initial_positions(2, 4).reshape(2, 4, 2, 2)
    # x offsets vary with the sub-column, y offsets with the sub-row, same for every group
    assert torch.equal(pos[0, :, :, 0], torch.full((4, 2), -0.25))
    assert torch.equal(pos[0, :, :, 1], torch.full((4, 2), 0.25))
    assert torch.equal(pos[1, :, 0, :], torch.full((4, 2), -0.25))
    assert torch.equal(pos[1, :, 1, :], torch.full((4, 2), 0.25))


def test_fresh_dysample_is_bilinear_x2():
    """With zero offsets only the +-0.25 px initial positions remain: exactly bilinear x2 upsampling
    with half-pixel centres and edge clamping, i.e. F.interpolate(align_corners=False)."""
    torch.manual_seed(0)
    m = DySample(16, scale=2, groups=4, dyscope=True).eval()
    with torch.no_grad():
        m.offset.weight.zero_()
        x = torch.randn(2, 16, 5, 7)
        got = m(x)
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert got.shape == (2, 16, 10, 14)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("dyscope", [True, False])
def test_lp_matches_loop_reference(dyscope):
    torch.manual_seed(1)
    m = DySample(8, scale=2, style="lp", groups=4, dyscope=dyscope).eval()
    with torch.no_grad():
        m.offset.weight.normal_(0, 0.5)  # offsets of a pixel or more, so border clamping happens
        m.offset.bias.normal_(0, 0.5)
        if dyscope:
            m.scope.weight.normal_(0, 1.0)
        x = torch.randn(1, 8, 4, 6)
        offsets = m.predict_offsets(x)
        got = m(x).double()
    assert offsets.abs().max() > 1.0  # the test does reach the borders
    want = naive_dysample(x, offsets, 2, 4)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_pl_style_matches_loop_reference():
    torch.manual_seed(2)
    m = DySample(16, scale=2, style="pl", groups=4, dyscope=True).eval()
    with torch.no_grad():
        m.offset.weight.normal_(0, 0.3)
        m.scope.weight.normal_(0, 1.0)
        x = torch.randn(1, 16, 3, 5)
        offsets = m.predict_offsets(x)
        got = m(x).double()
    assert offsets.shape == (1, 2 * 4 * 4, 3, 5)
    assert torch.allclose(got, naive_dysample(x, offsets, 2, 4), atol=1e-5)


def test_parameter_names_and_shapes_follow_public_definition():
    m = DySample(256, scale=2, style="lp", groups=4, dyscope=True)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "offset.weight": (32, 256, 1, 1),
        "offset.bias": (32,),
        "scope.weight": (32, 256, 1, 1),
        "init_pos": (1, 32, 1, 1),
    }
    assert set(DySample(256, dyscope=False).state_dict()) == {"offset.weight", "offset.bias", "init_pos"}


@pytest.mark.parametrize("kwargs", [dict(in_channels=10, groups=4), dict(in_channels=8, style="xx"),
                                    dict(in_channels=6, style="pl", groups=2)])
def test_invalid_configs_raise(kwargs):
    with pytest.raises(ValueError):
        DySample(**kwargs)
