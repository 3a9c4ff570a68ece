"""Torch-free helpers: resolution rules, atomic artifact writes."""

import os

import pytest

from anydepth_edge.fileio import (
    atomic_path,
    ensure_writable_dir,
    read_json,
    sha256_file,
    write_json_atomic,
)
from anydepth_edge.errors import UserError
from anydepth_edge.resolution import nearest_valid, parse_res, parse_res_list, res_tag


@pytest.mark.parametrize("text,want", [("256", (256, 256)), ("256x320", (256, 320)), ("512X512", (512, 512)),
                                       (" 64 x 96 ", (64, 96)), (512, (512, 512)), ((256, 320), (256, 320))])
def test_parse_res(text, want):
    assert parse_res(text) == want


def test_nearest_valid_sizes_named():
    assert nearest_valid(250) == (240, 256)
    assert nearest_valid(5) == (16, 16)
    with pytest.raises(UserError, match="resolution 250 is not a multiple of 16.*use 240 or 256"):
        parse_res("250")
    with pytest.raises(UserError, match="height 100"):
        parse_res("100x256")


def test_res_list_dedups_and_tags():
    assert parse_res_list(["256", "256x256", "512"]) == [(256, 256), (512, 512)]
    assert res_tag((256, 320)) == "256x320"


def test_atomic_write_never_leaves_a_half_file(tmp_path):
    final = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert os.listdir(tmp_path) == []  # the temp file is gone too
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["model.onnx"]
    mask = os.umask(0)
    os.umask(mask)
    assert final.stat().st_mode & 0o777 == 0o666 & ~mask


def test_json_helpers(tmp_path):
    p = write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert read_json(p) == {"x": 1}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_json(tmp_path / "bad.json") is None
    assert read_json(tmp_path / "missing.json") is None
    assert len(sha256_file(p)) == 64


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        ensure_writable_dir(blocker / "sub")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        with pytest.raises(UserError, match="not writable"):
            ensure_writable_dir(ro)
    finally:
        ro.chmod(0o700)
