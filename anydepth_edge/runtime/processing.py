"""Camera frame -> model input -> depth back on the frame. OpenCV + numpy, torch-free, Python 3.8.

Resize policies (stated in the run summary):
- stretch: resize the whole frame to the model size (aspect ratio changes; every pixel used);
- letterbox: keep the aspect ratio, pad with the ImageNet mean (zeros after normalisation), and
  crop the padding off the prediction before resizing it back.
"""

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.model_input import normalise

POLICIES = ("stretch", "letterbox")
NON_FINITE_BGR = (255, 0, 255)  # magenta: depth pixels that are NaN / Inf


def import_cv2():
    # OpenCV and its FFmpeg read these when first used: without them a stream that cannot be
    # opened (RTSP) prints FFmpeg / OpenCV warnings around our one error line. Set either to
    # see them again (e.g. OPENCV_LOG_LEVEL=INFO OPENCV_FFMPEG_LOGLEVEL=32).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        import cv2
    except ImportError:
        raise UserError("OpenCV is not installed: pip install 'anydepth-edge[cv]' "
                        "(on a Jetson use JetPack's python3-opencv, which has GStreamer)") from None
    return cv2


@dataclass
class Letterbox:
    scale: float
    top: int
    left: int
    height: int  # content size inside the model input
    width: int


def letterbox_geometry(frame_hw: Tuple[int, int], model_hw: Tuple[int, int]) -> Letterbox:
    fh, fw = frame_hw
    mh, mw = model_hw
    scale = min(mh / fh, mw / fw)
    h, w = max(1, round(fh * scale)), max(1, round(fw * scale))
    return Letterbox(scale, (mh - h) // 2, (mw - w) // 2, h, w)


class Preprocessor:
    """BGR uint8 frame -> (1, 3, H, W) float32 ImageNet-normalised RGB, into one reused buffer."""

    def __init__(self, model_hw: Tuple[int, int], policy: str = "stretch"):
        if policy not in POLICIES:
            raise UserError(f"unknown resize policy {policy!r}: choose {' or '.join(POLICIES)}")
        self.cv2 = import_cv2()
        self.model_hw = tuple(model_hw)
        self.policy = policy
        self.buffer = np.zeros((1, 3) + self.model_hw, dtype=np.float32)
        self.canvas = np.zeros(self.model_hw + (3,), dtype=np.uint8)
        self.geometry: Optional[Letterbox] = None

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        mh, mw = self.model_hw
        if self.policy == "stretch":
            rgb = cv2.cvtColor(cv2.resize(frame_bgr, (mw, mh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        else:
            g = self.geometry = letterbox_geometry(frame_bgr.shape[:2], self.model_hw)
            # pad with the ImageNet mean colour, so padding normalises to zero
            self.canvas[:] = (124, 116, 104)
            inner = cv2.resize(frame_bgr, (g.width, g.height), interpolation=cv2.INTER_LINEAR)
            self.canvas[g.top:g.top + g.height, g.left:g.left + g.width] = cv2.cvtColor(inner, cv2.COLOR_BGR2RGB)
            rgb = self.canvas
        return normalise(rgb, out=self.buffer)


class Postprocessor:
    """Depth (1, 1, H, W) -> depth at the frame size (float32), and a colour-mapped BGR image.
    `output_kind` disparity (larger = nearer) is drawn the other way round, so near is always bright."""

    def __init__(self, policy: str = "stretch", colormap: Optional[int] = None, output_kind: str = "depth"):
        self.cv2 = import_cv2()
        self.policy = policy
        self.output_kind = output_kind
        self.colormap = self.cv2.COLORMAP_INFERNO if colormap is None else colormap

    def to_frame(self, depth: np.ndarray, frame_hw: Tuple[int, int], geometry: Optional[Letterbox] = None) -> np.ndarray:
        d = depth.reshape(depth.shape[-2:])
        if self.policy == "letterbox" and geometry is not None:
            d = d[geometry.top:geometry.top + geometry.height, geometry.left:geometry.left + geometry.width]
        return self.cv2.resize(d, (frame_hw[1], frame_hw[0]), interpolation=self.cv2.INTER_LINEAR)

    def colourise(self, depth_frame: np.ndarray, lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
        """Near = bright. Affine-invariant depth has no absolute scale: stretch the 2nd..98th
        percentile of each frame, taken inside the border band (see DISPLAY_MARGIN); NaN / Inf
        pixels are painted NON_FINITE_BGR."""
        if lo is None or hi is None:
            finite, flo, fhi = display_range(depth_frame)
            lo = flo if lo is None else lo
            hi = fhi if hi is None else hi
        else:  # the caller's range (the loop's, shown on the viewer's colour bar): no second percentile pass
            finite = np.isfinite(depth_frame)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite pixels are painted below
            nearness = depth_frame - lo if self.output_kind == "disparity" else hi - depth_frame
            scaled = np.clip(nearness * (255.0 / max(hi - lo, 1e-6)), 0, 255)
            colour = self.cv2.applyColorMap(np.where(finite, scaled, 0).astype(np.uint8), self.colormap)
        colour[~finite] = NON_FINITE_BGR
        return colour


DISPLAY_PERCENTILES = (2.0, 98.0)
# The decoders' outermost pixels (convolution padding) are an outlier band, up to 3x the interior
# with random weights, ~1.2 % of each side and ramping in to ~2.5 %: 3-6 % of the pixels, enough to
# put the 98th percentile inside it. The range is taken inside this margin; the band is still drawn.
DISPLAY_MARGIN = 0.03


def display_range(a: np.ndarray, percentiles=DISPLAY_PERCENTILES) -> Tuple[np.ndarray, float, float]:
    """(mask of the finite values, low and high percentile of them); 0, 0 when none is finite.
    Percentiles inside a DISPLAY_MARGIN border, of every 4th pixel of every 4th row: the same range
    to a few 1e-3, 16x cheaper."""
    finite = np.isfinite(a)
    sample = a
    if a.ndim == 2 and a.shape[0] >= 32 and a.shape[1] >= 32:
        mh, mw = max(1, int(a.shape[0] * DISPLAY_MARGIN)), max(1, int(a.shape[1] * DISPLAY_MARGIN))
        sample = a[mh:-mh:4, mw:-mw:4]
    values = sample[np.isfinite(sample)]
    if not values.size:
        return finite, 0.0, 0.0
    lo, hi = np.percentile(values, percentiles)
    return finite, float(lo), float(hi)
