"""The fake TensorRT (tests/fakes/fake_tensorrt.py) as the `tensorrt` module of a subprocess."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/: the `fakes` package

from fakes.fake_device import DEVICE  # noqa: E402
from fakes.fake_tensorrt import make_fake_tensorrt  # noqa: E402

# FAKE_GPU_BEHAVIOUR="fp16=nan,fp16-wide=noise": how engines of each rung misbehave (absent: correct)
DEVICE.behaviour = dict(item.split("=", 1) for item in os.environ.get("FAKE_GPU_BEHAVIOUR", "").split(",") if "=" in item)
_fake = make_fake_tensorrt(os.environ.get("FAKE_TENSORRT_VERSION", "10.3.0"), oom=os.environ.get("FAKE_TRT_FAIL") == "oom")
globals().update({k: v for k, v in vars(_fake).items() if not k.startswith("__") or k == "__version__"})
