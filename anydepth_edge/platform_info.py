"""What machine is this: Jetson model, L4T / JetPack, power mode, clocks, CPU, memory.

Everything reads files (and two Jetson tools) under a `root` folder, "/" by default, so tests and
`doctor` can point it at fixture file-system trees of an Orin Nano on JetPack 5 or 6.
Torch-free, Python 3.8.
"""

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# L4T release -> JetPack (NVIDIA's release tables). Orin Nano needs JetPack >= 5.1.1 (L4T 35.3.1).
L4T_TO_JETPACK = {
    "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5",
    "35.6.2": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}
JETPACK_TENSORRT = {"5.1": "8.5.2", "6.0": "8.6.2", "6.1": "10.3", "6.2": "10.3"}

# Orin module part numbers (P3767 family) in /proc/device-tree/compatible.
ORIN_NANO_PARTS = {"p3767-0003": "Orin Nano 8GB", "p3767-0004": "Orin Nano 4GB", "p3767-0005": "Orin Nano 8GB (devkit)"}


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


def jetpack_for_l4t(l4t: str) -> str:
    if l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t]
    major = l4t.split(".")[0]
    return {"35": "5.1.x", "36": "6.x"}.get(major, "")


def expected_tensorrt(jetpack: str) -> str:
    for prefix, version in JETPACK_TENSORRT.items():
        if jetpack.startswith(prefix):
            return version
    return ""


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


def _nvpmodel(root: Path) -> str:
    fixture = root / "nvpmodel-q.txt"  # fixture roots carry the tool's output
    if str(root) != "/":
        return fixture.read_text() if fixture.exists() else ""
    if shutil.which("nvpmodel") is None:
        return ""
    try:
        return subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


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


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def detect(root="/") -> PlatformInfo:
    import platform as _platform

    root = Path(root)
    info = PlatformInfo()
    info.machine = _read(root, "fixture-machine.txt") or (_platform.machine() if str(root) == "/" else "")
    info.cpu_model, info.cpu_count = parse_cpuinfo(_read(root, "proc/cpuinfo"))
    info.mem_total_mb = parse_meminfo(_read(root, "proc/meminfo"))
    info.device_model = _read(root, "proc/device-tree/model")
    compatible = _read(root, "proc/device-tree/compatible")
    tegra = _read(root, "etc/nv_tegra_release")
    info.is_jetson = bool(tegra) or "nvidia,tegra" in compatible or "jetson" in info.device_model.lower()
    if not info.is_jetson:
        return info
    for part, name in ORIN_NANO_PARTS.items():
        if part in compatible:
            info.module = name
    if "orin nano" in info.device_model.lower() and not info.module:
        info.module = "Orin Nano 4GB" if 0 < info.mem_total_mb < 5000 else "Orin Nano"
    info.l4t = parse_nv_tegra_release(tegra)
    info.jetpack = jetpack_for_l4t(info.l4t)
    info.expected_tensorrt = expected_tensorrt(info.jetpack)
    name, mode = parse_nvpmodel(_nvpmodel(root))
    if name:
        info.nvpmodel = f"{name} (mode {mode})" if mode is not None else name
        # Mode 0 is the top mode on Orin (15W Orin Nano, MAXN elsewhere); 'MAXN' names say so too.
        info.nvpmodel_is_max = mode == 0 or "MAXN" in name.upper()
        if not info.nvpmodel_is_max:
            info.warnings.append(f"power mode {info.nvpmodel} is not the maximum: `sudo nvpmodel -m 0` for paper-like figures")
    info.clocks_locked = gpu_clocks_locked(root)
    if info.clocks_locked is False:
        info.warnings.append("clocks are not locked: `sudo jetson_clocks` for stable timings")
    if info.l4t and _version_tuple(info.l4t) < (35, 3, 1):
        info.warnings.append(f"L4T {info.l4t} is older than JetPack 5.1.1, the first to support Orin Nano")
    return info
