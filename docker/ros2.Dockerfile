# syntax=docker/dockerfile:1
# anydepth-edge with ROS 2: the runtime image (docker/Dockerfile, target runtime) plus ROS 2 from
# packages.ros.org, so `anydepth-edge run --ros2` publishes ~/depth, ~/depth/camera_info, ~/points
# and /diagnostics on the robot's ROS graph (docs/ros2.md). Built on the runtime image, not beside
# it: TensorRT, CUDA, OpenCV, librealsense and the package stay exactly the ones `run` uses.
#
#   JetPack 6 (L4T r36, Ubuntu 22.04, Python 3.10) -> ROS 2 Humble (default):
#     docker build -f docker/Dockerfile --target runtime -t anydepth-edge:jp6 .
#     docker build -f docker/ros2.Dockerfile -t anydepth-edge:jp6-humble .
#   JetPack 7.2 (Ubuntu 24.04, Python 3.12) -> ROS 2 Jazzy:
#     docker build -f docker/Dockerfile --target runtime --build-arg JETPACK=7 --build-arg L4T_BASE=ubuntu:24.04 -t anydepth-edge:jp7 .
#     docker build -f docker/ros2.Dockerfile --build-arg RUNTIME_IMAGE=anydepth-edge:jp7 --build-arg ROS_DISTRO=jazzy -t anydepth-edge:jp7-jazzy .
#   (JetPack 5 / Ubuntu 20.04 has no ROS 2 with current packages: --record-bag works there without ROS.)
#
# A ROS distribution is built for one Ubuntu (humble: jammy, jazzy: noble) and its rclpy for that
# Ubuntu's Python, which is the one the runtime image's venv runs on (made with
# --system-site-packages; setup.bash puts ROS on PYTHONPATH). A mismatched pair stops the build with
# one line rather than make an image whose rclpy never imports. NumPy stays the runtime's pin
# (PIP_CONSTRAINT, 1.26.4: the 1.x ABI ROS's message modules are built for).

ARG RUNTIME_IMAGE=anydepth-edge:jp6
FROM ${RUNTIME_IMAGE}
ARG ROS_DISTRO=humble
ARG APP_UID=1000
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0
ENV ROS_DISTRO=${ROS_DISTRO}
# ros-base: rclpy, sensor_msgs, diagnostic_msgs and the ros2 CLI; rosbag2's MCAP storage plays
# --record-bag files with `ros2 bag play` (Jazzy has it by default, Humble needs the package).
# hadolint ignore=DL3008
RUN set -eu; \
    codename="$(. /etc/os-release && echo "${UBUNTU_CODENAME}")"; \
    case "${ROS_DISTRO}:${codename}" in \
      humble:jammy|jazzy:noble) ;; \
      *) echo "ROS 2 ${ROS_DISTRO} has no packages for Ubuntu ${codename}: humble needs 22.04 (JetPack 6), jazzy 24.04 (JetPack 7.2)" >&2; exit 1 ;; \
    esac; \
    apt-get update; \
    apt-get install -y --no-install-recommends curl ca-certificates gnupg; \
    curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key -o /usr/share/keyrings/ros-archive-keyring.gpg; \
    echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/ros-archive-keyring.gpg] http://packages.ros.org/ros2/ubuntu ${codename} main" \
        > /etc/apt/sources.list.d/ros2.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "ros-${ROS_DISTRO}-ros-base" "ros-${ROS_DISTRO}-rosbag2-storage-mcap"; \
    rm -rf /var/lib/apt/lists/*
# The ros2 extra's bag writer and YAML reader, into the runtime's venv (its test-only reader, rosbags,
# stays off the robot); then rclpy, the messages and the writer must import from that venv.
# hadolint ignore=DL3013
RUN python -m pip install --no-cache-dir --only-binary=:all: "mcap-ros2-support>=0.6" "pyyaml>=5.3" \
    && . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && python -c 'import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, rcl_interfaces.msg, mcap_ros2, yaml'
USER ${APP_UID}
# ROS first (PYTHONPATH, libraries), then the usual entrypoint (engines before `run`).
ENTRYPOINT ["/bin/bash", "-c", "source /opt/ros/${ROS_DISTRO}/setup.bash && exec /usr/local/bin/anydepth-entrypoint \"$@\"", "ros-entrypoint"]
CMD ["anydepth-edge", "doctor", "--for", "ros2"]
