"""Readers for the fixture file-system trees in tests/fixtures/platforms: what `platform_info`'s
Tools and `doctor`'s Probe would report on that machine, taken from files in the tree."""

import json
from pathlib import Path

from anydepth_edge.doctor import Probe
from anydepth_edge.platform_info import Tools


class FixtureTools(Tools):
    """`fixture-machine.txt` is `uname -m`; `nvpmodel-q.txt` is `nvpmodel -q` (absent: no tool)."""

    def __init__(self, root):
        self.root = Path(root)

    def _text(self, name: str) -> str:
        p = self.root / name
        return p.read_text() if p.exists() else ""

    def machine(self):
        return self._text("fixture-machine.txt").strip()

    def nvpmodel(self):
        return self._text("nvpmodel-q.txt")

    def environ(self):
        return {}  # the fixture machine's environment, not this one's

    def which(self, program):
        """A tool is on the fixture machine's PATH when the tree has `fixture-which-<tool>`."""
        return program if (self.root / f"fixture-which-{program}").exists() else None


class FixtureProbe(Probe):
    """`fixture-modules.json`: importable modules and versions, ORT providers, OpenCV GStreamer,
    the GPU ({name, compute_capability}) and RealSense serials of that machine's Python."""

    def __init__(self, root):
        path = Path(root) / "fixture-modules.json"
        self.data = json.loads(path.read_text()) if path.exists() else {}  # a bare tree: nothing installed

    def version(self, module):
        return self.data.get("modules", {}).get(module)

    def ort_providers(self):
        return self.data.get("ort_providers", [])

    def cv2_gstreamer(self):
        return self.data.get("cv2_gstreamer")

    def gpu(self):
        gpu = self.data.get("gpu")
        return (gpu["name"], tuple(gpu["compute_capability"])) if gpu else None

    def realsense_serials(self):
        return self.data.get("realsense_serials", [])


def fixture(root):
    """`diagnose` / `detect` keyword arguments for a fixture tree."""
    return {"probe": FixtureProbe(root), "tools": FixtureTools(root)}
