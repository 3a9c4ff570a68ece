"""Metric depth from the floor (`run --metric floor`): on rendered scenes with exact depth (tests/scenes.py)
the recovered metres are checked against the truth, per failure mode, in both output spaces; then
through the loop, the CLI (a rendered video, a backend whose output is a known affine of the truth)
and the ROS 2 node's parameters and IMU (the recording rclpy stand-in)."""

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from scenes import Scene, abs_rel_delta1, flat_floor, model_output, ramp, room, stairs, wall  # noqa: E402

from anydepth_edge.engines.base import Backend  # noqa: E402
from anydepth_edge.errors import UserError  # noqa: E402
from anydepth_edge.runtime.camera import CameraModel  # noqa: E402
from anydepth_edge.runtime.floor import (  # noqa: E402
    FloorMetric,
    FloorSettings,
    floor_depth,
    pitch_roll_from_quaternion,
)
from anydepth_edge.runtime.loop import DepthLoop, RunOptions  # noqa: E402
from anydepth_edge.runtime.sources import FrameSource, SourceSpec  # noqa: E402

SPACES = ("depth", "disparity")
BOXES = [(-0.8, 0.2, 3.0, 4.0, 0.8), (0.5, 1.5, 2.0, 2.6, 0.5)]


def fitted(scene: Scene, space: str, pitch_error: float = 0.0, noise: float = 0.01, outliers: float = 0.0, seed=0):
    """(metric depth or None when refused, truth, the tracker) for one frame of `scene`."""
    truth, _ = scene.render()
    pred = model_output(truth, space, noise=noise, outliers=outliers, seed=seed)
    metric = FloorMetric(FloorSettings(scene.height, scene.pitch_deg + pitch_error, scene.roll_deg),
                         CameraModel(scene.intrinsics), space)
    fit = metric.fit(None, pred)
    return (None if fit is None else fit.apply(pred)), truth, metric


# ----------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("pitch,roll", [(15.0, 0.0), (25.0, 6.0), (-3.0, -4.0)])
def test_floor_depth_is_the_rendered_floor(pitch, roll):
    """floor.py's gravity formula against a renderer that builds the camera from rotation matrices."""
    scene = Scene(height=0.8, pitch_deg=pitch, roll_deg=roll)
    scene.patches = [flat_floor(scene)]
    truth, is_floor = scene.render()
    ours = floor_depth(*scene.intrinsics.focal_centre, scene.hw, 0.8, pitch, roll)
    both = is_floor & np.isfinite(ours)
    assert both.sum() > 0.2 * truth.size
    assert np.allclose(ours[both], truth[both], rtol=1e-9)
    assert not np.isfinite(ours[~is_floor & np.isfinite(ours)]).any()  # sky is never floor


def test_pitch_and_roll_from_an_imu_quaternion():
    def about(axis, deg):  # a REP 103 rotation (x forward, y left, z up) as a quaternion
        h = math.radians(deg) / 2
        return tuple(math.sin(h) * a for a in axis) + (math.cos(h),)

    pitch, roll = pitch_roll_from_quaternion(*about((0, 1, 0), 10.0))  # +y: nose down in REP 103
    assert pitch == pytest.approx(10.0) and roll == pytest.approx(0.0, abs=1e-9)
    pitch, roll = pitch_roll_from_quaternion(*about((1, 0, 0), 5.0))  # +x: left up, right side down
    assert roll == pytest.approx(5.0) and pitch == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        pitch_roll_from_quaternion(0, 0, 0, 0)


# ----------------------------------------------------------------------------- accuracy per failure mode

@pytest.mark.parametrize("space", SPACES)
def test_a_room_with_boxes_comes_out_in_metres(space):
    """Floor, two boxes, a wall at 12 m; 1 % model noise. The whole frame (boxes, wall) in metres
    within 1.5 % AbsRel, every pixel within 1.25x."""
    scene = room(Scene(height=1.0, pitch_deg=15.0), BOXES)
    metres, truth, metric = fitted(scene, space)
    abs_rel, delta1 = abs_rel_delta1(metres, truth)
    assert abs_rel < 0.015 and delta1 == 1.0
    last = metric.stats()
    assert 0.4 < last["floor_fraction"] < 0.6 and last["abs_rel"] < 0.015 and last["refused"] == 0


@pytest.mark.parametrize("space", SPACES)
def test_outliers_and_noise_cost_little_over_an_oracle(space):
    """3 % noise and 10 % of the pixels garbage: the fit is within 0.01 AbsRel of the true scale
    and shift applied to the same output."""
    scene = room(Scene(height=1.2, pitch_deg=12.0, roll_deg=3.0), BOXES)
    truth, _ = scene.render()
    pred = model_output(truth, space, noise=0.03, outliers=0.1, seed=3)
    metric = FloorMetric(FloorSettings(1.2, 12.0, 3.0), CameraModel(scene.intrinsics), space)
    fit = metric.fit(None, pred)
    # model_output's own affine (scale 0.37, shift 0.8), inverted: the best any fit can do
    truth_from_oracle = (pred - 0.8) / 0.37 if space == "depth" else 0.37 / np.maximum(pred - 0.8, 1e-9)
    ours, best = abs_rel_delta1(fit.apply(pred), truth)[0], abs_rel_delta1(truth_from_oracle, truth)[0]
    assert ours < best + 0.01, (ours, best)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("wall_m", [1.0, 1.8, 2.2])
def test_too_little_floor_is_refused_not_guessed(space, wall_m):
    """A level camera 1 m up facing a wall: up to 2.2 m away almost no floor shows. The frame is
    refused (NaN) with the reason; nothing in metres is made up."""
    scene = Scene(height=1.0, pitch_deg=0.0)
    scene.patches = [flat_floor(scene), wall(wall_m)]
    metres, _, metric = fitted(scene, space)
    assert metres is None
    assert metric.refused == 1 and metric.fitted == 0
    assert "floor" in metric.last_refusal


@pytest.mark.parametrize("space", SPACES)
def test_stairs_ahead_are_not_floor(space):
    scene = Scene(height=1.0, pitch_deg=15.0)
    scene.patches = [flat_floor(scene, until=2.5), *stairs(scene, 2.5, 0.17, 0.28, 10), wall(12.0)]
    metres, truth, _ = fitted(scene, space)
    abs_rel, delta1 = abs_rel_delta1(metres, truth)
    assert abs_rel < 0.03 and delta1 > 0.99


def test_a_ramp_ahead_is_no_floor_to_a_depth_model_but_fools_a_disparity_one():
    """Reference 12's 'slopes': an 8 degree ramp from 3 m. In depth space the ramp is not affine to
    the floor, so RANSAC leaves it out; in disparity space it is (a plane is affine in inverse depth
    whatever its tilt) and part of it is taken for floor: docs/metric.md says to expect ~10 %."""
    scene = Scene(height=1.0, pitch_deg=15.0)
    scene.patches = [flat_floor(scene, until=3.0), ramp(scene, 3.0, 8.0), wall(12.0)]
    depth_model = abs_rel_delta1(*fitted(scene, "depth")[:2])
    disparity_model = abs_rel_delta1(*fitted(scene, "disparity")[:2])
    assert depth_model[0] < 0.03 and depth_model[1] > 0.99
    assert disparity_model[0] < 0.15 and disparity_model[1] > 0.75


@pytest.mark.parametrize("space", SPACES)
def test_a_wrong_pitch_costs_what_docs_metric_md_says(space):
    """2 degrees of pitch error at 1 m high: the whole frame's AbsRel lands in the band the docs'
    table gives (the floor fit itself cannot see it: in disparity it is exact, in depth small)."""
    scene = room(Scene(height=1.0, pitch_deg=15.0))
    metres, truth, metric = fitted(scene, space, pitch_error=2.0)
    abs_rel = abs_rel_delta1(metres, truth)[0]
    assert 0.06 < abs_rel < 0.25, abs_rel
    assert metric.fitted == 1  # not detected: the height and pitch must be measured (docs/metric.md)


def test_fitting_in_the_wrong_space_shows_in_the_residual():
    """Reference 12: fitting a disparity output as if it were depth distorts the shape; the floor
    residual says so and the frame is refused."""
    scene = room(Scene(height=1.0, pitch_deg=15.0))
    truth, _ = scene.render()
    pred = model_output(truth, "disparity")
    metric = FloorMetric(FloorSettings(1.0, 15.0), CameraModel(scene.intrinsics), "depth")
    assert metric.fit(None, pred) is None and metric.refused == 1


def test_smoothing_holds_through_noise_and_restarts_on_a_jump():
    scene = room(Scene(height=1.0, pitch_deg=15.0), BOXES)
    truth, _ = scene.render()
    camera = CameraModel(scene.intrinsics)
    smooth, raw = (FloorMetric(FloorSettings(1.0, 15.0, window=w), camera, "depth") for w in (5, 1))
    outputs = [model_output(truth, "depth", noise=0.05, outliers=0.05, seed=i) for i in range(12)]
    smoothed = [smooth.fit(None, o).scale for o in outputs]
    per_frame = [raw.fit(None, o).scale for o in outputs]
    assert smooth.resets == 0 and np.std(smoothed[4:]) < 0.6 * np.std(per_frame[4:])
    # the model's scale doubles (a new scene): the next frame follows at once, not after the window
    jumped = smooth.fit(None, model_output(truth, "depth", scale=0.74, noise=0.01, seed=99))
    assert smooth.resets == 1 and jumped.scale == pytest.approx(1 / 0.74, rel=0.03)


def test_settings_are_checked():
    for bad in (dict(height_m=0.0), dict(height_m=float("nan")), dict(height_m=1.0, pitch_deg=95.0),
                dict(height_m=1.0, window=0)):
        with pytest.raises(UserError):
            FloorSettings(**bad).check()


# ----------------------------------------------------------------------------- the loop and the CLI

class RenderedCamera(FrameSource):
    """A file-like source of rendered frames (grey from the true depth)."""

    def __init__(self, truths):
        self.spec = SourceSpec("folder", "rendered", {})
        self.truths, self.i = truths, 0

    def read(self):
        if self.i >= len(self.truths):
            raise StopIteration
        t = self.truths[self.i]
        self.i += 1
        grey = np.clip(255 * (1 - np.minimum(t, 12) / 12), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None


class TruthBackend(Backend):
    """The model's interface; its n-th output is a known affine of the n-th frame's true depth, at
    the frame's own size (no resampling), so what comes out is the fit's doing."""

    name = "truth"

    def __init__(self, truths, space="depth"):
        h, w = truths[0].shape
        self.input_shape, self.output_shape = (1, 3, h, w), (1, 1, h, w)
        self.truths, self.space, self.calls = truths, space, 0
        self.output_kind = space

    def infer(self, batch):
        out = model_output(self.truths[self.calls], self.space, seed=self.calls)
        self.calls += 1
        return out[None, None]


def frames():
    good = room(Scene(height=1.0, pitch_deg=15.0), BOXES).render()[0]
    blocked = Scene(height=1.0, pitch_deg=15.0)
    blocked.patches = [flat_floor(blocked), wall(1.1)]  # a door closed in front of the robot
    return [good, good, blocked.render()[0], good]


@pytest.mark.parametrize("space", SPACES)
def test_the_loop_writes_metres_and_nan_for_a_refused_frame(tmp_path, space):
    truths = frames()
    scene = Scene(height=1.0, pitch_deg=15.0)
    opts = RunOptions(metric="floor", floor=FloorSettings(1.0, 15.0), pace="none", save_depth=str(tmp_path / "d"))
    loop = DepthLoop(TruthBackend(truths, space), RenderedCamera(truths), SourceSpec("folder", "rendered", {}), opts,
                     camera=CameraModel(scene.intrinsics))
    s = loop.run()
    assert s.frames == 4 and s.metric["fitted"] == 3 and s.metric["refused"] == 1
    assert sum(s.metric["refusals"].values()) == 1
    assert "floor" in s.metric["last_refusal"]
    npys = sorted((tmp_path / "d").glob("*.npy"))
    assert np.isnan(np.load(npys[2])).all()  # no metric depth rather than a wrong one
    abs_rel = abs_rel_delta1(np.load(npys[3]), truths[3])[0]
    assert abs_rel < 0.015
    mm = cv2.imread(str(sorted((tmp_path / "d").glob("*.png"))[3]), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and abs(int(mm[-1, 160]) - round(float(truths[3][-1, 160]) * 1000)) < 30
    assert loop.live_stats()["colour_range"][1] > 5.0  # the viewer's colour bar in metres


def test_run_cli_on_a_rendered_video(tmp_path, monkeypatch, capsys):
    """`anydepth-edge run --metric floor` on an mp4 through the real entry point; the backend is
    the test's (a known affine of the rendered truth)."""
    from anydepth_edge import cli
    from anydepth_edge.runtime import app

    truths = [room(Scene(height=1.0, pitch_deg=15.0), BOXES).render()[0]] * 5
    video = tmp_path / "rendered.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for image, _ in (RenderedCamera(truths).read() for _ in truths):
        writer.write(image)
    writer.release()
    monkeypatch.setattr(app, "open_run_backend", lambda *a, **k: (TruthBackend(truths, "disparity"), "truth"))
    cli.main(["run", "--source", str(video), "--metric", "floor", "--camera-height", "1.0", "--camera-pitch", "15",
              "--camera-hfov", "70", "--pace", "none", "--save-depth", str(tmp_path / "d")])  # exits only on errors
    printed = capsys.readouterr()
    assert "metric (floor): 5 frames in metres, 0 refused" in printed.out
    metres = np.load(sorted((tmp_path / "d").glob("*.npy"))[-1])
    assert abs_rel_delta1(metres, truths[-1])[0] < 0.015


def test_run_help_offers_the_floor_and_bad_requests_are_one_line(tmp_path):
    help_text = run_cli("run", "--help").stdout
    assert "--metric" in help_text and "floor" in help_text and "--camera-height" in help_text
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"")
    assert_one_line_error(run_cli("run", "--source", clip, "--metric", "floor"), "--camera-height")
    assert_one_line_error(run_cli("run", "--source", clip, "--camera-height", "1"), "only with --metric floor")
    # given is given, even at the default value (it used to pass silently: the value was compared to 0)
    assert_one_line_error(run_cli("run", "--source", clip, "--camera-pitch", "0"), "--camera-pitch: used only with")
    assert_one_line_error(run_cli("run", "--source", clip, "--metric", "floor", "--camera-height", "1"),
                          "intrinsics", "--camera-hfov")
    assert_one_line_error(run_cli("run", "--source", clip, "--metric", "floor", "--camera-height", "-1",
                                  "--camera-hfov", "60"), "--camera-height -1")
    assert_one_line_error(run_cli("run", "--source", clip, "--metric", "floor", "--camera-height", "1", "--camera-hfov",
                                  "60", "--camera-info", tmp_path / "cam.yaml"), "keep one")
    # what the fit will use is said before the model loads; a pitch left out is named as level
    no_model = run_cli("run", "--source", clip, "--metric", "floor", "--camera-height", "0.45", "--camera-hfov", "70",
                       "--export-dir", tmp_path / "none", "--engines-dir", tmp_path / "none")
    assert "lens 0.45 m above the floor, pitch 0 deg down" in no_model.stderr
    assert "--camera-pitch not given: the camera is taken as level" in no_model.stderr


# ----------------------------------------------------------------------------- ROS 2

def test_ros_parameters_set_the_mounting_and_an_imu_moves_it(tmp_path, monkeypatch):
    from fakes import fake_rclpy

    from anydepth_edge.ros2.app import RosOptions, serve_depth
    from anydepth_edge.ros2.node import import_ros
    from anydepth_edge.ros2.publisher import PublishSettings

    fake = fake_rclpy.install(monkeypatch)
    truths = frames()
    opts = RunOptions(metric="floor", floor=FloorSettings(0.5, 0.0), pace="none", camera_hfov=70.0)
    ros = RosOptions(publish=True, ros_args="-p camera_height:=1.0 -p camera_pitch:=5.0 -p imu_topic:=/imu",
                     settings=PublishSettings(points_decimation=4, tf_parent="base_link"))
    api = import_ros()
    source = RenderedCamera(truths)
    node_box = {}
    original = fake_rclpy.Node.create_subscription

    def subscribe(self, msg_type, topic, callback, qos):  # the IMU says the body pitches 10 degrees down
        imu = msg_type()
        h = math.radians(10.0) / 2
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = 0.0, math.sin(h), 0.0, math.cos(h)
        callback(imu)
        node_box["topic"] = topic
        return original(self, msg_type, topic, callback, qos)

    monkeypatch.setattr(fake_rclpy.Node, "create_subscription", subscribe)
    s = serve_depth(TruthBackend(truths), source.spec, opts, ros, api, None, cv2, source=source)
    assert node_box["topic"] == "/imu"
    assert opts.floor.height_m == 1.0 and opts.floor.pitch_deg == 5.0  # the parameters, over the CLI's
    assert s.metric["fitted"] == 3 and s.metric["refused"] == 1  # 5 + 10 = 15 degrees: the true pitch
    sent = fake.nodes[0].publishers
    depth = sent["/anydepth_edge/depth"].sent
    assert len(depth) == 4
    refused = np.frombuffer(bytes(depth[2].data), np.float32)
    assert np.isnan(refused).all()  # REP 117: no reading, published as NaN
    assert len(sent["/anydepth_edge/points"].sent) == 3  # no cloud from a refused frame
    assert (sent["/tf_static"].qos.durability, sent["/tf_static"].qos.reliability) == ("TRANSIENT_LOCAL", "RELIABLE")
    (tf,) = sent["/tf_static"].sent  # once: the mounting the fit assumes (the parameters', not the IMU's)
    (t,) = tf.transforms
    assert (t.header.frame_id, t.child_frame_id) == ("base_link", depth[0].header.frame_id)
    assert (t.transform.translation.x, t.transform.translation.z) == (0.0, 1.0)
    q = t.transform.rotation
    lens = rotate((q.x, q.y, q.z, q.w), (0.0, 0.0, 1.0))  # the optical axis, in base_link
    assert np.allclose(lens, [math.cos(math.radians(5)), 0.0, -math.sin(math.radians(5))], atol=1e-9)


def rotate(q, v):
    """v rotated by unit quaternion q = (x, y, z, w): v + 2 u x (u x v + w v), u = (x, y, z)."""
    u, w, v = np.array(q[:3]), q[3], np.array(v)
    return v + 2 * np.cross(u, np.cross(u, v) + w * v)


def test_ros_floor_mode_reads_the_calibration_once(tmp_path, monkeypatch):
    """--metric floor with --camera-info on the ROS side: the YAML is read (and checked) once, by the
    floor check, and the same calibration reaches the publisher."""
    from test_ros2 import CALIB_YAML

    from anydepth_edge.ros2 import app as ros_app
    from anydepth_edge.ros2.app import RosOptions, prepare
    from anydepth_edge.runtime import camera as camera_module

    calib = tmp_path / "cam.yaml"
    calib.write_text(CALIB_YAML)
    reads = []
    real = camera_module.load_calibration
    for module in (camera_module, ros_app):
        monkeypatch.setattr(module, "load_calibration", lambda path: reads.append(path) or real(path))
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((48, 64, 3), np.uint8))
    opts = RunOptions(metric="floor", floor=FloorSettings(0.5, 5.0), camera_info=str(calib))
    _, calibration, _ = prepare(str(folder), opts, RosOptions(record_bag=str(tmp_path / "b.mcap"), camera_info=str(calib)))
    assert reads == [str(calib)] and calibration is not None and calibration.hw == real(str(calib)).hw
