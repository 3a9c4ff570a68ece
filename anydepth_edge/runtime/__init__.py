"""On-robot runtime: camera sources, the capture/inference/output loop, sinks, the MJPEG viewer,
metric depth. Torch-free."""
