"""What machine is this: Jetson model, L4T / JetPack, power mode, clocks, CPU, memory.

Everything reads files under a `root` folder, "/" by default, and asks a `Tools` object for the
output of the Jetson tools (`nvpmodel -q`), the CPU architecture and the environment, so tests and
`doctor` can describe another machine (fixture trees of an Orin Nano on JetPack 5 or 6). Torch-free,
Python 3.8.

The board model, first source that answers wins (`PlatformInfo.model_source` says which):
  1. $ANYDEPTH_DEVICE_MODEL                 an explicit override (this machine's Tools only)
  2. /proc/device-tree/model                on the host itself
  3. /etc/anydepth/host/device-model        the host's copy that docker/host-setup.sh writes and
                                            docker/compose.yaml mounts: Docker masks /sys/firmware,
                                            which /proc/device-tree points into
  4. /tmp/nv_jetson_model                   the copy jetson-containers' run.sh mounts
  5. /sys/devices/soc0/machine              the SoC bus's copy of the device-tree model (not masked)
"""

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from anydepth_edge.targets import jetpack_for_l4t, jetpack_name, version_tuple

# Orin module part numbers (P3767 family) in /proc/device-tree/compatible.
ORIN_NANO_PARTS = {"p3767-0003": "Orin Nano 8GB", "p3767-0004": "Orin Nano 4GB", "p3767-0005": "Orin Nano 8GB (devkit)"}

MODEL_ENV = "ANYDEPTH_DEVICE_MODEL"
HOST_COPY_DIR = "etc/anydepth/host"  # docker/host on the host, mounted read-only by docker/compose.yaml
# (model file, compatible file or None, how doctor names the source), in precedence order after the env.
MODEL_FILES: Tuple[Tuple[str, Optional[str], str], ...] = (
    ("proc/device-tree/model", "proc/device-tree/compatible", "/proc/device-tree/model"),
    (f"{HOST_COPY_DIR}/device-model", f"{HOST_COPY_DIR}/device-compatible",
     f"/{HOST_COPY_DIR}/device-model (the host's copy, docker/host-setup.sh)"),
    ("tmp/nv_jetson_model", None, "/tmp/nv_jetson_model (jetson-containers' copy)"),
    ("sys/devices/soc0/machine", None, "/sys/devices/soc0/machine"),
)


@dataclass
class PlatformInfo:
    machine: str = ""
    cpu_model: str = ""
    cpu_count: int = 0
    mem_total_mb: int = 0
    is_jetson: bool = False
    device_model: str = ""  # /proc/device-tree/model
    module: str = ""  # e.g. "Orin Nano 4GB"
    l4t: str = ""
    jetpack: str = ""
    expected_tensorrt: str = ""
    model_source: str = ""  # where device_model came from (MODEL_FILES, or the MODEL_ENV override)
    tegrastats: str = ""  # its path on a Jetson ("" when not found): bench's Orin memory figure needs it
    nvpmodel: str = ""  # e.g. "15W (mode 0)"
    nvpmodel_is_max: Optional[bool] = None
    clocks_locked: Optional[bool] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def is_orin_nano(self) -> bool:
        return self.is_jetson and "orin nano" in (self.device_model + " " + self.module).lower()

    @property
    def device_profile(self) -> str:
        """'orin-nano', 'jetson' (another Jetson) or 'x86' / the machine name."""
        if self.is_orin_nano:
            return "orin-nano"
        if self.is_jetson:
            return "jetson"
        return self.machine or "unknown"

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["device_profile"] = self.device_profile
        return d


def _read(root: Path, rel: str) -> str:
    try:
        return (root / rel.lstrip("/")).read_bytes().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def parse_nv_tegra_release(text: str) -> str:
    """'# R35 (release), REVISION: 4.1, ...' -> '35.4.1'."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def parse_meminfo(text: str) -> int:
    m = re.search(r"MemTotal:\s*(\d+)\s*kB", text)
    return int(m.group(1)) // 1024 if m else 0


def parse_cpuinfo(text: str) -> Tuple[str, int]:
    model = ""
    for key in ("model name", "Model", "Hardware"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if m:
            model = m.group(1).strip()
            break
    count = len(re.findall(r"^processor\s*:", text, re.M))
    return model, count


def parse_nvpmodel(text: str) -> Tuple[str, Optional[int]]:
    """`nvpmodel -q` output -> ('15W', 0)."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    mode = re.search(r"^\s*(\d+)\s*$", text, re.M)
    return (name.group(1) if name else ""), (int(mode.group(1)) if mode else None)


class Tools:
    """This machine's tools: the CPU architecture, `nvpmodel -q` (empty when absent), where a
    program is on PATH, and the environment."""

    def machine(self) -> str:
        import platform as _platform

        return _platform.machine()

    def environ(self) -> Mapping[str, str]:
        return os.environ

    def which(self, program: str) -> Optional[str]:
        return shutil.which(program)

    def nvpmodel(self) -> str:
        if shutil.which("nvpmodel") is None:
            return ""
        try:
            return subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""


class NoTools(Tools):
    """For a root that is not this machine (an image, a copied tree): no tool runs."""

    def machine(self) -> str:
        return ""

    def nvpmodel(self) -> str:
        return ""

    def environ(self) -> Mapping[str, str]:
        return {}

    def which(self, program: str) -> Optional[str]:
        return None


def gpu_clocks_locked(root: Path) -> Optional[bool]:
    """Jetson GPU devfreq: locked (jetson_clocks) when min_freq == max_freq."""
    base = root / "sys/class/devfreq"
    if not base.is_dir():
        return None
    for dev in sorted(base.iterdir()):
        if "ga10b" in dev.name or "gpu" in dev.name:
            lo, hi = _read(root, f"sys/class/devfreq/{dev.name}/min_freq"), _read(root, f"sys/class/devfreq/{dev.name}/max_freq")
            if lo and hi:
                return lo == hi
    return None


def device_model(root: Path, env: Mapping[str, str]) -> Tuple[str, str, str]:
    """(model, compatible, source) from the first source that answers (module docstring); compatible
    is '' where the source has none (the module is then told by the memory size)."""
    override = env.get(MODEL_ENV, "").strip()
    if override:
        return override, "", f"${MODEL_ENV}"
    for model_file, compatible_file, source in MODEL_FILES:
        model = _read(root, model_file)
        if model:
            return model, _read(root, compatible_file) if compatible_file else "", source
    return "", "", ""


def detect(root="/", tools: Optional[Tools] = None) -> PlatformInfo:
    root = Path(root)
    tools = tools or (Tools() if str(root) == "/" else NoTools())
    info = PlatformInfo()
    info.machine = tools.machine()
    info.cpu_model, info.cpu_count = parse_cpuinfo(_read(root, "proc/cpuinfo"))
    info.mem_total_mb = parse_meminfo(_read(root, "proc/meminfo"))
    info.device_model, compatible, info.model_source = device_model(root, tools.environ())
    tegra = _read(root, "etc/nv_tegra_release")
    info.is_jetson = bool(tegra) or "nvidia,tegra" in compatible or "jetson" in info.device_model.lower()
    if not info.is_jetson:
        return info
    if not info.device_model:
        info.warnings.append("the board model is unreadable (in a container: run docker/host-setup.sh on the host, "
                             f"or set {MODEL_ENV}): Orin Nano settings are not applied")
    for part, name in ORIN_NANO_PARTS.items():
        if part in compatible:
            info.module = name
    if "orin nano" in info.device_model.lower() and not info.module:
        info.module = "Orin Nano 4GB" if 0 < info.mem_total_mb < 5000 else "Orin Nano"
    info.l4t = parse_nv_tegra_release(tegra)
    info.jetpack = jetpack_name(info.l4t)
    line = jetpack_for_l4t(info.l4t)
    info.expected_tensorrt = line.tensorrt if line else ""
    info.tegrastats = tools.which("tegrastats") or ""
    name, mode = parse_nvpmodel(tools.nvpmodel())
    if name:
        info.nvpmodel = f"{name} (mode {mode})" if mode is not None else name
        # Mode 0 is the top mode on Orin (15W Orin Nano, MAXN elsewhere); 'MAXN' names say so too.
        info.nvpmodel_is_max = mode == 0 or "MAXN" in name.upper()
        if not info.nvpmodel_is_max:
            info.warnings.append(f"power mode {info.nvpmodel} is not the maximum: `sudo nvpmodel -m 0` for paper-like figures")
    info.clocks_locked = gpu_clocks_locked(root)
    if info.clocks_locked is False:
        info.warnings.append("clocks are not locked: `sudo jetson_clocks` for stable timings")
    if info.l4t and version_tuple(info.l4t) < (35, 3, 1):
        info.warnings.append(f"L4T {info.l4t} is older than JetPack 5.1.1, the first to support Orin Nano")
    return info
