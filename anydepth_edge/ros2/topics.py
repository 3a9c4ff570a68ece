"""What is published where (one table for the node and the bag), ROS name rules, and the message
definitions a bag declares for its topics. Pure, Python 3.8.

Topic names are relative to the node (`~/depth` is /<namespace>/<node>/depth), so two instances
differ by node name or namespace; /diagnostics is absolute, where diagnostic aggregators listen.
"""

import re
from dataclasses import dataclass
from typing import Dict, List

from anydepth_edge.errors import UserError

SEPARATOR = "=" * 80  # between a definition and its dependencies (rosbag2 / Foxglove "ros2msg" format)
NAME_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Topic:
    name: str  # relative to the node (~/...) or absolute
    msgtype: str  # ROS 2 type name, pkg/msg/Type
    what: str


TOPICS: Dict[str, Topic] = {
    "depth": Topic("~/depth", "sensor_msgs/msg/Image",
                   "32FC1 depth: relative (the model's affine-invariant units) or metres with --metric; NaN = none"),
    "camera_info": Topic("~/depth/camera_info", "sensor_msgs/msg/CameraInfo",
                         "intrinsics of ~/depth's pixel grid (after the model's resize / letterbox crop)"),
    "points": Topic("~/points", "sensor_msgs/msg/PointCloud2",
                    "organised xyz (+ rgb) cloud from ~/depth, every points_decimation-th pixel"),
    "colored": Topic("~/depth/colored", "sensor_msgs/msg/Image", "bgr8 colour-mapped depth for viewers"),
    # image_transport's name for the compressed form: rqt_image_view and Foxglove pick it up over Wi-Fi
    "colored_compressed": Topic("~/depth/colored/compressed", "sensor_msgs/msg/CompressedImage",
                                "JPEG of ~/depth/colored"),
    "tf_static": Topic("/tf_static", "tf2_msgs/msg/TFMessage",
                       "--tf-parent FRAME -> the depth's frame_id (the camera's mounting), once"),
    "diagnostics": Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray",
                         "per-stage timings, FPS, dropped frames, metric fit"),
}


def check_node_name(name: str) -> str:
    if not NAME_TOKEN.fullmatch(name or ""):
        raise UserError(f"ROS node name {name!r}: letters, digits and _ only, starting with a letter")
    return name


def check_namespace(namespace: str) -> str:
    """'' or '/' (the root), or /a/b: returned without a trailing slash ('' for the root)."""
    ns = (namespace or "").rstrip("/")
    if ns and not (ns.startswith("/") and all(NAME_TOKEN.fullmatch(p) for p in ns[1:].split("/"))):
        raise UserError(f"ROS namespace {namespace!r}: give /name[/name...] (letters, digits and _)")
    return ns


def check_topic(topic: str, option: str) -> str:
    """An absolute or relative topic name (no ~: sources name other nodes' topics)."""
    parts = topic[1:].split("/") if topic.startswith("/") else topic.split("/")
    if not topic or not all(NAME_TOKEN.fullmatch(p) for p in parts):
        raise UserError(f"{option}: {topic!r} is not a ROS topic name (e.g. /camera/color/image_raw)")
    return topic


def resolve(name: str, namespace: str, node: str) -> str:
    """The absolute topic name, as rclpy resolves it for node `node` in `namespace`."""
    if name.startswith("/"):
        return name
    if name.startswith("~"):
        return f"{namespace}/{node}{name[1:]}"
    return f"{namespace}/{name}"


# ------------------------------------------------------------------------------- message definitions
# As in ROS 2 (Humble and Jazzy alike), comments left out.
DEFINITIONS: Dict[str, str] = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "sensor_msgs/Image": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                          "uint8 is_bigendian\nuint32 step\nuint8[] data"),
    "sensor_msgs/RegionOfInterest": "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify",
    "sensor_msgs/CameraInfo": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                               "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                               "uint32 binning_y\nsensor_msgs/RegionOfInterest roi"),
    "sensor_msgs/PointField": ("uint8 INT8 = 1\nuint8 UINT8 = 2\nuint8 INT16 = 3\nuint8 UINT16 = 4\n"
                               "uint8 INT32 = 5\nuint8 UINT32 = 6\nuint8 FLOAT32 = 7\nuint8 FLOAT64 = 8\n"
                               "string name\nuint32 offset\nuint8 datatype\nuint32 count"),
    "sensor_msgs/PointCloud2": ("std_msgs/Header header\nuint32 height\nuint32 width\n"
                                "sensor_msgs/PointField[] fields\nbool is_bigendian\nuint32 point_step\n"
                                "uint32 row_step\nuint8[] data\nbool is_dense"),
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data",
    "geometry_msgs/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1",
    "geometry_msgs/Transform": "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation",
    "geometry_msgs/TransformStamped": ("std_msgs/Header header\nstring child_frame_id\n"
                                       "geometry_msgs/Transform transform"),
    "tf2_msgs/TFMessage": "geometry_msgs/TransformStamped[] transforms",
    "diagnostic_msgs/KeyValue": "string key\nstring value",
    "diagnostic_msgs/DiagnosticStatus": ("byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\n"
                                         "string name\nstring message\nstring hardware_id\n"
                                         "diagnostic_msgs/KeyValue[] values"),
    "diagnostic_msgs/DiagnosticArray": "std_msgs/Header header\ndiagnostic_msgs/DiagnosticStatus[] status",
}


def _short(msgtype: str) -> str:
    """pkg/msg/Type -> pkg/Type (the form used inside definitions)."""
    return msgtype.replace("/msg/", "/")


def _dependencies(short: str, seen: List[str]) -> List[str]:
    """The complex types `short` uses, depth first, each once."""
    for line in DEFINITIONS[short].splitlines():
        used = re.sub(r"\[\d*\]$", "", line.split()[0])
        if "/" in used and used not in seen:
            seen.append(used)
            _dependencies(used, seen)
    return seen


def schema_text(msgtype: str) -> str:
    """The concatenated definition rosbag2 writes into an MCAP schema (encoding ros2msg): the type's
    own, then every type it uses after a separator line and `MSG: pkg/Type`."""
    short = _short(msgtype)
    parts = [DEFINITIONS[short]]
    for dep in _dependencies(short, []):
        parts.append(f"{SEPARATOR}\nMSG: {dep}\n{DEFINITIONS[dep]}")
    return "\n".join(parts) + "\n"
