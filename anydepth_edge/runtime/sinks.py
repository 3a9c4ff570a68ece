"""Where depth goes: an mp4 recording, depth files, a window, and the overlay drawn on them.

Every file is written so an interruption never leaves a half file under its final name: the mp4
is recorded to a `.partial.mp4` beside the target and renamed when finished; depth files are
encoded in memory and written atomically. Torch-free, Python 3.8.
"""

import io
import os
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from anydepth_edge.artifacts import ensure_writable_dir, write_bytes_atomic
from anydepth_edge.errors import UserError


def side_by_side(rgb_bgr: np.ndarray, depth_bgr: np.ndarray, lines: List[str], cv2) -> np.ndarray:
    """RGB | depth with the timing lines drawn in the top-left corner."""
    view = np.concatenate([rgb_bgr, depth_bgr], axis=1)
    y = 18
    for text in lines:
        cv2.putText(view, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(view, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        y += 18
    return view


class VideoRecorder:
    """mp4 of the composed view. The frame rate is given, or measured over the first frames (so a
    3 FPS model's recording plays at 3 FPS, not at the camera's 30)."""

    def __init__(self, path, cv2, fps: Optional[float] = None, calibrate_frames: int = 5):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise UserError(f"--record {path}: give an .mp4 file name")
        ensure_writable_dir(self.path.parent if str(self.path.parent) else ".")
        self.cv2 = cv2
        self.fps = fps
        self.calibrate = calibrate_frames
        self.pending: List[tuple] = []
        self.writer = None
        self.tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.frames = 0

    def _open(self, size) -> None:
        if self.fps is None:
            t = [p[1] for p in self.pending]
            span = t[-1] - t[0]
            self.fps = (len(t) - 1) / span if len(t) > 1 and span > 0 else 10.0
        self.fps = float(min(max(self.fps, 1.0), 60.0))
        self.writer = self.cv2.VideoWriter(str(self.tmp), self.cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if not self.writer.isOpened():
            raise UserError(f"--record {self.path}: OpenCV cannot write mp4 here")

    def write(self, view: np.ndarray) -> None:
        if self.writer is None:
            self.pending.append((view, time.perf_counter()))
            if self.fps is None and len(self.pending) < self.calibrate:
                return
            self._open((view.shape[1], view.shape[0]))
            for v, _ in self.pending:
                self.writer.write(v)
                self.frames += 1
            self.pending = []
            return
        self.writer.write(view)
        self.frames += 1

    def close(self) -> Optional[Path]:
        if self.writer is None and self.pending:
            self._open((self.pending[0][0].shape[1], self.pending[0][0].shape[0]))
            for v, _ in self.pending:
                self.writer.write(v)
                self.frames += 1
            self.pending = []
        if self.writer is None:
            return None
        self.writer.release()  # writes the index (moov atom): the file plays
        self.writer = None
        os.replace(str(self.tmp), str(self.path))
        return self.path


class DepthSaver:
    """Per frame: `<n>.png` (16-bit: millimetres with --metric, else min-max normalised) and
    `<n>.npy` (float32 depth at the frame size: metres with --metric, else model units)."""

    def __init__(self, folder, cv2, metric: bool):
        self.dir = ensure_writable_dir(folder)
        self.cv2 = cv2
        self.metric = metric
        self.count = 0

    def save(self, index: int, depth: np.ndarray) -> None:
        if self.metric:
            png = np.clip(depth * 1000.0, 0, 65535).astype(np.uint16)
        else:
            lo, hi = float(depth.min()), float(depth.max())
            png = ((depth - lo) * (65535.0 / max(hi - lo, 1e-9))).astype(np.uint16)
        ok, buf = self.cv2.imencode(".png", png)
        if not ok:
            raise UserError("cannot encode a depth PNG")
        write_bytes_atomic(self.dir / f"{index:06d}.png", buf.tobytes())
        npy = io.BytesIO()
        np.save(npy, depth.astype(np.float32))
        write_bytes_atomic(self.dir / f"{index:06d}.npy", npy.getvalue())
        self.count += 1


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
