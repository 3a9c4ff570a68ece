"""One line of a readiness check (`doctor`, `doctor --for ros2`): what was checked, its status,
what was found and the fix. Its own module so the ROS 2 checks and doctor share it without
importing each other. Python 3.8."""

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    status: str  # ok | missing | wrong | info
    detail: str
    fix: str = ""
