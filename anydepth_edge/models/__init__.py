"""PyTorch models (needs the `export` extra): AnyDepth = DINOv3 encoder + SDT or DPT decoder."""

from anydepth_edge.models.anydepth import AnyDepth, AnyDepthConfig, build_model

__all__ = ["AnyDepth", "AnyDepthConfig", "build_model"]
