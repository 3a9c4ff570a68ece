"""`anydepth-edge eval`: the protocol against hand computations, the dataset readers on data the
tests write in each supported layout (a NYUv2-layout .mat via h5py with splits.mat, a KITTI-layout
folder, RGB + 16-bit depth pairs), a backend whose output is a known affine of the truth, and a real
ViT-S export (random weights) through the CLI, FP16 form against the FP32 export."""

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from scenes import Scene, model_output, room  # noqa: E402

from anydepth_edge.engines.base import Backend  # noqa: E402
from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.evaluation.datasets import open_dataset  # noqa: E402
from anydepth_edge.evaluation.protocol import RULES, align, eigen_crop, garg_crop, image_metrics, valid_mask  # noqa: E402
from anydepth_edge.evaluation.runner import evaluate  # noqa: E402

BOXES = [(-0.8, 0.2, 3.0, 4.0, 0.8), (0.5, 1.5, 2.0, 2.6, 0.5)]


def scenes(n=4, hw=(48, 64)):
    """n rendered rooms (exact depth) seen from different heights and pitches."""
    return [room(Scene(height=0.8 + 0.2 * i, pitch_deg=10.0 + 3 * i, hw=hw), BOXES).render()[0] for i in range(n)]


def write_pairs(root, depths, scale=0.001):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i, d in enumerate(depths):
        grey = np.clip(255 * (1 - d / 12), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "rgb" / f"v{i:02d}.png"), np.dstack([grey, grey // 2, 255 - grey]))
        cv2.imwrite(str(root / "depth" / f"v{i:02d}.png"), np.round(d / scale).astype(np.uint16))
    return root


class AffineOfTruth(Backend):
    """Its i-th output is `scale * truth_i + shift` (or of 1 / truth_i), at the image's own size."""

    name = "affine-of-truth"

    def __init__(self, truths, space="depth", noise=0.0):
        h, w = truths[0].shape
        self.input_shape, self.output_shape = (1, 3, h, w), (1, 1, h, w)
        self.truths, self.output_kind, self.noise, self.calls = truths, space, noise, 0

    def infer(self, batch):
        out = model_output(self.truths[self.calls], self.output_kind, noise=self.noise, seed=self.calls)
        self.calls += 1
        return out[None, None]


# ----------------------------------------------------------------------------- protocol

def test_metrics_against_hand_computation():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    d = np.array([[1.0, 2.0], [4.0, 10.0]])
    m = image_metrics(d, gt, np.ones_like(gt, bool))
    # AbsRel (0 + 0 + 0 + 2/8) / 4; RMSE sqrt(2^2 / 4); 10/8 = 1.25 is not < 1.25; < 1.5625 all
    assert m["abs_rel"] == pytest.approx(0.0625) and m["rmse"] == pytest.approx(1.0)
    assert m["delta1"] == pytest.approx(0.75) and m["delta2"] == 1.0 and m["delta3"] == 1.0


def test_alignment_is_in_the_models_space():
    gt = np.linspace(0.5, 9.0, 60).reshape(6, 10)
    rule, valid = RULES["folder"], np.ones(gt.shape, bool)
    assert np.allclose(align(2.0 * gt + 3.0, gt, valid, "depth", rule), gt)
    assert np.allclose(align(5.0 / gt + 1.0, gt, valid, "disparity", rule), gt)
    # a disparity output fitted as depth is not exact: the space matters
    assert not np.allclose(align(5.0 / gt + 1.0, gt, valid, "depth", rule), gt, rtol=0.05)
    assert align(np.ones_like(gt), gt, valid, "depth", rule) is None  # a flat output fixes no scale


def test_standard_crops_and_caps():
    assert eigen_crop((480, 640)).sum() == 426 * 560
    assert garg_crop((375, 1242)).sum() == (371 - 153) * (1197 - 44)
    gt = np.full((480, 640), 5.0)
    gt[200, 300], gt[201, 300], gt[0, 0] = 11.0, 0.0, 5.0  # over NYU's 10 m cap, no reading, outside the crop
    valid = valid_mask(gt, RULES["nyu"])
    assert not valid[200, 300] and not valid[201, 300] and not valid[0, 0] and valid[240, 320]


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_exact_output_on_a_folder_scores_abs_rel_0_delta1_1(tmp_path, space):
    """The Bar's test: generated RGB + 16-bit depth pairs, a backend whose output is exact."""
    root = write_pairs(tmp_path / "pairs", scenes())
    data = open_dataset(str(root), cv2=cv2)
    truths = [s.depth_m for s in data]  # the PNG's own millimetres: exact
    record = evaluate(data, [("exact", AffineOfTruth(truths, space))])
    s = record["summary"]["exact"]
    assert s["abs_rel"] < 1e-5 and s["delta1"] == 1.0 and s["rmse"] < 1e-4
    assert record["dataset"]["images"] == 4 and record["dataset"]["unscored"] == 0


def test_noise_shows_as_hand_checked_error_and_two_models_differ(tmp_path):
    root = write_pairs(tmp_path / "pairs", scenes())
    data = open_dataset(str(root), cv2=cv2)
    truths = [s.depth_m for s in data]
    record = evaluate(data, [("noisy", AffineOfTruth(truths, noise=0.05)), ("exact", AffineOfTruth(truths))])
    noisy = record["summary"]["noisy"]["abs_rel"]
    # relative noise N(0, 0.05), fitted away only in its mean: AbsRel ~ E|N| = 0.05 * sqrt(2 / pi)
    assert noisy == pytest.approx(0.05 * np.sqrt(2 / np.pi), rel=0.15)
    assert record["difference"]["abs_rel"] == pytest.approx(noisy - record["summary"]["exact"]["abs_rel"])
    assert len(record["worst"]) == 4 and record["worst"][0]["noisy"] >= record["worst"][-1]["noisy"]


# ----------------------------------------------------------------------------- datasets as users have them

def test_nyu_labeled_mat_with_the_official_split(tmp_path):
    h5py = pytest.importorskip("h5py")
    scipy_io = pytest.importorskip("scipy.io")
    depths = scenes(5, hw=(48, 64))
    images = np.zeros((5, 48, 64, 3), np.uint8)
    images[..., 0] = 200  # red: the .mat is RGB, samples are BGR
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:  # MATLAB's column-major layout
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = np.stack(depths).astype(np.float32).transpose(0, 2, 1)
    assert_one_line_error(run_cli("eval", "--data", tmp_path / "nyu_depth_v2_labeled.mat", "--model", "x.onnx"),
                          "splits.mat")
    scipy_io.savemat(tmp_path / "splits.mat", {"testNdxs": np.array([[2], [5]]), "trainNdxs": np.array([[1]])})
    data = open_dataset(str(tmp_path / "nyu_depth_v2_labeled.mat"))
    samples = list(data)
    assert data.kind == "nyu" and [s.name for s in samples] == ["nyu_0002", "nyu_0005"]
    assert samples[0].bgr.shape == (48, 64, 3) and samples[0].bgr[0, 0, 2] == 200 and samples[0].bgr[0, 0, 0] == 0
    assert np.allclose(samples[1].depth_m, depths[4])
    assert len(open_dataset(str(tmp_path / "nyu_depth_v2_labeled.mat"), split="all")) == 5


def test_kitti_eigen_list_and_lidar_pngs(tmp_path):
    depth = scenes(1, hw=(30, 100))[0]
    lidar = np.where(np.random.default_rng(0).random(depth.shape) < 0.1, np.round(depth * 256), 0).astype(np.uint16)
    drive = tmp_path / "2011_09_26" / "2011_09_26_drive_0002_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "proj_depth").mkdir()
    cv2.imwrite(str(drive / "image_02" / "data" / "0000000069.png"), np.full((30, 100, 3), 90, np.uint8))
    cv2.imwrite(str(drive / "proj_depth" / "0000000069.png"), lidar)
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
                     "2011_09_26/2011_09_26_drive_0002_sync/proj_depth/0000000069.png 721.5377\n"
                     "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png None 721.5377\n")
    data = open_dataset(str(tmp_path), split=str(split), cv2=cv2)
    (sample,) = list(data)
    assert data.kind == "kitti" and data.missing == 1
    known = lidar > 0
    assert np.allclose(sample.depth_m[known], depth[known], atol=1 / 512) and (sample.depth_m[~known] == 0).all()
    record = evaluate(data, [("exact", AffineOfTruth([sample.depth_m]))])
    assert record["summary"]["exact"]["abs_rel"] < 1e-5 and record["dataset"]["crop"] == "Garg crop"


def test_bad_data_is_one_line(tmp_path):
    for data, needle in ((tmp_path / "none", "no such file"), (tmp_path, "rgb/ and depth/")):
        assert_one_line_error(run_cli("eval", "--data", data), needle)
    root = write_pairs(tmp_path / "pairs", scenes(1))
    assert_one_line_error(run_cli("eval", "--data", root, "--against", "fp32"), "--against fp32 needs --model")
    assert_one_line_error(run_cli("eval", "--data", root, "--dataset", "nyu"), "is a folder")
    cv2.imwrite(str(root / "depth" / "v00.png"), np.full((48, 64), 9, np.uint8))  # a picture of depth, 8-bit
    assert_one_line_error(run_cli("eval", "--data", root, "--model", "x.onnx"), "16-bit")
    with pytest.raises(UserError, match="KITTI needs its test list"):
        open_dataset(str(tmp_path), kind="kitti")


def test_an_image_without_depth_is_named_not_silently_dropped(tmp_path):
    root = write_pairs(tmp_path / "pairs", scenes(3))
    (root / "depth" / "v01.png").unlink()
    data = open_dataset(str(root), cv2=cv2)
    assert len(data) == 2 and data.skipped == ["1 images without depth/NAME.png or .npy, not scored: v01.png"]
    record = evaluate(data, [("exact", AffineOfTruth([s.depth_m for s in data]))])
    assert record["dataset"]["skipped"] == data.skipped


def test_against_fp32_of_an_fp16_form_is_its_export():
    from anydepth_edge.evaluation.app import reference_artifact

    assert reference_artifact("export/m.fp16.onnx", "fp32").name == "m.onnx"


def test_eval_help_names_the_datasets():
    text = run_cli("eval", "--help").stdout
    assert "NYUv2" in text and "KITTI" in text and "--against" in text and "--limit" in text


# ----------------------------------------------------------------------------- a real export through the CLI

def test_a_real_vits_export_fp16_form_against_its_fp32_export(tmp_path):
    export = tmp_path / "export"
    done = run_cli("export", "--res", "64", "--target", "trt10", "--out-dir", export)  # writes the FP16 form too
    assert done.returncode == 0, done.stderr
    onnx = next(p for p in export.glob("*.onnx") if not p.name.endswith(".fp16.onnx"))
    fp16 = onnx.with_suffix(".fp16.onnx")
    root = write_pairs(tmp_path / "pairs", scenes(3, hw=(60, 80)))
    assert fp16.is_file()
    args = ["eval", "--data", root, "--model", fp16, "--out-dir", tmp_path / "eval"]
    proc = run_cli(*args, "--against", "fp32", "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    assert "RANDOM WEIGHTS" in proc.stderr and "AbsRel" in proc.stdout and "difference" in proc.stdout
    record = json.loads(next((tmp_path / "eval").glob("eval-folder-*.json")).read_text())
    assert record["dataset"]["images"] == 2 and record["dataset"]["of"] == 3
    for figures in record["summary"].values():
        assert 0 < figures["abs_rel"] < 10 and 0 <= figures["delta1"] <= 1
    assert {p.suffix for p in (tmp_path / "eval").iterdir()} >= {".json", ".md"}
