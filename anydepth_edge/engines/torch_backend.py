"""PyTorch backend: CPU or CUDA, FP32 or FP16, optional CUDA graph replay.

The model comes from a checkpoint / config (or an ONNX sidecar naming them), not from the ONNX.
Needs the `export` extra (PyTorch); never imported on the robot's runtime image.
"""

import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from anydepth_edge.engines.base import TORCH_LAYOUTS, Backend
from anydepth_edge.errors import HardwareMissing, UserError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: torch.nn.Module, res: Tuple[int, int], device: str = "cpu", precision: str = "fp32",
                 cuda_graph: bool = False, layout: str = "auto"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HardwareMissing("PyTorch sees no CUDA GPU here: use --device cpu")
        if precision not in ("fp32", "fp16"):
            raise UserError(f"unknown precision {precision!r}: fp32 or fp16")
        if precision == "fp16" and not device.startswith("cuda"):
            raise UserError("FP16 PyTorch inference needs a CUDA device (CPU half kernels are ~500x slower here)")
        if cuda_graph and not device.startswith("cuda"):
            raise UserError("CUDA graphs need --device cuda")
        if layout not in TORCH_LAYOUTS:
            raise UserError(f"unknown layout {layout!r}: one of {', '.join(TORCH_LAYOUTS)}")
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.precision = precision
        # Fixed input size: bake RoPE (no per-frame table, and no host work inside a CUDA graph).
        model.encoder.bake_grid(*res)
        self.model = model.eval().to(self.device, self.dtype)
        self.input_shape = (1, 3, res[0], res[1])
        self.output_shape = (1, 1, res[0], res[1])
        self.static_in = torch.zeros(self.input_shape, device=self.device, dtype=self.dtype)
        self.layout_ms: Dict[str, float] = {}  # what `auto` measured
        self.layout = self._choose_layout(layout)
        self.host_in = torch.zeros(self.input_shape, dtype=torch.float32)
        self.host_out = torch.zeros(self.output_shape, dtype=torch.float32)
        if self.device.type == "cuda":
            self.host_in = self.host_in.pin_memory()
            self.host_out = self.host_out.pin_memory()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.mem_before = torch.cuda.memory_allocated(self.device)
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.static_out: Optional[torch.Tensor] = None
        if cuda_graph:
            self._capture()

    def _set_layout(self, layout: str) -> None:
        fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt)

    def _forward_ms(self) -> float:
        """Best of a few timed forwards after a warm-up (counts per device: a CPU forward takes seconds)."""
        warmup, timed = (3, 10) if self.device.type == "cuda" else (1, 2)
        best = float("inf")
        with torch.inference_mode():
            for i in range(warmup + timed):
                start = time.perf_counter()
                self._run()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                if i >= warmup:
                    best = min(best, (time.perf_counter() - start) * 1e3)
        return best

    def _choose_layout(self, layout: str) -> str:
        if layout == "auto":
            for candidate in TORCH_LAYOUTS[1:]:
                self._set_layout(candidate)
                self.layout_ms[candidate] = self._forward_ms()
            layout = min(self.layout_ms, key=self.layout_ms.get)
        self._set_layout(layout)
        return layout

    def _run(self) -> torch.Tensor:
        return self.model(self.static_in)

    def _capture(self) -> None:
        # Warm-up on a side stream (allocator and cuDNN choices settle), then capture one forward.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self._run()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.static_out = self._run()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.check_input(batch)
        self.host_in.copy_(torch.from_numpy(batch))
        with torch.inference_mode():
            self.static_in.copy_(self.host_in, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()
                out = self.static_out
            else:
                out = self._run()
            self.host_out.copy_(out, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.host_out.numpy()

    def memory(self) -> Dict[str, Any]:
        if self.device.type == "cuda":
            return {
                "method": "torch.cuda.max_memory_allocated (weights + activations)",
                "max_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                "max_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
            }
        from anydepth_edge.host_memory import process_memory

        return {"method": "process RSS (PyTorch CPU)", **process_memory()}

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d.update({"device": str(self.device), "precision": self.precision, "cuda_graph": self.graph is not None,
                  "layout": self.layout, "layout_ms": dict(self.layout_ms), "torch": torch.__version__})
        if self.device.type == "cuda":
            d["gpu"] = torch.cuda.get_device_name(self.device)
        return d

    def close(self) -> None:
        self.graph = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def torch_backend(spec, warn=None) -> TorchBackend:
    """The PyTorch model a BackendSpec names: from an ONNX export's record (config + checkpoint + size)
    or from `spec.model` ({encoder, decoder, checkpoint, res})."""
    from anydepth_edge.models.anydepth import AnyDepthConfig
    from anydepth_edge.models.factory import resolve_model

    if spec.artifact:
        from anydepth_edge.artifacts import OnnxArtifact

        onnx = OnnxArtifact.load(spec.artifact)
        cfg = AnyDepthConfig.from_dict(onnx.config)
        ckpt, res = onnx.checkpoint.path, onnx.res
        # a random-weights export records its (test-size) config; a checkpoint carries its own
        overrides = {} if ckpt else {k: v for k, v in cfg.to_dict().items() if k not in ("encoder", "decoder")}
        encoder, decoder = cfg.encoder, cfg.decoder
    elif spec.model:
        m = spec.model
        encoder, decoder, ckpt, res, overrides = m["encoder"], m["decoder"], m.get("checkpoint"), tuple(m["res"]), {}
    else:
        raise UserError("the PyTorch backend needs an ONNX export (its sidecar names the model) or a model spec")
    model, _ = resolve_model(ckpt, encoder, decoder, warn=warn, **overrides)
    return TorchBackend(model, tuple(res), device=spec.device, precision=spec.precision, cuda_graph=spec.cuda_graph,
                        layout=spec.layout)
