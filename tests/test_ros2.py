"""ROS 2 output without ROS: the message functions field by field, intrinsics through stretch and
letterbox, bags written by the toolkit (mcap-ros2-support) and read back with an independent
implementation (rosbags, its own message definitions), the node's wiring against a recording
stand-in of rclpy (tests/fakes/fake_rclpy.py), a ROS topic as a source, doctor's checks; a
real-rclpy test where ROS 2 is sourced. The model is tests/fakes' MeanBackend."""

import importlib.util
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from hostile import png_declaring  # noqa: E402
from fakes import fake_rclpy  # noqa: E402
from fakes.backends import MeanBackend  # noqa: E402
from fakes.sources import DepthCamera  # noqa: E402

from anydepth_edge.errors import HardwareMissing, UserError  # noqa: E402
from anydepth_edge.images import ImageRefused  # noqa: E402
from anydepth_edge.ros2 import messages as m  # noqa: E402
from anydepth_edge.ros2.app import RosOptions, prepare, serve_depth  # noqa: E402
from anydepth_edge.ros2.bag import BagOutlet, check_bag_target  # noqa: E402
from anydepth_edge.runtime.camera import (  # noqa: E402
    CameraModel,
    Intrinsics,
    back_project,
    cropped,
    depth_hw,
    depth_intrinsics,
    fit_to_frame,
    intrinsics_from_camera_info,
    letterboxed,
    load_calibration,
    realsense_intrinsics,
    resized,
)
from anydepth_edge.ros2.doctor import ros2_checks, ros2_ready  # noqa: E402
from anydepth_edge.ros2.node import DepthNode, import_ros, ros_argv, to_ros  # noqa: E402
from anydepth_edge.ros2.publisher import PublishSettings  # noqa: E402
from anydepth_edge.ros2.sources import (  # noqa: E402
    RosImageSource,
    camera_info_topic,
    decode_image,
    parse_ros_source,
)
from anydepth_edge.ros2.topics import TOPICS, check_namespace, resolve, schema_text  # noqa: E402
from anydepth_edge.runtime.loop import RunOptions  # noqa: E402
from anydepth_edge.runtime.processing import Postprocessor, Preprocessor, letterbox_geometry  # noqa: E402
from anydepth_edge.runtime.sources import SourceLost  # noqa: E402



def typestore():
    """rosbags' own ROS 2 Humble definitions, not ours: the independent reader (Python >= 3.10)."""
    typesys = pytest.importorskip("rosbags.typesys")
    return typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)


FRAME_HW, MODEL_HW = (60, 80), (32, 32)
# the calibration the bag tests use: 80x60, f = 100 px, principal point at the image centre
CALIB_YAML = """image_width: 80
image_height: 60
camera_name: test_cam
camera_matrix: {rows: 3, cols: 3, data: [100.0, 0.0, 39.5, 0.0, 100.0, 29.5, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0.0, 0.0, 0.0, 0.0, 0.0]}
rectification_matrix: {rows: 3, cols: 3, data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]}
projection_matrix: {rows: 3, cols: 4, data: [100.0, 0.0, 39.5, 0.0, 0.0, 100.0, 29.5, 0.0, 0.0, 0.0, 1.0, 0.0]}
"""
# (fx, fy, cx, cy) of the published depth, by hand: model grid 32x32 (stretch: x 0.4, y 0.5333;
# letterbox: content 32x24 at scale 0.4, 4 rows of padding above it, cropped off); cv2.resize maps
# pixel centres: c' = (c + 0.5) s - 0.5
HAND_K = {
    ("stretch", "model"): (40.0, 100 * 32 / 60, 15.5, 30 * 32 / 60 - 0.5),
    ("letterbox", "model"): (40.0, 40.0, 15.5, 11.5),
    ("stretch", "frame"): (100.0, 100.0, 39.5, 29.5),
    ("letterbox", "frame"): (100.0, 100.0, 39.5, 29.5),
}
HAND_HW = {("stretch", "model"): (32, 32), ("letterbox", "model"): (24, 32)}


def hdr(ns=1_700_000_000_123_456_789, frame="cam"):
    return m.header(ns, frame)


# ----------------------------------------------------------------------------- messages

def test_header_splits_the_stamp_into_sec_and_nanosec():
    h = hdr()
    assert h == {"stamp": {"sec": 1_700_000_000, "nanosec": 123_456_789}, "frame_id": "cam"}
    assert m.stamp_ns(h) == 1_700_000_000_123_456_789


def test_depth_image_fields():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    depth[1, 2] = np.nan
    msg = m.image_msg(hdr(), depth, "32FC1")
    assert (msg["height"], msg["width"], msg["encoding"], msg["is_bigendian"], msg["step"]) == (3, 4, "32FC1", 0, 16)
    assert msg["data"] == depth.astype("<f4").tobytes() and len(msg["data"]) == 48
    back = m.image_array(msg)
    assert back.dtype == np.float32 and np.array_equal(back, depth, equal_nan=True)
    colour = m.image_msg(hdr(), np.zeros((2, 5, 3), np.uint8), "bgr8")
    assert (colour["step"], len(colour["data"])) == (15, 30)
    with pytest.raises(ValueError, match="3 channel"):
        m.image_msg(hdr(), np.zeros((2, 5), np.uint8), "bgr8")


def test_image_array_honours_step_and_byte_order():
    # mono16, big-endian, rows padded from 6 to 8 bytes: what another machine may publish
    values = np.array([[1, 2, 3], [256, 513, 65535]], dtype=">u2")
    rows = [values[r].tobytes() + b"\xee\xee" for r in range(2)]
    msg = {"height": 2, "width": 3, "encoding": "mono16", "is_bigendian": 1, "step": 8, "data": b"".join(rows)}
    assert np.array_equal(m.image_array(msg), values.astype(np.uint16))
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = {"height": 2, "width": 3, "encoding": "rgb8", "is_bigendian": 0, "step": 12,
              "data": b"".join(rgb[r].tobytes() + b"\0\0\0" for r in range(2))}
    assert np.array_equal(m.image_array(padded), rgb)
    with pytest.raises(UserError, match="step is 5"):
        m.image_array(dict(padded, step=5))
    with pytest.raises(UserError, match="'bayer_rggb8' is not supported"):
        m.image_array(dict(padded, encoding="bayer_rggb8"))


def test_camera_info_fields():
    intr = Intrinsics.pinhole(80, 60, 100.0, 101.0, 39.5, 29.5, d=(0.1, -0.2, 0.0, 0.0, 0.01))
    msg = m.camera_info_msg(hdr(), intr)
    assert (msg["width"], msg["height"], msg["distortion_model"]) == (80, 60, "plumb_bob")
    assert msg["k"] == [100.0, 0.0, 39.5, 0.0, 101.0, 29.5, 0.0, 0.0, 1.0]
    assert msg["p"] == [100.0, 0.0, 39.5, 0.0, 0.0, 101.0, 29.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert msg["r"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] and msg["d"] == [0.1, -0.2, 0.0, 0.0, 0.01]
    assert (msg["binning_x"], msg["binning_y"]) == (0, 0)
    assert msg["roi"] == {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}
    assert all(isinstance(v, float) for v in msg["k"] + msg["p"] + msg["r"])


def decode_cloud(msg):
    """A PointCloud2 to a numpy record array from its own field table (the way any reader does)."""
    fields = {f.name if hasattr(f, "name") else f["name"]: f for f in _get(msg, "fields")}
    formats = {7: "<f4", 6: "<u4"}
    dtype = np.dtype({"names": list(fields), "offsets": [_get(f, "offset") for f in fields.values()],
                      "formats": [formats[_get(f, "datatype")] for f in fields.values()],
                      "itemsize": _get(msg, "point_step")})
    data = np.frombuffer(bytes(_get(msg, "data")), dtype=dtype)
    return data.reshape(_get(msg, "height"), _get(msg, "width"))


def _get(msg, name):
    return msg[name] if isinstance(msg, dict) else getattr(msg, name)


def test_pointcloud_fields_offsets_and_packed_rgb():
    pts = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    pts[1, 1] = np.nan
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[0, 1] = (10, 20, 30)  # b, g, r
    msg = m.pointcloud_msg(hdr(), pts, bgr)
    assert [(f["name"], f["offset"], f["datatype"], f["count"]) for f in msg["fields"]] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert (msg["height"], msg["width"], msg["point_step"], msg["row_step"]) == (2, 3, 16, 48)
    assert msg["is_bigendian"] is False and msg["is_dense"] is False and len(msg["data"]) == 96
    cloud = decode_cloud(msg)
    assert np.array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], -1), pts, equal_nan=True)
    packed = np.frombuffer(cloud["rgb"].tobytes(), "<u4").reshape(2, 3)  # float32 bits: 0x00RRGGBB
    assert packed[0, 1] == (30 << 16) | (20 << 8) | 10 and packed[0, 0] == 0
    plain = m.pointcloud_msg(hdr(), pts[:1, :2] * 0 + 1)
    assert [f["name"] for f in plain["fields"]] == ["x", "y", "z"] and plain["point_step"] == 12
    assert plain["row_step"] == 24 and plain["is_dense"] is True


def test_diagnostics_message():
    msg = m.diagnostics_msg(hdr(), m.WARN, "anydepth_edge: depth", "no depth for 3.0 s", "file:x", {"frames": "5"})
    (status,) = msg["status"]
    assert status["level"] == 1 and status["message"].startswith("no depth")
    assert status["values"] == [{"key": "frames", "value": "5"}]


# ----------------------------------------------------------------------------- intrinsics

def blob(hw, centre, sigma=3.0):
    v, u = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64)
    return np.exp(-((u - centre[0]) ** 2 + (v - centre[1]) ** 2) / (2 * sigma ** 2))


def centroid(img):
    v, u = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return (u * img).sum() / img.sum(), (v * img).sum() / img.sum()


def test_resize_moves_the_principal_point_as_cv2_moves_pixels():
    """A point the camera sees at (u, v) is, after cv2.resize, where the resized K projects it."""
    intr = Intrinsics.pinhole(640, 480, 500.0, 500.0, 300.0, 250.0)
    xyz = np.array([0.3, -0.2, 2.0])
    u, v = (intr.k @ xyz)[:2] / xyz[2]
    for hw in ((256, 256), (120, 160), (96, 200)):
        img = cv2.resize(blob((480, 640), (u, v), sigma=8.0), (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        small = resized(intr, hw)
        expected = (small.k @ xyz)[:2] / xyz[2]
        assert np.allclose(centroid(img), expected, atol=0.05), (hw, centroid(img), expected)
        assert small.hw == hw and np.allclose(small.p[:, :3], small.k)
    r = resized(intr, (240, 320))  # by hand: f x 0.5, c' = (c + 0.5) 0.5 - 0.5
    assert r.focal_centre == pytest.approx((250.0, 250.0, 149.75, 124.75))


def test_letterbox_pads_then_crops_by_whole_pixels():
    intr = Intrinsics.pinhole(640, 480, 500.0, 500.0, 319.5, 239.5)
    box = letterbox_geometry((480, 640), (256, 256))  # content 256x192, 32 rows above it
    canvas = letterboxed(intr, box, (256, 256))
    assert canvas.hw == (256, 256) and canvas.focal_centre == pytest.approx((200.0, 200.0, 127.5, 95.5 + 32))
    content = depth_intrinsics(intr, (256, 256), "letterbox", "model", box)
    assert content.hw == (192, 256) and content.focal_centre == pytest.approx((200.0, 200.0, 127.5, 95.5))
    assert np.allclose(content.k, resized(intr, (192, 256)).k)  # pad + crop = the content's resize
    assert cropped(canvas, 32, 0, 192, 256).focal_centre == pytest.approx(content.focal_centre)
    stretch = depth_intrinsics(intr, (256, 256), "stretch", "model", None)
    assert stretch.focal_centre == pytest.approx((200.0, 500 * 256 / 480, 127.5, 240 * 256 / 480 - 0.5))
    assert depth_intrinsics(intr, (256, 256), "letterbox", "frame", box) is intr
    assert depth_hw((480, 640), (256, 256), "letterbox", "model", box) == (192, 256)
    assert depth_hw((480, 640), (256, 256), "stretch", "model", None) == (256, 256)


def test_a_calibration_is_reused_only_at_its_aspect_ratio():
    calib = Intrinsics.pinhole(1280, 720, 900.0, 900.0, 639.5, 359.5)
    assert fit_to_frame(calib, (720, 1280)) is calib
    half = fit_to_frame(calib, (360, 640))
    assert half.focal_centre == pytest.approx((450.0, 450.0, 319.5, 179.5))
    with pytest.raises(UserError, match="1280x720 but the frames are 640x480"):
        fit_to_frame(calib, (480, 640))
    model = CameraModel(calib, "--camera-info c.yaml")
    assert model.at((360, 640)).focal_centre == pytest.approx(half.focal_centre) and model.at((360, 640)) is model.at((360, 640))


def test_back_projection_is_the_pinhole_model():
    intr = Intrinsics.pinhole(6, 4, 2.0, 4.0, 2.5, 1.5)
    depth = np.arange(1, 25, dtype=np.float32).reshape(4, 6)
    depth[0, 2] = np.nan
    depth[2, 2] = -1.0
    pts = back_project(depth, intr, step=2)
    assert pts.shape == (2, 3, 3)
    for i, v in enumerate((0, 2)):
        for j, u in enumerate((0, 2, 4)):
            z = depth[v, u]
            if not z > 0:
                assert np.isnan(pts[i, j]).all()
                continue
            assert np.allclose(pts[i, j], [(u - 2.5) * z / 2.0, (v - 1.5) * z / 4.0, z])
    with pytest.raises(ValueError, match="differ in size"):
        back_project(depth[:3], intr)


def test_calibration_yaml(tmp_path):
    good = tmp_path / "cam.yaml"
    good.write_text(CALIB_YAML)
    intr = load_calibration(str(good))
    assert intr.hw == (60, 80) and intr.focal_centre == pytest.approx((100.0, 100.0, 39.5, 29.5))
    assert intr.d == (0.0,) * 5 and intr.distortion_model == "plumb_bob" and intr.p.shape == (3, 4)
    minimal = tmp_path / "min.yaml"  # rectification and projection are optional
    minimal.write_text("image_width: 80\nimage_height: 60\ncamera_matrix: {data: [50, 0, 40, 0, 50, 30, 0, 0, 1]}\n")
    assert np.allclose(load_calibration(str(minimal)).p[:, :3], load_calibration(str(minimal)).k)
    for text, needle in [
        ("image_width: 80\n", "no image_height, camera_matrix"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: {data: [1, 2]}\n", "needs 9 finite numbers, has 2"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: {data: [0,0,0,0,0,0,0,0,0]}\n", "finite focal lengths"),
        ("image_width: x\nimage_height: 60\ncamera_matrix: [1,0,0,0,1,0,0,0,1]\n", "whole numbers"),
        ("a: [\n", "not valid YAML"), ("- 1\n", "not a camera_info YAML"),
        # issue 23.7/23.12/23.18: what a hostile or broken file did
        ("a: &x [1, 1]\nb: &y [*x, *x]\n" + "image_width: *y\n", "aliases"),  # billion laughs, one level
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("image_width: .inf\nimage_height: 60\ncamera_matrix: [1,0,0,0,1,0,0,0,1]\n", "whole numbers"),
        ("image_width: true\nimage_height: 60\ncamera_matrix: [1,0,0,0,1,0,0,0,1]\n", "whole numbers"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: [1e-300,0,40,0,1e-300,30,0,0,1]\n", "focal lengths"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: [50,0,40,0,50,30,0,0,0]\n", "last row"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: [50,0,40,0,50,30,0,0,1]\ndistortion_model: " + "x" * 100,
         "distortion_model"),
        ("image_width: 80\nimage_height: 60\ncamera_matrix: [50,0,40,0,50,30,0,0,1]\ndistortion_coefficients: "
         + str([0] * 2000), "at most 16"),
        ("x: " + "a" * 70000, "over 64 KB"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(UserError, match=needle):
            load_calibration(str(bad))
    with pytest.raises(UserError, match="file not found"):
        load_calibration(str(tmp_path / "none.yaml"))


def test_intrinsics_from_camera_info_and_realsense():
    msg = SimpleNamespace(width=640, height=480, distortion_model="plumb_bob", d=[0.1, 0, 0, 0, 0],
                          k=[600, 0, 320, 0, 610, 240, 0, 0, 1], r=[0] * 9, p=[0] * 12)
    intr = intrinsics_from_camera_info(msg)
    assert intr.focal_centre == pytest.approx((600.0, 610.0, 320.0, 240.0)) and np.allclose(intr.r, np.eye(3))
    assert np.allclose(intr.p[:, :3], intr.k) and intr.d[0] == 0.1
    assert intrinsics_from_camera_info(SimpleNamespace(**dict(vars(msg), k=[0] * 9))) is None  # uncalibrated
    nan_fx = [float("nan")] + msg.k[1:]  # issue 23.12: was accepted and republished
    assert intrinsics_from_camera_info(SimpleNamespace(**dict(vars(msg), k=nan_fx))) is None
    rs_intr = SimpleNamespace(width=640, height=480, fx=615.0, fy=616.0, ppx=321.0, ppy=242.0,
                              model="distortion.inverse_brown_conrady", coeffs=[0.0] * 5)
    stream = SimpleNamespace(as_video_stream_profile=lambda: SimpleNamespace(get_intrinsics=lambda: rs_intr))
    profile = SimpleNamespace(get_stream=lambda s: stream if s == "color" else None)
    source = SimpleNamespace(rs=SimpleNamespace(stream=SimpleNamespace(color="color")),
                             pipeline=SimpleNamespace(get_active_profile=lambda: profile))
    got = realsense_intrinsics(source)
    assert got.focal_centre == pytest.approx((615.0, 616.0, 321.0, 242.0)) and got.distortion_model == "plumb_bob"


# ----------------------------------------------------------------------------- names and definitions

def test_topic_names_resolve_like_rclpy():
    assert resolve("~/depth", "", "anydepth_edge") == "/anydepth_edge/depth"
    assert resolve("~/depth/camera_info", "/robot", "front") == "/robot/front/depth/camera_info"
    assert resolve("/diagnostics", "/robot", "front") == "/diagnostics"
    assert check_namespace("/robot/") == "/robot" and check_namespace("/") == ""
    with pytest.raises(UserError, match="namespace"):
        check_namespace("robot")
    assert camera_info_topic("/cam/color/image_raw") == "/cam/color/camera_info"
    assert camera_info_topic("/cam/image_raw/compressed") == "/cam/camera_info"
    assert camera_info_topic("image_raw") == "camera_info"
    spec = parse_ros_source("ros:/cam/image_raw/compressed?camera_info=/cam/info")
    assert spec.kind == "ros" and spec.live and spec.options == {"compressed": True, "camera_info": "/cam/info"}
    with pytest.raises(UserError, match="not a ROS topic name"):
        parse_ros_source("ros:/cam/1bad")


def test_sources_come_from_one_scheme_table_ros_included():
    """runtime.sources.SCHEMES is the one table of --source schemes; ros2/sources.py adds ros: to it,
    so parse_source (what run and run --ros2 both call) gives the topic's spec, and an unknown
    scheme's message lists what the table holds."""
    from anydepth_edge.runtime.sources import SCHEMES, parse_source

    assert SCHEMES["ros:"]("ros:/x/image_raw", "ros:/x/image_raw").target == "/x/image_raw"
    spec = parse_source(" ROS:/cam/image_raw?camera_info=/cam/info")
    assert type(spec).__name__ == "RosTopicSpec" and spec.target == "/cam/image_raw" and spec.live
    assert parse_source("realsense").kind == "realsense" and parse_source("realsense?width=848").options["width"] == 848
    with pytest.raises(UserError, match=r"unsupported URL scheme \(use csi://, rtsp://, rtsps:// or a path\)"):
        parse_source("http://cam/stream")
    with pytest.raises(UserError, match="not a ROS topic name"):
        parse_source("ros:/cam/1bad")
    # the trial's `run --source ros:/1bad` was told "nothing for ROS 2 to do": the bad topic is said first
    assert_one_line_error(run_cli("run", "--source", "ros:/1bad"), "not a ROS topic name")


@pytest.mark.parametrize("msgtype", sorted({t.msgtype for t in TOPICS.values()}))
def test_bag_schemas_are_the_ros2_definitions(msgtype):
    """Our definitions, parsed by rosbags, equal rosbags' own Humble definitions type by type."""
    store = typestore()
    from rosbags.typesys import get_types_from_msg

    parsed = get_types_from_msg(schema_text(msgtype), msgtype)
    assert msgtype in parsed
    for name, (consts, fields) in parsed.items():
        assert (consts, fields) == tuple(store.fielddefs[name][:2]), name


@pytest.mark.parametrize("pitch,roll", [(0, 0), (15, 0), (0, 10), (-30, 5), (80, -170), (179, 90)])
def test_static_transform_rotation_is_the_mounting(pitch, roll):
    """The quaternion turns the optical axes into the mounting's directions in the body frame, worked
    out by hand: the lens looks forward and `pitch` down; the image's right side points right
    (-y) turned `roll` down; the quaternion is the matrix's (w >= 0)."""
    import math

    from anydepth_edge.ros2.tf import mount_rotation, quaternion

    p, r = math.radians(pitch), math.radians(roll)
    lens = [math.cos(p), 0.0, -math.sin(p)]
    down_level = [math.sin(p), 0.0, math.cos(p)]  # the image's "down" for roll 0: -z body, pitched with the lens
    right = np.cos(r) * np.array([0.0, -1.0, 0.0]) + np.sin(r) * -np.array(down_level)
    R = mount_rotation(pitch, roll)
    assert np.allclose(R[:, 2], lens) and np.allclose(R[:, 0], right, atol=1e-12)
    x, y, z, w = quaternion(R)
    assert w >= 0 and math.isclose(x * x + y * y + z * z + w * w, 1.0)
    u = np.array([x, y, z])
    for axis in range(3):
        v = np.eye(3)[axis]
        rotated = v + 2 * np.cross(u, np.cross(u, v) + w * v)
        assert np.allclose(rotated, R[:, axis], atol=1e-9)


# ----------------------------------------------------------------------------- bags

def read_bag(path):
    """{topic: [(log_time, msg)]} and {topic: (msgtype, schema format)}, decoded by rosbags with
    its own type definitions."""
    store = typestore()
    from rosbags.rosbag2 import Reader

    out, kinds = {}, {}
    with Reader(path) as reader:
        for conn in reader.connections:
            kinds[conn.topic] = (conn.msgtype, conn.msgdef.format.name, conn.ext.serialization_format)
        for conn, log_time, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log_time, store.deserialize_cdr(raw, conn.msgtype)))
    return out, kinds


def depth_of(msg):
    assert msg.encoding == "32FC1" and msg.is_bigendian == 0 and msg.step == 4 * msg.width
    return np.frombuffer(msg.data.tobytes(), "<f4").reshape(msg.height, msg.width)


def image_folder(tmp_path, n=5):
    folder = tmp_path / "imgs"
    folder.mkdir()
    v, u = np.mgrid[0:FRAME_HW[0], 0:FRAME_HW[1]]
    for i in range(n):  # lossless PNGs: the expected depth is recomputed from the same pixels
        img = np.stack([(u * 3 + i * 20) % 256, (v * 4) % 256, np.full_like(u, 40 * i)], -1).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


def expected_depth(image, policy, size):
    """What the bag must hold for `image`: MeanBackend on the runtime's preprocessing, cropped
    (letterbox) on the model's grid, or resized back to the frame."""
    pre = Preprocessor(MODEL_HW, policy)
    raw = MeanBackend(MODEL_HW).infer(pre(image)).copy()
    post = Postprocessor(policy)
    hw = FRAME_HW if size == "frame" else depth_hw(FRAME_HW, MODEL_HW, policy, "model", pre.geometry)
    return post.to_frame(raw, hw, pre.geometry)


def bag_run(tmp_path, policy="stretch", size="model", decimation=2, **ros_kw):
    folder = image_folder(tmp_path)
    calib = tmp_path / "cam.yaml"
    calib.write_text(CALIB_YAML)
    bag = tmp_path / f"{policy}-{size}.mcap"
    opts = RunOptions(resize_policy=policy, pace="none")
    ros = RosOptions(record_bag=str(bag), camera_info=str(calib), **ros_kw,
                     settings=PublishSettings(depth_size=size, points_decimation=decimation))
    spec, calibration, api = prepare(str(folder), opts, ros)
    summary = serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calibration)
    return folder, bag, summary


@pytest.mark.parametrize("policy,size", [("stretch", "model"), ("letterbox", "model"), ("letterbox", "frame")])
def test_file_run_writes_a_bag_rosbags_reads_back(tmp_path, policy, size):
    folder, bag, s = bag_run(tmp_path, policy, size)
    assert s.error is None and s.frames == 5 and s.stages["publish"]["mean"] is not None
    assert any(str(bag) in o and "5 depth" in o for o in s.outputs) and bag.is_file()
    assert not list(tmp_path.glob(".*.partial"))
    msgs, kinds = read_bag(bag)
    assert kinds["/anydepth_edge/depth"] == ("sensor_msgs/msg/Image", "MSG", "cdr")
    assert kinds["/anydepth_edge/points"][0] == "sensor_msgs/msg/PointCloud2"
    assert kinds["/diagnostics"][0] == "diagnostic_msgs/msg/DiagnosticArray"
    depth, info, points = (msgs[f"/anydepth_edge/{t}"] for t in ("depth", "depth/camera_info", "points"))
    assert len(depth) == len(info) == len(points) == s.frames  # one of each per processed frame
    assert "/anydepth_edge/depth/colored" not in msgs and len(msgs["/diagnostics"]) >= 1
    stamps = [m.stamp_ns(d.header) for _, d in depth]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))  # capture times, increasing
    assert [m.stamp_ns(i.header) for _, i in info] == stamps == [m.stamp_ns(p.header) for _, p in points]
    assert abs(stamps[0] - time.time_ns()) < 60e9 and {d.header.frame_id for _, d in depth} == {"camera_optical_frame"}
    log_times = [t for t, _ in depth]
    assert log_times == sorted(log_times)

    fx, fy, cx, cy = HAND_K[(policy, size)]
    for (_, d), (_, ci), (_, pc), path in zip(depth, info, points, sorted(folder.glob("*.png"))):
        image = cv2.imread(str(path))
        values = depth_of(d)
        assert np.allclose(values, expected_depth(image, policy, size), atol=1e-5)
        assert (ci.height, ci.width) == values.shape == HAND_HW.get((policy, size), FRAME_HW)
        assert np.allclose(ci.k, [fx, 0, cx, 0, fy, cy, 0, 0, 1]) and np.allclose(ci.p.reshape(3, 4)[:, :3], ci.k.reshape(3, 3))
        assert ci.distortion_model == "plumb_bob" and list(ci.d) == [0.0] * 5 and np.allclose(ci.r, np.eye(3).ravel())
        cloud = decode_cloud(pc)
        assert (pc.height, pc.width) == values[::2, ::2].shape and pc.header.frame_id == d.header.frame_id
        for v, u in ((0, 0), (4, 6), (values.shape[0] - 2, values.shape[1] - 2)):
            z = values[v, u]  # the pinhole model, by hand, with the hand-computed intrinsics
            point = cloud[v // 2, u // 2]
            assert np.allclose([point["x"], point["y"], point["z"]], [(u - cx) * z / fx, (v - cy) * z / fy, z], rtol=1e-5)
        if size == "frame":  # the points carry the pixel's own colour
            b, g, r = image[4, 6].astype(np.uint32)
            assert np.frombuffer(cloud[2, 3]["rgb"].tobytes(), "<u4")[0] == (r << 16) | (g << 8) | b


def test_bag_for_mcap_readers_and_colored(tmp_path):
    """The header and schema records ROS tools look for, and the optional colour-mapped depth."""
    from mcap.reader import make_reader

    folder = image_folder(tmp_path, n=2)
    bag = tmp_path / "c.mcap"
    opts = RunOptions(pace="none")
    ros = RosOptions(record_bag=str(bag), node_name="front", namespace="/robot",
                     settings=PublishSettings(colored=True, frame_id="front_optical", tf_parent="base_link"))
    spec, calib, api = prepare(str(folder), opts, ros)
    notes = []
    s = serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calib, warn=notes.append)
    assert s.frames == 2 and sum("no camera intrinsics" in n for n in notes) == 1  # said once
    with open(bag, "rb") as fh:
        reader = make_reader(fh)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert {sc.encoding for sc in summary.schemas.values()} == {"ros2msg"}
        assert {ch.message_encoding for ch in summary.channels.values()} == {"cdr"}
    msgs, _ = read_bag(bag)
    assert sorted(msgs) == ["/diagnostics", "/robot/front/depth", "/robot/front/depth/colored",
                            "/robot/front/depth/colored/compressed", "/tf_static"]  # no intrinsics
    (_, c), _ = msgs["/robot/front/depth/colored"]
    assert c.encoding == "bgr8" and (c.height, c.width, c.step) == (32, 32, 96)
    assert c.header.frame_id == "front_optical"
    (_, jc), _ = msgs["/robot/front/depth/colored/compressed"]  # image_transport's JPEG of the same pixels
    raw = np.frombuffer(c.data.tobytes(), np.uint8).reshape(32, 32, 3)
    decoded = cv2.imdecode(np.frombuffer(jc.data.tobytes(), np.uint8), cv2.IMREAD_COLOR)
    assert jc.format == "bgr8; jpeg compressed bgr8" and jc.header == c.header
    assert decoded.shape == raw.shape and np.abs(decoded.astype(int) - raw).mean() < 8
    ((_, tf),) = msgs["/tf_static"]  # once; no floor mounting: the lens at base_link's origin, looking along x
    (t,) = tf.transforms
    assert (t.header.frame_id, t.child_frame_id) == ("base_link", "front_optical")
    r = t.transform.rotation  # the REP 103 body -> optical rotation (static_transform_publisher's -0.5 0.5 -0.5 0.5)
    assert np.allclose([r.x, r.y, r.z, r.w], [-0.5, 0.5, -0.5, 0.5]) and t.transform.translation.z == 0.0


@pytest.mark.parametrize("size", ["frame", "model"])
def test_metric_mode_publishes_metres_and_says_so(tmp_path, size):
    cam = DepthCamera()  # a RealSense-like source whose depth is affine in the brightness
    bag = tmp_path / "m.mcap"
    opts = RunOptions(metric="sensor", reconnect_timeout=0.1)
    ros = RosOptions(record_bag=str(bag), settings=PublishSettings(depth_size=size, points_decimation=0))
    s = serve_depth(MeanBackend(), cam.spec, opts, ros, source=cam)
    msgs, _ = read_bag(bag)
    depth = msgs["/anydepth_edge/depth"]
    assert len(depth) == s.frames and s.metric is not None
    values = depth_of(depth[-1][1])
    assert values.shape == ((30, 40) if size == "frame" else (64, 64))
    assert 0.3 < np.nanmin(values) and np.nanmax(values) < 4.5  # metres, like the sensor (0.5 to 4 m)
    assert {d.header.frame_id for _, d in depth} == {"camera_color_optical_frame"}
    status = msgs["/diagnostics"][-1][1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["depth_mode"] == "metric" and "metric_rmse_m" in values and "inference_ms" in values


def test_bag_target_and_missing_library(tmp_path, monkeypatch):
    (tmp_path / "old.mcap").write_bytes(b"x")
    for name, needle in [("x.bag", "give an .mcap file name"), ("old.mcap", "exists: pass --overwrite")]:
        with pytest.raises(UserError, match=needle):
            check_bag_target(tmp_path / name, overwrite=False, min_free_mb=0)
    assert check_bag_target(tmp_path / "old.mcap", overwrite=True, min_free_mb=0) == tmp_path / "old.mcap"
    monkeypatch.setitem(sys.modules, "mcap_ros2.writer", None)
    with pytest.raises(UserError, match=r"pip install 'anydepth-edge\[ros2\]'"):
        BagOutlet(tmp_path / "n.mcap", False, "", "anydepth_edge")


def test_bad_requests_are_refused_before_the_model(tmp_path):
    folder = image_folder(tmp_path, n=1)
    opts = RunOptions()
    for ros, needle in [
        (RosOptions(), "give --ros2"),
        (RosOptions(record_bag=str(tmp_path / "a.mcap"), node_name="1x"), "node name"),
        (RosOptions(record_bag=str(tmp_path / "a.mcap"), camera_info=str(tmp_path / "no.yaml")), "file not found"),
        (RosOptions(record_bag=str(tmp_path / "a.mcap"), settings=PublishSettings(depth_size="huge")), "depth size"),
        (RosOptions(record_bag=str(tmp_path / "a.mcap"), reliability="maybe"), "--reliability maybe"),
    ]:
        with pytest.raises(UserError, match=needle):
            prepare(str(folder), opts, ros)
    with pytest.raises(UserError, match="--metric sensor needs a RealSense"):
        prepare(str(folder), RunOptions(metric="sensor"), RosOptions(record_bag=str(tmp_path / "a.mcap")))
    assert not list(tmp_path.glob("*.mcap")) and not list(tmp_path.glob(".*.partial"))


# ----------------------------------------------------------------------------- without ROS

def test_no_rclpy_is_one_line_saying_what_to_source(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "rclpy", None)  # what a shell without ROS sourced gives
    with pytest.raises(HardwareMissing) as e:
        import_ros()
    text = str(e.value)
    assert "\n" not in text and "source /opt/ros/<distro>/setup.bash" in text and "ROS image" in text
    folder = image_folder(tmp_path, n=1)
    with pytest.raises(HardwareMissing, match="rclpy comes with ROS"):
        prepare(str(folder), RunOptions(), RosOptions(publish=True))  # a live node needs ROS
    with pytest.raises(HardwareMissing, match="rclpy comes with ROS"):
        prepare("ros:/cam/image_raw", RunOptions(), RosOptions(record_bag=str(tmp_path / "a.mcap")))  # so does a topic
    prepare(str(folder), RunOptions(), RosOptions(record_bag=str(tmp_path / "a.mcap")))  # a bag does not


# ----------------------------------------------------------------------------- the node (fake rclpy)

def unset_fields(msg, path="msg"):
    """Every field of a fake message the code left at the fake's default."""
    found = []
    for name, value in msg.field_values().items():
        if isinstance(value, (str, bytes)) and value in (fake_rclpy.UNSET, b"\x09"):
            found.append(f"{path}.{name}")
        elif isinstance(value, fake_rclpy.Message):
            found += unset_fields(value, f"{path}.{name}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, fake_rclpy.Message):
                    found += unset_fields(item, f"{path}.{name}[{i}]")
    return found


def test_fake_messages_refuse_what_rclpy_refuses():
    """The rclpy fake's messages are typed like rosidl's, so the node's conversions are checked: an
    unknown attribute, an int where a float64 goes, numpy where uint8[] goes, a float for a uint32."""
    img, tf = fake_rclpy.SENSOR["Image"](), fake_rclpy.GEOMETRY["TransformStamped"]()
    with pytest.raises(AttributeError):
        img.heigth = 6  # __slots__: a misspelt field is not silently a new attribute
    for target, name, value in ((img, "height", 6.0), (img, "height", -1), (img, "encoding", b"mono8"),
                                (img, "data", np.zeros(4, np.uint8)), (tf.transform.translation, "z", 0),
                                (tf, "header", {"frame_id": "x"})):
        with pytest.raises(AssertionError):
            setattr(target, name, value)
    img.data = b"\x01\x02"
    assert img.data.typecode == "B" and list(img.data) == [1, 2]  # stored as rclpy stores it


def test_node_wiring_with_a_recording_rclpy(tmp_path, monkeypatch):
    fake = fake_rclpy.install(monkeypatch)
    folder = image_folder(tmp_path)
    calib = tmp_path / "cam.yaml"
    calib.write_text(CALIB_YAML)
    opts = RunOptions(pace="none", resize_policy="letterbox")
    ros = RosOptions(publish=True, camera_info=str(calib), ros_args="-p points_decimation:=4",
                     settings=PublishSettings(colored=True, diagnostics_period=0.001))
    spec, calibration, api = prepare(str(folder), opts, ros)
    s = serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calibration)
    assert s.error is None and s.frames == 5

    assert fake.init_args == ["anydepth-edge", "--ros-args", "-p", "points_decimation:=4"] and fake.shutdowns == 1
    (node,) = fake.nodes
    assert node.name == "anydepth_edge" and node.namespace == "/" and node.destroyed
    params = {k: p.value for k, p in node.parameters.items()}
    assert params == {"depth_mode": "relative", "frame_id": "", "depth_size": "model", "points_decimation": 4,
                      "points_rgb": True, "publish_colored": True, "diagnostics_period": 0.001, "reliability": "reliable",
                      "tf_parent": ""}
    assert node.parameters["depth_mode"].descriptor.read_only and "affine" in node.parameters["depth_mode"].descriptor.description
    sensor, diag = fake_rclpy.SENSOR, fake_rclpy.DIAGNOSTIC
    expected = {"/anydepth_edge/depth": sensor["Image"], "/anydepth_edge/depth/camera_info": sensor["CameraInfo"],
                "/anydepth_edge/points": sensor["PointCloud2"], "/anydepth_edge/depth/colored": sensor["Image"],
                "/anydepth_edge/depth/colored/compressed": sensor["CompressedImage"],
                "/diagnostics": diag["DiagnosticArray"]}
    assert {t: p.msg_type for t, p in node.publishers.items()} == expected
    for topic, pub in node.publishers.items():
        q = pub.qos
        assert (q.history, q.reliability, q.depth) == (
            ("KEEP_LAST", "RELIABLE", 10) if topic == "/diagnostics" else ("KEEP_LAST", "RELIABLE", 1)), topic
    (timer,) = node.timers
    assert timer.period == 0.001
    (executor,) = fake.executors
    assert executor.nodes == [node] and executor.spinning and executor.stopped.is_set()

    sent = {t: p.sent for t, p in node.publishers.items()}
    assert all(len(sent[t]) == 5 for t in expected if t != "/diagnostics") and sent["/diagnostics"]
    for topic, msgs in sent.items():
        for msg in msgs:
            assert unset_fields(msg) == [], topic
    depth = sent["/anydepth_edge/depth"][0]
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", 24, 32, 128)
    assert depth.header.stamp.sec * 10**9 > fake_rclpy.CLOCK_OFFSET_NS  # stamped on the node's clock
    cloud = sent["/anydepth_edge/points"][0]
    assert (cloud.height, cloud.width) == (6, 8) and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    assert sent["/diagnostics"][0].status[0].level == b"\x00"  # a `byte` field, as rclpy wants it


def test_parameters_override_the_cli_and_the_bag_follows_the_node(tmp_path, monkeypatch):
    fake_rclpy.install(monkeypatch)
    folder = image_folder(tmp_path, n=2)
    bag = tmp_path / "b.mcap"
    opts = RunOptions(pace="none")
    ros = RosOptions(publish=True, record_bag=str(bag), reliability="best_effort",
                     ros_args="-r __ns:=/robot -p frame_id:=base_cam -p depth_size:=frame")
    spec, calib, api = prepare(str(folder), opts, ros)
    serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calib)
    msgs, _ = read_bag(bag)
    assert {d.header.frame_id for _, d in msgs["/robot/anydepth_edge/depth"]} == {"base_cam"}
    assert depth_of(msgs["/robot/anydepth_edge/depth"][0][1]).shape == FRAME_HW

    fake = fake_rclpy.install(monkeypatch)
    ros = RosOptions(publish=True, ros_args="-p points_decimation:=2.5")
    spec, calib, api = prepare(str(folder), opts, ros)
    with pytest.raises(UserError, match="ROS parameter points_decimation: .*expecting type 'int'"):
        serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calib)
    assert fake.shutdowns == 1  # ROS shut down however the run ends
    fake = fake_rclpy.install(monkeypatch)
    ros = RosOptions(publish=True, ros_args="-p depth_mode:=metric")
    spec, calib, api = prepare(str(folder), opts, ros)
    with pytest.raises(UserError, match="depth_mode is relative for this run and read-only"):
        serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calib)


def test_best_effort_publishers_and_a_stall_heartbeat(monkeypatch):
    fake_rclpy.install(monkeypatch)
    api = import_ros()
    api.rclpy.init(args=ros_argv(""))
    node = DepthNode(api, "n", "", PublishSettings(diagnostics_period=0.01), publish=True, reliability="best_effort")
    fake_node = node.node
    assert {p.qos.reliability for t, p in fake_node.publishers.items() if t != "/diagnostics"} == {"BEST_EFFORT"}
    from anydepth_edge.ros2.publisher import DepthPublisher

    pub = DepthPublisher([node], node.settings, CameraModel(), lambda f: (0, "x"), MODEL_HW, "stretch", cv2)
    pub.last_sent -= 1.0  # no frame for a second
    pub.heartbeat()
    (msg,) = fake_node.publishers["/diagnostics"].sent
    assert msg.status[0].level == b"\x01" and msg.status[0].message.startswith("no depth for 1.")
    pub.heartbeat()  # once a period, not on every tick
    assert len(fake_node.publishers["/diagnostics"].sent) == 1
    node.shutdown()


# ----------------------------------------------------------------------------- a ROS topic as the source

def image_message(pixels_bgr, stamp, frame="cam_optical", encoding="rgb8"):
    img = pixels_bgr[..., ::-1] if encoding == "rgb8" else pixels_bgr
    msg = fake_rclpy.SENSOR["Image"]()
    to_ros(SimpleNamespace(msg_class=None), msg, m.image_msg(m.header(stamp, frame), img, encoding))
    return msg


def test_ros_topic_source_keeps_the_newest_frame_and_its_stamp(monkeypatch):
    fake_rclpy.install(monkeypatch)
    api = import_ros()
    api.rclpy.init(args=ros_argv(""))
    node = DepthNode(api, "n", "", PublishSettings(), publish=False)
    camera = CameraModel()
    src = RosImageSource(parse_ros_source("ros:/cam/image_raw"), node, cv2, camera, wait_s=0.2)
    image_sub, info_sub = node.node.subscriptions
    assert (image_sub.topic, image_sub.msg_type, info_sub.topic) == ("/cam/image_raw", fake_rclpy.SENSOR["Image"],
                                                                     "/cam/camera_info")
    for sub in (image_sub, info_sub):  # sensor-data QoS
        assert (sub.qos.reliability, sub.qos.history, sub.qos.depth) == ("BEST_EFFORT", "KEEP_LAST", 1)
    frames = [np.full((6, 8, 3), (10 * i, 20, 30), np.uint8) for i in range(3)]
    for i, f in enumerate(frames):
        image_sub.callback(image_message(f, 1000 + i))
    image, aux = src.read()
    assert aux is None and np.array_equal(image, frames[2])  # the newest, decoded from rgb8 to BGR
    assert src.origin(0) == (1002, "cam_optical")
    with pytest.raises(SourceLost, match="no image on /cam/image_raw"):
        src.read()  # nothing newer arrived
    info = fake_rclpy.SENSOR["CameraInfo"]()  # typed as rclpy's: floats in k, r, p
    info.width, info.height, info.distortion_model, info.d = 8, 6, "plumb_bob", []
    info.k, info.r, info.p = [5.0, 0.0, 4.0, 0.0, 5.0, 3.0, 0.0, 0.0, 1.0], [0.0] * 9, [0.0] * 12
    info_sub.callback(info)
    assert camera.at((6, 8)).focal_centre == pytest.approx((5.0, 5.0, 4.0, 3.0))
    node.shutdown()


def test_compressed_and_packed_images_decode(monkeypatch):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :3] = (0, 0, 255)
    ok, png = cv2.imencode(".png", bgr)
    comp = SimpleNamespace(format="png", data=png.tobytes())
    assert np.array_equal(decode_image(comp, True, cv2), bgr)
    with pytest.raises(ImageRefused, match="not a PNG, JPEG"):
        decode_image(SimpleNamespace(format="jpeg", data=b"garbage"), True, cv2)
    mono = SimpleNamespace(**m.image_msg(hdr(), np.full((4, 6), 4660, np.uint16), "mono16"))
    assert decode_image(mono, False, cv2).tolist() == np.full((4, 6, 3), 18, np.uint8).tolist()  # 0x1234 >> 8
    yuyv = SimpleNamespace(**m.image_msg(hdr(), np.full((4, 6, 2), 128, np.uint8), "yuyv"))
    assert decode_image(yuyv, False, cv2).shape == (4, 6, 3)
    with pytest.raises(ImageRefused, match="'32FC1' image"):
        decode_image(SimpleNamespace(**m.image_msg(hdr(), np.zeros((2, 2), np.float32), "32FC1")), False, cv2)


def test_a_hostile_publisher_cannot_stop_or_starve_the_run(monkeypatch):
    """Issue 23.6: one 650 KB CompressedImage declaring 15000x15000 peaked at 3.7 GB; one bayer, 0x0 or
    huge raw image stopped the run. Each is now a skipped frame, said once, and the next good one is used."""
    fake_rclpy.install(monkeypatch)
    api = import_ros()
    api.rclpy.init(args=ros_argv(""))
    node = DepthNode(api, "n", "", PublishSettings(), publish=False)
    warned = []
    src = RosImageSource(parse_ros_source("ros:/cam/image_raw"), node, cv2, None, warn=warned.append, wait_s=0.2)
    (image_sub,) = node.node.subscriptions
    bayer = image_message(np.zeros((4, 4), np.uint8), 1, encoding="mono8")
    bayer.encoding = "bayer_rggb8"
    empty = image_message(np.zeros((4, 4, 3), np.uint8), 2)
    empty.width = empty.height = 0
    huge = image_message(np.zeros((4, 4, 3), np.uint8), 3)
    huge.width = huge.height = 15000
    good = np.full((6, 8, 3), 77, np.uint8)
    for bad in (bayer, empty, huge):
        image_sub.callback(bad)
        threading.Timer(0.05, image_sub.callback, [image_message(good, 9)]).start()
        image, _ = src.read()
        assert np.array_equal(image, good)
    assert src.undecodable == 3 and len(warned) == 3
    assert "bayer_rggb8" in warned[0] and "0x0" in warned[1] and "15000x15000" in warned[2]
    with pytest.raises(ImageRefused, match="15000x15000 pixels"):  # refused from the header: nothing decoded
        decode_image(SimpleNamespace(format="png", data=png_declaring(15000, 15000)), True, cv2)
    node.shutdown()


def test_run_from_a_ros_topic_publishes_with_the_source_stamps(tmp_path, monkeypatch):
    fake = fake_rclpy.install(monkeypatch)
    bag = tmp_path / "t.mcap"
    opts = RunOptions(max_frames=3, reconnect_timeout=5.0)
    ros = RosOptions(publish=True, record_bag=str(bag))
    spec, calib, api = prepare("ros:/cam/image_raw", opts, ros)
    fed, done = [], threading.Event()
    rng = np.random.default_rng(0)

    def camera_driver():  # publishes like a camera node until the run ends
        while not fake.nodes or len(fake.nodes[0].subscriptions) < 2:
            time.sleep(0.005)
        image_sub, info_sub = fake.nodes[0].subscriptions
        info_sub.callback(SimpleNamespace(width=80, height=60, distortion_model="plumb_bob", d=[],
                                          k=[100, 0, 39.5, 0, 100, 29.5, 0, 0, 1], r=[0] * 9, p=[0] * 12))
        stamp = 5 * 10**9
        while not done.is_set():
            stamp += 33_000_000
            fed.append(stamp)
            image_sub.callback(image_message(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), stamp))
            time.sleep(0.03)

    driver = threading.Thread(target=camera_driver, daemon=True)
    driver.start()
    try:
        s = serve_depth(MeanBackend(MODEL_HW), spec, opts, ros, api, calib)
    finally:
        done.set()
        driver.join(5)
    assert s.error is None and s.frames == 3 and s.stopped_by == "max frames"
    msgs, _ = read_bag(bag)
    stamps = [m.stamp_ns(d.header) for _, d in msgs["/anydepth_edge/depth"]]
    assert len(stamps) == 3 and set(stamps) <= set(fed) and stamps == sorted(set(stamps))  # the images' own stamps
    assert {d.header.frame_id for _, d in msgs["/anydepth_edge/depth"]} == {"cam_optical"}
    assert len(msgs["/anydepth_edge/depth/camera_info"]) == 3  # intrinsics from the camera_info topic
    assert [len(p.sent) for t, p in fake.nodes[0].publishers.items() if t == "/anydepth_edge/depth"] == [3]


# ----------------------------------------------------------------------------- doctor

class Probe:
    def __init__(self, *present):
        self.present = set(present)

    def version(self, module):
        return "1.0" if module in self.present else None


def test_doctor_ros2_checks():
    checks = ros2_checks(Probe(), {"ROS_DISTRO": "humble"}, (3, 11))
    ros = checks[0]
    assert ros.status == "missing" and "built for Python 3.10 and this is 3.11" in ros.detail
    assert "/usr/bin/python3" in ros.fix and not ros2_ready(checks)
    none = ros2_checks(Probe(), {}, (3, 10))[0]
    assert none.status == "missing" and "source /opt/ros/<distro>/setup.bash" in none.fix
    good = ros2_checks(Probe("rclpy", "sensor_msgs", "diagnostic_msgs", "rcl_interfaces", "mcap_ros2"),
                       {"ROS_DISTRO": "jazzy", "ROS_DOMAIN_ID": "7"}, (3, 12))
    assert [c.status for c in good] == ["ok", "ok", "info"] and ros2_ready(good) and "ROS_DOMAIN_ID 7" in good[2].detail
    partial = ros2_checks(Probe("rclpy"), {"ROS_DISTRO": "humble"}, (3, 10))
    assert partial[0].status == "wrong" and "ros-humble-ros-base" in partial[0].fix
    assert partial[1].status == "info" and "anydepth-edge[ros2]" in partial[1].fix


# ----------------------------------------------------------------------------- real ROS 2 (skipped without it)

@pytest.mark.skipif(importlib.util.find_spec("rclpy") is None, reason="no ROS 2 sourced (rclpy not importable)")
def test_real_rclpy_node_publishes_what_it_receives():
    api = import_ros()
    api.rclpy.init(args=ros_argv(""))
    node = DepthNode(api, "anydepth_edge_test", "", PublishSettings(), publish=True)
    got = []
    node.subscribe(api.sensor_msgs.Image, "/anydepth_edge_test/depth", got.append)
    node.start()
    try:
        depth = np.arange(12, dtype=np.float32).reshape(3, 4)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            node.publish("depth", m.image_msg(hdr(), depth, "32FC1"))
            time.sleep(0.1)
        assert got and np.array_equal(m.image_array(got[0]), depth) and got[0].header.frame_id == "cam"
    finally:
        node.shutdown()
        api.rclpy.shutdown()


# ----------------------------------------------------------------------------- the CLI (once wired)

@pytest.fixture(scope="module")
def cli_wired():
    if "--record-bag" not in run_cli("run", "--help").stdout:
        pytest.skip("the ROS 2 options are not wired into `anydepth-edge run` yet")


def test_cli_bad_ros_input_is_one_line(cli_wired, tmp_path):
    folder = image_folder(tmp_path, n=1)
    assert_one_line_error(run_cli("run", "--source", folder, "--record-bag", tmp_path / "x.bag"), "give an .mcap")
    assert_one_line_error(run_cli("run", "--source", folder, "--record-bag", tmp_path / "x.mcap", "--camera-info",
                                  tmp_path / "none.yaml"), "file not found")
    if importlib.util.find_spec("rclpy") is None:
        assert_one_line_error(run_cli("run", "--source", folder, "--ros2"), "source /opt/ros/<distro>/setup.bash")


def test_cli_file_run_writes_a_bag(cli_wired, request, tmp_path):
    _, results = request.getfixturevalue("exported")
    folder = image_folder(tmp_path, n=3)
    bag = tmp_path / "cli.mcap"
    proc = run_cli("run", "--source", folder, "--model", results["trt10"].onnx_path, "--record-bag", bag)
    assert proc.returncode == 0, proc.stderr
    msgs, _ = read_bag(bag)
    assert len(msgs["/anydepth_edge/depth"]) == 3 and "run summary: 3 frames" in proc.stdout


def test_a_full_disk_while_finishing_a_bag_says_no_space_and_names_the_partial(tmp_path, monkeypatch):
    """Issue 23.20: the OSError of close() in a `finally` replaced the 'no space left' error (no path, no summary)."""
    import errno
    import io

    from anydepth_edge.ros2 import bag as bag_module

    class FullDisk(io.BufferedWriter):  # the real file, on a disk that fills up as the bag is finished
        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.raw.close()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bag_module, "open", lambda path, mode: FullDisk(io.FileIO(path, "w")), raising=False)
    outlet = BagOutlet(tmp_path / "full.mcap", False, "", "anydepth_edge")
    with pytest.raises(UserError, match=r"no space left to write .*\.full\.mcap\.~rec\d+\.partial"):
        outlet.close()


def test_a_killed_runs_bag_is_recovered_by_the_next_run(tmp_path):
    """kill -9 leaves the partial with the chunks written so far and no summary (ROS tools refuse
    it; the pip install has no `mcap recover`). The next --record-bag of that name keeps its complete
    messages as <stem>.recovered.mcap, readable by rosbags; by hand: python -m anydepth_edge.ros2.recover."""
    from anydepth_edge.ros2 import recover
    from anydepth_edge.ros2.messages import header, image_msg

    bag = tmp_path / "k.mcap"
    outlet = BagOutlet(bag, False, "", "anydepth_edge")
    rng = np.random.default_rng(0)
    frames = [rng.random((128, 128), dtype=np.float32) for _ in range(12)]  # 64 KiB each: several 1 MiB chunks
    for i, depth in enumerate(frames * 3):
        outlet.publish("depth", image_msg(header(i * 10**8, "cam"), depth, "32FC1"), log_ns=i * 10**8)
    killed = tmp_path / f".k.mcap.~rec{2**22 + 7}.partial"  # a pid no process has: its writer is gone
    killed.write_bytes(outlet.tmp.read_bytes()[:-1000])  # what is on disk now, cut inside the last chunk
    outlet.close()
    bag.unlink()
    with pytest.raises(Exception):
        read_bag(killed)  # no summary, a truncated chunk: unreadable as it is
    notes = []
    BagOutlet(bag, False, "", "anydepth_edge", notify=notes.append).close()
    kept = tmp_path / "k.recovered.mcap"
    assert not killed.exists() and len(notes) == 1 and str(kept) in notes[0]
    msgs, _ = read_bag(kept)
    depth = msgs["/anydepth_edge/depth"]
    assert 12 <= len(depth) < 36, len(depth)  # whole chunks kept, the cut one dropped
    for n, (log_time, msg) in enumerate(depth):
        assert log_time == n * 10**8 and np.array_equal(depth_of(msg), frames[n % 12])
    # by hand, and a file with nothing to keep
    again = tmp_path / ".k.mcap.~rec5.partial"
    again.write_bytes(outlet.tmp.read_bytes() if outlet.tmp.exists() else kept.read_bytes())
    assert recover.main([str(again), str(tmp_path / "by-hand.mcap")]) == 0 and not again.exists()
    assert len(read_bag(tmp_path / "by-hand.mcap")[0]["/anydepth_edge/depth"]) == len(depth)
    empty = tmp_path / ".e.mcap.~rec5.partial"
    empty.write_bytes(kept.read_bytes()[:40])
    assert recover.main([str(empty)]) == 1 and not (tmp_path / "e.recovered.mcap").exists()
