"""The --record sink: camera | depth with the overlay, as an .mp4 that survives a crash.

With PyAV (`pip install av`): H.264 (yuv420p, what browsers play) in a fragmented MP4. The header
goes first and every ~2 s of frames is appended as a self-contained fragment, flushed and fsynced
as soon as the muxer emits it, so a kill -9 or a power cut loses at most the last fragment (~2 s of
wall time, whatever the frame rate). An offline file with every frame processed keeps the file's
timing; a live run's frames carry their wall-clock times, so it plays at the speed the run went.
Without PyAV: OpenCV's writer (mp4v, index written at the very end, so a crash loses all of it),
with one warning that says so.

The file is written as `.<name>.~rec<pid>.partial` beside the target, then closed, read back (every
frame written must decode, else the run fails naming the file) and only then moved into place.
A partial left by a process that is gone is handled by the next run to the same target: kept as
`<stem>.recovered.mp4` when it holds frames (that is what crash safety is for), else removed.
Torch-free, Python 3.8.
"""

import contextlib
import io
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from anydepth_edge.errors import UserError
from anydepth_edge.runtime.outputs import (
    OutputFailed,
    free_bytes,
    fsync_dir,
    partial_path,
    publish,
    recovered_path,
    stale_partials,
    write_failure,
)

KEYFRAME_SECONDS = 2.0  # of wall time: one fragment per keyframe, the most a crash can lose
TICK = Fraction(1, 90000)  # frame timestamps: MPEG's 90 kHz clock (30 and 25 FPS are whole ticks)
FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"
NOT_CRASH_SAFE = ("--record: no PyAV with libx264 here, so OpenCV writes the .mp4: it is not crash-safe (a kill or "
                  "power cut loses the whole recording) and browsers may not play it; pip install av")


def import_av():
    """PyAV when it is installed with the H.264 encoder the recording needs, else None."""
    try:
        import av
    except ImportError:
        return None
    return av if "libx264" in av.codecs_available else None


def decodable_frames(path, cv2, limit: Optional[int] = None) -> int:
    """How many frames of `path` decode (grab() decodes without converting), up to `limit`."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while (limit is None or n < limit) and cap.isOpened() and cap.grab():
            n += 1
    finally:
        cap.release()
    return n


class SyncedFile(io.RawIOBase):
    """The recording's bytes go straight to a descriptor we own, so each fragment can be fsynced."""

    def __init__(self, path: Path):
        super().__init__()
        # O_TRUNC, not O_EXCL: a file with our name is a stale one from before a reboot
        self.fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        fsync_dir(path.parent)  # the file itself must survive a power cut, not only its bytes
        self.unsynced = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(self.fd, view):]  # a short write (nearly full disk) goes on
        self.unsynced += len(data)
        return len(data)

    def sync(self) -> None:
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = 0

    def close(self) -> None:
        if not self.closed:
            try:
                self.sync()
            finally:
                os.close(self.fd)
        super().close()


class AvWriter:
    """H.264 in a fragmented MP4 through PyAV; a fragment is durable as soon as it is complete.

    A keyframe (a new fragment) is forced every KEYFRAME_SECONDS of wall time or of video time,
    whichever comes first: a kill loses at most ~2 s of the run whatever its frame rate (counted in
    frames, a 1 FPS run with a 2 s GOP at the file's 30 FPS lost its first minute). Frames carry
    their timestamps (`write`'s `video_s`) on a 90 kHz clock."""

    def __init__(self, av, path: Path, fps: float, size):
        self.av = av
        self.file = SyncedFile(path)
        try:
            # flush_packets: what the muxer emits reaches the file at once, so sync() after a mux
            # makes a finished fragment durable
            self.container = av.open(self.file, mode="w", format="mp4",
                                     options={"movflags": FRAGMENTED_MP4, "flush_packets": "1"})
            # zerolatency: no lookahead or B-frames, a frame is in the muxer once encoded;
            # scenecut=0: keyframes (fragments) only when we ask, not on every busy scene;
            # veryfast: the output thread shares a Jetson's few CPU cores
            self.stream = self.container.add_stream(
                "libx264", rate=Fraction(fps).limit_denominator(1000),
                options={"tune": "zerolatency", "preset": "veryfast", "x264-params": "scenecut=0"})
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p"
            self.stream.time_base = self.stream.codec_context.time_base = TICK
            self.stream.codec_context.gop_size = 1 << 16  # keyframes are forced by wall time (write)
        except BaseException:
            self.file.close()
            raise
        self.last_pts = -1
        self.last_key: Optional[Tuple[float, float]] = None  # (wall, video) seconds of the last keyframe

    def write(self, bgr: np.ndarray, wall_s: float, video_s: float) -> None:
        frame = self.av.VideoFrame.from_ndarray(bgr, format="bgr24")
        frame.pts = self.last_pts = max(self.last_pts + 1, round(video_s / TICK))
        frame.time_base = TICK
        if (self.last_key is None or wall_s - self.last_key[0] >= KEYFRAME_SECONDS
                or video_s - self.last_key[1] >= KEYFRAME_SECONDS - 1e-9):
            frame.pict_type = self.av.video.frame.PictureType.I
            self.last_key = (wall_s, video_s)
        self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            self.container.mux(packet)
        self.file.sync()

    def close(self) -> None:
        try:
            self._mux(self.stream.encode(None))
            self.container.close()
        finally:
            self.file.close()


class CvWriter:
    """OpenCV's mp4v writer: the fallback without PyAV (not crash-safe)."""

    def __init__(self, cv2, path: Path, fps: float, size):
        # OpenCV picks the container from the name's extension, so it opens `<partial>.mp4`; it
        # writes through its descriptor, so the file takes the partial name (which the next run
        # cleans up after a crash) right away.
        named = path.with_name(path.name + ".mp4")
        self.writer = cv2.VideoWriter(str(named), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise UserError(f"--record {path.parent}: OpenCV cannot write mp4 here")
        os.replace(str(named), str(path))

    def write(self, bgr: np.ndarray, wall_s: float, video_s: float) -> None:
        self.writer.write(bgr)  # constant rate: OpenCV's writer takes no timestamps

    def close(self) -> None:
        self.writer.release()  # writes the index (moov atom): the file plays


def even_size(view: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: pad the last row / column by repeating it."""
    h, w = view.shape[:2]
    if h % 2 or w % 2:
        view = np.pad(view, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return view


def recover_stale(final: Path, cv2, notify: Callable[[str], None]) -> None:
    """Partials of runs that are gone: kept as `<stem>.recovered.mp4` when they hold frames."""
    for stale in stale_partials(final):
        if decodable_frames(stale, cv2, limit=1):
            kept = publish(stale, recovered_path(final), overwrite=False)
            notify(f"kept the recording of an earlier run that did not finish as {kept}")
        else:
            with contextlib.suppress(OSError):
                stale.unlink()
            notify(f"removed {stale}: an unfinished recording of an earlier run, without a complete frame")


class VideoRecorder:
    """mp4 of the composed view. The frame rate is given, or measured over the first frames (so a
    3 FPS model's recording plays at 3 FPS, not at the camera's 30)."""

    def __init__(self, path, cv2, fps: Optional[float] = None, calibrate_frames: int = 5, overwrite: bool = False,
                 notify: Callable[[str], None] = lambda s: None, warn: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.path = Path(path)
        self.clock = clock  # wall time of each frame: its timestamp, and when fragments are cut
        self.cv2 = cv2
        self.fps = fps
        self.fixed_rate = fps is not None
        self.t0: Optional[float] = None
        self.t_last: Optional[float] = None
        self.timed = False  # frames carry wall-clock timestamps (a live recording through PyAV)
        self.calibrate = calibrate_frames
        self.overwrite = overwrite
        self.notify = notify
        self.warn = warn or notify
        self.pending: List[tuple] = []
        self.writer = None
        self.failed = False
        self.tmp = partial_path(self.path)
        self.frames = 0
        recover_stale(self.path, cv2, notify)

    def _open(self, size) -> None:
        if self.fps is None:
            t = [p[1] for p in self.pending]
            span = t[-1] - t[0]
            self.fps = (len(t) - 1) / span if len(t) > 1 and span > 0 else 10.0
        self.fps = float(min(max(self.fps, 1.0), 60.0))
        av = import_av()
        if av is None:
            self.warn(NOT_CRASH_SAFE)
            self.writer = CvWriter(self.cv2, self.tmp, self.fps, size)
        else:
            self.writer = AvWriter(av, self.tmp, self.fps, size)
            self.timed = not self.fixed_rate

    def write(self, view: np.ndarray) -> None:
        if self.failed:
            return
        view = even_size(view)
        self.pending.append((view, self.clock()))
        if self.writer is None and self.fps is None and len(self.pending) < self.calibrate:
            return
        self._drain()

    def _drain(self) -> None:
        """Write the pending frames (opening the writer first); a failed write is one clear line."""
        try:
            if self.writer is None:
                self._open((self.pending[0][0].shape[1], self.pending[0][0].shape[0]))
            for v, t in self.pending:
                # a given rate (an offline file, every frame) keeps the file's timing; else wall-clock times
                self.t0 = t if self.t0 is None else self.t0
                video_s = self.frames / self.fps if self.fixed_rate else t - self.t0
                self.writer.write(v, t, video_s)
                self.frames += 1
                self.t_last = t
            self.pending = []
        except OSError as e:
            self._abort()
            raise write_failure(f"--record {self.path}", self.tmp, e) from None

    @property
    def played_fps(self) -> float:
        """The rate the file plays at: the given or calibrated one, except a live recording with
        wall-clock timestamps, whose rate is its frames over their time span."""
        if not self.timed or self.frames < 2 or self.t_last == self.t0:
            return self.fps or 0.0
        return (self.frames - 1) / (self.t_last - self.t0)

    def _abort(self) -> None:
        """Stop after a failed write; what reached the disk stays in the partial file."""
        self.failed = True
        self.pending = []
        if self.writer is not None:
            with contextlib.suppress(Exception):  # already failed and reported: closing is best effort
                self.writer.close()
            self.writer = None

    def close(self) -> Optional[Path]:
        """Finish, check and move the recording into place; its final path, or None when nothing
        was recorded or it already failed. OutputFailed when it did not come out whole."""
        if self.failed:
            return None
        if self.pending:
            self._drain()
        if self.writer is None:
            return None
        try:
            self.writer.close()
        except OSError as e:
            self._abort()
            raise write_failure(f"--record {self.path}", self.tmp, e) from None
        self.writer = None
        decoded = decodable_frames(self.tmp, self.cv2)
        final = publish(self.tmp, self.path, self.overwrite)
        if final != self.path:
            self.notify(f"{self.path} appeared while recording: the recording is {final} instead "
                        "(--overwrite replaces it)")
        if decoded != self.frames:
            self.failed = True
            raise OutputFailed(f"--record {final}: only {decoded} of {self.frames} frames written decode, the file is "
                               f"damaged ({free_bytes(final.parent) / 1e6:.0f} MB free in {final.parent})")
        return final
