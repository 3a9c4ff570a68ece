"""anydepth-edge: AnyDepth monocular depth from PyTorch to TensorRT FP16 on the Jetson Orin Nano.

Importing the package is cheap and never imports PyTorch: the on-robot runtime has no PyTorch.
"""

__version__ = "0.1.0"

from anydepth_edge.errors import UserError  # noqa: E402

__all__ = ["UserError", "__version__"]
