"""The sink protocol and the loop's own sinks. DepthLoop computes each frame's result once
(`FrameResult`: the model-grid depth, the frame-size depth, its colours, the metric fit, the
geometry, and the side-by-side view made on first use) and hands it to every sink: `write(result)`
on the output thread, `close() -> Optional[str]` at the end (a line for the summary; a UserError
there, e.g. a file that did not come out whole, is reported and never listed as written). A sink
refuses what it cannot do when it is made, which for every sink of `run` is before the model loads
(outputs.check_outputs, a busy port). The recording (recording.py), the depth files, the viewer,
the window, Foxglove (foxglove_sink.py) and the ROS 2 publisher with its bag (ros2/publisher.py)
are sinks.

Depth files are encoded in memory and written atomically, so an interruption never leaves a half
file under its final name; a failed write (a full disk) is one line naming the file. Torch-free,
Python 3.8.
"""

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from anydepth_edge.fileio import write_bytes_atomic
from anydepth_edge.errors import UserError
from anydepth_edge.runtime.outputs import write_failure
from anydepth_edge.runtime.processing import display_range


BADGE = "RANDOM WEIGHTS: depth is meaningless"


@dataclass
class FrameResult:
    """One frame's outputs, computed once for every sink."""

    frame: Any  # capture.Frame: image (BGR), index, name, t_capture, geometry
    depth: np.ndarray  # the model's output grid
    depth_frame: np.ndarray  # at the frame's size: metres when `fit` is the frame's metric fit, else relative
    colour: np.ndarray  # depth_frame colour-mapped (BGR)
    fit: Optional[Any] = None  # the metric fit (None: no metric mode, or this frame's fit was refused)
    nonfinite: Optional[float] = None  # share of NaN / Inf pixels, None when all finite
    make_view: Optional[Callable[["FrameResult"], np.ndarray]] = None
    _view: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def geometry(self):
        return self.frame.geometry

    def view(self) -> np.ndarray:
        """The image and the colour depth side by side with the overlay (made once, on first use)."""
        if self._view is None:
            self._view = self.make_view(self)
        return self._view


class Sink:
    """A destination of frame results (the module docstring says when each method is called)."""

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> Optional[str]:
        return None


class RecordingSink(Sink):
    """--record: the side-by-side views into a video (recording.VideoRecorder)."""

    def __init__(self, recorder):
        self.recorder = recorder

    def write(self, result: FrameResult) -> None:
        self.recorder.write(result.view())

    def close(self) -> Optional[str]:
        path = self.recorder.close()
        return f"{path} ({self.recorder.frames} frames at {self.recorder.played_fps:.1f} FPS)" if path else None


class ViewerSink(Sink):
    """--serve: the latest images and the loop's live figures to the browser viewer (server.py)."""

    def __init__(self, hub, server, cv2, live_stats: Callable[[], Dict[str, Any]]):
        self.hub, self.server, self.cv2, self.live_stats = hub, server, cv2, live_stats

    def write(self, result: FrameResult) -> None:
        from anydepth_edge.runtime.server import jpeg

        self.hub.publish({"rgb": jpeg(self.cv2, result.frame.image), "depth": jpeg(self.cv2, result.colour)},
                         self.live_stats())

    def close(self) -> Optional[str]:
        self.server.close()
        return None


def side_by_side(rgb_bgr: np.ndarray, depth_bgr: np.ndarray, lines: List[str], cv2, badge: str = "") -> np.ndarray:
    """RGB | depth, the timing lines on a dark band in the top-left corner (readable on light
    scenes), and `badge` (RANDOM WEIGHTS) in red over the depth half."""
    view = np.concatenate([rgb_bgr, depth_bgr], axis=1)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    if lines:
        width = max(cv2.getTextSize(t, font, scale, 1)[0][0] for t in lines) + 16
        band = view[: 18 * len(lines) + 8, : min(width, view.shape[1])]
        band[:] = (band * 0.3).astype(np.uint8)  # darken what is behind the text
        for i, text in enumerate(lines):
            cv2.putText(view, text, (8, 18 * (i + 1)), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    if badge:
        (tw, th), _ = cv2.getTextSize(badge, font, scale, 1)
        x0 = rgb_bgr.shape[1] + max(4, depth_bgr.shape[1] - tw - 16)
        cv2.rectangle(view, (x0, 4), (min(view.shape[1] - 1, x0 + tw + 12), th + 14), (0, 0, 200), -1)
        cv2.putText(view, badge, (x0 + 6, th + 8), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return view


SCALE_FILE = "depth_scale.csv"


class DepthSaver(Sink):
    """--save-depth. Per frame: `<name>.png` (16-bit: millimetres with --metric, else the frame's 2nd..98th
    percentile stretched over 1..65535; NaN and Inf are 0) and `<name>.npy` (float32 depth at the
    frame size: metres with --metric, else model units; NaN stays NaN). `<name>` is the input
    image's name for a folder source, else the frame number. Each PNG's scale goes into
    `depth_scale.csv` beside them (depth = lo + (png - 1) / 65534 * (hi - lo), or png / 1000 m).
    `folder` was checked by outputs.check_depth_folder."""

    def __init__(self, folder, cv2, metric: bool, output_kind: str = "depth"):
        self.dir = Path(folder)
        self.cv2 = cv2
        self.metric = metric
        self.unit = "mm" if metric else ("relative disparity (larger = nearer)" if output_kind == "disparity"
                                         else "relative depth")
        self.count = 0  # complete PNG + NPY pairs
        self.failed = False
        self.used = set()
        self.scale_rows: List[str] = ["file,lo,hi,unit"]

    def _name(self, index: int, source_name: Optional[str]) -> str:
        name = Path(source_name).stem if source_name else f"{index:06d}"
        if name in self.used:  # a.jpg and a.png in one folder
            name = f"{name}-{index:06d}"
        self.used.add(name)
        return name

    def save(self, index: int, depth: np.ndarray, source_name: Optional[str] = None) -> None:
        pixels, lo, hi = depth_png(depth, self.metric)
        ok, buf = self.cv2.imencode(".png", pixels)
        if not ok:
            raise UserError("cannot encode a depth PNG")
        npy = io.BytesIO()
        np.save(npy, depth.astype(np.float32))
        name = self._name(index, source_name)
        self.scale_rows.append(f"{name}.png,{lo:.6g},{hi:.6g},{self.unit}")
        for path, data in ((self.dir / f"{name}.png", buf.tobytes()), (self.dir / f"{name}.npy", npy.getvalue()),
                           (self.dir / SCALE_FILE, ("\n".join(self.scale_rows) + "\n").encode())):
            try:
                write_bytes_atomic(path, data)
            except OSError as e:
                self.failed = True
                raise write_failure(f"--save-depth {self.dir}", path, e) from None
        self.count += 1

    def write(self, result: FrameResult) -> None:
        self.save(result.frame.index, result.depth_frame, result.frame.name)

    def close(self) -> Optional[str]:
        return f"{self.dir}/ ({self.count} depth PNG + NPY pairs)" if self.count and not self.failed else None


def depth_png(depth: np.ndarray, metric: bool):
    """(16-bit PNG pixels, lo, hi): millimetres (lo, hi = 0, 65.535 m), or the 2nd..98th percentile
    over 1..65535 (clipped outside; 0 = not finite)."""
    finite, lo, hi = display_range(depth)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite pixels are replaced below
        if metric:
            scaled, lo, hi = depth * 1000.0, 0.0, 65535.0
        else:
            scaled = 1.0 + (depth - lo) * (65534.0 / max(hi - lo, 1e-9))
        return np.where(finite, np.clip(scaled, 1 if not metric else 0, 65535), 0).astype(np.uint16), lo, hi


class Display(Sink):
    """--display: a window. The output thread keeps the newest view; the loop's thread shows it
    (OpenCV's windows belong to one thread)."""

    def __init__(self, cv2, title: str = "anydepth-edge"):
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("--display: no screen here (no DISPLAY); robots are headless: use --serve PORT")
        self.cv2, self.title = cv2, title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError("--display: this OpenCV has no GUI (opencv-python-headless); use --serve PORT") from None
        self.latest: Optional[np.ndarray] = None

    def write(self, result: FrameResult) -> None:
        self.latest = result.view()

    def show(self, view: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        self.cv2.imshow(self.title, view)
        return (self.cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> Optional[str]:
        self.cv2.destroyWindow(self.title)
        return None
