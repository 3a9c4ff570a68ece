"""Where depth goes besides the recording (recording.py): depth files, a window, and the overlay
drawn on the views.

Depth files are encoded in memory and written atomically, so an interruption never leaves a half
file under its final name; a failed write (a full disk) is one line naming the file. Torch-free,
Python 3.8.
"""

import io
import os
from pathlib import Path
from typing import List

import numpy as np

from anydepth_edge.artifacts import write_bytes_atomic
from anydepth_edge.errors import UserError
from anydepth_edge.runtime.outputs import write_failure
from anydepth_edge.runtime.processing import finite_range


def side_by_side(rgb_bgr: np.ndarray, depth_bgr: np.ndarray, lines: List[str], cv2) -> np.ndarray:
    """RGB | depth with the timing lines drawn in the top-left corner."""
    view = np.concatenate([rgb_bgr, depth_bgr], axis=1)
    y = 18
    for text in lines:
        cv2.putText(view, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(view, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        y += 18
    return view


class DepthSaver:
    """Per frame: `<n>.png` (16-bit: millimetres with --metric, else min-max normalised; NaN and
    Inf are 0) and `<n>.npy` (float32 depth at the frame size: metres with --metric, else model
    units; NaN stays NaN). `folder` was checked by outputs.check_depth_folder."""

    def __init__(self, folder, cv2, metric: bool):
        self.dir = Path(folder)
        self.cv2 = cv2
        self.metric = metric
        self.count = 0  # complete PNG + NPY pairs
        self.failed = False

    def save(self, index: int, depth: np.ndarray) -> None:
        ok, buf = self.cv2.imencode(".png", depth_png(depth, self.metric))
        if not ok:
            raise UserError("cannot encode a depth PNG")
        npy = io.BytesIO()
        np.save(npy, depth.astype(np.float32))
        for name, data in ((f"{index:06d}.png", buf.tobytes()), (f"{index:06d}.npy", npy.getvalue())):
            try:
                write_bytes_atomic(self.dir / name, data)
            except OSError as e:
                self.failed = True
                raise write_failure(f"--save-depth {self.dir}", self.dir / name, e) from None
        self.count += 1


def depth_png(depth: np.ndarray, metric: bool) -> np.ndarray:
    """16-bit PNG pixels: millimetres, or min-max over the finite values; NaN / Inf become 0."""
    finite, lo, hi = finite_range(depth)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite pixels are replaced below
        scaled = depth * 1000.0 if metric else (depth - lo) * (65535.0 / max(hi - lo, 1e-9))
        return np.where(finite, np.clip(scaled, 0, 65535), 0).astype(np.uint16)


class Display:
    def __init__(self, cv2, title: str = "anydepth-edge"):
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("--display: no screen here (no DISPLAY); robots are headless: use --serve PORT")
        self.cv2, self.title = cv2, title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError("--display: this OpenCV has no GUI (opencv-python-headless); use --serve PORT") from None

    def show(self, view: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        self.cv2.imshow(self.title, view)
        return (self.cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)
