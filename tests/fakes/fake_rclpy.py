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


INT_RANGES = {"uint8": (0, 2**8), "uint32": (0, 2**32), "int32": (-2**31, 2**31)}


class Message:
    """Like rosidl-generated Python messages: `__slots__` (an unknown attribute is an AttributeError)
    and setters that refuse a value of the wrong type (AssertionError, as rclpy's do), converting
    sequences as rclpy stores them (uint8[] -> array('B'), float64[] -> array('d'), float64[N] ->
    a numpy array). FIELDS: name -> (type, default); defaults are set without the check."""

    __slots__ = ()
    FIELDS = {}

    def __init__(self):
        for name, (_kind, default) in self.FIELDS.items():
            object.__setattr__(self, "_" + name, default())

    def field_values(self):
        return {name: getattr(self, name) for name in self.FIELDS}


def _checked(name, kind, value):
    """The value as rclpy would store it, or AssertionError for one a real message refuses."""
    import array

    import numpy as np

    if isinstance(kind, type):  # a nested message
        assert isinstance(value, kind), f"The '{name}' field must be a sub message of type '{kind.__name__}'"
        return value
    if isinstance(kind, tuple):  # ("sequence", message class)
        assert isinstance(value, (list, tuple)) and all(isinstance(v, kind[1]) for v in value), \
            f"The '{name}' field must be a set or sequence and each value of type '{kind[1].__name__}'"
        return list(value)
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        assert isinstance(value, int) and lo <= value < hi, f"The '{name}' field must be an integer in [{lo}, {hi})"
        return value
    if kind == "float64":
        assert isinstance(value, float), f"The '{name}' field must be of type 'float'"
        return value
    if kind == "string":
        assert isinstance(value, str), f"The '{name}' field must be of type 'str'"
        return value
    if kind == "bool":
        assert isinstance(value, bool), f"The '{name}' field must be of type 'bool'"
        return value
    if kind == "byte":
        assert isinstance(value, bytes) and len(value) == 1, f"The '{name}' field must be of type 'bytes' of length 1"
        return value
    if kind == "uint8[]":
        if isinstance(value, array.array):
            assert value.typecode == "B", f"The '{name}' array.array() must have the type code of 'B'"
            return value
        assert isinstance(value, (bytes, bytearray, list, tuple)) and all(isinstance(v, int) and 0 <= v < 256 for v in value), \
            f"The '{name}' field must be a set or sequence and each value of type 'int' in [0, 255]"
        return array.array("B", value)
    if kind == "float64[]":
        assert isinstance(value, (array.array, list, tuple)) and all(isinstance(v, float) for v in value), \
            f"The '{name}' field must be a set or sequence and each value of type 'float'"
        return array.array("d", value)
    if kind.startswith("float64["):  # fixed size: a numpy array in rclpy
        size = int(kind[len("float64["):-1])
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float64 and value.size == size, f"The '{name}' numpy.ndarray() must have the dtype of 'numpy.float64' and a size of {size}"
            return value
        assert isinstance(value, (list, tuple)) and len(value) == size and all(isinstance(v, float) for v in value), \
            f"The '{name}' field must be a set or sequence with length {size} and each value of type 'float'"
        return np.array(value, dtype=np.float64)
    raise ValueError(f"fake_rclpy: unknown field type {kind!r}")


def message(type_name, **fields):
    """A message class; each field is (type, default factory): a type name, a message class, or
    ("sequence", message class)."""
    def accessor(name, kind):
        def get(self):
            return getattr(self, "_" + name)

        def put(self, value):
            object.__setattr__(self, "_" + name, _checked(name, kind, value))

        return property(get, put)

    namespace = {"__slots__": tuple("_" + n for n in fields), "FIELDS": fields}
    namespace.update({n: accessor(n, kind) for n, (kind, _default) in fields.items()})
    return type(type_name, (Message,), namespace)


def unset(kind):
    return (kind, lambda: UNSET)


def nested(cls):
    return (cls, cls)


def sequence(cls):
    return (("sequence", cls), list)


Time = message("Time", sec=unset("int32"), nanosec=unset("uint32"))
Header = message("Header", stamp=nested(Time), frame_id=unset("string"))
RegionOfInterest = message("RegionOfInterest", x_offset=unset("uint32"), y_offset=unset("uint32"),
                           height=unset("uint32"), width=unset("uint32"), do_rectify=unset("bool"))
PointField = message("PointField", name=unset("string"), offset=unset("uint32"), datatype=unset("uint8"),
                     count=unset("uint32"))
SENSOR = {
    "Image": message("Image", header=nested(Header), height=unset("uint32"), width=unset("uint32"),
                     encoding=unset("string"), is_bigendian=unset("uint8"), step=unset("uint32"), data=unset("uint8[]")),
    "CompressedImage": message("CompressedImage", header=nested(Header), format=unset("string"), data=unset("uint8[]")),
    "RegionOfInterest": RegionOfInterest,
    "PointField": PointField,
    "PointCloud2": message("PointCloud2", header=nested(Header), height=unset("uint32"), width=unset("uint32"),
                           fields=sequence(PointField), is_bigendian=unset("bool"), point_step=unset("uint32"),
                           row_step=unset("uint32"), data=unset("uint8[]"), is_dense=unset("bool")),
}
Quaternion = message("Quaternion", x=unset("float64"), y=unset("float64"), z=unset("float64"), w=unset("float64"))
SENSOR["Imu"] = message("Imu", header=nested(Header), orientation=nested(Quaternion))
SENSOR["CameraInfo"] = message("CameraInfo", header=nested(Header), height=unset("uint32"), width=unset("uint32"),
                               distortion_model=unset("string"), d=("float64[]", list),
                               k=("float64[9]", lambda: [0.0] * 9), r=("float64[9]", lambda: [0.0] * 9),
                               p=("float64[12]", lambda: [0.0] * 12), binning_x=unset("uint32"),
                               binning_y=unset("uint32"), roi=nested(RegionOfInterest))
Vector3 = message("Vector3", x=unset("float64"), y=unset("float64"), z=unset("float64"))
Transform = message("Transform", translation=nested(Vector3), rotation=nested(Quaternion))
GEOMETRY = {"Vector3": Vector3, "Quaternion": Quaternion, "Transform": Transform}
GEOMETRY["TransformStamped"] = message("TransformStamped", header=nested(Header), child_frame_id=unset("string"),
                                       transform=nested(Transform))
TF2 = {"TFMessage": message("TFMessage", transforms=sequence(GEOMETRY["TransformStamped"]))}
KeyValue = message("KeyValue", key=unset("string"), value=unset("string"))
DIAGNOSTIC = {
    "KeyValue": KeyValue,
    # rclpy represents a `byte` field as bytes; the fake's default is a level no code sets
    "DiagnosticStatus": message("DiagnosticStatus", level=("byte", lambda: b"\x09"), name=unset("string"),
                                message=unset("string"), hardware_id=unset("string"), values=sequence(KeyValue)),
}
DIAGNOSTIC["DiagnosticArray"] = message("DiagnosticArray", header=nested(Header),
                                        status=sequence(DIAGNOSTIC["DiagnosticStatus"]))


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
