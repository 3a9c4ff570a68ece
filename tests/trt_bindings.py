"""The names the real TensorRT Python bindings register, per version, read from their wheels.

PyPI serves the bindings as small wheels (tensorrt-bindings 8.6.1, tensorrt-cu12-bindings 10.x/11.x,
~1 MB). The libraries they load are stubs, so the module cannot be imported here; but pybind11 keeps
every class, enum member, method and property name it registers as a NUL-terminated string in the
module's read-only data, so the set of identifier-like strings of `tensorrt_bindings/tensorrt.so`
(plus the names the package's Python files define, e.g. `__version__`, `volume`) covers what
`import tensorrt` offers.

How a name is looked up: present when some string of the table ends with it. The linker merges a
string into the tail of a longer one ("Runtime" lives inside "IPluginV3OneRuntime", "float16" in
"bfloat16"), so exact matching would report registered names missing. Limits: names only, not
where they belong (a method of one class may be found as another's), not signatures, not behaviour.
A name absent from the table is certainly not registered; that is the direction the tests rely on.

The wheels are downloaded once into ~/.cache/anydepth-edge/trt-bindings (pip download); without a
reachable package index the tests that need them are skipped, naming why.
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Optional

# version -> (requirement, a Python and a platform it has a wheel for)
WHEELS = {
    "8.6.1": ("tensorrt-bindings==8.6.1", "3.10", "manylinux_2_17_x86_64"),
    "10.3.0": ("tensorrt-cu12-bindings==10.3.0", "3.10", "manylinux_2_17_x86_64"),
    "10.16.1": ("tensorrt-cu12-bindings==10.16.1.11", "3.12", "manylinux_2_28_x86_64"),
    "11.4.0": ("tensorrt-cu12-bindings==11.4.0.106", "3.12", "manylinux_2_28_x86_64"),
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anydepth-edge" / "trt-bindings"
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def _download(version: str, into: Path) -> Path:
    requirement, python, platform = WHEELS[version]
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                           "--python-version", python, "--platform", platform, "-d", str(into), requirement],
                          capture_output=True, text=True, timeout=300)
    wheels = list(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise LookupError(f"pip download {requirement} failed ({last})")
    return wheels[0]


def _names_of_wheel(wheel: Path) -> FrozenSet[str]:
    names = set()
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.endswith("tensorrt_bindings/tensorrt.so"):
                names |= {t.decode() for t in z.read(member).split(b"\0") if _IDENT.fullmatch(t)}
            elif member.startswith("tensorrt_bindings/") and member.endswith(".py") and member.count("/") == 1:
                tree = ast.parse(z.read(member).decode())
                names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    if not names:
        raise LookupError(f"{wheel.name} holds no tensorrt_bindings/tensorrt.so")
    return frozenset(names)


@lru_cache(maxsize=None)
def registered_names(version: str) -> FrozenSet[str]:
    """The name table of a version (cached as text beside the wheel cache); LookupError when the
    wheel cannot be had."""
    table = CACHE / f"{version}.names"
    if table.is_file():
        return frozenset(table.read_text().split())
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=str(CACHE)) as tmp:
        names = _names_of_wheel(_download(version, Path(tmp)))
    partial = table.with_suffix(f".{os.getpid()}.partial")
    partial.write_text("\n".join(sorted(names)))
    partial.replace(table)
    return names


def is_registered(version: str, name: str) -> bool:
    names = registered_names(version)
    return name in names or any(n.endswith(name) for n in names)


def unavailable(version: str) -> Optional[str]:
    """Why the table of `version` cannot be had here (None when it can)."""
    try:
        registered_names(version)
    except (LookupError, OSError, subprocess.SubprocessError) as e:
        return str(e)
    return None
