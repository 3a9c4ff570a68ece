"""The rclpy side: importing ROS 2, the node (parameters, publishers, subscriptions, a diagnostics
heartbeat timer, an executor thread) and message dicts turned into rclpy messages.

rclpy comes with a ROS 2 installation (apt, or the ROS image), never from pip: its absence is one
line saying to source /opt/ros/<distro>/setup.bash. Everything rclpy is reached through `RosApi`,
so tests run the same code on a recording stand-in (tests/fakes/fake_rclpy.py). Python 3.8.

QoS: what this node publishes is reliable, keep last 1 by default, which REP 2003 asks of sensor
drivers (both reliable and best-effort subscribers, RViz included, then receive it; nothing queues
behind a slow one); `reliability:=best_effort` trades that for no retransmissions on a weak link.
/diagnostics is reliable with a depth of 10, like diagnostic_updater. Subscriptions to camera topics
are sensor-data QoS: best effort, keep last 1 (the newest frame, never a backlog).
"""

import array
import shlex
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional

from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.ros2.publisher import PublishSettings
from anydepth_edge.ros2.topics import TOPICS

ROS_MISSING = ("ROS 2 is not available to this Python (rclpy comes with ROS, not pip): source "
               "/opt/ros/<distro>/setup.bash first (humble on JetPack 6, jazzy on JetPack 7) or use the ROS image "
               "(docker compose --profile ros2 up); --record-bag FILE.mcap needs no ROS")
RELIABILITIES = ("reliable", "best_effort")
# list fields of the published messages, and the message type of their items
ITEM_TYPES = {"fields": ("sensor_msgs", "PointField"), "status": ("diagnostic_msgs", "DiagnosticStatus"),
              "values": ("diagnostic_msgs", "KeyValue"), "transforms": ("geometry_msgs", "TransformStamped")}


@dataclass
class RosApi:
    rclpy: Any  # init, shutdown
    Node: Any
    Executor: Any  # a single-threaded executor class
    qos: Any  # the rclpy.qos module
    sensor_msgs: Any  # sensor_msgs.msg
    diagnostic_msgs: Any  # diagnostic_msgs.msg
    ParameterDescriptor: Any  # rcl_interfaces.msg.ParameterDescriptor
    tf2_msgs: Any = None  # tf2_msgs.msg, geometry_msgs.msg: /tf_static
    geometry_msgs: Any = None

    def msg_class(self, package: str, name: str) -> Any:
        return getattr({"sensor_msgs": self.sensor_msgs, "diagnostic_msgs": self.diagnostic_msgs,
                        "tf2_msgs": self.tf2_msgs, "geometry_msgs": self.geometry_msgs}[package], name)


def import_ros() -> RosApi:
    """The ROS 2 Python API of the sourced installation; HardwareMissing when there is none."""
    try:
        import rclpy
        import rclpy.qos as qos
        from diagnostic_msgs import msg as diagnostic_msgs
        from geometry_msgs import msg as geometry_msgs
        from rcl_interfaces.msg import ParameterDescriptor
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs import msg as sensor_msgs
        from tf2_msgs import msg as tf2_msgs
    except ImportError as e:
        # A sourced ROS for another Python (humble's rclpy is built for 3.10) fails deeper than 'no rclpy'
        detail = "" if getattr(e, "name", None) == "rclpy" else f" [{e}]"
        raise HardwareMissing(ROS_MISSING + detail) from None
    return RosApi(rclpy, Node, SingleThreadedExecutor, qos, sensor_msgs, diagnostic_msgs, ParameterDescriptor,
                  tf2_msgs, geometry_msgs)


def ros_argv(ros_args: str) -> List[str]:
    """rclpy.init's argv for --ros-args "TEXT" (-p name:=value, -r __ns:=/robot, --log-level ...)."""
    try:
        tokens = shlex.split(ros_args or "")
    except ValueError as e:
        raise UserError(f"--ros-args {ros_args!r}: {e}") from None
    if tokens and tokens[0] != "--ros-args":
        tokens.insert(0, "--ros-args")
    return ["anydepth-edge"] + tokens


def to_ros(api: RosApi, msg: Any, values: Dict[str, Any]) -> Any:
    """Fill rclpy message `msg` from a messages.py dict, nested messages and lists of them included."""
    for name, value in values.items():
        if isinstance(value, dict):
            to_ros(api, getattr(msg, name), value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            item = api.msg_class(*ITEM_TYPES[name])
            setattr(msg, name, [to_ros(api, item(), v) for v in value])
        elif isinstance(value, bytes):
            # rclpy takes array('B') as it is; bytes would be checked element by element (slow)
            data = array.array("B")
            data.frombytes(value)
            setattr(msg, name, data)
        elif isinstance(value, int) and isinstance(getattr(msg, name), bytes):
            setattr(msg, name, bytes([value]))  # a `byte` field (DiagnosticStatus.level) is bytes in rclpy
        else:
            setattr(msg, name, value)
    return msg


class DepthNode:
    """The node: its parameters (the CLI's values are their defaults; --ros-args -p overrides),
    publishers for the topics in topics.TOPICS, subscriptions for a ROS source, the heartbeat timer,
    and an executor spinning in a thread while the loop runs in the main one. It is an outlet for
    DepthPublisher (`publish(kind, msg)`)."""

    def __init__(self, api: RosApi, name: str, namespace: str, settings: PublishSettings, publish: bool,
                 reliability: str = "reliable", warn: Callable[[str], None] = lambda s: None):
        self.api = api
        self.warn = warn
        self.node = api.Node(name, namespace=namespace or None)
        self.settings, self.reliability = self._parameters(settings, reliability)
        self.publishers: Dict[str, Any] = {}
        if publish:
            for kind in self.kinds(self.settings):
                self.publishers[kind] = self.node.create_publisher(
                    api.msg_class(*TOPICS[kind].msgtype.split("/msg/")), TOPICS[kind].name, self._publisher_qos(kind))
        self.timer = None
        self.imu_topic, self.imu_rejected = "", 0  # --metric floor: floor_parameters, follow_imu
        self.spin_error: Optional[str] = None
        self.executor = api.Executor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name="ros-executor", daemon=True)

    @staticmethod
    def kinds(settings: PublishSettings) -> List[str]:
        kinds = ["depth", "camera_info", "diagnostics"]
        if settings.points_decimation:
            kinds.append("points")
        if settings.colored:
            kinds += ["colored", "colored_compressed"]
        if settings.tf_parent:
            kinds.append("tf_static")
        return kinds

    # -- parameters -----------------------------------------------------------------------------
    def _parameters(self, s: PublishSettings, reliability: str):
        """Declare the node's parameters, the run's settings as defaults; read back what ROS set."""
        d = self.api.ParameterDescriptor

        def value(name, default, description, **flags):
            try:
                return self.node.declare_parameter(name, default, d(description=description, **flags)).value
            except Exception as e:  # rclpy's ParameterException family: a wrongly typed -p override
                raise UserError(f"ROS parameter {name}: {e}") from None

        # read-only: which depth this node publishes follows the run (--metric), never switched live
        mode = value("depth_mode", s.depth_mode, "relative: the model's affine-invariant depth (no unit, known only "
                                                 "up to scale and shift); metric: metres (--metric sensor or floor)",
                     read_only=True)
        if mode != s.depth_mode:
            raise UserError(f"ROS parameter depth_mode is {s.depth_mode} for this run and read-only: "
                            "it follows --metric")
        settings = replace(
            s,
            frame_id=value("frame_id", s.frame_id, "header.frame_id of every message; empty: the source's"),
            depth_size=value("depth_size", s.depth_size, "model: the model's grid; frame: the camera frame's size"),
            points_decimation=value("points_decimation", s.points_decimation,
                                    "~/points from every n-th pixel; 0: none"),
            points_rgb=value("points_rgb", s.points_rgb, "colour the points from the camera image"),
            colored=value("publish_colored", s.colored, "also publish ~/depth/colored (bgr8) and its /compressed JPEG"),
            tf_parent=value("tf_parent", s.tf_parent, "publish /tf_static from this frame to frame_id; empty: none"),
            diagnostics_period=float(value("diagnostics_period", s.diagnostics_period, "seconds between /diagnostics")),
        ).check()
        chosen = value("reliability", reliability, "reliable (REP 2003) or best_effort, for the published topics")
        if chosen not in RELIABILITIES:
            raise UserError(f"parameter reliability {chosen!r}: choose {' or '.join(RELIABILITIES)}")
        return settings, chosen

    def floor_parameters(self, floor):
        """--metric floor's mounting as parameters (the CLI's values the defaults; -p overrides), read
        once at start, and imu_topic: a sensor_msgs/Imu whose pitch and roll are added to them live."""
        d = self.api.ParameterDescriptor
        read = {}
        for name, default, description in (
                ("camera_height", float(floor.height_m), "metres from the floor to the lens"),
                ("camera_pitch", float(floor.pitch_deg), "degrees the camera looks down, relative to the IMU's body"),
                ("camera_roll", float(floor.roll_deg), "degrees the image is turned (right side down)"),
                ("imu_topic", "", "a sensor_msgs/Imu of the robot's body (x forward, z up): its pitch and roll are "
                                  "added to camera_pitch / camera_roll each message; empty: none")):
            try:
                read[name] = self.node.declare_parameter(name, default, d(description=description)).value
            except Exception as e:  # a wrongly typed -p override
                raise UserError(f"ROS parameter {name}: {e}") from None
        self.imu_topic = str(read.pop("imu_topic"))
        return replace(floor, height_m=read["camera_height"], pitch_deg=read["camera_pitch"],
                       roll_deg=read["camera_roll"]).check()

    def follow_imu(self, metric) -> None:
        """Each Imu message on `imu_topic` sets the floor fit's pitch and roll: the mounting's plus the
        body's (a robot braking pitches forward: the floor moves in the image)."""
        if not self.imu_topic:
            return
        from anydepth_edge.runtime.floor import pitch_roll_from_quaternion

        mount = (metric.settings.pitch_deg, metric.settings.roll_deg)

        def on_imu(msg) -> None:
            q = msg.orientation
            try:
                pitch, roll = pitch_roll_from_quaternion(q.x, q.y, q.z, q.w)
                metric.set_attitude(mount[0] + pitch, mount[1] + roll)
            except (ValueError, UserError) as e:  # a zero quaternion, an attitude past 89 degrees
                self.imu_rejected += 1
                if self.imu_rejected == 1:
                    self.warn(f"{self.imu_topic}: orientation not used ({e}); the last good one stays")

        self.subscribe(self.api.msg_class("sensor_msgs", "Imu"), self.imu_topic, on_imu)

    # -- QoS ------------------------------------------------------------------------------------
    def _publisher_qos(self, kind: str):
        q = self.api.qos
        if kind == "diagnostics":
            return q.QoSProfile(depth=10, history=q.HistoryPolicy.KEEP_LAST, reliability=q.ReliabilityPolicy.RELIABLE)
        if kind == "tf_static":  # as tf2_ros's StaticTransformBroadcaster: latched for late subscribers
            return q.QoSProfile(depth=1, history=q.HistoryPolicy.KEEP_LAST, reliability=q.ReliabilityPolicy.RELIABLE,
                                durability=q.DurabilityPolicy.TRANSIENT_LOCAL)
        reliability = (q.ReliabilityPolicy.RELIABLE if self.reliability == "reliable"
                       else q.ReliabilityPolicy.BEST_EFFORT)
        return q.QoSProfile(depth=1, history=q.HistoryPolicy.KEEP_LAST, reliability=reliability)

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None]) -> Any:
        """Sensor-data QoS: best effort (matches reliable and best-effort publishers), newest only."""
        q = self.api.qos
        qos = q.QoSProfile(depth=1, history=q.HistoryPolicy.KEEP_LAST, reliability=q.ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_subscription(msg_type, topic, callback, qos)

    # -- outlet ---------------------------------------------------------------------------------
    def publish(self, kind: str, values: Dict[str, Any]) -> None:
        pub = self.publishers.get(kind)
        if pub is not None:
            pub.publish(to_ros(self.api, pub.msg_type(), values))

    def close(self) -> Optional[str]:
        return None  # the node itself is shut down by `shutdown`, after the loop

    # -- running --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.node.get_name()

    @property
    def namespace(self) -> str:
        return self.node.get_namespace().rstrip("/")

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def start(self, heartbeat: Optional[Callable[[], None]] = None) -> None:
        if heartbeat is not None:
            self.timer = self.node.create_timer(self.settings.diagnostics_period, heartbeat)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception as e:  # a callback failed, or ROS shut down under us: say so, never die silently
            self.spin_error = f"ROS executor stopped: {type(e).__name__}: {e}"
            self.warn(self.spin_error)

    def shutdown(self) -> None:
        self.executor.shutdown()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.node.destroy_node()
