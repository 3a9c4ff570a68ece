"""The on-robot loop: capture (thread) -> inference (this thread) -> post-processing and sinks
(thread), so capture, pre- and post-processing overlap inference.

Per-stage timings (capture wait, preprocess, inference, postprocess) and end-to-end latency from
the frame's capture time to its output are kept in bounded windows (memory stays flat over days),
drawn on the views, served as JSON and printed as a summary at the end.

Outputs are checked before any work (outputs.py: no silent overwrite, enough free space); a sink
that fails (a full disk) stops the loop cleanly with one line naming the file. Depth with NaN /
Inf is one warning, counted, and marked in the views. Torch-free, Python 3.8.

Every output is a sink (sinks.py: the protocol and `FrameResult`, each frame's outputs computed
once). The loop makes its own from the options (recording, depth files, viewer, window); others
(Foxglove, the ROS 2 publisher) are passed as `sinks=` and timed as the "publish" stage. A sink that
raises stops the run with one line.
"""

import collections
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

import numpy as np

from anydepth_edge.engines.base import Backend
from anydepth_edge.errors import UserError
from anydepth_edge.runtime.capture import CaptureThread, Frame
from anydepth_edge.runtime.floor import FloorMetric, FloorSettings
from anydepth_edge.runtime.metric import METRIC_MODES, MetricTracker, SensorMetric
from anydepth_edge.runtime.outputs import check_depth_folder, check_record_target, same_folder
from anydepth_edge.runtime.processing import Postprocessor, Preprocessor, display_range, import_cv2
from anydepth_edge.runtime.recording import VideoRecorder
from anydepth_edge.runtime.sinks import BADGE, DepthSaver, Display, FrameResult, RecordingSink, Sink, ViewerSink, side_by_side
from anydepth_edge.runtime.sources import FrameSource, SourceSpec, redact
from anydepth_edge.runtime.stats import STAGES, WINDOW, RunSummary, StageStats


@dataclass
class RunOptions:
    max_frames: Optional[int] = None
    resize_policy: str = "stretch"
    pace: str = "native"  # files: native (like a camera at the file's FPS) | none (every frame)
    display: bool = False
    record: Optional[str] = None
    save_depth: Optional[str] = None
    serve: Optional[str] = None
    foxglove: Optional[str] = None  # [HOST:]PORT of the Foxglove WebSocket server (runtime/foxglove_sink.py)
    metric: str = ""  # "" (relative depth) or one of metric.METRIC_MODES: sensor (RealSense), floor
    floor: Optional[FloorSettings] = None  # --metric floor: the camera's mounting
    camera_info: Optional[str] = None  # --metric floor, --foxglove's cloud: a calibration YAML
    camera_hfov: Optional[float] = None
    reconnect_timeout: float = 30.0
    overlay: bool = True
    overwrite: bool = False  # replace an existing --record file, write into a non-empty --save-depth folder
    min_free_mb: float = 200.0  # refuse a run that writes files with less free space than this


def check_outputs(opts: RunOptions, spec: Optional[SourceSpec] = None) -> None:
    """Refuse a run whose outputs would overwrite or mix with earlier ones, or cannot fit, before
    any work is done (the CLI calls this before it loads the model, the loop again)."""
    if opts.record:
        check_record_target(opts.record, opts.overwrite, opts.min_free_mb)
    if opts.save_depth:
        if spec is not None and spec.kind == "folder" and same_folder(opts.save_depth, spec.target):
            # depth PNGs are named after their images: --overwrite would replace the photos themselves
            raise UserError(f"--save-depth {opts.save_depth} is the source folder: give another folder "
                            "(the depth files take the images' names)")
        check_depth_folder(opts.save_depth, opts.overwrite, opts.min_free_mb)


def metric_tracker(opts: RunOptions, space: str, camera: Any = None) -> Optional[MetricTracker]:
    """The run's metric mode, fitting in the model's output `space`; None for relative depth."""
    if not opts.metric:
        return None
    if opts.metric not in METRIC_MODES:
        raise UserError(f"--metric {opts.metric}: choose {' or '.join(METRIC_MODES)}")
    if opts.metric == "sensor":
        return SensorMetric(space)
    if opts.floor is None or camera is None:
        raise UserError("--metric floor needs the camera's height (--camera-height) and its intrinsics "
                        "(--camera-info FILE.yaml or --camera-hfov DEG)")
    return FloorMetric(opts.floor, camera, space)


class DepthLoop:
    def __init__(self, backend: Backend, source: FrameSource, spec: SourceSpec, opts: RunOptions,
                 notify: Callable[[str], None] = lambda s: None, cv2=None,
                 warn: Optional[Callable[[str], None]] = None, sinks: Sequence[Any] = (), camera: Any = None):
        self.backend, self.source, self.spec, self.opts = backend, source, spec, opts
        self.sinks = list(sinks)
        self.notify = notify
        self.warn = warn or notify
        self.cv2 = cv2 or import_cv2()
        self.stats = {s: StageStats() for s in STAGES + (("publish",) if sinks else ())}
        # when each inference started: one at a time, so their spacing is the pipeline's throughput, never
        # above the inference's (output completion times come in bursts behind the output queue)
        self.start_times: Deque[float] = collections.deque(maxlen=WINDOW)
        self.stop_event = threading.Event()
        self.pre = Preprocessor(backend.resolution, opts.resize_policy)
        # Metres after a metric fit are depth, whatever the model outputs.
        self.output_kind = getattr(backend, "output_kind", "depth")
        self.post = Postprocessor(opts.resize_policy, output_kind="depth" if opts.metric else self.output_kind)
        pace_fps = 0.0
        if spec.kind == "file" and opts.pace == "native":
            pace_fps = source.fps or 30.0
        # --max-frames counts processed frames: the loop stops itself. Only when every frame is
        # processed (an offline file, no pacing) may capture stop at the same count.
        every_frame = not spec.live and pace_fps == 0
        self.capture = CaptureThread(source, self.pre, live=spec.live, pace_fps=pace_fps,
                                     reconnect_timeout=opts.reconnect_timeout, notify=notify,
                                     max_frames=opts.max_frames if every_frame else None)
        self.random_weights = bool(getattr(backend, "random_weights", False))
        self.out_queue: "queue.Queue" = queue.Queue(maxsize=2)
        check_outputs(opts, spec)
        self.server = None
        self.display = Display(self.cv2) if opts.display else None
        # the loop's own sinks: files before the frame's timings are taken, live views after (so they show them)
        self.files: List[Sink] = self._file_sinks(opts, notify)
        self.live: List[Sink] = ([self._viewer(opts.serve, notify)] if opts.serve else []) + \
            ([self.display] if self.display else [])
        self.metric = metric_tracker(opts, self.output_kind, camera)
        self.colour_range: Optional[List[float]] = None  # the depth colour bar's ends, in metres when metric
        self.nonfinite_frames = 0
        self.output_error: Optional[str] = None

    def _file_sinks(self, opts: RunOptions, notify: Callable[[str], None]) -> List[Sink]:
        files: List[Sink] = []
        if opts.record:
            files.append(RecordingSink(VideoRecorder(opts.record, self.cv2, fps=self._record_fps(),
                                                     overwrite=opts.overwrite, notify=notify, warn=self.warn)))
        if opts.save_depth:
            files.append(DepthSaver(opts.save_depth, self.cv2, bool(opts.metric), self.output_kind))
        return files

    def _viewer(self, serve: str, notify: Callable[[str], None]) -> Sink:
        from anydepth_edge.runtime.server import DepthServer, FrameHub, exposed, parse_serve

        host, port = parse_serve(serve)
        hub = FrameHub()
        self.server = DepthServer(hub, host, port)
        notify("viewer on " + ", ".join(self.server.urls))
        if exposed(host):
            self.warn(f"the viewer on {host}:{self.server.address[1]} is exposed to the network: anyone who "
                      "reaches this machine can watch the camera (--serve PORT alone keeps it on 127.0.0.1)")
        return ViewerSink(hub, self.server, self.cv2, self.live_stats)

    def _record_fps(self) -> Optional[float]:
        # Offline, every frame processed: the recording keeps the file's timing.
        if self.spec.kind == "file" and self.opts.pace == "none":
            return self.source.fps or None
        return None  # measured over the first frames

    # -- statistics -----------------------------------------------------------------------------
    def loop_fps(self) -> Optional[float]:
        t = self.start_times
        if len(t) < 2 or t[-1] <= t[0]:
            return None
        return (len(t) - 1) / (t[-1] - t[0])

    def live_stats(self) -> Dict[str, Any]:
        inf = self.stats["inference"].summary()["mean"]
        return {
            "source": self.spec.describe(), "backend": self.backend.describe().get("backend"),
            "frames": self.stats["inference"].count, "dropped": self.capture.dropped,
            "loop_fps": self.loop_fps(), "inference_fps": 1000.0 / inf if inf else None,
            "stages": {s: st.summary() for s, st in self.stats.items()}, "metric": self.metric.stats() if self.metric else None,
            "colour_range": self.colour_range,
            "resize_policy": self.opts.resize_policy, "nonfinite_frames": self.nonfinite_frames,
            "random_weights": self.random_weights,
        }

    def _overlay(self, nonfinite: Optional[float]) -> List[str]:
        s = {k: v.summary()["mean"] for k, v in self.stats.items()}
        fps = self.loop_fps()
        lines = [f"{fps:.1f} FPS" if fps else "-- FPS",
                 f"infer {s['inference'] or 0:.1f} ms  pre {s['preprocess'] or 0:.1f}  post {s['postprocess'] or 0:.1f}",
                 f"e2e {s['end_to_end'] or 0:.1f} ms  dropped {self.capture.dropped}"]
        if self.metric:
            lines.append(self.metric.overlay())
        if nonfinite is not None:
            lines.append(f"NaN/Inf depth: {nonfinite:.1%} of pixels (magenta)")
        return lines

    def _check_finite(self, frame: Frame, depth: np.ndarray) -> Optional[float]:
        """The share of NaN / Inf in this frame's depth, None when all is finite. Every such frame
        is counted; the first is one warning line."""
        finite = np.isfinite(depth)
        if finite.all():
            return None
        share = 1.0 - float(finite.mean())
        self.nonfinite_frames += 1
        if self.nonfinite_frames == 1:
            self.warn(f"frame {frame.index}: {share:.1%} of the depth is NaN/Inf (an FP16 overflow? try an FP32 "
                      "engine); such frames are counted in the summary and painted magenta in the views, their "
                      ".npy keeps NaN, their .png has 0")
        return share

    # -- output thread --------------------------------------------------------------------------
    def _output_worker(self) -> None:
        while True:
            item = self.out_queue.get()
            if item is None:
                return
            if self.output_error:
                continue  # keep draining: the inference thread must never block on a full queue
            try:
                self._output(*item)
            except Exception as e:  # report and stop the loop, never hang it
                self.output_error = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
                self.stop_event.set()

    def _output(self, frame: Frame, depth: np.ndarray) -> None:
        t0 = time.perf_counter()
        result = self._result(frame, depth)
        for sink in self.files:
            sink.write(result)
        if self.sinks:
            t_sinks = time.perf_counter()
            for sink in self.sinks:
                sink.write(result)
            self.stats["publish"].add((time.perf_counter() - t_sinks) * 1000.0)
        t_done = time.perf_counter()
        self.stats["postprocess"].add((t_done - t0) * 1000.0)
        self.stats["end_to_end"].add((t_done - frame.t_capture) * 1000.0)
        for sink in self.live:
            sink.write(result)

    def _result(self, frame: Frame, depth: np.ndarray) -> FrameResult:
        """The frame's outputs, once: depth at the frame's size (metres when fitted), its colours."""
        h, w = frame.image.shape[:2]
        nonfinite = self._check_finite(frame, depth)
        depth_frame = self.post.to_frame(depth, (h, w), frame.geometry)
        fit = None
        if self.metric:
            fit = self.metric.fit(frame, depth_frame)
            # a refused frame has no metric depth rather than a wrong one (REP 117: NaN, no reading)
            depth_frame = fit.apply(depth_frame) if fit is not None else np.full_like(depth_frame, np.nan)
        _, lo, hi = display_range(depth_frame)
        self.colour_range = [lo, hi] if self.metric and hi > lo else None
        return FrameResult(frame, depth, depth_frame, self.post.colourise(depth_frame, lo, hi), fit, nonfinite,
                           make_view=self._view)

    def _view(self, r: FrameResult) -> np.ndarray:
        return side_by_side(r.frame.image, r.colour, self._overlay(r.nonfinite) if self.opts.overlay else [], self.cv2,
                            badge=BADGE if self.random_weights else "")

    # -- main -----------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()
        self.capture.stop()

    def run(self) -> RunSummary:
        summary = RunSummary()
        worker = threading.Thread(target=self._output_worker, name="output", daemon=True)
        start = time.perf_counter()
        self.capture.start()
        worker.start()
        try:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                frame = self.capture.get(timeout=0.5)
                if frame is None:
                    if self.capture.finished or self.capture.error:
                        break
                    continue
                t1 = time.perf_counter()
                self.start_times.append(t1)
                depth = self.backend.infer(frame.tensor).copy()  # the backend reuses its buffer
                t2 = time.perf_counter()
                self.stats["capture_wait"].add((t1 - t0) * 1000.0)
                self.stats["preprocess"].add(frame.preprocess_ms)
                self.stats["inference"].add((t2 - t1) * 1000.0)
                self.out_queue.put((frame, depth))
                if self.opts.max_frames is not None and self.stats["inference"].count >= self.opts.max_frames:
                    summary.stopped_by = "max frames"
                    break
                if self.display and self.display.latest is not None and not self.display.show(self.display.latest):
                    summary.stopped_by = "window closed"
                    break
        finally:
            self.capture.stop()
            self.out_queue.put(None)
            worker.join(timeout=30)
            self.capture.join(timeout=10)
            summary.wall_s = time.perf_counter() - start
            self._close(summary)
        return summary

    def _close(self, summary: RunSummary) -> None:
        errors = [self.capture.error, self.output_error]
        for sink in self.files + self.sinks + self.live:
            try:
                line = sink.close()
            except UserError as e:  # a file that did not come out whole is never listed as written
                errors.append(str(e))
            else:
                if line:
                    summary.outputs.append(line)
        stats = self.live_stats()
        summary.frames = stats["frames"]
        summary.captured = self.capture.captured
        summary.dropped = self.capture.dropped
        summary.reconnects = self.capture.reconnects
        summary.read_ahead = 0 if self.capture.newest_only else self.capture.queue_size
        summary.loop_fps = stats["loop_fps"]
        summary.inference_fps = stats["inference_fps"]
        summary.stages = stats["stages"]
        summary.metric = stats["metric"]
        summary.nonfinite_frames = self.nonfinite_frames
        summary.error = redact("; ".join(e for e in errors if e)) or None
        if not summary.stopped_by:
            if self.capture.error or self.output_error or summary.error:
                summary.stopped_by = "error"
            elif self.stop_event.is_set():
                summary.stopped_by = "signal"
            elif self.opts.max_frames is not None and summary.frames >= self.opts.max_frames:
                summary.stopped_by = "max frames"
            else:
                summary.stopped_by = "end of source"


def run_until_signal(loop: DepthLoop) -> RunSummary:
    """The one signal policy of `run` (and `run --ros2`): SIGINT / SIGTERM stop the loop cleanly
    (recording finished, camera released); the previous handlers are back afterwards."""
    def on_signal(signum, _frame):
        loop.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return loop.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
