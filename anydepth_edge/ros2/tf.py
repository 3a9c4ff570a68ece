"""The camera's static transform (/tf_static, `--tf-parent FRAME`): FRAME is a REP 103 body frame
(x forward, y left, z up), the depth's frame_id an optical frame (z forward, x right, y down). The
lens sits `height` metres above FRAME's origin, looking along its x axis, pitched down by `pitch`
degrees and turned by `roll` degrees about its own axis (right side down): --metric floor's mounting,
so RViz shows the cloud standing on the floor. Pure numpy, Python 3.8."""

import math
from typing import Any, Dict, Tuple

import numpy as np

# Columns: the optical frame's x, y, z axes in body coordinates, for a level camera looking forward.
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def mount_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation body <- optical: pitch about the body's y axis (positive looks down, REP 103's sign),
    after roll about the lens's axis (optical z; positive turns the image's right side down)."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    pitch = np.array([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0], [-math.sin(p), 0.0, math.cos(p)]])
    roll = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return pitch @ OPTICAL_IN_BODY @ roll


def quaternion(rotation: np.ndarray) -> Tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix, w >= 0 (Shepperd's method: stable for every rotation)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        v = [0.0, 0.0, 0.0]
        v[i], v[j], v[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
        q = (v[0], v[1], v[2], (m[k, j] - m[j, k]) / s)
    return tuple(-c for c in q) if q[3] < 0 else q


def static_transform(hdr: Dict[str, Any], parent: str, child: str, height_m: float, pitch_deg: float,
                     roll_deg: float) -> Dict[str, Any]:
    """tf2_msgs/TFMessage with the one transform parent -> child (`hdr`'s stamp)."""
    x, y, z, w = quaternion(mount_rotation(pitch_deg, roll_deg))
    return {"transforms": [{
        "header": dict(hdr, frame_id=parent), "child_frame_id": child,
        "transform": {"translation": {"x": 0.0, "y": 0.0, "z": float(height_m)},
                      "rotation": {"x": x, "y": y, "z": z, "w": w}},
    }]}
