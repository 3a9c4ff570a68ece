"""A recording stand-in for the rclpy surface anydepth_edge.ros2 uses: rclpy.init / shutdown, Node
(parameters, publishers, subscriptions, timers, clock, names), QoS profiles, an executor, and the
message classes. `install(monkeypatch)` puts it in sys.modules as rclpy, sensor_msgs.msg, ...

Its defaults differ from what the code sets (QoS: system default, keep all, depth 1000; message
fields: UNSET), so a setting the code forgets shows in the recording. `-p name:=value` and
`-r __ns:=/ns` in rclpy.init's args apply as in ROS, an override of another type is refused as
rclpy refuses it. Nothing is sent anywhere: tests read `FakeRos.nodes[0].publishers[topic].sent`
and call subscription / timer callbacks themselves.
"""

import sys
import threading
import time
import types

UNSET = "<unset>"
CLOCK_OFFSET_NS = 10 ** 15  # the fake node's clock differs from the wall clock: stamps show which was used


class Message:
    FIELDS = {}  # name -> default factory

    def __init__(self):
        for name, default in self.FIELDS.items():
            setattr(self, name, default())


def message(type_name, **fields):
    return type(type_name, (Message,), {"FIELDS": fields})


Time = message("Time", sec=lambda: UNSET, nanosec=lambda: UNSET)
Header = message("Header", stamp=Time, frame_id=lambda: UNSET)
SENSOR = {
    "Image": message("Image", header=Header, height=lambda: UNSET, width=lambda: UNSET, encoding=lambda: UNSET,
                     is_bigendian=lambda: UNSET, step=lambda: UNSET, data=lambda: UNSET),
    "CompressedImage": message("CompressedImage", header=Header, format=lambda: UNSET, data=lambda: UNSET),
    "RegionOfInterest": message("RegionOfInterest", x_offset=lambda: UNSET, y_offset=lambda: UNSET,
                                height=lambda: UNSET, width=lambda: UNSET, do_rectify=lambda: UNSET),
    "PointField": message("PointField", name=lambda: UNSET, offset=lambda: UNSET, datatype=lambda: UNSET,
                          count=lambda: UNSET),
    "PointCloud2": message("PointCloud2", header=Header, height=lambda: UNSET, width=lambda: UNSET, fields=list,
                           is_bigendian=lambda: UNSET, point_step=lambda: UNSET, row_step=lambda: UNSET,
                           data=lambda: UNSET, is_dense=lambda: UNSET),
}
Quaternion = message("Quaternion", x=lambda: UNSET, y=lambda: UNSET, z=lambda: UNSET, w=lambda: UNSET)
SENSOR["Imu"] = message("Imu", header=Header, orientation=Quaternion)
SENSOR["CameraInfo"] = message("CameraInfo", header=Header, height=lambda: UNSET, width=lambda: UNSET,
                               distortion_model=lambda: UNSET, d=list, k=lambda: [0.0] * 9, r=lambda: [0.0] * 9,
                               p=lambda: [0.0] * 12, binning_x=lambda: UNSET, binning_y=lambda: UNSET,
                               roi=SENSOR["RegionOfInterest"])
Vector3 = message("Vector3", x=lambda: UNSET, y=lambda: UNSET, z=lambda: UNSET)
GEOMETRY = {"Vector3": Vector3, "Quaternion": Quaternion,
            "Transform": message("Transform", translation=Vector3, rotation=Quaternion)}
GEOMETRY["TransformStamped"] = message("TransformStamped", header=Header, child_frame_id=lambda: UNSET,
                                       transform=GEOMETRY["Transform"])
TF2 = {"TFMessage": message("TFMessage", transforms=list)}
DIAGNOSTIC = {
    "KeyValue": message("KeyValue", key=lambda: UNSET, value=lambda: UNSET),
    # rclpy represents a `byte` field as bytes
    "DiagnosticStatus": message("DiagnosticStatus", level=lambda: b"\x09", name=lambda: UNSET, message=lambda: UNSET,
                                hardware_id=lambda: UNSET, values=list),
}
DIAGNOSTIC["DiagnosticArray"] = message("DiagnosticArray", header=Header, status=list)


class ParameterDescriptor:
    def __init__(self, description="", read_only=False):
        self.description, self.read_only = description, read_only


class InvalidParameterTypeException(Exception):
    pass


class Enum:
    def __init__(self, *names):
        for n in names:
            setattr(self, n, n)


ReliabilityPolicy = Enum("RELIABLE", "BEST_EFFORT", "SYSTEM_DEFAULT")
HistoryPolicy = Enum("KEEP_LAST", "KEEP_ALL", "SYSTEM_DEFAULT")
DurabilityPolicy = Enum("TRANSIENT_LOCAL", "VOLATILE", "SYSTEM_DEFAULT")


class QoSProfile:
    def __init__(self, depth=1000, history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.SYSTEM_DEFAULT,
                 durability=DurabilityPolicy.SYSTEM_DEFAULT):
        self.depth, self.history, self.reliability, self.durability = depth, history, reliability, durability


class Publisher:
    def __init__(self, msg_type, topic, qos):
        self.msg_type, self.topic, self.qos = msg_type, topic, qos
        self.sent = []

    def publish(self, msg):
        assert isinstance(msg, self.msg_type), (type(msg), self.msg_type)
        self.sent.append(msg)


class Record:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Node:
    def __init__(self, ros, node_name, namespace=None):
        self.ros, self.name = ros, node_name
        self.namespace = ros.remaps.get("__ns", namespace or "/")
        self.parameters, self.publishers, self.subscriptions, self.timers = {}, {}, [], []
        self.destroyed = False
        ros.nodes.append(self)

    def declare_parameter(self, name, value=None, descriptor=None):
        if name in self.parameters:
            raise RuntimeError(f"parameter {name} declared twice")
        chosen = self.ros.overrides.get(name, value)
        if type(chosen) is not type(value):
            raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{chosen}' of type "
                                                f"'{type(chosen).__name__}', expecting type '{type(value).__name__}'")
        self.parameters[name] = Record(value=chosen, descriptor=descriptor)
        return self.parameters[name]

    def create_publisher(self, msg_type, topic, qos):
        pub = self.publishers[self._resolve(topic)] = Publisher(msg_type, topic, qos)
        return pub

    def create_subscription(self, msg_type, topic, callback, qos):
        sub = Record(msg_type=msg_type, topic=topic, callback=callback, qos=qos)
        self.subscriptions.append(sub)
        return sub

    def create_timer(self, period, callback):
        timer = Record(period=period, callback=callback)
        self.timers.append(timer)
        return timer

    def _resolve(self, topic):
        ns = self.namespace.rstrip("/")
        if topic.startswith("/"):
            return topic
        return f"{ns}/{self.name}{topic[1:]}" if topic.startswith("~") else f"{ns}/{topic}"

    def get_name(self):
        return self.name

    def get_namespace(self):
        return self.namespace

    def get_clock(self):
        now = Record(nanoseconds=time.time_ns() + CLOCK_OFFSET_NS)
        return Record(now=lambda: now)

    def destroy_node(self):
        self.destroyed = True


class Executor:
    def __init__(self, ros):
        self.ros, self.nodes, self.stopped = ros, [], threading.Event()
        ros.executors.append(self)

    def add_node(self, node):
        self.nodes.append(node)

    def spin(self):
        self.spinning = True
        self.stopped.wait(30)

    def shutdown(self, timeout_sec=None):
        self.stopped.set()


def _value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


class FakeRos:
    def __init__(self):
        self.init_args = None
        self.shutdowns = 0
        self.nodes, self.executors = [], []
        self.overrides, self.remaps = {}, {}

    def init(self, args=None):
        if self.init_args is not None and self.shutdowns == 0:
            raise RuntimeError("rclpy.init called twice")
        self.init_args = list(args or [])
        flag = None
        for token in self.init_args:
            if token in ("-p", "-r"):
                flag = token
            elif flag:
                name, _, value = token.partition(":=")
                (self.overrides if flag == "-p" else self.remaps)[name] = _value(value) if flag == "-p" else value
                flag = None

    def shutdown(self):
        self.shutdowns += 1

    def modules(self):
        ros = self
        rclpy = types.ModuleType("rclpy")
        rclpy.init, rclpy.shutdown = self.init, self.shutdown
        node_mod = types.ModuleType("rclpy.node")
        node_mod.Node = lambda name, namespace=None: Node(ros, name, namespace)
        qos = types.ModuleType("rclpy.qos")
        qos.QoSProfile, qos.ReliabilityPolicy, qos.HistoryPolicy = QoSProfile, ReliabilityPolicy, HistoryPolicy
        qos.DurabilityPolicy = DurabilityPolicy
        executors = types.ModuleType("rclpy.executors")
        executors.SingleThreadedExecutor = lambda: Executor(ros)
        rclpy.node, rclpy.qos, rclpy.executors = node_mod, qos, executors
        mods = {"rclpy": rclpy, "rclpy.node": node_mod, "rclpy.qos": qos, "rclpy.executors": executors}
        for package, classes in (("sensor_msgs", SENSOR), ("diagnostic_msgs", DIAGNOSTIC), ("geometry_msgs", GEOMETRY),
                                 ("tf2_msgs", TF2),
                                 ("rcl_interfaces", {"ParameterDescriptor": ParameterDescriptor})):
            pkg, msg = types.ModuleType(package), types.ModuleType(f"{package}.msg")
            for name, cls in classes.items():
                setattr(msg, name, cls)
            pkg.msg = msg
            mods.update({package: pkg, f"{package}.msg": msg})
        return mods


def install(monkeypatch) -> FakeRos:
    ros = FakeRos()
    for name, module in ros.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return ros
