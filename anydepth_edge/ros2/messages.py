"""sensor_msgs / diagnostic_msgs messages as plain dicts, built from numpy and read back into numpy.
Pure functions: no ROS installation needed. The same dicts go to the bag writer (mcap-ros2-support
encodes dicts) and, converted field by field, to rclpy (node.py).

Layouts follow the message definitions and REP 117/118: images are row-major with `step` bytes per
row and little-endian samples (is_bigendian 0); a 32FC1 depth holds NaN where there is no valid
depth; a PointCloud2 is organised (height x width, like the depth it came from) with float32 x, y, z
and optionally the PCL convention's packed colour: a float32 field `rgb` whose bits are 0x00RRGGBB.
Readers accept dicts and message objects alike (rclpy, rosbags: attribute access). Python 3.8.
"""

from typing import Any, Dict, List, Optional

import numpy as np

from anydepth_edge.errors import UserError

# sensor_msgs/image_encodings: numpy sample type and channels per pixel
ENCODINGS = {
    "32FC1": ("f4", 1), "16UC1": ("u2", 1), "mono16": ("u2", 1), "mono8": ("u1", 1), "8UC1": ("u1", 1),
    "bgr8": ("u1", 3), "rgb8": ("u1", 3), "8UC3": ("u1", 3), "bgra8": ("u1", 4), "rgba8": ("u1", 4),
    # packed YUV 4:2:2 (two bytes a pixel), as USB camera drivers publish it
    "yuv422": ("u1", 2), "uyvy": ("u1", 2), "yuv422_yuy2": ("u1", 2), "yuyv": ("u1", 2),
}

# sensor_msgs/PointField datatypes (only the one used here)
FLOAT32 = 7
# diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3


def _get(msg: Any, name: str) -> Any:
    return msg[name] if isinstance(msg, dict) else getattr(msg, name)


def header(stamp_ns: int, frame_id: str) -> Dict[str, Any]:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def stamp_ns(msg_header: Any) -> int:
    stamp = _get(msg_header, "stamp")
    return int(_get(stamp, "sec")) * 1_000_000_000 + int(_get(stamp, "nanosec"))


def image_msg(hdr: Dict[str, Any], array: np.ndarray, encoding: str) -> Dict[str, Any]:
    """sensor_msgs/Image of `array` (H x W, or H x W x channels) in `encoding`; rows unpadded."""
    sample, channels = ENCODINGS[encoding]
    a = np.ascontiguousarray(array, dtype=np.dtype(sample).newbyteorder("<"))
    if a.shape[2:] != ((channels,) if channels > 1 else ()) or a.ndim not in (2, 3):
        raise ValueError(f"a {encoding} image has {channels} channel(s), got an array of shape {a.shape}")
    h, w = a.shape[:2]
    return {"header": hdr, "height": h, "width": w, "encoding": encoding, "is_bigendian": 0,
            "step": w * channels * a.dtype.itemsize, "data": a.tobytes()}


def image_array(msg: Any) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as numpy (H x W or H x W x channels, native byte order),
    honouring `step` (padded rows) and `is_bigendian`."""
    encoding = _get(msg, "encoding")
    if encoding not in ENCODINGS:
        raise UserError(f"image encoding {encoding!r} is not supported: publish one of {', '.join(ENCODINGS)}, "
                        "or a compressed topic (…/compressed)")
    sample, channels = ENCODINGS[encoding]
    dtype = np.dtype(sample).newbyteorder(">" if _get(msg, "is_bigendian") else "<")
    h, w, step = int(_get(msg, "height")), int(_get(msg, "width")), int(_get(msg, "step"))
    row = w * channels * dtype.itemsize
    data = np.frombuffer(_get(msg, "data"), dtype=np.uint8)
    if step < row or data.size < step * h:
        raise UserError(f"malformed {encoding} image: {w}x{h} needs rows of {row} bytes, step is {step}, "
                        f"data {data.size} bytes")
    rows = np.ascontiguousarray(data[: step * h].reshape(h, step)[:, :row])
    pixels = rows.view(dtype).reshape((h, w, channels) if channels > 1 else (h, w))
    return pixels.astype(dtype.newbyteorder("="), copy=False)


def compressed_image_msg(hdr: Dict[str, Any], encoded: bytes, fmt: str = "jpeg") -> Dict[str, Any]:
    """sensor_msgs/CompressedImage; `format` as image_transport's compressed plugin writes it for a
    colour image ('bgr8; jpeg compressed bgr8')."""
    return {"header": hdr, "format": f"bgr8; {fmt} compressed bgr8", "data": bytes(encoded)}


def camera_info_msg(hdr: Dict[str, Any], intr) -> Dict[str, Any]:
    """sensor_msgs/CameraInfo of camera.Intrinsics, for an image delivered as it is (no binning,
    no ROI: the image is already the resized / cropped one these intrinsics describe)."""
    return {
        "header": hdr, "height": intr.height, "width": intr.width, "distortion_model": intr.distortion_model,
        "d": [float(x) for x in intr.d], "k": intr.k.astype(float).ravel().tolist(),
        "r": np.asarray(intr.r, dtype=float).ravel().tolist(), "p": intr.p.astype(float).ravel().tolist(),
        "binning_x": 0, "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }


def point_fields(with_rgb: bool) -> List[Dict[str, Any]]:
    names = ("x", "y", "z", "rgb") if with_rgb else ("x", "y", "z")
    return [{"name": n, "offset": 4 * i, "datatype": FLOAT32, "count": 1} for i, n in enumerate(names)]


def pointcloud_msg(hdr: Dict[str, Any], points: np.ndarray, bgr: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """sensor_msgs/PointCloud2 of organised points (H x W x 3 float32, NaN = no point) and optionally
    their colours (H x W x 3 BGR uint8), packed as the PCL convention's float32 `rgb`."""
    h, w = points.shape[:2]
    fields = point_fields(bgr is not None)
    record = np.empty((h, w), dtype=np.dtype({"names": [f["name"] for f in fields],
                                               "formats": ["<f4", "<f4", "<f4", "<u4"][: len(fields)],
                                               "offsets": [f["offset"] for f in fields]}))
    for i, axis in enumerate("xyz"):
        record[axis] = points[..., i]
    if bgr is not None:
        b, g, r = (bgr[..., c].astype(np.uint32) for c in range(3))
        record["rgb"] = (r << 16) | (g << 8) | b
    return {"header": hdr, "height": h, "width": w, "fields": fields, "is_bigendian": False,
            "point_step": record.dtype.itemsize, "row_step": record.dtype.itemsize * w, "data": record.tobytes(),
            "is_dense": bool(np.isfinite(points).all())}


def diagnostics_msg(hdr: Dict[str, Any], level: int, name: str, message: str, hardware_id: str,
                    values: Dict[str, str]) -> Dict[str, Any]:
    """diagnostic_msgs/DiagnosticArray with one status (what /diagnostics aggregators read)."""
    status = {"level": level, "name": name, "message": message, "hardware_id": hardware_id,
              "values": [{"key": k, "value": v} for k, v in values.items()]}
    return {"header": hdr, "status": [status]}
