"""Jetson memory probe: `tegrastats` samples of the RAM that CPU and GPU share (NVML reports
nothing useful on Orin). Torch-free, Python 3.8."""

import re
from typing import Dict

_TEGRA_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")


def parse_tegrastats_ram(line: str):
    """'... RAM 2012/3458MB (lfb ...) ...' -> (used_mb, total_mb), or None."""
    m = _TEGRA_RAM.search(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


class TegrastatsSampler:
    """Samples Jetson RAM (shared CPU/GPU: NVML reports nothing useful on Orin) with `tegrastats`.

    `baseline_mb` is the first sample (taken before the engine loads), `peak_mb` the largest.
    """

    def __init__(self, interval_ms: int = 100, binary: str = "tegrastats"):
        import shutil
        import subprocess
        import threading

        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError("tegrastats not found")
        self.samples = []
        self._proc = subprocess.Popen([path, "--interval", str(interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            ram = parse_tegrastats_ram(line)
            if ram:
                self.samples.append(ram[0])

    def wait_for_sample(self, timeout_s: float = 3.0) -> bool:
        import time

        end = time.monotonic() + timeout_s
        while not self.samples and time.monotonic() < end:
            time.sleep(0.02)
        return bool(self.samples)

    def stop(self) -> Dict[str, int]:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=3)
        except Exception:
            self._proc.kill()
        self._thread.join(timeout=3)
        if not self.samples:
            return {}
        return {"baseline_mb": self.samples[0], "peak_mb": max(self.samples), "samples": len(self.samples)}
