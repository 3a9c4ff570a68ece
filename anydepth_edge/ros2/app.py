"""`run` with ROS 2 outputs (--ros2, --record-bag): the runtime's loop, sources and metric fit,
plus the ROS sink and, for `--source ros:TOPIC`, a ROS source. Python 3.8, torch-free.

Everything that can be refused is checked before the model loads (`prepare`): the source text,
the node's names and settings, the bag's target, the calibration file, and ROS itself when a node is
needed. `serve_depth` runs a loaded backend; tests call it with a cheap backend.
"""

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.ros2.bag import BagOutlet, check_bag_target
from anydepth_edge.runtime.camera import CameraModel, Intrinsics, fill_from_realsense, load_calibration
from anydepth_edge.ros2.node import RELIABILITIES, DepthNode, RosApi, import_ros, ros_argv
from anydepth_edge.ros2.publisher import CaptureClock, DepthPublisher, Origin, PublishSettings
from anydepth_edge.ros2.sources import RosImageSource
from anydepth_edge.ros2.topics import TOPICS, check_namespace, check_node_name, resolve
from anydepth_edge.runtime.sources import FrameSource, SourceSpec, open_source, parse_source

DEFAULT_FRAME_IDS = {"realsense": "camera_color_optical_frame"}  # realsense-ros's name for it
FALLBACK_FRAME_ID = "camera_optical_frame"


@dataclass
class RosOptions:
    publish: bool = False  # --ros2: a live node
    record_bag: Optional[str] = None  # --record-bag FILE.mcap
    camera_info: Optional[str] = None  # --camera-info FILE.yaml
    node_name: str = "anydepth_edge"
    namespace: str = ""
    ros_args: str = ""  # --ros-args "TEXT", as given to a ROS 2 node
    reliability: str = "reliable"
    settings: PublishSettings = field(default_factory=PublishSettings)


def prepare(source: str, opts, ros: RosOptions, notify: Callable[[str], None] = lambda s: None,
            warn: Callable[[str], None] = lambda s: None) -> Tuple[SourceSpec, Optional[Intrinsics], Optional[RosApi]]:
    """The source spec, the calibration and the ROS API, or one UserError, before any model loads."""
    from anydepth_edge.runtime.app import check_metric
    from anydepth_edge.runtime.loop import check_outputs
    from anydepth_edge.runtime.server import parse_serve

    spec = parse_source(source)  # ros:TOPIC too (ros2/sources.py registers the scheme); a bad one said first
    if not (ros.publish or ros.record_bag):
        raise UserError("nothing for ROS 2 to do: give --ros2 (publish on a node) and/or --record-bag FILE.mcap")
    metric_camera = check_metric(opts, spec, notify, warn)
    ros.settings.check()
    check_node_name(ros.node_name)
    ros.namespace = check_namespace(ros.namespace)
    if ros.reliability not in RELIABILITIES:
        raise UserError(f"--reliability {ros.reliability}: choose {' or '.join(RELIABILITIES)}")
    if ros.record_bag:
        check_bag_target(ros.record_bag, opts.overwrite, opts.min_free_mb)
    if opts.serve:
        parse_serve(opts.serve)
    check_outputs(opts, spec)
    calibration = None
    if ros.camera_info:  # --metric floor has read (and checked) it already: once
        known = metric_camera.calibration if metric_camera is not None else None
        calibration = known if known is not None else load_calibration(ros.camera_info)
    api = import_ros() if ros.publish or spec.kind == "ros" else None
    return spec, calibration, api


def run_ros(source: str, model: Optional[str], res: str, backend: str, opts, ros: RosOptions, engines_dir: str,
            export_dir: str, warn: Callable[[str], None], notify: Callable[[str], None], **backend_options):
    """`anydepth-edge run` with --ros2 / --record-bag / --source ros:TOPIC. Returns the RunSummary.
    `backend_options` go to open_run_backend as `run` passes them (allow_unverified=...)."""
    from anydepth_edge.runtime.app import open_run_backend
    from anydepth_edge.runtime.processing import import_cv2

    spec, calibration, api = prepare(source, opts, ros, notify, warn)
    cv2 = import_cv2()
    be, choice_text = open_run_backend(model, res, backend, engines_dir, export_dir, warn=warn, notify=notify,
                                       **backend_options)
    try:
        notify(f"{spec.describe()} -> {choice_text}; resize policy: {opts.resize_policy}; Ctrl-C to stop")
        summary = serve_depth(be, spec, opts, ros, api, calibration, cv2, warn=warn, notify=notify)
    finally:
        be.close()
    return summary


@contextlib.contextmanager
def ros_node(api: Optional[RosApi], ros: RosOptions, warn: Callable[[str], None]) -> Iterator[Optional[DepthNode]]:
    """rclpy started, the node made, and both shut down however the run ends; None without ROS."""
    if api is None:
        yield None
        return
    try:
        api.rclpy.init(args=ros_argv(ros.ros_args))
    except Exception as e:  # rclpy's RCLError: --ros-args it cannot parse, a bad domain id
        raise UserError(f"ROS 2 did not start: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    node = None
    try:
        node = DepthNode(api, ros.node_name, ros.namespace, ros.settings, ros.publish, ros.reliability, warn)
        yield node
    finally:
        if node is not None:
            node.shutdown()
        api.rclpy.shutdown()


def serve_depth(backend, spec: SourceSpec, opts, ros: RosOptions, api: Optional[RosApi] = None,
                calibration: Optional[Intrinsics] = None, cv2=None, warn: Callable[[str], None] = lambda s: None,
                notify: Callable[[str], None] = lambda s: None, source: Optional[FrameSource] = None):
    """Run the loop on a loaded backend with the ROS outputs until the source ends, a signal or
    --max-frames; returns the RunSummary. `source`: one already open (else `spec` is opened)."""
    from anydepth_edge.runtime.loop import DepthLoop, run_until_signal

    if cv2 is None:
        from anydepth_edge.runtime.processing import import_cv2

        cv2 = import_cv2()
    ros.settings.metric = bool(opts.metric)  # REP 118: metres on ~/depth whenever the run fits them
    camera = CameraModel(calibration, f"--camera-info {ros.camera_info}", hfov_deg=getattr(opts, "camera_hfov", None))
    with ros_node(api, ros, warn) as node:
        settings = node.settings if node else ros.settings
        if source is None and spec.kind == "ros":
            source = RosImageSource(spec, node, cv2, None if calibration else camera, warn=warn)
        elif source is None:
            source = open_source(spec, cv2=cv2)
        fill_from_realsense(source, [camera])
        clock = CaptureClock(node.now_ns if node else time.time_ns)
        if node is not None and opts.floor is not None:
            opts.floor = node.floor_parameters(opts.floor)
        # /tf_static places the camera as the floor fit assumes it
        mount = (opts.floor.height_m, opts.floor.pitch_deg, opts.floor.roll_deg) if opts.floor else (0.0, 0.0, 0.0)
        publisher = DepthPublisher([node] if ros.publish else [], settings, camera,
                                   _origin(source, spec, clock, settings), backend.resolution, opts.resize_policy,
                                   cv2, hardware_id=spec.describe(), now_ns=clock.now_ns, warn=warn, mount=mount)
        names = (node.namespace, node.name) if node else (ros.namespace, ros.node_name)
        try:
            loop = DepthLoop(backend, source, spec, opts, notify=notify, cv2=cv2, warn=warn, sinks=[publisher],
                             camera=camera)
            if ros.record_bag:  # made last: nothing can fail between it and the loop, which closes it
                publisher.outlets.append(BagOutlet(ros.record_bag, opts.overwrite, *names))
        except BaseException:
            source.release()
            raise
        publisher.stats = loop.live_stats
        if node is not None and opts.floor is not None:
            node.follow_imu(loop.metric)
        notify(_describe(settings, ros, names))
        if node is not None:
            node.start(publisher.heartbeat if ros.publish else None)
        summary = run_until_signal(loop)  # after rclpy.init: replaces rclpy's handler (it would stop ROS mid-frame)
        if node is not None and node.spin_error:
            summary.error = "; ".join(e for e in (summary.error, node.spin_error) if e)
    return summary


def _origin(source, spec: SourceSpec, clock: CaptureClock, settings: PublishSettings) -> Origin:
    """frame -> (header stamp ns, frame_id): the capture time, or a ROS message's own stamp and frame."""
    chosen = settings.frame_id
    if isinstance(source, RosImageSource):
        def from_message(frame) -> Tuple[int, str]:
            stamp, frame_id = source.origin(frame.index)
            return stamp or clock.stamp(frame.t_capture), chosen or frame_id or FALLBACK_FRAME_ID

        return from_message
    frame_id = chosen or DEFAULT_FRAME_IDS.get(spec.kind, FALLBACK_FRAME_ID)
    return lambda frame: (clock.stamp(frame.t_capture), frame_id)


def _describe(settings: PublishSettings, ros: RosOptions, names: Tuple[str, str]) -> str:
    units = "metres" if settings.metric else "relative depth (the model's units, no scale)"
    where = []
    if ros.publish:
        topics = [resolve(TOPICS[k].name, *names) for k in DepthNode.kinds(settings)]
        where.append("ROS 2 topics " + ", ".join(topics))
    if ros.record_bag:
        where.append(f"bag {ros.record_bag}")
    return f"depth in {units} at the {settings.depth_size}'s size to " + " and ".join(where)
