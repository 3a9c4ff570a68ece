"""`anydepth-edge eval`: the accuracy of a deployed model on a standard benchmark.

- protocol.py: the zero-shot affine-invariant protocol (alignment, crops, caps, metrics);
- datasets.py: NYUv2's labeled .mat, KITTI's Eigen list, folders of RGB + depth pairs;
- runner.py: every image through one or two backends, the record (JSON, Markdown, PNG);
- app.py: the command's wiring (data before models, the --against reference).

numpy + OpenCV (h5py and scipy for NYUv2's .mat), no torch: it runs on the robot.
"""
