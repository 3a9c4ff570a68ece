"""Verbs that run a model: bench, run, doctor, eval."""

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from anydepth_edge.cli.common import (
    BACKEND_HELP,
    BackendName,
    BenchDevice,
    CKPT_HELP,
    DecoderOrAll,
    DepthSize,
    ENCODER_HELP,
    Encoder,
    EvalDataset,
    Job,
    Layout,
    METRIC_PANEL,
    MetricMode,
    Pace,
    Precision,
    RES_HELP,
    ROS_PANEL,
    Reliability,
    Resize,
    SAMPLERS,
    SAMPLER_HELP,
    Sampler,
    _value,
    app,
)
from anydepth_edge import views
from anydepth_edge.resolution import DEFAULT_RUN_RES
from anydepth_edge.console import info, out, warn
from anydepth_edge.errors import HardwareMissing, UserError
from anydepth_edge.model_facts import expand_decoders


@app.command()
def bench(
    device: BenchDevice = typer.Option("auto", "--device", case_sensitive=False,
                                       help="orin-nano, cuda, cpu or auto (detected). orin-nano on another host is refused unless --allow-mismatch."),
    res: List[str] = typer.Option(["256", "512"], "--res", "-r", help=RES_HELP + " Repeat for several."),
    decoder: List[DecoderOrAll] = typer.Option(["all"], "--decoder", "-d", case_sensitive=False,
                                               help="sdt, dpt or dav2 (Depth Anything V2's head); repeat for several; "
                                                    "all: sdt and dpt, the paper's pair (the default)."),
    encoder: Encoder = typer.Option("vits", "--encoder", "-e", case_sensitive=False, help=ENCODER_HELP),
    backend: BackendName = typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    precision: Optional[Precision] = typer.Option(None, "--precision", case_sensitive=False,
                                                  help="fp16 or fp32 (default: fp16 on GPUs, fp32 on CPUs)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed runs first (default per device: cpu 2, cuda 20, orin-nano 10)."),
    iters: Optional[int] = typer.Option(None, "--iters", help="Timed runs (default per device: cpu 10, cuda 200, orin-nano 50)."),
    e2e_iters: Optional[int] = typer.Option(None, "--e2e-iters", help="End-to-end runs with pre/post-processing of a 640x480 frame."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help=CKPT_HELP),
    out_dir: str = typer.Option("benchmarks/runs", "--out-dir", "-o", help="Where the JSON, Markdown, CSV and PNG go "
                                                                            "(benchmarks/runs is yours and untracked; the committed references are in benchmarks/results)."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Replay inference as a CUDA graph (TensorRT with cuda-python, PyTorch CUDA)."),
    dysample: Sampler = typer.Option("auto", "--dysample", case_sensitive=False, help=SAMPLER_HELP),
    layout: Layout = typer.Option("auto", "--layout", case_sensitive=False,
                                  help="PyTorch memory layout: nchw, channels-last, or auto (time both on the first "
                                       "runs of each configuration and keep the faster; the report says which)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime CPU threads (default: all cores)."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Run --device orin-nano elsewhere, labelling every figure as not from an Orin Nano."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where ONNX files are found / exported."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where TensorRT engines are found / built."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified", help="Benchmark a TensorRT engine even when no "
                                                                            "rung of the precision ladder agreed with FP32."),
) -> None:
    """Reproduce the paper's Orin Nano table here: latency, FPS and peak memory of SDT vs DPT at 256 and 512.

    Each configuration runs in its own process. Missing ONNX files / engines are exported / built first (cached). Prints the tables with the paper's figures beside ours and writes JSON (with raw latencies), Markdown, CSV and a PNG chart to --out-dir.
    """
    from anydepth_edge.bench.harness import BenchOptions
    from anydepth_edge.resolution import parse_res_list

    opts = BenchOptions(
        # with a checkpoint, sizes are checked against its patch (14 px for DINOv2 weights) once it is loaded
        device=device.value, resolutions=parse_res_list(res, multiple=None if checkpoint else 16),
        decoders=expand_decoders(d.value for d in decoder),
        encoder=encoder.value, backend=backend.value, precision=precision.value if precision else None, warmup=warmup,
        iters=iters, e2e_iters=e2e_iters, checkpoint=checkpoint, out_dir=Path(out_dir), allow_mismatch=allow_mismatch,
        cuda_graph=cuda_graph, dysample=SAMPLERS[dysample.value], layout=layout.value, threads=threads,
        export_dir=Path(export_dir), engines_dir=Path(engines_dir), allow_unverified=allow_unverified,
    )
    _bench_and_report(opts)


def _bench_and_report(opts) -> None:
    """bench's run, tables, records and exit status (1 when a configuration failed)."""
    from anydepth_edge.bench.harness import run_bench
    from anydepth_edge.bench.report import write_outputs
    from anydepth_edge.console import progress

    started = time.monotonic()
    if not opts.checkpoint:  # as export and info say it
        from anydepth_edge.models.factory import RANDOM_WEIGHTS_WARNING

        warn(RANDOM_WEIGHTS_WARNING)
    with progress(transient=True) as prog:
        record = run_bench(opts, warn=warn, progress=prog)
    for table in views.bench_tables(record):
        out.print(table)
    paths = write_outputs(record, opts.out_dir)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    out.print(f"written in {minutes} min {seconds:02d} s: " + ", ".join(str(p) for p in paths.values()), markup=False)
    if any("error" in r for r in record["results"]):
        raise typer.Exit(1)


def _ros_options(source: str, opts, ros2: bool, record_bag: Optional[str], camera_info: Optional[str], **settings):
    """The run's ROS 2 side, or None when it has none (and then no ROS 2 option may be given: each
    is said, not silently ignored; --camera-info also serves --metric floor)."""
    from anydepth_edge.ros2.sources import is_ros_source

    if ros2 or record_bag or is_ros_source(source):
        if opts.foxglove:  # foxglove_bridge shows a ROS graph in Foxglove; --foxglove is for robots without one
            raise UserError("--foxglove serves runs without ROS 2: with --ros2 / --record-bag / a ros: source, use "
                            "foxglove_bridge (it reads the ~/depth, ~/points topics) or open the bag in Foxglove")
        from anydepth_edge.ros2.app import RosOptions
        from anydepth_edge.ros2.publisher import PublishSettings

        names = {k: settings.pop(k) for k in ("node_name", "namespace", "ros_args", "reliability")}
        return RosOptions(publish=ros2, record_bag=record_bag, camera_info=camera_info, **names,
                          settings=PublishSettings(**settings))
    given = ["--" + k.replace("_", "-") for k, value in settings.items() if value != RUN_OPTIONS[k].default]
    if camera_info and opts.metric != "floor" and not opts.foxglove:
        given.insert(0, "--camera-info")
    if given:
        raise UserError(f"{', '.join(given)}: ROS 2 options, used only with --ros2, --record-bag or a ros: source")
    return None


# run's options, one table: the signature below stays one line per option
RUN_OPTIONS = {
    "source": typer.Option(..., "--source", "-s", help="0 or /dev/video0 (USB), csi://0?mode=2&width=1280&height=720&fps=30 (CSI), realsense[:SERIAL][?depth=1] or a .bag recording, a video file, an image folder, rtsp://host/path, ros:/TOPIC (a ROS 2 image topic; .../compressed for CompressedImage)."),
    "model": typer.Option(None, "--model", "-m", help="An .engine or .onnx file (default: the newest matching one in engines/, else export/)."),
    "res": typer.Option(DEFAULT_RUN_RES, "--res", "-r", help="Model size to look for when --model is not given. " + RES_HELP),
    "backend": typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    "display": typer.Option(False, "--display/--headless", help="Show a window (needs a screen), or run headless (default)."),
    "record": typer.Option(None, "--record", help="Record camera | depth with the timings overlay to this .mp4."),
    "save_depth": typer.Option(None, "--save-depth", help="Write each depth as 16-bit PNG (mm with --metric, else normalised) and float .npy (metres with --metric) to this folder."),
    "overwrite": typer.Option(False, "--overwrite", help="Replace an existing --record file and write into a non-empty --save-depth folder (refused otherwise)."),
    "min_free_mb": typer.Option(200.0, "--min-free-mb", min=0, help="Refuse to start --record / --save-depth with less free space than this (MB)."),
    "serve": typer.Option(None, "--serve", help="[HOST:]PORT for the browser viewer (MJPEG + timings); binds 127.0.0.1 unless HOST is given."),
    "foxglove": typer.Option(None, "--foxglove", help="[HOST:]PORT (e.g. 8765; 0 picks a free port): serve depth, image, calibration and a point cloud to the Foxglove app over its WebSocket protocol, without ROS (binds 127.0.0.1 unless HOST is given; pip install 'anydepth-edge[foxglove]'). The cloud needs intrinsics: --camera-info, a RealSense or --metric floor's."),
    "max_frames": typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    "metric": typer.Option(None, "--metric", case_sensitive=False, rich_help_panel=METRIC_PANEL,
        help="Output metres: sensor (a RealSense: fit to its depth stream each frame) or floor "
             "(no depth sensor: fit to the floor; needs --camera-height, --camera-pitch and the intrinsics: "
             "--camera-info or --camera-hfov). A frame that cannot be fitted has NaN depth, counted."),
    "camera_height": typer.Option(None, "--camera-height", rich_help_panel=METRIC_PANEL,
        help="--metric floor (required): the lens's height above the floor, metres (0.02-20)."),
    "camera_pitch": typer.Option(None, "--camera-pitch", rich_help_panel=METRIC_PANEL,
        help="--metric floor: degrees the camera looks down (negative: up; default 0, level). Get it right: "
             "1 degree off moves metres by several %, see docs/metric.md."),
    "camera_roll": typer.Option(None, "--camera-roll", rich_help_panel=METRIC_PANEL,
        help="--metric floor: degrees the image is turned about the lens's axis (right side down; default 0)."),
    "camera_hfov": typer.Option(None, "--camera-hfov", min=1.0, max=179.0, rich_help_panel=METRIC_PANEL,
        help="--metric floor without a calibration: the horizontal field of view, "
             "degrees (a pinhole centred in the frame); --camera-info is better."),
    "resize": typer.Option("stretch", "--resize", case_sensitive=False,
        help="stretch (whole frame, aspect changes) or letterbox (aspect kept, padded)."),
    "pace": typer.Option("native", "--pace", case_sensitive=False,
        help="Video files: native (played like a camera at the file's FPS, frames dropped when the model is slower) or none (every frame, as fast as the model goes)."),
    "reconnect_timeout": typer.Option(30.0, "--reconnect-timeout", help="Seconds to keep retrying a lost camera before exiting non-zero."),
    "engines_dir": typer.Option("engines", "--engines-dir", help="Where to look for engines."),
    "export_dir": typer.Option("export", "--export-dir", help="Where to look for ONNX files."),
    "allow_unverified": typer.Option(False, "--allow-unverified", help="Use a TensorRT engine whose output was "
        "not (or not successfully) checked against FP32."),
    "ros2": typer.Option(False, "--ros2", rich_help_panel=ROS_PANEL,
        help="Publish on a ROS 2 node: ~/depth (32FC1: relative depth, metres with --metric), ~/depth/camera_info, ~/points, /diagnostics. Needs a sourced ROS 2 (rclpy)."),
    "record_bag": typer.Option(None, "--record-bag", rich_help_panel=ROS_PANEL,
        help="Write the same ROS 2 messages to this .mcap bag (ros2 bag play, Foxglove); no ROS needed."),
    "camera_info": typer.Option(None, "--camera-info", rich_help_panel=ROS_PANEL,
        help="Camera calibration, a ROS camera_info YAML (default: the RealSense's, or the ros: source's camera_info topic); also for --metric floor."),
    "frame_id": typer.Option("", "--frame-id", rich_help_panel=ROS_PANEL,
        help="header.frame_id (default: the ros: source's; camera_color_optical_frame for a RealSense; else camera_optical_frame)."),
    "depth_size": typer.Option("model", "--depth-size", case_sensitive=False, rich_help_panel=ROS_PANEL,
        help="model (the model's grid, letterbox padding cropped; intrinsics follow) or frame (the camera frame's size)."),
    "points_decimation": typer.Option(4, "--points-decimation", min=0, rich_help_panel=ROS_PANEL,
        help="~/points from every n-th pixel of every n-th row; 0: no cloud."),
    "colored": typer.Option(False, "--colored", rich_help_panel=ROS_PANEL, help="Also publish ~/depth/colored (bgr8) and ~/depth/colored/compressed (JPEG)."),
    "tf_parent": typer.Option("", "--tf-parent", rich_help_panel=ROS_PANEL,
        help="Publish /tf_static from this frame (e.g. base_link) to the depth's frame_id: with --metric floor the lens at "
             "--camera-height, pitched and rolled as given; otherwise at the frame's origin, looking along its x axis."),
    "node_name": typer.Option("anydepth_edge", "--node-name", rich_help_panel=ROS_PANEL, help="ROS 2 node name."),
    "namespace": typer.Option("", "--namespace", rich_help_panel=ROS_PANEL, help="ROS 2 namespace, e.g. /robot."),
    "reliability": typer.Option("reliable", "--reliability", case_sensitive=False, rich_help_panel=ROS_PANEL,
        help="QoS of the published topics: reliable (REP 2003) or best_effort."),
    "ros_args": typer.Option("", "--ros-args", rich_help_panel=ROS_PANEL,
        help='ROS arguments for the node, e.g. "-p points_decimation:=2 -r __ns:=/robot".'),
}


@app.command()
def run(
    source: str = RUN_OPTIONS["source"],
    model: Optional[str] = RUN_OPTIONS["model"],
    res: str = RUN_OPTIONS["res"],
    backend: BackendName = RUN_OPTIONS["backend"],
    display: bool = RUN_OPTIONS["display"],
    record: Optional[str] = RUN_OPTIONS["record"],
    save_depth: Optional[str] = RUN_OPTIONS["save_depth"],
    overwrite: bool = RUN_OPTIONS["overwrite"],
    min_free_mb: float = RUN_OPTIONS["min_free_mb"],
    serve: Optional[str] = RUN_OPTIONS["serve"],
    foxglove: Optional[str] = RUN_OPTIONS["foxglove"],
    max_frames: Optional[int] = RUN_OPTIONS["max_frames"],
    metric: Optional[MetricMode] = RUN_OPTIONS["metric"],
    camera_height: Optional[float] = RUN_OPTIONS["camera_height"],
    camera_pitch: Optional[float] = RUN_OPTIONS["camera_pitch"],
    camera_roll: Optional[float] = RUN_OPTIONS["camera_roll"],
    camera_hfov: Optional[float] = RUN_OPTIONS["camera_hfov"],
    resize: Resize = RUN_OPTIONS["resize"],
    pace: Pace = RUN_OPTIONS["pace"],
    reconnect_timeout: float = RUN_OPTIONS["reconnect_timeout"],
    engines_dir: str = RUN_OPTIONS["engines_dir"],
    export_dir: str = RUN_OPTIONS["export_dir"],
    allow_unverified: bool = RUN_OPTIONS["allow_unverified"],
    ros2: bool = RUN_OPTIONS["ros2"],
    record_bag: Optional[str] = RUN_OPTIONS["record_bag"],
    camera_info: Optional[str] = RUN_OPTIONS["camera_info"],
    frame_id: str = RUN_OPTIONS["frame_id"],
    depth_size: DepthSize = RUN_OPTIONS["depth_size"],
    points_decimation: int = RUN_OPTIONS["points_decimation"],
    colored: bool = RUN_OPTIONS["colored"],
    tf_parent: str = RUN_OPTIONS["tf_parent"],
    node_name: str = RUN_OPTIONS["node_name"],
    namespace: str = RUN_OPTIONS["namespace"],
    reliability: Reliability = RUN_OPTIONS["reliability"],
    ros_args: str = RUN_OPTIONS["ros_args"],
) -> None:
    """Run depth behind a camera: capture, inference and output overlap; latency never builds up (only the newest frame is kept). Ctrl-C or SIGTERM stops cleanly (recording finished, camera released) and prints the summary."""
    from anydepth_edge.runtime.app import floor_settings, run_depth
    from anydepth_edge.runtime.loop import RunOptions

    opts = RunOptions(max_frames=max_frames, resize_policy=resize.value, pace=pace.value, display=display,
                      record=record, save_depth=save_depth, serve=serve, foxglove=foxglove, metric=_value(metric) or "",
                      floor=floor_settings(_value(metric), camera_height, camera_pitch, camera_roll, camera_hfov),
                      camera_info=camera_info, camera_hfov=camera_hfov,
                      reconnect_timeout=reconnect_timeout, overwrite=overwrite, min_free_mb=min_free_mb)
    ros = _ros_options(source, opts, ros2=ros2, record_bag=record_bag, camera_info=camera_info, frame_id=frame_id,
                       depth_size=depth_size.value, points_decimation=points_decimation, colored=colored,
                       tf_parent=tf_parent, node_name=node_name, namespace=namespace, reliability=reliability.value, ros_args=ros_args)
    common = dict(warn=warn, notify=info, allow_unverified=allow_unverified)
    if ros is not None:
        from anydepth_edge.ros2.app import run_ros

        summary = run_ros(source, model, res, backend.value, opts, ros, engines_dir, export_dir, **common)
    else:
        summary = run_depth(source, model, res, backend.value, opts, engines_dir, export_dir, **common)
    views.run_summary(summary, out)
    if summary.error:
        raise HardwareMissing(summary.error)


@app.command()
def doctor(
    job: Job = typer.Option("run", "--for", case_sensitive=False, help="The job to check for: run, bench, export or ros2."),
    root: str = typer.Option("/", "--root", help="Inspect a file-system root other than / (an image, a copied tree)."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where exports live (relative to the current folder, or --root)."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where engines live."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check this machine: Jetson model, JetPack, power mode, clocks, TensorRT / CUDA / ONNX Runtime / PyTorch, OpenCV GStreamer, cameras, disk and memory, exports and engines. Exit 0 when --for JOB can run."""
    from anydepth_edge.doctor import diagnose, report_json

    if root == "/":  # on this machine, relative folders mean the current folder (under --root otherwise)
        export_dir, engines_dir = str(Path(export_dir).resolve()), str(Path(engines_dir).resolve())
    report = diagnose(root, export_dir, engines_dir)
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
        raise typer.Exit(0 if report["can"][job.value] else 1)
    raise typer.Exit(0 if views.doctor_report(report, job.value, out) else 1)


@app.command("eval")
def eval_(
    data: str = typer.Option(..., "--data", "-d", help="NYUv2's nyu_depth_v2_labeled.mat (splits.mat beside it), a KITTI root with --split eigen_test_files_with_gt.txt, or a folder of rgb/NAME.png + depth/NAME.png (16-bit) pairs."),
    dataset: EvalDataset = typer.Option("auto", "--dataset", case_sensitive=False, help="nyu (NYUv2, Eigen crop, 10 m), kitti (KITTI Eigen, Garg crop, 80 m), folder (no crop, 80 m); auto: by what --data is."),
    split: Optional[str] = typer.Option(None, "--split", help="NYUv2: splits.mat or a list of 1-based indices (default: splits.mat beside the .mat; 'all': every image). KITTI: the test list."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The engine or ONNX export to evaluate (default: the newest matching one in engines/, else export/)."),
    res: str = typer.Option("256", "--res", "-r", help="Model size to look for when --model is not given. " + RES_HELP),
    backend: BackendName = typer.Option("auto", "--backend", "-b", case_sensitive=False, help=BACKEND_HELP),
    against: Optional[str] = typer.Option(None, "--against", help="Also run fp32 (--model's FP32 export on ONNX Runtime) or another model file on the same images: both metric sets, their difference, the worst images."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N test images (a quick run on the robot)."),
    depth_scale: float = typer.Option(0.001, "--depth-scale", min=1e-9, help="Folder datasets: metres per unit of the 16-bit depth PNGs (0.001: millimetres)."),
    out_dir: str = typer.Option("eval", "--out-dir", "-o", help="Where the record goes (JSON, Markdown, PNG)."),
    engines_dir: str = typer.Option("engines", "--engines-dir", help="Where to look for engines."),
    export_dir: str = typer.Option("export", "--export-dir", help="Where to look for ONNX files."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified", help="Evaluate a TensorRT engine whose output was not checked against FP32."),
) -> None:
    """Accuracy of the deployed model: AbsRel, RMSE, delta1-3 on NYUv2, KITTI or your own RGB + depth pairs, with the zero-shot affine-invariant protocol (scale and shift fitted per image); --against fp32 shows what the deployment lost. docs/eval.md."""
    from anydepth_edge.evaluation.app import EvalOptions, run_eval

    opts = EvalOptions(data=data, dataset=dataset.value, split=split, depth_scale=depth_scale, limit=limit, model=model,
                       res=res, backend=backend.value, against=against, engines_dir=engines_dir, export_dir=export_dir,
                       out_dir=out_dir, allow_unverified=allow_unverified)
    record, paths = run_eval(opts, warn=warn, notify=info)
    views.eval_record(record, paths, out)
