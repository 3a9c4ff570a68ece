"""ROS 2 output for the on-robot loop: depth where robots read it.

- (runtime/camera.py, shared with the runtime's metric fit: pinhole intrinsics, their transforms for the
  model's stretch / letterbox, back-projection, and where they come from: calibration YAML, camera_info,
  RealSense);
- messages.py: sensor_msgs / diagnostic_msgs messages as plain dicts, built and read with numpy
  (pure, no ROS needed);
- topics.py: what is published where, and the message definitions a bag declares;
- publisher.py: the sink the runtime's DepthLoop feeds (one set of messages per frame, handed to
  every outlet: a live node, an MCAP bag);
- bag.py: the MCAP ROS 2 bag outlet (mcap-ros2-support, no ROS installation);
- node.py: the rclpy node outlet (rclpy comes from the ROS installation, never pip);
- sources.py: a ROS image topic as a runtime FrameSource;
- app.py: `run` with ROS 2 outputs;
- doctor.py: the `doctor --for ros2` checks.

Relative depth (the model's affine-invariant output) is published as 32FC1 and named so in the
parameters and docs; metres only with a metric fit (--metric sensor or floor, REP 118).
Torch-free, Python 3.8.
"""
