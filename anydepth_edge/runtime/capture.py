"""The capture thread: reads frames, preprocesses them while the model runs on the previous one,
and hands over either only the newest frame (live sources: latency never builds up behind a slow
model, dropped frames are counted) or every frame in order (offline files with `pace=none`).

A live source that stops (camera unplugged, stream dropped) is reopened with backoff; after
`reconnect_timeout` seconds without success the thread gives up and the loop exits non-zero.
Torch-free, Python 3.8.
"""

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Optional

import numpy as np

from anydepth_edge.runtime.sources import FrameSource, SourceLost


@dataclass
class Frame:
    index: int
    image: np.ndarray  # BGR uint8, as captured
    aux_depth: Optional[np.ndarray]  # sensor depth in metres (RealSense), aligned to `image`
    t_capture: float  # perf_counter() when the frame was read
    tensor: np.ndarray  # model input (1, 3, H, W) float32
    geometry: Any  # letterbox geometry (or None)
    preprocess_ms: float
    name: Optional[str] = None  # the input file's name (folder sources)


class CaptureThread(threading.Thread):
    def __init__(self, source: FrameSource, preprocess: Callable, live: bool, pace_fps: float = 0.0,
                 reconnect_timeout: float = 30.0, notify: Callable[[str], None] = lambda s: None,
                 queue_size: int = 2, max_frames: Optional[int] = None):
        super().__init__(name="capture", daemon=True)
        self.source, self.preprocess = source, preprocess
        self.live = live
        self.pace_fps = pace_fps  # > 0: offline file played like a camera at this rate
        self.newest_only = live or pace_fps > 0
        self.reconnect_timeout = reconnect_timeout
        self.notify = notify
        self.max_frames = max_frames
        self.queue: Deque[Frame] = collections.deque()
        self.queue_size = 1 if self.newest_only else queue_size
        self.cond = threading.Condition()
        self.stop_event = threading.Event()
        self.eof = False
        self.error: Optional[str] = None
        self.captured = 0
        self.dropped = 0
        self.reconnects = 0
        self.outage_start: Optional[float] = None  # monotonic time of the first failure of an outage

    # -- consumer side -------------------------------------------------------------------------
    def get(self, timeout: float = 1.0) -> Optional[Frame]:
        """The next frame; None on timeout, end of stream, stop or a fatal source error."""
        with self.cond:
            end = time.monotonic() + timeout
            while not self.queue:
                if self.eof or self.error or self.stop_event.is_set():
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            frame = self.queue.popleft()
            self.cond.notify_all()
            return frame

    @property
    def finished(self) -> bool:
        with self.cond:
            return not self.queue and (self.eof or self.error is not None)

    def stop(self) -> None:
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()

    # -- producer side -------------------------------------------------------------------------
    def _put(self, frame: Frame) -> None:
        with self.cond:
            if self.newest_only:
                if self.queue:
                    self.queue.popleft()
                    self.dropped += 1
            else:
                while len(self.queue) >= self.queue_size and not self.stop_event.is_set():
                    self.cond.wait(0.5)
            self.queue.append(frame)
            self.cond.notify_all()

    def _reconnect(self, why: str) -> bool:
        """Reopen until the source opens again. The deadline runs from the last good frame, so a
        camera that opens but never delivers still ends the run after `reconnect_timeout`."""
        now = time.monotonic()
        if self.outage_start is None:
            self.outage_start = now
            self.notify(f"source lost ({why}); reconnecting for up to {self.reconnect_timeout:.0f} s")
        delay = 0.25
        while not self.stop_event.is_set():
            if time.monotonic() - self.outage_start > self.reconnect_timeout:
                self.error = f"source lost and not back within {self.reconnect_timeout:.0f} s: {why}"
                return False
            self.stop_event.wait(delay)
            delay = min(delay * 2, 5.0)
            try:
                self.source.open()
            except SourceLost:
                continue
            except Exception as e:  # e.g. a driver error while the device re-enumerates
                why = str(e)
                continue
            return True
        return False

    def _recovered(self) -> None:
        if self.outage_start is not None:
            self.reconnects += 1
            self.notify(f"source back after {time.monotonic() - self.outage_start:.1f} s")
            self.outage_start = None

    def run(self) -> None:
        period = 1.0 / self.pace_fps if self.pace_fps > 0 else 0.0
        next_due = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                if self.max_frames is not None and self.captured >= self.max_frames:
                    break
                try:
                    image, aux = self.source.read()
                except StopIteration:
                    break
                except SourceLost as e:
                    if self.live and self._reconnect(str(e)):
                        continue
                    if self.error is None and not self.stop_event.is_set():
                        self.error = str(e)
                    break
                self._recovered()
                t_capture = time.perf_counter()
                tensor = self.preprocess(image)
                pre_ms = (time.perf_counter() - t_capture) * 1000.0
                geometry = getattr(self.preprocess, "geometry", None)
                # each frame owns its input buffer: the model may still read the previous one
                self._put(Frame(self.captured, image, aux, t_capture, tensor.copy(), geometry, pre_ms,
                                getattr(self.source, "current_name", None)))
                self.captured += 1
                if period:
                    next_due += period
                    delay = next_due - time.perf_counter()
                    if delay > 0:
                        self.stop_event.wait(delay)
                    else:
                        next_due = time.perf_counter()
        except Exception as e:  # never die silently: the loop reports it and exits non-zero
            self.error = f"capture failed: {type(e).__name__}: {e}"
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()
            self.source.release()
