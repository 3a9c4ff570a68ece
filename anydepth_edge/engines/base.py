"""The one inference API: a backend takes a preprocessed batch and returns depth.

Every backend knows its input name, shape and dtype, its output, and can say how much memory it
holds (and by which method that was measured). Torch-free, Python 3.8.
"""

from typing import Any, Dict, Tuple

import numpy as np

TORCH_LAYOUTS = ("auto", "nchw", "channels-last")  # PyTorch backend: memory layouts (auto: the faster, measured)


class Backend:
    name = "backend"  # tensorrt | onnxruntime | torch
    input_name: str = "image"
    input_shape: Tuple[int, ...] = ()
    input_dtype = np.dtype(np.float32)
    output_name: str = "depth"
    output_shape: Tuple[int, ...] = ()
    output_kind: str = "depth"  # or disparity (larger = nearer): set from the export's sidecar
    random_weights: bool = False

    @property
    def resolution(self) -> Tuple[int, int]:
        return int(self.input_shape[2]), int(self.input_shape[3])

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) float32 -> (1, 1, H, W) float32 depth. The returned array may be a buffer
        the backend reuses on the next call: copy it to keep it."""
        raise NotImplementedError

    def memory(self) -> Dict[str, Any]:
        """Memory figures: {'method': str, ...bytes fields}; empty when unknown."""
        return {}

    def describe(self) -> Dict[str, Any]:
        return {"backend": self.name, "input": [self.input_name, list(self.input_shape), str(self.input_dtype)],
                "output": [self.output_name, list(self.output_shape)]}

    def check_input(self, batch: np.ndarray) -> None:
        if tuple(batch.shape) != tuple(self.input_shape):
            from anydepth_edge.errors import UserError

            raise UserError(f"input shape {tuple(batch.shape)} does not match the model's {tuple(self.input_shape)}")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
