"""Build-time checks of an anydepth-edge image: the last RUN of each image stage runs it, so a broken
combination stops `docker build` instead of the robot. tests/test_docker.py runs it too.

    python check_image.py runtime --constraints FILE   # the robot image
    python check_image.py export --constraints FILE    # the export image

Runtime: this Python is the constraints file's; NumPy and the other pins are the installed versions;
exactly one cv2 on sys.path, importable under that NumPy, built with GStreamer; no pip OpenCV; the
TensorRT bindings, pycuda and pyrealsense2 are findable (not imported: libcuda and the GPU only exist
on the robot, where `anydepth-edge doctor` checks them). Export: the pins hold and torch is a CPU
build (PyPI's aarch64 torch pulls gigabytes of CUDA wheels). Prints one line per problem, exit 1.
Python 3.8 (JetPack 5's), standard library only.
"""

import argparse
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PIP_OPENCV = ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless")
FOUND_NOT_IMPORTED = ("tensorrt", "pycuda", "pyrealsense2")


def read_constraints(path: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """({package: pinned version}, {'python': '3.10', 'glibc': '2.35'}) from a constraints file whose
    header has '# python: X.Y' and '# glibc: X.Y' lines."""
    pins, meta = {}, {}
    for line in path.read_text().splitlines():
        m = re.match(r"#\s*(python|glibc):\s*(\S+)\s*$", line)
        if m:
            meta[m.group(1)] = m.group(2)
            continue
        line = line.split("#", 1)[0].strip()
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*==\s*(\S+)$", line)
        if m:
            pins[canonical(m.group(1))] = m.group(2)
    return pins, meta


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(dist: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cv2_copies(paths: List[str]) -> List[str]:
    """Every cv2 a Python with this sys.path could import: a cv2/ package or a cv2*.so module per folder
    (NVIDIA's libopencv-python installs a package, Ubuntu's python3-opencv a module)."""
    found = []
    for entry in dict.fromkeys(paths):
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        hits = sorted(p for p in folder.glob("cv2*") if p.name == "cv2" or re.match(r"cv2\..*\.so$", p.name))
        found.extend(str(h) for h in hits)
    return found


def pip_opencv() -> List[str]:
    """pip's OpenCV distributions (metadata outside /usr/lib, where apt puts its packages)."""
    from importlib.metadata import PackageNotFoundError, distribution

    found = []
    for name in PIP_OPENCV:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        where = str(dist.locate_file(""))
        if not where.startswith("/usr/lib/"):
            found.append(f"{name}=={dist.version} in {where}")
    return found


def check_pins(pins: Dict[str, str], skip=()) -> List[str]:
    problems = []
    for name, want in sorted(pins.items()):
        if name in skip:
            continue
        have = installed_version(name)
        if have is None:
            problems.append(f"{name} is not installed (constraints pin {want})")
        elif have.split("+")[0] != want:
            problems.append(f"{name} {have} is installed, the constraints pin {want}")
    return problems


def check_python(meta: Dict[str, str]) -> List[str]:
    want, have = meta.get("python"), "%d.%d" % sys.version_info[:2]
    if want and want != have:
        return [f"Python {have}, but these constraints are for Python {want}: JETPACK and L4T_BASE disagree "
                "(docker/host-setup.sh writes a matching pair)"]
    return []


def check_opencv() -> List[str]:
    problems = []
    copies = cv2_copies(sys.path)
    if len(copies) != 1:
        problems.append(f"{len(copies)} copies of cv2 on sys.path, one wanted: {', '.join(copies) or 'none'}")
    pip_cv = pip_opencv()
    if pip_cv:
        problems.append(f"pip's OpenCV is installed ({', '.join(pip_cv)}): no GStreamer, it shadows JetPack's; "
                        "pip uninstall it")
    try:
        cv2 = importlib.import_module("cv2")
    except Exception as e:  # the NumPy 2 break (isaac_ros_common#138) shows up here
        problems.append(f"import cv2 failed under NumPy {installed_version('numpy')}: {e}")
        return problems
    info = cv2.getBuildInformation()
    if not re.search(r"GStreamer:\s*YES", info):
        problems.append(f"cv2 {getattr(cv2, '__version__', '?')} at {getattr(cv2, '__file__', '?')} has no GStreamer "
                        "(CSI cameras need it)")
    return problems


def check_runtime(constraints: Path) -> List[str]:
    pins, meta = read_constraints(constraints)
    problems = check_python(meta) + check_pins(pins)
    try:
        importlib.import_module("numpy")
    except Exception as e:
        problems.append(f"import numpy failed: {e}")
    problems += check_opencv()
    for module in FOUND_NOT_IMPORTED:
        if importlib.util.find_spec(module) is None:
            problems.append(f"{module} is not on sys.path")
    return problems


def check_export(constraints: Path) -> List[str]:
    pins, meta = read_constraints(constraints)
    problems = check_python(meta) + check_pins(pins)
    try:
        torch = importlib.import_module("torch")
    except Exception as e:
        return problems + [f"import torch failed: {e}"]
    if getattr(torch.version, "cuda", None):
        problems.append(f"torch {torch.__version__} is a CUDA {torch.version.cuda} build: install it from the CPU "
                        "index (TORCH_INDEX_URL)")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", choices=("runtime", "export"))
    ap.add_argument("--constraints", type=Path, required=True)
    args = ap.parse_args(argv)
    problems = (check_runtime if args.image == "runtime" else check_export)(args.constraints)
    for p in problems:
        print(f"check_image: {p}", file=sys.stderr)
    if not problems:
        print(f"check_image: {args.image} image ok (Python {sys.version.split()[0]}, NumPy {installed_version('numpy')})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
