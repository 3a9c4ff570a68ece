"""`anydepth-edge doctor`: can this machine do the job? One line per check: ok / missing / wrong
(and info), each with the fix. Exit 0 when the requested job (--for run|bench|export) can run.

Reads the platform under a root folder ("/" by default) and asks a probe which Python modules
import here, so tests describe a JetPack 5 or 6 image with fixture trees. Torch-free, Python 3.8.
"""

import glob
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from anydepth_edge.artifacts import read_json
from anydepth_edge.platform_info import PlatformInfo, detect

JOBS = ("run", "bench", "export")
MIN_FREE_DISK_MB = 2048  # an engine build writes ~0.1-0.5 GB, the timing cache and logs; keep room
MIN_AVAILABLE_MEM_MB = 1200  # TensorRT's builder on a 4 GB Orin Nano


@dataclass
class Check:
    name: str
    status: str  # ok | missing | wrong | info
    detail: str
    fix: str = ""


class Probe:
    """What this Python can import, asked lazily and cheaply (PyTorch is never imported)."""

    def version(self, module: str) -> Optional[str]:
        import importlib.util

        try:
            if importlib.util.find_spec(module) is None:
                return None
        except (ImportError, ValueError):
            return None
        dist = {"cv2": "opencv-python", "cuda": "cuda-python", "tensorrt": "tensorrt", "pyrealsense2": "pyrealsense2"}
        try:
            from importlib.metadata import PackageNotFoundError, version

            for name in (dist.get(module, module), "opencv-python-headless" if module == "cv2" else None):
                if name:
                    try:
                        return version(name)
                    except PackageNotFoundError:
                        continue
        except ImportError:
            pass
        if module in ("tensorrt", "cv2", "onnxruntime"):  # apt-installed (JetPack): no pip metadata
            try:
                return getattr(__import__(module), "__version__", "installed")
            except Exception:
                return None
        return "installed"

    def ort_providers(self) -> List[str]:
        try:
            import onnxruntime

            return list(onnxruntime.get_available_providers())
        except Exception:
            return []

    def cv2_gstreamer(self) -> Optional[bool]:
        try:
            import cv2

            from anydepth_edge.runtime.sources import gstreamer_available

            return gstreamer_available(cv2)
        except Exception:
            return None

    def gpu(self) -> Optional[str]:
        try:
            from anydepth_edge.engines.cuda_api import load_cuda_api

            api = load_cuda_api()
            return f"{api.device_name()} (sm_{''.join(map(str, api.compute_capability()))})"
        except Exception:
            return None

    def realsense_serials(self) -> List[str]:
        try:
            import pyrealsense2 as rs

            return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
        except Exception:
            return []


class FixtureProbe(Probe):
    """A probe read from `<root>/fixture-modules.json` (tests: a JetPack 5 or 6 image)."""

    def __init__(self, path: Path):
        self.data = json.loads(Path(path).read_text())

    def version(self, module):
        return self.data.get("modules", {}).get(module)

    def ort_providers(self):
        return self.data.get("ort_providers", [])

    def cv2_gstreamer(self):
        return self.data.get("cv2_gstreamer")

    def gpu(self):
        return self.data.get("gpu")

    def realsense_serials(self):
        return self.data.get("realsense_serials", [])


def _mem_available_mb(root: Path) -> int:
    try:
        text = (root / "proc/meminfo").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def _free_disk_mb(path: Path) -> int:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(str(p)).free // (1 << 20)
    except OSError:
        return 0


def diagnose(root="/", export_dir="export", engines_dir="engines", probe: Optional[Probe] = None) -> Dict:
    root = Path(root)
    fixture = root / "fixture-modules.json"
    probe = probe or (FixtureProbe(fixture) if str(root) != "/" and fixture.exists() else Probe())
    info: PlatformInfo = detect(root)
    checks: List[Check] = []
    add = checks.append

    # platform
    if info.is_jetson:
        add(Check("platform", "ok" if info.is_orin_nano else "info",
                  f"{info.device_model} ({info.module or 'module unknown'}), {info.mem_total_mb} MB"))
        if info.l4t:
            old = info.jetpack.startswith("5.0") or not info.jetpack
            add(Check("JetPack", "wrong" if old else "ok", f"L4T {info.l4t} = JetPack {info.jetpack or '?'}",
                      "Orin Nano needs JetPack >= 5.1.1" if old else ""))
        if info.nvpmodel:
            add(Check("power mode", "ok" if info.nvpmodel_is_max else "wrong", info.nvpmodel,
                      "" if info.nvpmodel_is_max else "sudo nvpmodel -m 0 (the maximum mode) for paper-like figures"))
        if info.clocks_locked is not None:
            add(Check("clocks", "ok" if info.clocks_locked else "wrong",
                      "GPU clocks locked" if info.clocks_locked else "GPU clocks float",
                      "" if info.clocks_locked else "sudo jetson_clocks (stable benchmark timings)"))
    else:
        add(Check("platform", "info", f"{info.machine or '?'} {info.cpu_model} ({info.cpu_count} CPUs, {info.mem_total_mb} MB): not a Jetson"))

    # runtimes
    trt = probe.version("tensorrt")
    if trt:
        expected = info.expected_tensorrt
        mismatch = bool(expected) and not trt.startswith(expected)
        add(Check("TensorRT", "wrong" if mismatch else "ok", trt + (f" (JetPack {info.jetpack} ships {expected})" if mismatch else ""),
                  "use JetPack's python3-libnvinfer, not a pip wheel" if mismatch else ""))
    else:
        add(Check("TensorRT", "missing", "not importable",
                  "Jetson: sudo apt install python3-libnvinfer (or the anydepth-edge image); x86: pip install 'anydepth-edge[trt]'"))
    cuda_api = probe.version("cuda") and "cuda-python" or (probe.version("pycuda") and "pycuda")
    add(Check("CUDA buffers", "ok" if cuda_api else "missing", cuda_api or "neither cuda-python nor pycuda",
              "" if cuda_api else "pip install cuda-python (JetPack 6) or pycuda (JetPack 5)"))
    gpu = probe.gpu() if (trt or cuda_api) else None
    if gpu:
        add(Check("GPU", "ok", gpu))
    ort = probe.version("onnxruntime")
    providers = probe.ort_providers() if ort else []
    add(Check("ONNX Runtime", "ok" if ort else "missing", f"{ort} ({', '.join(providers)})" if ort else "not installed",
              "" if ort else "pip install onnxruntime (CPU) or the onnxruntime-gpu wheel for your JetPack"))
    torch = probe.version("torch")
    add(Check("PyTorch", "ok" if torch else "info", torch or "not installed (only `export` needs it)"))
    cv = probe.version("cv2")
    gst = probe.cv2_gstreamer() if cv else None
    if not cv:
        add(Check("OpenCV", "missing", "not importable", "Jetson: JetPack's python3-opencv (GStreamer); else pip install 'anydepth-edge[cv]'"))
    else:
        add(Check("OpenCV", "ok" if gst or not info.is_jetson else "wrong",
                  f"{cv}, GStreamer {'yes' if gst else 'no'}",
                  "" if gst or not info.is_jetson else "CSI cameras need JetPack's python3-opencv: pip uninstall opencv-python"))

    # cameras
    videos = sorted(glob.glob(str(root / "dev" / "video*")))
    serials = probe.realsense_serials()
    cams = [os.path.basename(v) for v in videos] + [f"RealSense {s}" for s in serials]
    add(Check("cameras", "ok" if cams else "info", ", ".join(cams) if cams else "none found (files and RTSP still work)"))

    # resources for an engine build
    engines = Path(engines_dir) if Path(engines_dir).is_absolute() else root / engines_dir
    exports = Path(export_dir) if Path(export_dir).is_absolute() else root / export_dir
    free_mb = _free_disk_mb(engines)
    add(Check("disk", "ok" if free_mb >= MIN_FREE_DISK_MB else "wrong", f"{free_mb} MB free for {engines}",
              "" if free_mb >= MIN_FREE_DISK_MB else f"free at least {MIN_FREE_DISK_MB} MB"))
    avail = _mem_available_mb(root)
    if avail:
        add(Check("memory", "ok" if avail >= MIN_AVAILABLE_MEM_MB else "wrong", f"{avail} MB available",
                  "" if avail >= MIN_AVAILABLE_MEM_MB else "close the desktop / other programs, add swap, lower --workspace"))

    # artifacts
    onnx = sorted(exports.glob("*.onnx")) if exports.is_dir() else []
    add(Check("exports", "ok" if onnx else "missing", f"{len(onnx)} ONNX in {exports}",
              "" if onnx else "anydepth-edge export --res 256 (the export image or a workstation)"))
    usable_engines = 0
    for e in sorted(engines.glob("*.engine")) if engines.is_dir() else []:
        side = read_json(e.with_suffix(".json")) or {}
        built = side.get("tensorrt_version")
        if trt and built and built.split(".")[:3] == trt.split(".")[:3]:
            usable_engines += 1
            add(Check(f"engine {e.name}", "ok", f"TensorRT {built} on {side.get('gpu_name', '?')}"))
        else:
            add(Check(f"engine {e.name}", "wrong", f"built with TensorRT {built or '?'}; this is {trt or 'none'}",
                      f"anydepth-edge build {side.get('onnx_path', '<onnx>')} --force"))
    if not usable_engines:
        add(Check("engines", "missing" if trt else "info", f"no engine for this TensorRT in {engines}",
                  "anydepth-edge build export/<model>.onnx" if trt else ""))

    runtime_ok = bool((trt and cuda_api) or ort)
    can = {
        "export": bool(torch and probe.version("timm") and probe.version("onnx") and probe.version("onnxslim")),
        "run": bool(cv and runtime_ok and (usable_engines or (onnx and (ort or trt)))),
        "bench": bool((runtime_ok or torch) and (onnx or usable_engines or torch)),
    }
    return {"platform": info.to_dict(), "checks": checks, "can": can}


def print_report(report: Dict, job: str, console) -> int:
    from rich.markup import escape

    colours = {"ok": "green", "missing": "yellow", "wrong": "red", "info": "cyan"}
    for c in report["checks"]:
        fix = f"  -> {escape(c.fix)}" if c.fix else ""
        console.print(f"[{colours[c.status]}]{c.status:<8}[/] {escape(c.name)}: {escape(c.detail)}{fix}", highlight=False)
    verdict = report["can"][job]
    console.print(("[green]ready[/]" if verdict else "[red]not ready[/]") + f" for `anydepth-edge {job}`")
    return 0 if verdict else 1
