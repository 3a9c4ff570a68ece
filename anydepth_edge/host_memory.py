"""Process memory without a GPU library: resident set size and its peak (Linux /proc).
Torch-free, Python 3.8."""

import os
import re
from typing import Dict


def _status_kb(field: str, pid="self") -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            m = re.search(rf"^{field}:\s*(\d+)\s*kB", fh.read(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) * 1024 if m else 0


def process_memory(pid="self") -> Dict[str, int]:
    """Current and peak resident set size of a process, in bytes."""
    return {"rss_bytes": _status_kb("VmRSS", pid), "peak_rss_bytes": _status_kb("VmHWM", pid)}


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0: clear_refs 5)."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Hand freed memory back to the system between an export's steps: collect cycles, then ask
    glibc to return its free heap pages (freed blocks otherwise stay in the process, so every
    step's peak stacked on the last one's). A no-op without glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def available_memory() -> int:
    """MemAvailable from /proc/meminfo in bytes (0 when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            m = re.search(r"^MemAvailable:\s*(\d+)\s*kB", fh.read(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) * 1024 if m else 0
