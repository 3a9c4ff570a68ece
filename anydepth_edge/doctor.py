"""`anydepth-edge doctor`: can this machine do the job? One line per check: ok / missing / wrong
(and info), each with the fix. Exit 0 when the requested job (--for run|bench|export) can run.

Reads the platform under a root folder ("/" by default) and asks a `Probe` which Python modules
import here and which GPU there is; tests inject a probe and tools that describe a JetPack 5 or 6
image (fixture trees). Files are judged, and picked, by the resolver `run` uses.
Torch-free, Python 3.8.
"""

import glob
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from anydepth_edge.engines.compat import TrtHost
from anydepth_edge.platform_info import HOST_COPY_DIR, MODEL_ENV, PlatformInfo, Tools, detect
from anydepth_edge.artifacts import EngineArtifact, export_files
from anydepth_edge.checks import Check
from anydepth_edge.errors import UserError
from anydepth_edge.resolution import DEFAULT_RUN_RES, parse_res, res_tag
from anydepth_edge.resolver import engine_files, find_model, judge_engine, judge_export
from anydepth_edge.targets import KNOWN_BAD_DINOV3

JOBS = ("run", "bench", "export", "ros2")
MIN_FREE_DISK_MB = 2048  # an engine build writes ~0.1-0.5 GB, the timing cache and logs; keep room
MIN_AVAILABLE_MEM_MB = 1200  # TensorRT's builder on a 4 GB Orin Nano
JETSON_TOOLS_FIX = ("in the image: docker/compose.yaml mounts the host's tegrastats, nvpmodel and its state read-only "
                    "(docker/host-setup.sh writes their paths); on the host: sudo apt install nvidia-l4t-tools nvidia-l4t-nvpmodel")


class Probe:
    """What this Python can import, asked lazily and cheaply (PyTorch is never imported)."""

    def version(self, module: str) -> Optional[str]:
        import importlib.util

        try:
            if importlib.util.find_spec(module) is None:
                return None
        except (ImportError, ValueError):
            return None
        dist = {"cv2": "opencv-python", "cuda": "cuda-python", "tensorrt": "tensorrt", "pyrealsense2": "pyrealsense2",
                "mcap_ros2": "mcap-ros2-support"}
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

    def gpu(self) -> Optional[Tuple[str, Tuple[int, int]]]:
        """(name, compute capability) of the GPU, or None."""
        try:
            from anydepth_edge.engines.cuda_api import load_cuda_api

            api = load_cuda_api()
            try:
                return api.device_name(), tuple(api.compute_capability())
            finally:
                api.close()
        except Exception:
            return None

    def realsense_serials(self) -> List[str]:
        try:
            import pyrealsense2 as rs

            return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
        except Exception:
            return []


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


def _platform_checks(info: PlatformInfo) -> List[Check]:
    if not info.is_jetson:
        return [Check("platform", "info", f"{info.machine or '?'} {info.cpu_model} ({info.cpu_count} CPUs, "
                                          f"{info.mem_total_mb} MB): not a Jetson")]
    if info.device_model:
        checks = [Check("platform", "ok" if info.is_orin_nano else "info",
                        f"{info.device_model} ({info.module or 'module unknown'}), {info.mem_total_mb} MB; "
                        f"model from {info.model_source}")]
    else:  # a container: Docker masks /sys/firmware, where /proc/device-tree points
        checks = [Check("platform", "wrong", f"a Jetson whose board model is unreadable ({info.mem_total_mb} MB): "
                                             "Orin Nano settings (bench --device orin-nano, the 4 GB build workspace) are off",
                        f"on the host: docker/host-setup.sh (compose mounts docker/host at /{HOST_COPY_DIR}); "
                        f"or set {MODEL_ENV}=\"NVIDIA Jetson Orin Nano Developer Kit\"")]
    if info.l4t:
        old = info.jetpack.startswith("5.0") or not info.jetpack
        checks.append(Check("JetPack", "wrong" if old else "ok", f"L4T {info.l4t} = JetPack {info.jetpack or '?'}",
                            "Orin Nano needs JetPack >= 5.1.1" if old else ""))
    if info.nvpmodel:
        checks.append(Check("power mode", "ok" if info.nvpmodel_is_max else "wrong", info.nvpmodel,
                            "" if info.nvpmodel_is_max else "sudo nvpmodel -m 0 (the maximum mode) for paper-like figures"))
    elif info.l4t:
        checks.append(Check("power mode", "missing", "nvpmodel not found (or `nvpmodel -q` said nothing)", JETSON_TOOLS_FIX))
    if not info.tegrastats:
        checks.append(Check("tegrastats", "missing", "not on PATH: bench reports no Orin memory figure", JETSON_TOOLS_FIX))
    if info.clocks_locked is not None:
        checks.append(Check("clocks", "ok" if info.clocks_locked else "wrong",
                            "GPU clocks locked" if info.clocks_locked else "GPU clocks float",
                            "" if info.clocks_locked else "sudo jetson_clocks (stable benchmark timings)"))
    return checks


def _runtime_checks(info: PlatformInfo, probe: Probe, found: Dict) -> List[Check]:
    """TensorRT, CUDA buffers, GPU, ONNX Runtime, PyTorch, OpenCV; what was found goes into `found`."""
    checks = []
    add = checks.append
    trt_version = found["tensorrt"] = probe.version("tensorrt")
    if trt_version:
        expected = info.expected_tensorrt
        mismatch = bool(expected) and not trt_version.startswith(expected)
        add(Check("TensorRT", "wrong" if mismatch else "ok", trt_version + (f" (JetPack {info.jetpack} ships {expected})" if mismatch else ""),
                  "use JetPack's python3-libnvinfer, not a pip wheel" if mismatch else ""))
    else:
        add(Check("TensorRT", "missing", "not importable",
                  "Jetson: sudo apt install python3-libnvinfer (or the anydepth-edge image); x86: pip install 'anydepth-edge[trt]'"))
    cuda_api = found["cuda_api"] = probe.version("cuda") and "cuda-python" or (probe.version("pycuda") and "pycuda")
    gpu = found["gpu"] = probe.gpu() if (trt_version or cuda_api) else None
    if not cuda_api:
        add(Check("CUDA buffers", "missing", "neither cuda-python nor pycuda",
                  "pip install cuda-python (JetPack 6) or pycuda (JetPack 5)"))
    elif gpu is None:  # a library without a GPU behind it holds no buffers
        add(Check("CUDA buffers", "info", f"{cuda_api} installed, but no CUDA GPU answers"))
    else:
        add(Check("CUDA buffers", "ok", cuda_api))
        add(Check("GPU", "ok", f"{gpu[0]} (sm_{''.join(map(str, gpu[1]))})"))
    known_bad = trt_version and tuple(int(p) for p in trt_version.split(".")[:2] if p.isdigit()) in KNOWN_BAD_DINOV3
    if known_bad:  # NVIDIA/TensorRT#4723, #4558, #4742
        add(Check("TensorRT and DINOv3", "info", f"TensorRT {trt_version} is known to miscompile DINOv3 (FP16 and FP32)",
                  "engines are checked against FP32 when built; check older ones with anydepth-edge verify ENGINE, "
                  "or use a JetPack with a newer TensorRT"))
    ort = found["onnxruntime"] = probe.version("onnxruntime")
    providers = probe.ort_providers() if ort else []
    found["ort_cuda"] = "CUDAExecutionProvider" in providers
    add(Check("ONNX Runtime", "ok" if ort else "missing", f"{ort} ({', '.join(providers)})" if ort else "not installed",
              "" if ort else "pip install onnxruntime (CPU) or the onnxruntime-gpu wheel for your JetPack"))
    torch = found["torch"] = probe.version("torch")
    add(Check("PyTorch", "ok" if torch else "info", torch or "not installed (only `export` needs it)"))
    cv = found["cv2"] = probe.version("cv2")
    gst = probe.cv2_gstreamer() if cv else None
    if not cv:
        add(Check("OpenCV", "missing", "not importable", "Jetson: JetPack's python3-opencv (GStreamer); else pip install 'anydepth-edge[cv]'"))
    else:
        add(Check("OpenCV", "ok" if gst or not info.is_jetson else "wrong",
                  f"{cv}, GStreamer {'yes' if gst else 'no'}",
                  "" if gst or not info.is_jetson else "CSI cameras need JetPack's python3-opencv: pip uninstall opencv-python"))
    return checks


def _resource_checks(root: Path, probe: Probe, engines: Path) -> List[Check]:
    """Cameras, and the disk and memory an engine build needs."""
    videos = sorted(glob.glob(str(root / "dev" / "video*")))
    cams = [os.path.basename(v) for v in videos] + [f"RealSense {s}" for s in probe.realsense_serials()]
    checks = [Check("cameras", "ok" if cams else "info", ", ".join(cams) if cams else "none found (files and RTSP still work)")]
    free_mb = _free_disk_mb(engines)
    checks.append(Check("disk", "ok" if free_mb >= MIN_FREE_DISK_MB else "wrong", f"{free_mb} MB free for {engines}",
                        "" if free_mb >= MIN_FREE_DISK_MB else f"free at least {MIN_FREE_DISK_MB} MB"))
    avail = _mem_available_mb(root)
    if avail:
        checks.append(Check("memory", "ok" if avail >= MIN_AVAILABLE_MEM_MB else "wrong", f"{avail} MB available",
                            "" if avail >= MIN_AVAILABLE_MEM_MB else "close the desktop / other programs, add swap, lower --workspace"))
    return checks


def _artifact_checks(exports: Path, engines: Path, info: PlatformInfo, found: Dict) -> List[Check]:
    """Exports and engines judged as `run` judges them (resolver.judge_export / judge_engine), and
    the file `run --res R` picks for each size there is (resolver.find_model)."""
    checks = []
    onnx = found["exports"] = []
    sizes = {parse_res(DEFAULT_RUN_RES)}  # what `run --res R` is answered for: the default and each usable file's
    for p in export_files(exports) if exports.is_dir() else []:
        record, problem, fix = judge_export(p)
        if record is None:
            checks.append(Check(f"export {p.name}", "wrong", problem, fix))
        else:
            onnx.append(p)
            sizes.add(record.res)
    checks.append(Check("exports", "ok" if onnx else "missing", f"{len(onnx)} usable ONNX in {exports}",
                        "" if onnx else "anydepth-edge export --res 256 (the export image or a workstation)"))
    trt, gpu = found["tensorrt"], found["gpu"]
    usable = found["engines"] = []
    # without a GPU answering, engines are judged on TensorRT and L4T only (compat: an unknown GPU)
    here = TrtHost(trt, gpu[0] if gpu else "", gpu[1] if gpu else None, info.l4t) if trt else None
    unreadable: List[str] = []
    for e in engine_files(engines, warn=unreadable.append) if engines.is_dir() else []:
        if here is None:
            record = EngineArtifact.find(e)
            built = f"built with TensorRT {record.tensorrt_version}" if record else "no readable sidecar"
            checks.append(Check(f"engine {e.name}", "wrong", f"{built}; no TensorRT here",
                                "install TensorRT (JetPack's python3-libnvinfer)"))
            continue
        record, problem, fix = judge_engine(e, here)
        if problem:
            checks.append(Check(f"engine {e.name}", "wrong", problem, fix))
        else:
            usable.append(e)
            sizes.add(tuple(record.resolution))
            checks.append(Check(f"engine {e.name}", "ok", f"TensorRT {record.tensorrt_version} on {record.gpu_name}"))
    checks += [Check("engines", "wrong", line, "remove or fix the links") for line in unreadable]
    if not usable:
        checks.append(Check("engines", "missing" if trt else "info", f"no engine for this TensorRT in {engines}",
                            "anydepth-edge build export/<model>.onnx" if trt else ""))
    return checks + _picks(exports, engines, sorted(sizes), here if gpu else None, found)


def _picks(exports: Path, engines: Path, sizes: List[Tuple[int, int]], host, found: Dict) -> List[Check]:
    """What `run --res R` (no --model) would run, on which backend, for each of `sizes`; `host` when
    TensorRT runs here (engines first)."""
    checks = []
    default_size = parse_res(DEFAULT_RUN_RES)
    for size in sizes:
        default = " (the default)" if size == default_size else ""
        skipped: List[str] = []  # e.g. an engine not yet verified against FP32: why run passes it over
        try:
            picked = find_model(size, engines, exports, host, warn=skipped.append)
        except UserError as e:  # nothing of this size (the default), or an engine but no GPU answering
            checks.append(Check(f"run --res {res_tag(size)}{default}", "missing" if default else "info", str(e)))
            continue
        detail = f"runs {picked.path.name} on {_backend_for(picked.path, host, found)} ({picked.why})"
        checks.append(Check(f"run --res {res_tag(size)}{default}", "info", "; ".join([detail] + skipped)))
    return checks


def _backend_for(path: Path, host, found: Dict) -> str:
    """The backend `run --backend auto` would give the file here (resolver.plan_run's rule)."""
    if path.suffix == ".engine":
        return "TensorRT"
    if host is not None:
        return "TensorRT, its engine built first when none is up to date"
    return "ONNX Runtime (cuda)" if found.get("ort_cuda") else "ONNX Runtime (cpu)"


def diagnose(root="/", export_dir="export", engines_dir="engines", probe: Optional[Probe] = None,
             tools: Optional[Tools] = None) -> Dict:
    root = Path(root)
    probe = probe or Probe()
    info: PlatformInfo = detect(root, tools)
    engines = Path(engines_dir) if Path(engines_dir).is_absolute() else root / engines_dir
    exports = Path(export_dir) if Path(export_dir).is_absolute() else root / export_dir
    found: Dict = {}
    checks = (_platform_checks(info) + _runtime_checks(info, probe, found) + _resource_checks(root, probe, engines)
              + _artifact_checks(exports, engines, info, found))
    runtime_ok = bool((found["tensorrt"] and found["cuda_api"] and found["gpu"]) or found["onnxruntime"])
    can = {
        "export": bool(found["torch"] and probe.version("timm") and probe.version("onnx") and probe.version("onnxslim")),
        "run": bool(found["cv2"] and runtime_ok and (found["engines"] or (found["exports"] and (found["onnxruntime"] or found["tensorrt"])))),
        "bench": bool((runtime_ok or found["torch"]) and (found["exports"] or found["engines"] or found["torch"])),
    }
    from anydepth_edge.ros2.doctor import ros2_checks, ros2_ready

    ros = ros2_checks(probe)
    can["ros2"] = can["run"] and ros2_ready(ros)
    return {"platform": info.to_dict(), "checks": checks + ros, "can": can}


def report_json(report: Dict) -> str:
    import json
    from dataclasses import asdict

    return json.dumps({"platform": report["platform"], "can": report["can"],
                       "checks": [asdict(c) for c in report["checks"]]})
