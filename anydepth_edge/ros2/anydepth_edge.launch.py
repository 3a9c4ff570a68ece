"""ROS 2 launch file: `anydepth-edge run --ros2` as a process of a launch graph.

    ros2 launch anydepth_edge/ros2/anydepth_edge.launch.py source:=realsense metric:=sensor tf_parent:=base_link
    ros2 launch anydepth_edge/ros2/anydepth_edge.launch.py source:=ros:/camera/color/image_raw namespace:=/front

(in the ROS image: /opt/anydepth-edge/src/anydepth_edge/ros2/anydepth_edge.launch.py). It runs the
`anydepth-edge` on PATH; a native install's is cli:=/opt/anydepth-edge/venv/bin/anydepth-edge. The node is the
CLI's own (`run --ros2` starts rclpy itself), so this is an ExecuteProcess rather than a Node action; an
argument left empty is not passed, so the CLI's defaults hold. `ros2 launch ... --show-args` lists them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

# (launch argument, CLI option, default, description); '' = the CLI's default
ARGUMENTS = (
    ("source", "--source", "0", "camera: 0, /dev/video2, csi://0, realsense, rtsp://..., or ros:/TOPIC"),
    ("res", "--res", "256", "model size (an export of that size must exist)"),
    ("model", "--model", "", "an .engine or .onnx file, or a folder (default: the newest matching one)"),
    ("metric", "--metric", "", "metres: sensor (a RealSense) or floor (the camera's mounting); empty: relative"),
    ("camera_height", "--camera-height", "", "--metric floor: lens height above the floor, metres"),
    ("camera_pitch", "--camera-pitch", "", "--metric floor: downward tilt, degrees"),
    ("camera_info", "--camera-info", "", "a camera_info YAML (camera_calibration's) for intrinsics"),
    ("frame_id", "--frame-id", "", "the depth's frame (default: the source's)"),
    ("tf_parent", "--tf-parent", "", "publish /tf_static from this frame (e.g. base_link) to the depth's frame"),
    ("node_name", "--node-name", "", "ROS 2 node name (default anydepth_edge)"),
    ("namespace", "--namespace", "", "ROS 2 namespace, e.g. /robot"),
    ("serve", "--serve", "", "also serve the browser viewer at HOST:PORT"),
)
FLAGS = (("colored", "--colored", "also publish ~/depth/colored and its compressed form"),)
EXTRA = ("extra", "more run options, split into words (e.g. '--points-decimation 2')")
CLI = ("cli", "anydepth-edge", "the CLI to run (a native install: /opt/anydepth-edge/venv/bin/anydepth-edge)")


def run_command(values) -> list:
    """The `anydepth-edge run --ros2 ...` command for these launch argument values."""
    cmd = [values.get(CLI[0]) or CLI[1], "run", "--ros2"]
    for name, option, _default, _help in ARGUMENTS:
        if values.get(name, ""):
            cmd += [option, values[name]]
    for name, option, _help in FLAGS:
        if values.get(name, "false").lower() in ("true", "1", "yes"):
            cmd.append(option)
    return cmd + values.get(EXTRA[0], "").split()


def _process(context, *args, **kwargs):
    names = [a[0] for a in ARGUMENTS] + [f[0] for f in FLAGS] + [EXTRA[0], CLI[0]]
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    # SIGINT first (run finishes a recording, closes its bag), SIGTERM after 30 s as compose's grace period
    return [ExecuteProcess(cmd=run_command(values), output="screen", name="anydepth_edge", sigterm_timeout="30")]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, _option, default, text in ARGUMENTS]
    declared += [DeclareLaunchArgument(name, default_value="false", description=text) for name, _option, text in FLAGS]
    declared.append(DeclareLaunchArgument(EXTRA[0], default_value="", description=EXTRA[1]))
    declared.append(DeclareLaunchArgument(CLI[0], default_value=CLI[1], description=CLI[2]))
    return LaunchDescription(declared + [OpaqueFunction(function=_process)])
