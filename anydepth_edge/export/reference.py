"""The reference bundle written beside every export: real-looking inputs at the model's size and
their FP32 ONNX Runtime depth, so the robot can check any engine against FP32 with numpy alone
(`agreement.Bundle`).

Inputs (never pure noise, so a flat or noisy prediction cannot pass): the bundled photo; a crop of
it, mirrored; and a synthetic scene rendered here (a room: floor and wall planes in perspective
with texture, lit boxes and a sphere), seeded, so the bundle is reproducible.
"""

from typing import Dict, Tuple

import numpy as np

from anydepth_edge.agreement import Bundle
from anydepth_edge.model_input import load_sample_image, normalise


def crop_flip(res: Tuple[int, int]) -> np.ndarray:
    """The central 70% of the photo, mirrored left-right, at `res`."""
    h, w = res
    big = load_sample_image((int(h / 0.7), int(w / 0.7)))
    top, left = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[top:top + h, left:left + w][:, ::-1])


def synthetic_scene(res: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint8 RGB (H, W, 3): a textured floor and back wall in perspective, three shaded boxes and a
    sphere, soft light from the upper left."""
    h, w = res
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w, yy / h
    horizon = 0.45
    img = np.zeros((h, w, 3), np.float32)
    # back wall: a plaster colour with a vertical light falloff
    wall = np.array([0.78, 0.74, 0.66]) * (0.75 + 0.25 * (1 - v[..., None] / horizon))
    # floor: wooden planks converging to the vanishing point, darker far away
    depth = np.clip((v - horizon) / (1 - horizon), 1e-3, 1)
    plank = (np.floor((u - 0.5) / depth * 6) % 2)[..., None]
    floor = np.array([0.55, 0.38, 0.22]) * (0.6 + 0.4 * depth[..., None]) * (0.85 + 0.15 * plank)
    img[:] = np.where((v < horizon)[..., None], wall, floor)
    img += rng.normal(0, 0.02, img.shape)  # surface texture
    # boxes: front face, lit side
    for cx, bw, bh, colour in ((0.2, 0.16, 0.22, (0.25, 0.45, 0.7)), (0.55, 0.12, 0.3, (0.7, 0.3, 0.25)),
                               (0.8, 0.2, 0.14, (0.35, 0.6, 0.35))):
        base = horizon + 0.45 * (1 - abs(cx - 0.5))
        x0, x1, y0, y1 = cx - bw / 2, cx + bw / 2, base - bh, base
        face = (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
        side = (u > x1) & (u <= x1 + bw * 0.3) & (v >= y0 - (u - x1) * 0.5) & (v <= y1 - (u - x1) * 0.3)
        img[face] = np.array(colour) * 0.9
        img[side] = np.array(colour) * 0.55
    # a sphere with Lambert shading
    cx, cy, r = 0.38 * w, 0.72 * h, 0.09 * min(h, w)
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2
    inside = d2 < 1
    nz = np.sqrt(np.clip(1 - d2, 0, 1))
    shade = np.clip(0.2 + 0.8 * (-(xx - cx) / r * 0.5 - (yy - cy) / r * 0.5 + nz * 0.7), 0, 1)
    img[inside] = (np.array([0.85, 0.8, 0.3]) * shade[..., None])[inside]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def reference_images(res: Tuple[int, int]) -> Dict[str, np.ndarray]:
    return {"photo": load_sample_image(res), "photo-crop-flip": crop_flip(res), "synthetic-room": synthetic_scene(res)}


def make_bundle(session, res: Tuple[int, int], input_name: str = "image", output_name: str = "depth") -> Bundle:
    """The inputs, and their depth from `session` (the FP32 export on ONNX Runtime CPU)."""
    images = reference_images(res)
    inputs = np.concatenate([normalise(img) for img in images.values()])
    outputs = np.concatenate([session.run([output_name], {input_name: x[None]})[0] for x in inputs])
    return Bundle(list(images), inputs, outputs)
