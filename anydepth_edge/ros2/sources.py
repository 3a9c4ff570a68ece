"""A ROS 2 image topic as a runtime FrameSource (`--source ros:/camera/color/image_raw`). Python 3.8.

`ros:TOPIC` subscribes to sensor_msgs/Image, or to sensor_msgs/CompressedImage when the topic ends
in /compressed (image_transport's naming), with sensor-data QoS. Latest-frame semantics: the
subscription keeps only the newest message and `read()` decodes only the messages the loop takes,
so a slow model never works through a backlog. The spec is live, so the capture thread also keeps
only the newest frame and treats a silent topic like an unplugged camera (reconnect timeout).
The camera_info beside the image topic (or `?camera_info=TOPIC`) supplies the intrinsics; frames
keep their message's stamp and frame_id for the published headers.
"""

import collections
import threading
from typing import Any, Callable, Optional, Tuple
from urllib.parse import parse_qs

import numpy as np

from anydepth_edge import images
from anydepth_edge.errors import UserError
from anydepth_edge.images import ImageRefused
from anydepth_edge.runtime.camera import CameraModel, intrinsics_from_camera_info
from anydepth_edge.ros2.messages import image_array, stamp_ns
from anydepth_edge.ros2.topics import check_topic
from anydepth_edge.runtime.sources import FrameSource, SourceLost, SourceSpec, register_scheme, scheme_of

SCHEME = "ros:"
WAIT_S = 1.0  # a topic silent this long counts as a lost camera (the loop's reconnect timeout applies)
ORIGINS_KEPT = 64  # stamps of the last frames read: the loop outputs a frame soon after reading it
# image encodings -> the OpenCV conversion to BGR (None: already BGR)
TO_BGR = {"bgr8": None, "8UC3": None, "rgb8": "COLOR_RGB2BGR", "bgra8": "COLOR_BGRA2BGR", "rgba8": "COLOR_RGBA2BGR",
          "mono8": "COLOR_GRAY2BGR", "8UC1": "COLOR_GRAY2BGR", "mono16": "COLOR_GRAY2BGR",
          "yuv422": "COLOR_YUV2BGR_UYVY", "uyvy": "COLOR_YUV2BGR_UYVY",
          "yuv422_yuy2": "COLOR_YUV2BGR_YUY2", "yuyv": "COLOR_YUV2BGR_YUY2"}


class RosTopicSpec(SourceSpec):
    @property
    def live(self) -> bool:
        return True  # a topic is a live camera: newest frame only, a silent one is reconnected / timed out


def is_ros_source(text: str) -> bool:
    return scheme_of(text) == SCHEME


def camera_info_topic(image_topic: str) -> str:
    """image_transport's rule: camera_info sits beside the image topic (/cam/image_raw[/compressed]
    -> /cam/camera_info)."""
    base = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    parent = base.rsplit("/", 1)[0] if "/" in base else ""
    return f"{parent}/camera_info" if parent or base.startswith("/") else "camera_info"


def parse_ros_source(text: str) -> RosTopicSpec:
    """'ros:/camera/color/image_raw' | 'ros:/cam/image_raw/compressed' (| ?camera_info=/other/camera_info)."""
    shown = text.strip()
    topic, _, query = shown[len(SCHEME):].partition("?")
    check_topic(topic, f"--source {shown}")
    q = parse_qs(query)
    info = (check_topic(q["camera_info"][0], f"--source {shown} (camera_info)") if "camera_info" in q
            else camera_info_topic(topic))
    return RosTopicSpec("ros", topic, {"compressed": topic.endswith("/compressed"), "camera_info": info})


register_scheme(SCHEME, lambda text, shown: parse_ros_source(text))  # runtime's one table of --source schemes


def decode_image(msg: Any, compressed: bool, cv2) -> np.ndarray:
    """BGR uint8 of an Image or CompressedImage message; ImageRefused (why) for one this does not take.
    Any participant in the domain can publish, so sizes are checked before anything is allocated."""
    if compressed:
        return images.decode_image(bytes(msg.data), cv2)
    if msg.encoding not in TO_BGR:
        raise ImageRefused(f"a {msg.encoding!r} image (this source takes {', '.join(TO_BGR)}, or the …/compressed topic)")
    too_big = images.check_raw_size(int(msg.width), int(msg.height))
    if too_big:
        raise ImageRefused(f"an image of {too_big}")
    try:
        pixels = image_array(msg)
    except UserError as e:
        raise ImageRefused(str(e)) from None
    if pixels.dtype == np.uint16:  # mono16: the top 8 bits
        pixels = (pixels >> 8).astype(np.uint8)
    code = TO_BGR[msg.encoding]
    return pixels if code is None else cv2.cvtColor(pixels, getattr(cv2, code))


class RosImageSource(FrameSource):
    """`node` is node.DepthNode (its `subscribe`); `camera` receives the topic's camera_info unless a
    calibration was given."""

    def __init__(self, spec: RosTopicSpec, node, cv2, camera: Optional[CameraModel] = None,
                 warn: Callable[[str], None] = lambda s: None, wait_s: float = WAIT_S):
        self.spec, self.cv2, self.warn, self.wait_s = spec, cv2, warn, wait_s
        self.fps = 0.0
        self.cond = threading.Condition()
        self.latest: Any = None
        self.received = self.taken = 0  # message sequence numbers
        self.undecodable = 0
        self.refusals: set = set()
        self.origins: "collections.OrderedDict[int, Tuple[int, str]]" = collections.OrderedDict()
        self.reads = 0
        sensor_msgs = node.api.sensor_msgs
        image_type = sensor_msgs.CompressedImage if spec.options["compressed"] else sensor_msgs.Image
        node.subscribe(image_type, spec.target, self._on_image)
        if camera is not None:
            topic = spec.options["camera_info"]
            node.subscribe(sensor_msgs.CameraInfo, topic,
                           lambda msg: camera.update(intrinsics_from_camera_info(msg), f"camera_info on {topic}"))

    def _on_image(self, msg: Any) -> None:
        # the executor's thread: keep the newest message only, decode nothing here
        with self.cond:
            self.latest = msg
            self.received += 1
            self.cond.notify_all()

    def open(self) -> None:
        pass  # the subscription lives as long as the node

    def _next_message(self) -> Any:
        with self.cond:
            if not self.cond.wait_for(lambda: self.received > self.taken, timeout=self.wait_s):
                raise SourceLost(f"no image on {self.spec.target} for {self.wait_s:.0f} s")
            self.taken = self.received
            return self.latest

    def read(self) -> Tuple[np.ndarray, None]:
        while True:
            msg = self._next_message()
            try:
                image = decode_image(msg, self.spec.options["compressed"], self.cv2)
                break
            except ImageRefused as e:  # one bad message is skipped, not the end of the run
                self.undecodable += 1
                if str(e) not in self.refusals:  # said once per reason
                    self.refusals.add(str(e))
                    self.warn(f"{self.spec.target}: skipped a frame: {e}")
        # the capture thread numbers frames by successful reads: frame.index == this read's number
        self.origins[self.reads] = (stamp_ns(msg.header), msg.header.frame_id)
        self.reads += 1
        while len(self.origins) > ORIGINS_KEPT:
            self.origins.popitem(last=False)
        return image, None

    def origin(self, index: int) -> Tuple[int, str]:
        """(stamp ns, frame_id) of the message frame `index` came from; (0, '') once forgotten."""
        return self.origins.get(index, (0, ""))

    def release(self) -> None:
        pass
