"""`run --foxglove [HOST:]PORT`: the depth live in the Foxglove app, without ROS. A DepthLoop sink
that serves, over the Foxglove WebSocket protocol (foxglove-sdk), per frame:

  /anydepth/depth        foxglove.RawImage 32FC1: the frame-size depth (metres with --metric, else
                         relative: the model's affine-invariant units)
  /anydepth/image        foxglove.CompressedImage JPEG: the camera frame
  /anydepth/calibration  foxglove.CameraCalibration of those pixels, when intrinsics are known
  /anydepth/points       foxglove.PointCloud x y z float32 + red green blue alpha uint8, every
                         `step`-th pixel with a valid depth, when intrinsics are known

All in one frame (`frame_id`), stamped with the frame's capture time. The server binds 127.0.0.1
unless a host is given (the viewer's rule); the Foxglove app connects to ws://HOST:PORT. foxglove-sdk
wheels are for Python >= 3.10 (JetPack 6 and 7.2; not JetPack 5's 3.8): `pip install
'anydepth-edge[foxglove]'`.
"""

import time
from typing import Callable, Optional

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.runtime.camera import CameraModel, back_project, point_colours
from anydepth_edge.runtime.server import jpeg, parse_serve, reachable_hosts
from anydepth_edge.runtime.sinks import FrameResult, Sink

OPTION = "--foxglove"
TOPICS = {"depth": "/anydepth/depth", "image": "/anydepth/image", "calibration": "/anydepth/calibration",
          "points": "/anydepth/points"}
POINT_STRIDE = 16  # x, y, z float32 + r, g, b, a uint8


def import_foxglove():
    try:
        import foxglove
        import foxglove.channels
        import foxglove.messages
    except ImportError:
        raise UserError(f"{OPTION} needs foxglove-sdk (Python >= 3.10): pip install 'anydepth-edge[foxglove]'") from None
    return foxglove


class FoxgloveSink(Sink):
    """Started at construction (a busy port is refused before the model loads); `write` per frame
    from the loop's output thread; `close` stops the server and returns the summary line."""

    def __init__(self, address: str, camera: Optional[CameraModel], cv2, frame_id: str = "camera",
                 points_step: int = 4, notify: Callable[[str], None] = lambda s: None,
                 warn: Callable[[str], None] = lambda s: None):
        fg = import_foxglove()
        host, port = parse_serve(address, OPTION)
        self.camera, self.cv2, self.frame_id, self.step = camera, cv2, frame_id, max(1, int(points_step))
        self.msgs = fg.messages
        self.context = fg.Context()  # its own: channels of another sink or test never mix in
        try:
            self.server = fg.start_server(name="anydepth-edge", host=host, port=port, context=self.context)
        except Exception as e:  # the SDK raises its own error for a port in use or a bad host
            raise UserError(f"{OPTION} {address}: cannot serve there ({e})") from None
        ch = fg.channels
        self.channels = {"depth": ch.RawImageChannel(TOPICS["depth"], context=self.context),
                         "image": ch.CompressedImageChannel(TOPICS["image"], context=self.context),
                         "calibration": ch.CameraCalibrationChannel(TOPICS["calibration"], context=self.context),
                         "points": ch.PointCloudChannel(TOPICS["points"], context=self.context)}
        self.host, self.port = host, self.server.port
        self.clock_offset_ns = time.time_ns() - time.perf_counter_ns()  # capture times (perf_counter) -> wall
        self.frames, self.warn, self.warned = 0, warn, False
        where = " or ".join(f"ws://{h}:{self.port}" for h in reachable_hosts(host))  # as the viewer's --serve
        tunnel = f" (from a laptop: ssh -L {self.port}:localhost:{self.port} ROBOT)" if host.startswith("127.") else ""
        notify(f"Foxglove: in the Foxglove app, open connection {where}{tunnel}; topics {', '.join(TOPICS.values())}")

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        ns = self.clock_offset_ns + int(frame.t_capture * 1e9)
        stamp = self.msgs.Timestamp(sec=ns // 10**9, nsec=ns % 10**9)
        d = np.ascontiguousarray(result.depth_frame, dtype=np.float32)
        h, w = d.shape
        common = dict(timestamp=stamp, frame_id=self.frame_id)
        self.channels["depth"].log(self.msgs.RawImage(width=w, height=h, encoding="32FC1", step=w * 4, data=d.tobytes(),
                                                      **common), log_time=ns)
        self.channels["image"].log(self.msgs.CompressedImage(format="jpeg", data=jpeg(self.cv2, frame.image, 85),
                                                             **common), log_time=ns)
        intr = self.camera.at((h, w)) if self.camera is not None else None
        if intr is None and not self.warned:
            self.warned = True
            self.warn(f"no camera intrinsics: {TOPICS['calibration']} and {TOPICS['points']} wait for them; give "
                      "--camera-info FILE.yaml (or use a RealSense)")
        if intr is not None:
            self.channels["calibration"].log(self._calibration(intr, common), log_time=ns)
            self.channels["points"].log(self._cloud(d, frame.image, intr, common), log_time=ns)
        self.frames += 1

    def _calibration(self, intr, common):
        return self.msgs.CameraCalibration(width=intr.hw[1], height=intr.hw[0], distortion_model=intr.distortion_model,
                                           D=[float(v) for v in intr.d], K=[float(v) for v in np.ravel(intr.k)],
                                           R=[float(v) for v in np.ravel(intr.r)], P=[float(v) for v in np.ravel(intr.p)],
                                           **common)

    def _cloud(self, d: np.ndarray, image: np.ndarray, intr, common):
        points = back_project(d, intr, self.step).reshape(-1, 3)
        bgr = point_colours(image, d.shape, self.step, self.cv2).reshape(-1, 3)
        keep = np.isfinite(points).all(axis=1)  # Foxglove draws every point: invalid depth is left out
        packed = np.zeros(int(keep.sum()), dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
        packed["xyz"] = points[keep]
        packed["rgba"][:, :3] = bgr[keep][:, ::-1]  # RGBA byte order, unlike PointCloud2's packed BGRA
        packed["rgba"][:, 3] = 255
        f32, u8 = self.msgs.PackedElementFieldNumericType.Float32, self.msgs.PackedElementFieldNumericType.Uint8
        fields = [self.msgs.PackedElementField(name=n, offset=4 * i, type=f32) for i, n in enumerate("xyz")]
        fields += [self.msgs.PackedElementField(name=n, offset=12 + i, type=u8)
                   for i, n in enumerate(("red", "green", "blue", "alpha"))]
        return self.msgs.PointCloud(point_stride=POINT_STRIDE, fields=fields, data=packed.tobytes(),
                                    pose=self.msgs.Pose(position=self.msgs.Vector3(x=0, y=0, z=0),
                                                        orientation=self.msgs.Quaternion(x=0, y=0, z=0, w=1)),
                                    **common)

    def close(self) -> Optional[str]:
        self.server.stop()
        return f"Foxglove: {self.frames} frames served at ws://{self.host}:{self.port}"
