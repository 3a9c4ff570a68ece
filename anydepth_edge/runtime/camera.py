"""Pinhole intrinsics of the published depth: where they come from (a calibration YAML in the ROS
camera_info format, a camera_info message, the RealSense), how the model's resize policies move
them, and back-projection of depth to points. numpy only (PyYAML for the file), Python 3.8.

Every geometric step is one affine map of the pixel grid applied to K and P (`_mapped`): a resize,
a pad or a crop. Resizes follow cv2.resize's pixel-centre convention (pixel centres map to pixel
centres: u' = (u + 0.5) * s - 0.5), which is what the preprocessor and postprocessor do; crops and
pads shift by whole pixels. R and D do not change (they act on normalised coordinates).
"""

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

from anydepth_edge.errors import UserError

ASPECT_TOLERANCE = 0.01  # a calibration is reused at another resolution only at the same aspect ratio
DEPTH_SIZES = ("model", "frame")  # the published depth: the model's own grid (padding cropped) | the camera frame's


@dataclass
class Intrinsics:
    width: int
    height: int
    k: np.ndarray  # 3x3
    p: np.ndarray  # 3x4
    d: Tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    r: np.ndarray = field(default_factory=lambda: np.eye(3))
    distortion_model: str = "plumb_bob"

    @classmethod
    def pinhole(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float, **kw) -> "Intrinsics":
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(int(width), int(height), k, np.hstack([k, np.zeros((3, 1))]), **kw)

    @property
    def hw(self) -> Tuple[int, int]:
        return self.height, self.width

    @property
    def focal_centre(self) -> Tuple[float, float, float, float]:
        """(fx, fy, cx, cy) of K."""
        k = self.k
        return float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])


def _mapped(intr: Intrinsics, a: np.ndarray, hw: Tuple[int, int]) -> Intrinsics:
    """`intr` for the image whose pixel (u', v', 1) = a @ (u, v, 1) of the original, of size hw."""
    return Intrinsics(int(hw[1]), int(hw[0]), a @ intr.k, a @ intr.p, intr.d, intr.r, intr.distortion_model)


def resized(intr: Intrinsics, hw: Tuple[int, int]) -> Intrinsics:
    """After cv2.resize to hw (each axis scaled on its own: a stretch may change the aspect)."""
    sx, sy = hw[1] / intr.width, hw[0] / intr.height
    a = np.array([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)], [0.0, 0.0, 1.0]])
    return _mapped(intr, a, hw)


def cropped(intr: Intrinsics, top: int, left: int, height: int, width: int) -> Intrinsics:
    """After taking rows top..top+height and columns left..left+width (negative top/left: padding)."""
    a = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
    return _mapped(intr, a, (height, width))


def letterboxed(intr: Intrinsics, box, model_hw: Tuple[int, int]) -> Intrinsics:
    """The model input canvas of the letterbox policy: the frame resized to the content size, then
    padded to model_hw. `box` is processing.Letterbox (top, left, height, width)."""
    return cropped(resized(intr, (box.height, box.width)), -box.top, -box.left, model_hw[0], model_hw[1])


def fit_to_frame(intr: Intrinsics, frame_hw: Tuple[int, int], origin: str = "the calibration") -> Intrinsics:
    """A calibration made at another resolution of the same sensor mode, scaled to the frame's.
    Another aspect ratio means another crop of the sensor: scaling would be wrong, so it is refused."""
    if intr.hw == tuple(frame_hw):
        return intr
    sx, sy = frame_hw[1] / intr.width, frame_hw[0] / intr.height
    if abs(sx - sy) > ASPECT_TOLERANCE * max(sx, sy):
        raise UserError(f"{origin} is for {intr.width}x{intr.height} but the frames are {frame_hw[1]}x{frame_hw[0]} "
                        "(another aspect ratio, so another part of the sensor): calibrate at the camera's resolution")
    return resized(intr, frame_hw)


def check_depth_size(size: str) -> str:
    if size not in DEPTH_SIZES:
        raise UserError(f"depth size {size!r}: choose {' or '.join(DEPTH_SIZES)}")
    return size


def depth_hw(frame_hw: Tuple[int, int], model_hw: Tuple[int, int], policy: str, size: str, box) -> Tuple[int, int]:
    """The published depth's size: the frame's, or the model's grid (letterbox: its content, the
    padding cropped off, as the postprocessor does)."""
    if size == "frame":
        return tuple(frame_hw)
    if policy == "letterbox":
        return box.height, box.width
    return tuple(model_hw)


def depth_intrinsics(intr: Intrinsics, model_hw: Tuple[int, int], policy: str, size: str, box) -> Intrinsics:
    """Intrinsics of the published depth, from `intr` at the frame's size; the same steps the
    pixels took: stretch resizes, letterbox resizes and pads, then the padding is cropped off."""
    if size == "frame":
        return intr
    if policy == "letterbox":
        canvas = letterboxed(intr, box, model_hw)
        return cropped(canvas, box.top, box.left, box.height, box.width)
    return resized(intr, model_hw)


def back_project(depth: np.ndarray, intr: Intrinsics, step: int = 1) -> np.ndarray:
    """(H/step, W/step, 3) float32 points of every step-th pixel: x = (u - cx) z / fx, y = (v - cy) z
    / fy, with K as the image is (a depth_image_proc cloud assumes a rectified image: distortion is
    not undone). Pixels without a valid depth (NaN, Inf, <= 0) are NaN points (REP 117)."""
    if depth.shape != intr.hw:
        raise ValueError(f"depth {depth.shape} and intrinsics {intr.hw} differ in size")
    fx, fy, cx, cy = intr.focal_centre
    z = depth[::step, ::step].astype(np.float32)
    v, u = np.mgrid[0:depth.shape[0]:step, 0:depth.shape[1]:step].astype(np.float32)
    with np.errstate(invalid="ignore"):
        z = np.where(np.isfinite(z) & (z > 0), z, np.float32(np.nan))
    return np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=-1).astype(np.float32)


def point_colours(image: np.ndarray, depth_hw: Tuple[int, int], step: int, cv2) -> np.ndarray:
    """(H/step, W/step, 3) BGR colours of back_project's points: the frame on the depth's grid (the
    model's grid covers the whole frame, stretch and letterbox alike), every step-th pixel."""
    if image.shape[:2] != tuple(depth_hw):
        image = cv2.resize(image, (depth_hw[1], depth_hw[0]), interpolation=cv2.INTER_AREA)
    return image[::step, ::step]


# ------------------------------------------------------------------------------- where they come from

def _numbers(node: Any, what: str, origin: str, count: Optional[int] = None) -> np.ndarray:
    """The finite numbers of a YAML matrix ({rows, cols, data} or a plain list), `count` of them."""
    data = node.get("data") if isinstance(node, dict) else node
    try:
        values = np.array([float(x) for x in data], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{origin}: {what} must be a list of numbers") from None
    if (count is not None and values.size != count) or not np.isfinite(values).all():
        raise UserError(f"{origin}: {what} needs {count or 'only'} finite numbers, has {values.size}")
    return values


MAX_COEFFICIENTS = 16  # ROS's models use 4 (equidistant), 5 (plumb_bob), 8 (rational_polynomial)
MAX_YAML_BYTES = 64 << 10  # a camera_info YAML is ~1 KB
FOCAL_RANGE = (1e-3, 1e7)  # pixels: outside it back-projection over/underflows (fx 1e-300 gave Inf points)


def calibration_problem(width: Any, height: Any, k: np.ndarray, d: Any, model: Any) -> Optional[str]:
    """Why these are not usable intrinsics (None when they are): the one rule for YAML and topics."""
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (width, height)):
        return f"image size {width!r}x{height!r} is not two whole numbers"
    if not (0 < width <= 100_000 and 0 < height <= 100_000):
        return f"image size {width}x{height} is empty or absurd"
    fx, fy = k[0, 0], k[1, 1]
    if not (np.isfinite(k).all() and FOCAL_RANGE[0] <= fx <= FOCAL_RANGE[1] and FOCAL_RANGE[0] <= fy <= FOCAL_RANGE[1]):
        return (f"camera_matrix needs finite focal lengths of {FOCAL_RANGE[0]:g} to {FOCAL_RANGE[1]:g} px, "
                f"has fx {fx:g}, fy {fy:g} (an uncalibrated camera?)")
    if k[2].tolist() != [0.0, 0.0, 1.0]:
        return f"camera_matrix's last row is {k[2].tolist()}, not [0, 0, 1]"
    if not isinstance(model, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,32}", model):
        return "distortion_model must be a name like plumb_bob (letters, digits, _; 32 at most)"
    if len(d) > MAX_COEFFICIENTS:
        return f"{len(d)} distortion coefficients (at most {MAX_COEFFICIENTS})"
    return None


def intrinsics_from_calibration(doc: Any, origin: str) -> Intrinsics:
    """A parsed ROS camera_info YAML (camera_calibration's format: image_width, image_height,
    camera_matrix, distortion_model, distortion_coefficients, rectification_matrix, projection_matrix;
    the last two optional, as in camera_calibration_parsers)."""
    if not isinstance(doc, dict):
        raise UserError(f"{origin}: not a camera_info YAML (expected image_width, camera_matrix, ...)")
    missing = [key for key in ("image_width", "image_height", "camera_matrix") if key not in doc]
    if missing:
        raise UserError(f"{origin}: no {', '.join(missing)} (a ROS camera_info YAML has image_width, image_height, "
                        "camera_matrix)")
    width, height = doc["image_width"], doc["image_height"]
    k = _numbers(doc["camera_matrix"], "camera_matrix", origin, 9).reshape(3, 3)
    coefficients = doc.get("distortion_coefficients") or []
    if isinstance(coefficients, dict):
        coefficients = coefficients.get("data") or []
    if not isinstance(coefficients, list) or len(coefficients) > MAX_COEFFICIENTS:
        raise UserError(f"{origin}: distortion_coefficients must be a list of at most {MAX_COEFFICIENTS} numbers")
    d = tuple(_numbers(coefficients, "distortion_coefficients", origin).tolist())
    model = doc.get("distortion_model") or "plumb_bob"
    problem = calibration_problem(width, height, k, d, model)
    if problem:
        raise UserError(f"{origin}: {problem}")
    r = (_numbers(doc["rectification_matrix"], "rectification_matrix", origin, 9).reshape(3, 3)
         if "rectification_matrix" in doc else np.eye(3))
    p = (_numbers(doc["projection_matrix"], "projection_matrix", origin, 12).reshape(3, 4)
         if "projection_matrix" in doc else np.hstack([k, np.zeros((3, 1))]))
    return Intrinsics(int(width), int(height), k, p, d, r, model)


def _safe_yaml(text: str):
    """yaml.safe_load without aliases (a billion-laughs file expands from a few KB to GB) and with
    nesting bounded by the file's size (64 KB); deep nesting is one error, not a RecursionError."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("aliases (*name) are not taken in a camera_info file")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliases)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def load_calibration(path: str) -> Intrinsics:
    """--camera-info FILE.yaml: one line when the file is missing, unreadable or not a calibration."""
    origin = f"--camera-info {path}"
    try:
        import yaml
    except ImportError:
        raise UserError(f"{origin}: reading it needs PyYAML: pip install 'anydepth-edge[ros2]'") from None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_YAML_BYTES + 1)
        if len(text) > MAX_YAML_BYTES:
            raise UserError(f"{origin}: over {MAX_YAML_BYTES >> 10} KB, not a camera_info file")
        doc = _safe_yaml(text)
    except FileNotFoundError:
        raise UserError(f"{origin}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{origin}: cannot read it ({e})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{origin}: not valid YAML ({str(e).splitlines()[0]})") from None
    return intrinsics_from_calibration(doc, origin)


def intrinsics_from_camera_info(msg: Any) -> Optional[Intrinsics]:
    """A sensor_msgs/CameraInfo (attribute access); None for an uncalibrated camera (K all zero) or
    one whose values are not usable (NaN, absurd focal lengths: any participant can publish)."""
    try:
        k = np.array(msg.k, dtype=np.float64).reshape(3, 3)
        p = np.array(msg.p, dtype=np.float64).reshape(3, 4)
        r = np.array(msg.r, dtype=np.float64).reshape(3, 3)
        d = tuple(float(x) for x in list(msg.d)[: MAX_COEFFICIENTS + 1])
    except (TypeError, ValueError):
        return None
    if calibration_problem(int(msg.width), int(msg.height), k, d, str(msg.distortion_model or "plumb_bob")):
        return None
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        return None
    if not p.any():
        p = np.hstack([k, np.zeros((3, 1))])
    r = r if np.any(r) else np.eye(3)
    return Intrinsics(int(msg.width), int(msg.height), k, p, d, r, str(msg.distortion_model or "plumb_bob"))


def intrinsics_from_realsense(i: Any) -> Intrinsics:
    """pyrealsense2.intrinsics of the colour stream (the depth is aligned to it). Kannala-Brandt is
    ROS's 'equidistant' (4 coefficients); the Brown-Conrady variants are 'plumb_bob', as realsense-ros
    publishes them."""
    fisheye = "kannala" in str(i.model).lower()
    coeffs = tuple(float(c) for c in i.coeffs)[: 4 if fisheye else 5]
    return Intrinsics.pinhole(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, d=coeffs,
                              distortion_model="equidistant" if fisheye else "plumb_bob")


def pinhole_of_fov(hw: Tuple[int, int], hfov_deg: float) -> Intrinsics:
    """An ideal pinhole of this horizontal field of view, principal point at the frame's centre."""
    f = (hw[1] / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics.pinhole(hw[1], hw[0], f, f, (hw[1] - 1) / 2.0, (hw[0] - 1) / 2.0)


def realsense_intrinsics(source) -> Optional[Any]:
    """camera.Intrinsics of a started runtime RealSenseSource's colour stream (the depth is aligned
    to it); None when the device does not say."""
    rs = source.rs
    try:
        profile = source.pipeline.get_active_profile().get_stream(rs.stream.color).as_video_stream_profile()
        return intrinsics_from_realsense(profile.get_intrinsics())
    except RuntimeError:  # pyrealsense2's error for a stream the device does not have
        return None


def fill_from_realsense(source, cameras) -> None:
    """The one rule for both runs (run, run --ros2): on a RealSense source, every camera model
    without a calibration (no --camera-info) takes the device's colour-stream intrinsics, which beat
    a --camera-hfov guess."""
    from anydepth_edge.runtime.sources import RealSenseSource

    waiting = [c for c in cameras if c is not None and c.calibration is None]
    if waiting and isinstance(source, RealSenseSource):
        intr = realsense_intrinsics(source)
        for c in waiting:
            c.update(intr, "the RealSense colour stream")


class CameraModel:
    """The frame's intrinsics as the run goes: a calibration known at start (YAML, RealSense), or
    the latest camera_info of a topic (`update`, from the subscription's thread). Cached per frame
    size, so a folder of images of several sizes works."""

    def __init__(self, calibration: Optional[Intrinsics] = None, origin: str = "the calibration",
                 hfov_deg: Optional[float] = None):
        self._calibration = calibration
        self.origin = origin
        self.hfov_deg = hfov_deg  # no calibration: a pinhole of this horizontal field of view, centred
        self._cache: Dict[Tuple[int, int], Intrinsics] = {}
        self._lock = threading.Lock()

    @property
    def calibration(self) -> Optional[Intrinsics]:
        """The calibration as given (before any fit to a frame size), or None."""
        return self._calibration

    @property
    def known(self) -> bool:
        return self._calibration is not None or self.hfov_deg is not None

    def update(self, intr: Optional[Intrinsics], origin: str) -> None:
        if intr is None:
            return
        with self._lock:
            if self._calibration is None or not _same(self._calibration, intr):
                self._calibration, self.origin, self._cache = intr, origin, {}

    def at(self, frame_hw: Tuple[int, int]) -> Optional[Intrinsics]:
        with self._lock:
            calibration, origin = self._calibration, self.origin
            if calibration is None and self.hfov_deg is not None:
                calibration = pinhole_of_fov(frame_hw, self.hfov_deg)
            if calibration is None:
                return None
            hw = tuple(frame_hw)
            if hw not in self._cache:
                self._cache[hw] = fit_to_frame(calibration, hw, origin)
            return self._cache[hw]


def _same(a: Intrinsics, b: Intrinsics) -> bool:
    return (a.hw == b.hw and np.array_equal(a.k, b.k) and np.array_equal(a.p, b.p) and a.d == b.d
            and a.distortion_model == b.distortion_model)

