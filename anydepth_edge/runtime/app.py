"""`run` glue: open the backend the resolver picks, check the outputs, run the loop (the CLI prints
its summary with views.run_summary). Torch-free unless the PyTorch backend is asked for."""

from pathlib import Path
from typing import Callable, Optional

from anydepth_edge.engines import BackendSpec, open_backend
from anydepth_edge.errors import UserError


def open_run_backend(model: Optional[str], res: str, backend: str, engines_dir: str, export_dir: str,
                     warn: Callable[[str], None], notify: Callable[[str], None] = lambda s: None,
                     allow_unverified: bool = False):
    """(backend, one line saying what was chosen and why): resolver.plan_run's choice, opened."""
    from anydepth_edge.resolver import plan_run

    plan = plan_run(model, res, backend, engines_dir, export_dir, warn, notify, allow_unverified)
    be = open_backend(BackendSpec.for_choice(plan.choice, plan.artifact, allow_unverified=allow_unverified), warn=warn)
    record = export_record(plan.artifact)
    be.random_weights = bool(record is not None and record.random_weights)
    be.output_kind = record.output_kind if record is not None else "depth"
    if be.random_weights:
        warn(f"{plan.artifact.name} has RANDOM WEIGHTS (exported without --checkpoint): timings are real, the depth "
             "is not; the views carry a RANDOM WEIGHTS badge")
    return be, plan.why


def export_record(artifact: Path):
    """The export's record behind `artifact` (an ONNX, or an engine built from one), or None."""
    from anydepth_edge.artifacts import EngineArtifact, OnnxArtifact

    if artifact.suffix == ".engine":
        engine = EngineArtifact.find(artifact)
        artifact = Path(engine.onnx_path) if engine is not None else artifact
    try:
        return OnnxArtifact.of_file(artifact)
    except UserError:
        return None


def floor_settings(mode: Optional[str], height: Optional[float], pitch: Optional[float], roll: Optional[float],
                   hfov: Optional[float]):
    """--metric floor's settings from the CLI's values (None: not given; FloorSettings holds the
    defaults), None in other modes, or one UserError."""
    values = {"--camera-height": height, "--camera-pitch": pitch, "--camera-roll": roll, "--camera-hfov": hfov}
    given = [flag for flag, value in values.items() if value is not None]
    if mode != "floor":
        if given:
            raise UserError(f"{', '.join(given)}: used only with --metric floor")
        return None
    if height is None:
        raise UserError("--metric floor needs --camera-height METRES (the lens above the floor; and --camera-pitch "
                        "DEG if it looks down): see docs/metric.md")
    from anydepth_edge.runtime.floor import FloorSettings

    angles = {k: v for k, v in (("pitch_deg", pitch), ("roll_deg", roll)) if v is not None}
    return FloorSettings(height, **angles).check()


def check_metric(opts, spec, notify: Callable[[str], None] = lambda s: None,
                 warn: Callable[[str], None] = lambda s: None):
    """Refuse a metric mode the source cannot serve, before any model loads, and say what the fit
    will use. Returns the camera model --metric floor fits with (a calibration, a field of view, or
    empty until the RealSense's or the topic's intrinsics arrive), else None."""
    if opts.metric == "sensor":
        if spec.kind != "realsense":
            raise UserError("--metric sensor needs a RealSense source (its depth stream is the reference): --source "
                            "realsense or a .bag; without a depth sensor use --metric floor")
        spec.options["depth"] = True
        return None
    if opts.metric != "floor":
        return None
    from anydepth_edge.runtime.camera import CameraModel, load_calibration

    if opts.camera_info and opts.camera_hfov:
        raise UserError("--camera-info and --camera-hfov both give the intrinsics: keep one (the calibration is better)")
    if opts.camera_info:
        camera, origin = CameraModel(load_calibration(opts.camera_info), f"--camera-info {opts.camera_info}"), \
            f"the calibration {opts.camera_info}"
    elif opts.camera_hfov:
        camera, origin = CameraModel(hfov_deg=opts.camera_hfov), f"a centred pinhole of {opts.camera_hfov:g} deg HFOV"
    elif spec.kind in ("realsense", "ros"):
        camera, origin = CameraModel(), ("the RealSense" if spec.kind == "realsense" else "the topic's camera_info")
    else:
        raise UserError("--metric floor needs the camera's intrinsics: --camera-info FILE.yaml (a ROS calibration) or "
                        "--camera-hfov DEG (its horizontal field of view)")
    f = opts.floor
    notify(f"metric floor: lens {f.height_m:g} m above the floor, pitch {f.pitch_deg:g} deg down, roll {f.roll_deg:g} "
           f"deg; intrinsics from {origin}")
    if f.pitch_deg == 0.0:
        warn("--camera-pitch not given: the camera is taken as level (0 deg); one looking down needs its pitch, "
             "each degree off costs several % of range (docs/metric.md)")
    return camera


def run_depth(source: str, model: Optional[str], res: str, backend: str, opts, engines_dir: str, export_dir: str,
              warn: Callable[[str], None], notify: Callable[[str], None], allow_unverified: bool = False):
    """`anydepth-edge run`: validate, open the backend and the source, run the loop until the source
    ends, a signal arrives or --max-frames. Returns the RunSummary (the CLI prints it)."""
    from anydepth_edge.runtime.camera import fill_from_realsense
    from anydepth_edge.runtime.loop import DepthLoop, check_outputs, run_until_signal
    from anydepth_edge.runtime.processing import import_cv2
    from anydepth_edge.runtime.sources import open_source, parse_source

    spec = parse_source(source)
    camera = check_metric(opts, spec, notify, warn)
    if opts.serve:
        from anydepth_edge.runtime.server import parse_serve

        port = parse_serve(opts.serve)[1]
        if opts.foxglove and port and parse_serve(opts.foxglove, "--foxglove")[1] == port:
            raise UserError(f"--serve and --foxglove both ask for port {port}: give each its own (e.g. --foxglove 8765)")
    check_outputs(opts, spec)  # before the model loads: a refused output costs nothing
    cv2 = import_cv2()
    sinks = [foxglove_sink(opts, camera, cv2, notify, warn)] if opts.foxglove else []  # a busy port: refused now
    try:
        be, choice_text = open_run_backend(model, res, backend, engines_dir, export_dir, warn=warn, notify=notify,
                                           allow_unverified=allow_unverified)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    try:
        src = open_source(spec, cv2=cv2)
        fill_from_realsense(src, [camera] + [s.camera for s in sinks])  # the floor fit's and the cloud's
        loop = DepthLoop(be, src, spec, opts, notify=notify, cv2=cv2, warn=warn, camera=camera, sinks=sinks)
    except BaseException:
        be.close()
        for sink in sinks:
            sink.close()
        raise
    notify(f"{spec.describe()} -> {choice_text}; resize policy: {opts.resize_policy}; Ctrl-C to stop")
    try:
        summary = run_until_signal(loop)
    finally:
        be.close()
    return summary


def foxglove_sink(opts, camera, cv2, notify, warn):
    """The --foxglove sink, started; its cloud's intrinsics: --metric floor's, else --camera-info, else
    the RealSense's (filled in once it is open), else none (depth and image only)."""
    from anydepth_edge.runtime.camera import CameraModel, load_calibration
    from anydepth_edge.runtime.foxglove_sink import FoxgloveSink

    if camera is None:
        camera = (CameraModel(load_calibration(opts.camera_info), f"--camera-info {opts.camera_info}")
                  if opts.camera_info else CameraModel())
    return FoxgloveSink(opts.foxglove, camera, cv2, notify=notify, warn=warn)
