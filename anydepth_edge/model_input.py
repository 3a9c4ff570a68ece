"""Image -> model input, without PyTorch: ImageNet normalisation to (1, 3, H, W) float32.

Resizing policies (stretch / letterbox) live in the runtime, which has OpenCV; this module only
needs numpy so the robot side and the exporter share one normalisation.
"""

from pathlib import Path
from typing import Optional

import numpy as np

from anydepth_edge.model_facts import IMAGENET_MEAN, IMAGENET_STD

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(1, 1, 3)
_INV_STD = (1.0 / np.asarray(IMAGENET_STD, dtype=np.float32)).reshape(1, 1, 3)

SAMPLE_IMAGE = Path(__file__).with_name("data") / "sample.jpg"


def normalise(rgb: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (1, 3, H, W), ImageNet mean/std. Writes into `out` if given
    (the runtime reuses one pinned buffer per frame)."""
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    x -= _MEAN
    x *= _INV_STD
    chw = x.transpose(2, 0, 1)[None]
    if out is None:
        return np.ascontiguousarray(chw)
    np.copyto(out, chw)
    return out


def load_sample_image(res) -> np.ndarray:
    """The bundled real photo, resized (stretched) to `res` = (H, W), as uint8 RGB. Uses Pillow."""
    from PIL import Image

    with Image.open(SAMPLE_IMAGE) as im:
        im = im.convert("RGB").resize((res[1], res[0]), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)
