"""The ROS 2 sink: for each frame the loop outputs, the messages are built once (messages.py) and
handed to every outlet (a live node, an MCAP bag), so what a bag holds is what the robot saw.

Per frame: ~/depth (32FC1), and when intrinsics are known ~/depth/camera_info and ~/points;
~/depth/colored on request; /diagnostics every `diagnostics_period` seconds. The header stamp is
the capture time (the source message's own stamp for a ROS topic), the frame_id a setting.

With --metric, REP 118 wants metres: a frame whose metric fit was refused (sensor blind, too little
floor) is published with NaN depth (REP 117: no reading) and no points, rather than in other units;
such frames are counted and named in the diagnostics, which turn WARN. Python 3.8.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.ros2 import messages as m
from anydepth_edge.runtime.camera import (
    CameraModel,
    back_project,
    check_depth_size,
    depth_hw,
    depth_intrinsics,
    point_colours,
)
from anydepth_edge.runtime.processing import Postprocessor
from anydepth_edge.runtime.server import jpeg
from anydepth_edge.runtime.sinks import FrameResult, Sink

Origin = Callable[[Any], Tuple[int, str]]  # frame -> (stamp ns, frame_id)


@dataclass
class PublishSettings:
    frame_id: str = ""  # "": the source's (a ROS topic's own, else DEFAULT_FRAME_IDS)
    depth_size: str = "model"  # camera.DEPTH_SIZES
    points_decimation: int = 4  # ~/points from every n-th pixel of each n-th row; 0: no cloud
    points_rgb: bool = True
    colored: bool = False
    metric: bool = False
    diagnostics_period: float = 1.0  # seconds
    tf_parent: str = ""  # publish /tf_static tf_parent -> the frame_id (ros2/tf.py); "": none

    def check(self) -> "PublishSettings":
        check_depth_size(self.depth_size)
        if self.points_decimation < 0:
            raise UserError(f"points decimation {self.points_decimation}: give 0 (no cloud) or a step >= 1")
        if self.diagnostics_period <= 0:
            raise UserError(f"diagnostics period {self.diagnostics_period}: give a positive number of seconds")
        return self

    @property
    def depth_mode(self) -> str:
        return "metric" if self.metric else "relative"


class CaptureClock:
    """Capture times (perf_counter seconds, as the loop records them) as ROS time in ns: one offset
    to `now_ns` (the node's clock, or the wall clock for a bag) taken at start."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns):
        self.now_ns = now_ns
        self.offset = now_ns() - time.perf_counter_ns()

    def stamp(self, t_capture: float) -> int:
        return self.offset + int(t_capture * 1e9)


class DepthPublisher(Sink):
    def __init__(self, outlets: Sequence[Any], settings: PublishSettings, camera: CameraModel, origin: Origin,
                 model_hw: Tuple[int, int], policy: str, cv2, hardware_id: str = "",
                 now_ns: Callable[[], int] = time.time_ns, warn: Callable[[str], None] = lambda s: None,
                 mount: Tuple[float, float, float] = (0.0, 0.0, 0.0)):
        self.outlets = list(outlets)
        self.settings = settings.check()
        self.camera, self.origin = camera, origin
        self.model_hw, self.policy = tuple(model_hw), policy
        self.post, self.cv2 = Postprocessor(policy), cv2  # the loop's crop and colour map, for the model's grid
        self.hardware_id = hardware_id
        self.now_ns, self.warn = now_ns, warn
        self.stats: Callable[[], Dict[str, Any]] = dict  # the loop's live_stats, once the loop exists
        self.published = 0
        self.unpublished = 0  # metric mode: frames whose fit was refused (published as NaN)
        self.last_sent = time.monotonic()
        self.last_diagnostics = 0.0
        self.warned_no_intrinsics = False
        self.mount = tuple(mount)  # height m, pitch and roll degrees for /tf_static (--metric floor's)
        self.tf_sent = False
        self.lock = threading.Lock()  # frames (output thread) and heartbeats (node timer) share the outlets

    # -- per frame ------------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        """One frame's messages from its result (runtime/sinks.FrameResult)."""
        s, frame, fit = self.settings, result.frame, result.fit
        refused = s.metric and fit is None
        if refused:
            self.unpublished += 1
        stamp, frame_id = self.origin(frame)
        hdr = m.header(stamp, frame_id)
        d, coloured = self._depth(result)
        msgs = [("depth", m.image_msg(hdr, d, "32FC1"))]
        if s.tf_parent and not self.tf_sent:  # once, with the first frame's frame_id (a ROS source's own)
            from anydepth_edge.ros2.tf import static_transform

            msgs.insert(0, ("tf_static", static_transform(hdr, s.tf_parent, frame_id, *self.mount)))
            self.tf_sent = True
        intr = self._intrinsics(frame)
        if intr is not None:
            msgs.append(("camera_info", m.camera_info_msg(hdr, intr)))
            if s.points_decimation and not refused:
                msgs.append(("points", self._cloud(hdr, frame.image, d, intr)))
        if s.colored:
            msgs.append(("colored", m.image_msg(hdr, coloured, "bgr8")))
            encoded = jpeg(self.cv2, coloured, quality=85)  # the viewer's encoder
            if encoded:
                msgs.append(("colored_compressed", m.compressed_image_msg(hdr, encoded)))
        now = time.monotonic()
        if now - self.last_diagnostics >= s.diagnostics_period:
            msgs.append(("diagnostics", self._diagnostics(m.WARN, "metric fit refused: depth is NaN") if refused
                          else self._diagnostics(m.OK, "publishing")))
        self._send(msgs, now)
        self.published += 1

    def _depth(self, result: FrameResult) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The depth to publish and its colours: the frame-size one the loop made, or the model's grid
        (letterbox padding cropped off) with the same metric fit."""
        frame, fit = result.frame, result.fit
        if self.settings.depth_size == "frame":
            d, coloured = result.depth_frame, result.colour
        else:
            hw = depth_hw(frame.image.shape[:2], self.model_hw, self.policy, "model", frame.geometry)
            if self.settings.metric and fit is None:  # refused: no metric depth, as the loop's frame-size one
                d = np.full(hw, np.nan, np.float32)
            else:
                d = self.post.to_frame(result.depth, hw, frame.geometry)
                d = fit.apply(d) if fit is not None else d
            coloured = self.post.colourise(d) if self.settings.colored else None
        if self.settings.metric:
            # REP 117: the fit clamps to 0 m where it goes negative; that is no valid depth, so NaN
            d = np.where(d > 0, d, np.float32(np.nan))
        return d.astype(np.float32, copy=False), coloured

    def _intrinsics(self, frame):
        intr = self.camera.at(frame.image.shape[:2])
        if intr is None:
            if not self.warned_no_intrinsics:
                self.warned_no_intrinsics = True
                self.warn("no camera intrinsics (yet): ~/depth/camera_info and ~/points wait for them; give "
                          "--camera-info FILE.yaml, a RealSense, or a ROS source with a camera_info topic")
            return None
        return depth_intrinsics(intr, self.model_hw, self.policy, self.settings.depth_size, frame.geometry)

    def _cloud(self, hdr, image: np.ndarray, d: np.ndarray, intr) -> Dict[str, Any]:
        step = self.settings.points_decimation
        points = back_project(d, intr, step)
        bgr = point_colours(image, d.shape, step, self.cv2) if self.settings.points_rgb else None
        return m.pointcloud_msg(hdr, points, bgr)

    # -- diagnostics ----------------------------------------------------------------------------
    def _diagnostics(self, level: int, message: str) -> Dict[str, Any]:
        stats = self.stats()
        values = {"depth_mode": self.settings.depth_mode, "published": str(self.published),
                  "frames": str(stats.get("frames", 0)), "dropped": str(stats.get("dropped", 0))}
        if stats.get("loop_fps"):
            values["loop_fps"] = f"{stats['loop_fps']:.2f}"
        for stage, summary in (stats.get("stages") or {}).items():
            if summary.get("mean") is not None:
                values[f"{stage}_ms"] = f"mean {summary['mean']:.2f}, p90 {summary['p90']:.2f}"
        if self.settings.metric:
            values["metric_refused_frames"] = str(self.unpublished)
            for key, value in (stats.get("metric") or {}).items():
                values[f"metric_{key}"] = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        return m.diagnostics_msg(m.header(self.now_ns(), self.settings.frame_id), level,
                                 "anydepth_edge: depth", message, self.hardware_id, values)

    def heartbeat(self) -> None:
        """From the node's timer: when frames stop (a stalled camera or topic), say so on /diagnostics
        every period rather than fall silent."""
        period = self.settings.diagnostics_period
        now = time.monotonic()
        if now - self.last_sent > 2 * period and now - self.last_diagnostics >= period:
            self._send([("diagnostics", self._diagnostics(m.WARN, f"no depth for {now - self.last_sent:.1f} s"))],
                       None)

    def _send(self, msgs: List[Tuple[str, Dict[str, Any]]], frame_time: Optional[float]) -> None:
        with self.lock:
            for outlet in self.outlets:
                for kind, msg in msgs:
                    outlet.publish(kind, msg)
            if frame_time is not None:
                self.last_sent = frame_time
            if any(kind == "diagnostics" for kind, _ in msgs):
                self.last_diagnostics = time.monotonic()

    def close(self) -> Optional[str]:
        """Closes the outlets; their summary lines joined (the bag's file, what it holds)."""
        lines = [line for line in (outlet.close() for outlet in self.outlets) if line]
        return "; ".join(lines) or None
