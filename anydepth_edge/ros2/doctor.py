"""`anydepth-edge doctor --for ros2`: can this Python publish on ROS 2 and write bags? The checks
are checks.Check lines, asked through doctor's Probe (nothing is imported). Python 3.8.

The usual failure is not "no ROS" but "ROS for another Python": Humble's rclpy is built for
Ubuntu 22.04's Python 3.10, Jazzy's for 24.04's 3.12; a venv on another Python never imports it.
"""

import os
import sys
from typing import List, Mapping, Optional, Tuple

from anydepth_edge.checks import Check

ROS_PYTHON = {"humble": (3, 10), "iron": (3, 10), "jazzy": (3, 12), "kilted": (3, 12)}
MESSAGE_PACKAGES = ("sensor_msgs", "diagnostic_msgs", "rcl_interfaces")
SOURCE_ROS = ("source /opt/ros/<distro>/setup.bash (humble on JetPack 6, jazzy on JetPack 7), "
              "or use the ROS image: docker compose --profile ros2 up")


def _ros_check(probe, environ: Mapping[str, str], python: Tuple[int, int]):
    distro = environ.get("ROS_DISTRO")
    if probe.version("rclpy"):
        missing = [p for p in MESSAGE_PACKAGES if not probe.version(p)]
        if missing:
            return Check("ROS 2", "wrong", f"rclpy imports, {', '.join(missing)} do not",
                         f"sudo apt install ros-{distro or '<distro>'}-ros-base")
        return Check("ROS 2", "ok", f"rclpy ({distro or 'distro unknown'}), {', '.join(MESSAGE_PACKAGES)}")
    wanted: Optional[Tuple[int, int]] = ROS_PYTHON.get(distro or "")
    if wanted and wanted != tuple(python):
        return Check("ROS 2", "missing", f"ROS_DISTRO={distro} is sourced, but its rclpy is built for Python "
                     f"{wanted[0]}.{wanted[1]} and this is {python[0]}.{python[1]}",
                     f"run anydepth-edge with /usr/bin/python3 (Python {wanted[0]}.{wanted[1]}), or a venv made "
                     "from it with --system-site-packages")
    if distro:
        return Check("ROS 2", "missing", f"ROS_DISTRO={distro} is set, but rclpy does not import", SOURCE_ROS)
    return Check("ROS 2", "missing", "rclpy not importable (no ROS 2 sourced in this shell)", SOURCE_ROS)


def ros2_checks(probe, environ: Mapping[str, str] = os.environ,
                python: Tuple[int, int] = tuple(sys.version_info[:2])) -> List:
    bag = probe.version("mcap_ros2")
    network = ", ".join(f"{name} {environ.get(name, default)}" for name, default in
                        (("ROS_DOMAIN_ID", "0"), ("RMW_IMPLEMENTATION", "default"), ("ROS_LOCALHOST_ONLY", "0")))
    return [
        _ros_check(probe, environ, python),
        Check("ROS 2 bags", "ok" if bag else "info",
              f"mcap-ros2-support {bag}" if bag else "mcap-ros2-support not installed (only --record-bag needs it)",
              "" if bag else "pip install 'anydepth-edge[ros2]'"),
        Check("ROS 2 network", "info", network),
    ]


def ros2_ready(checks: List) -> bool:
    """`--for ros2` can run: ROS 2 imports (the bag is optional)."""
    return any(c.name == "ROS 2" and c.status == "ok" for c in checks)
