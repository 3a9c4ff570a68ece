"""Frame sources: V4L2/USB cameras, CSI cameras (nvarguscamerasrc), Intel RealSense (live or a
.bag recording), video files, image folders, RTSP streams.

`parse_source` turns the `--source` text into a SourceSpec (pure, tested); `open_source` opens it
with one clear error when it cannot. A source's `read()` returns (frame BGR uint8, aux) where aux
holds the RealSense depth (metres) aligned to the colour frame, or None. Torch-free, Python 3.8.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import numpy as np

from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.images import IMAGE_EXTS, ImageRefused, read_image_file

# A URL's credentials (everything between :// and the last @ of that word) and secret query values
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)\S*@")
# any parameter whose key holds a secret-like word, after any separator URLs use (?, &, ;, #):
# access_token=, apikey=, pw=, ;password=, #token=, X-Amz-Signature=, ...
SECRET_QUERY = re.compile(r"(?i)([?&;#][\w.-]*?(?:pass|pwd|pw|token|key|secret|auth|sig|cred|session|ticket)[\w.-]*=)"
                          r"[^&;#\s]*")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264", ".h265")


class SourceLost(Exception):
    """A live source stopped delivering (camera unplugged, stream dropped)."""


@dataclass
class SourceSpec:
    kind: str  # v4l2 | csi | realsense | file | folder | rtsp
    target: str  # device path / index, sensor id, serial, file, folder, URL
    options: Dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.kind in ("v4l2", "csi", "rtsp") or (self.kind == "realsense" and not self.options.get("bag"))

    def describe(self) -> str:
        """For messages and /stats.json: 'kind:target (options)', an RTSP URL as it is; never a password."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        where = self.target if self.kind == "rtsp" else f"{self.kind}:{self.target}"
        return redact(where + (f" ({opts})" if opts else ""))


def redact(text: str) -> str:
    """`text` with URL credentials hidden: rtsp://user:pw@cam/x -> rtsp://***@cam/x, ?password=***."""
    return SECRET_QUERY.sub(r"\1***", URL_USERINFO.sub(r"\1***@", text))


def _int_opt(query: Dict[str, List[str]], key: str, default: Optional[int], source: str) -> Optional[int]:
    if key not in query:
        return default
    try:
        return int(query[key][0])
    except ValueError:
        raise UserError(f"--source {source}: option {key}={query[key][0]!r} is not a number") from None


def _csi(s: str, shown: str) -> SourceSpec:
    u = urlparse(s)
    sensor = u.netloc or "0"
    if not re.fullmatch(r"[0-9]+", sensor):  # ASCII digits: isdigit() takes '²', which int() refuses
        raise UserError(f"--source {shown}: CSI sensor id must be a number, e.g. csi://0")
    q = parse_qs(u.query)
    opts = {
        "sensor_id": int(sensor), "mode": _int_opt(q, "mode", None, shown),
        "width": _int_opt(q, "width", 1280, shown), "height": _int_opt(q, "height", 720, shown),
        "fps": _int_opt(q, "fps", 30, shown), "flip": _int_opt(q, "flip", 0, shown),
    }
    return SourceSpec("csi", sensor, opts)


def _realsense(s: str, shown: str) -> SourceSpec:
    rest = s[len("realsense"):].lstrip(":")
    target, _, query = rest.partition("?")
    q = parse_qs(query)
    opts = {"width": _int_opt(q, "width", 640, shown), "height": _int_opt(q, "height", 480, shown),
            "fps": _int_opt(q, "fps", 30, shown), "depth": bool(_int_opt(q, "depth", 0, shown))}
    if target.lower().endswith(".bag"):
        opts["bag"] = True
        opts["depth"] = True  # a recording is for the metric fit: its depth stream is used
        return SourceSpec("realsense", target, opts)
    if target and not re.fullmatch(r"[0-9A-Za-z_-]+", target):
        raise UserError(f"--source {shown}: RealSense serial {target!r} is not a serial number")
    return SourceSpec("realsense", target, opts)


def _rtsp(s: str, shown: str) -> SourceSpec:
    u = urlparse(s)
    if not u.hostname:
        raise UserError(f"--source {shown}: malformed RTSP URL (expected rtsp://host[:port]/path)")
    try:
        u.port  # raises on a bad port
    except ValueError:
        raise UserError(f"--source {shown}: malformed RTSP URL (bad port)") from None
    return SourceSpec("rtsp", s)


# The one table of --source schemes: prefix (lower case) -> parser(text, text as messages show it).
# "realsense:" also takes the bare word. ros2/sources.py adds "ros:" (a topic needs the ROS node, so
# run --ros2's app opens it); the CLI imports it before it parses a source.
SCHEMES: Dict[str, Callable[[str, str], SourceSpec]] = {
    "csi://": _csi, "realsense:": _realsense, "realsense?": _realsense, "rtsp://": _rtsp, "rtsps://": _rtsp,
}


def register_scheme(prefix: str, parser: Callable[[str, str], SourceSpec]) -> None:
    SCHEMES[prefix.lower()] = parser


def scheme_of(text: str) -> Optional[str]:
    """The SCHEMES prefix `text` starts with ('realsense' alone counts as 'realsense:'), or None."""
    lower = (text or "").strip().lower()
    return next((p for p in SCHEMES if lower.startswith(p) or lower == p.rstrip(":")), None)


def parse_source(text: str) -> SourceSpec:
    """'0' | '/dev/video0' | 'csi://0?mode=2&width=1280&height=720&fps=30&flip=0' |
    'realsense' | 'realsense:SERIAL' | 'realsense:rec.bag' (| ?width=&height=&fps=&depth=1) |
    a video file | an image folder | 'rtsp://host[:port]/path' | 'ros:TOPIC' (with ROS 2)."""
    s = (text or "").strip()
    shown = redact(s)  # what messages may print
    if not s:
        raise UserError("--source is empty: give a camera (0, /dev/video0, csi://0, realsense), a file, a folder or an rtsp:// URL")
    if re.fullmatch(r"\d+", s):
        return SourceSpec("v4l2", f"/dev/video{int(s)}", {"index": int(s)})
    if re.fullmatch(r"/dev/video\d+", s):
        return SourceSpec("v4l2", s, {"index": int(s[len("/dev/video"):])})
    scheme = scheme_of(s)
    if scheme:
        return SCHEMES[scheme](s, shown)
    if "://" in s:
        known = sorted({p.rstrip("?") for p in SCHEMES if p.endswith("://")})
        raise UserError(f"--source {shown}: unsupported URL scheme (use {', '.join(known)} or a path)")
    p = Path(s)
    if p.suffix.lower() == ".bag":
        return parse_source("realsense:" + s)
    if p.is_dir():
        return SourceSpec("folder", str(p))
    if p.exists():
        return SourceSpec("file", str(p))
    raise UserError(f"--source {shown}: no such file, folder or camera")


def gstreamer_available(cv2) -> bool:
    info = cv2.getBuildInformation()
    m = re.search(r"GStreamer:\s*(\w+)", info)
    return bool(m and m.group(1).upper() == "YES")


def csi_pipeline(opts: Dict[str, Any]) -> str:
    """nvarguscamerasrc -> NVMM -> nvvidconv -> BGR appsink that keeps only the newest buffer."""
    mode = f" sensor-mode={opts['mode']}" if opts.get("mode") is not None else ""
    return (
        f"nvarguscamerasrc sensor-id={opts['sensor_id']}{mode} ! "
        f"video/x-raw(memory:NVMM), width=(int){opts['width']}, height=(int){opts['height']}, "
        f"framerate=(fraction){opts['fps']}/1, format=(string)NV12 ! "
        f"nvvidconv flip-method={opts['flip']} ! video/x-raw, format=(string)BGRx ! "
        f"videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )


class FrameSource:
    spec: SourceSpec
    fps: float = 0.0

    def open(self) -> None: ...
    def read(self) -> Tuple[np.ndarray, Optional[np.ndarray]]: ...  # raises SourceLost / StopIteration
    def release(self) -> None: ...


class OpenCVSource(FrameSource):
    """V4L2, CSI (GStreamer), video files and RTSP through cv2.VideoCapture."""

    def __init__(self, spec: SourceSpec, cv2):
        self.spec, self.cv2 = spec, cv2
        self.cap = None

    def _capture(self):
        cv2, spec = self.cv2, self.spec
        if spec.kind == "v4l2":
            if os.name == "posix" and not os.path.exists(spec.target):
                raise SourceLost(f"camera {spec.target} not found")
            return cv2.VideoCapture(spec.options["index"], cv2.CAP_V4L2)
        if spec.kind == "csi":
            return cv2.VideoCapture(csi_pipeline(spec.options), cv2.CAP_GSTREAMER)
        if spec.kind == "rtsp":
            return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG)
        return cv2.VideoCapture(spec.target)

    def open(self) -> None:
        self.release()
        cap = self._capture()
        if cap is None or not cap.isOpened():
            raise SourceLost(f"cannot open {self.spec.describe()}")
        if self.spec.kind in ("v4l2", "rtsp"):
            cap.set(self.cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frames, not a backlog
        self.cap = cap
        self.fps = float(cap.get(self.cv2.CAP_PROP_FPS) or 0.0)

    def read(self):
        if self.cap is None:
            raise SourceLost("source is closed")
        ok, frame = self.cap.read()
        if not ok or frame is None:
            if self.spec.kind == "file":
                raise StopIteration
            raise SourceLost(f"{self.spec.describe()} stopped delivering frames")
        return frame, None

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FolderSource(FrameSource):
    def __init__(self, spec: SourceSpec, cv2, warn: Optional[Callable[[str], None]] = None):
        from anydepth_edge.console import warn as console_warn

        self.spec, self.cv2, self.warn = spec, cv2, warn or console_warn
        # listed, not globbed: a folder named 'data[1]' is that folder, not data1/
        self.files = sorted(os.path.join(spec.target, f) for f in os.listdir(spec.target)
                            if f.lower().endswith(IMAGE_EXTS)) if os.path.isdir(spec.target) else []
        self.refused = 0
        self.index = 0
        self.current_name: Optional[str] = None  # the file the last frame came from (depth files keep it)

    def open(self) -> None:
        if not self.files:
            raise UserError(f"--source {self.spec.target}: no images ({', '.join(IMAGE_EXTS)}) in the folder")
        self.index = 0

    def read(self):
        while self.index < len(self.files):
            path = self.files[self.index]
            self.index += 1
            try:
                frame = read_image_file(path, self.cv2)
            except ImageRefused as e:  # skipped like any unreadable file, and said once per file
                self.refused += 1
                self.warn(f"skipped {os.path.basename(path)}: {e}")
                continue
            self.current_name = os.path.basename(path)
            return frame, None
        raise StopIteration

    def release(self) -> None:
        pass


class RealSenseSource(FrameSource):
    """Colour (BGR) and optionally depth aligned to colour, in metres. Live or from a .bag file."""

    def __init__(self, spec: SourceSpec, rs):
        self.spec, self.rs = spec, rs
        self.pipeline = None
        self.align = None
        self.depth_scale = 0.001
        self.fps = float(spec.options.get("fps") or 0)

    def open(self) -> None:
        rs, o = self.rs, self.spec.options
        self.release()
        config = rs.config()
        if o.get("bag"):
            if not Path(self.spec.target).is_file():
                raise UserError(f"--source {self.spec.target}: RealSense recording not found")
            config.enable_device_from_file(self.spec.target, repeat_playback=False)
        else:
            if self.spec.target:
                config.enable_device(self.spec.target)
            config.enable_stream(rs.stream.color, o["width"], o["height"], rs.format.bgr8, o["fps"])
            if o.get("depth"):
                config.enable_stream(rs.stream.depth, o["width"], o["height"], rs.format.z16, o["fps"])
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as e:
            raise SourceLost(f"RealSense {self.spec.target or '(any)'}: {str(e).splitlines()[0]}") from None
        if o.get("bag"):
            profile.get_device().as_playback().set_real_time(False)  # every recorded frame, in order
        if o.get("depth"):
            self.depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
            self.align = rs.align(rs.stream.color)
        self.pipeline = pipeline

    def read(self):
        try:
            frames = self.pipeline.wait_for_frames(5000)
        except RuntimeError:
            if self.spec.options.get("bag"):
                raise StopIteration from None
            raise SourceLost("RealSense stopped delivering frames") from None
        if self.align is not None:
            frames = self.align.process(frames)
        color = frames.get_color_frame()
        if not color:
            raise SourceLost("RealSense frame without colour")
        depth = None
        if self.align is not None:
            d = frames.get_depth_frame()
            if d:
                depth = np.asanyarray(d.get_data()).astype(np.float32) * self.depth_scale
        return np.asanyarray(color.get_data()), depth

    def release(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:
                pass
            self.pipeline = None


def import_realsense():
    try:
        import pyrealsense2 as rs
    except ImportError:
        raise HardwareMissing("RealSense needs pyrealsense2: pip install 'anydepth-edge[realsense]' "
                              "(Jetson: build librealsense with the RSUSB backend, or use the anydepth-edge image)") from None
    return rs


def open_source(spec: SourceSpec, cv2=None, rs=None) -> FrameSource:
    """Open `spec`; a source that cannot open is one clear UserError."""
    if spec.kind == "realsense":
        source: FrameSource = RealSenseSource(spec, rs or import_realsense())
    else:
        if cv2 is None:
            from anydepth_edge.runtime.processing import import_cv2

            cv2 = import_cv2()
        if spec.kind == "csi" and not gstreamer_available(cv2):
            raise HardwareMissing("CSI cameras need an OpenCV built with GStreamer: this one has none "
                                  "(pip's opencv-python); use JetPack's python3-opencv or the anydepth-edge image")
        source = FolderSource(spec, cv2) if spec.kind == "folder" else OpenCVSource(spec, cv2)
    try:
        source.open()
    except SourceLost as e:
        raise UserError(f"--source {spec.describe()}: {e}") from None
    return source
