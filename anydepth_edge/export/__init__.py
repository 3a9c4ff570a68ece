"""ONNX export stage: export forms, the exporter, the TensorRT import lint, FP16 readiness."""
