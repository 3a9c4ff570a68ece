"""One benchmark configuration in a fresh Python process (bench/child.py): its progress lines read on
a thread so Ctrl-C reaches the parent at once, and the child stopped with it. Torch-free."""

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from anydepth_edge.fileio import read_json


def run_child(spec: Dict[str, Any], on_iter: Callable[[int, int], None] = lambda d, t: None,
              timeout_s: Optional[float] = None) -> Dict[str, Any]:
    """Run one configuration in a fresh Python process; returns its result (or {'error': ...})."""
    with tempfile.TemporaryDirectory(prefix="anydepth-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.Popen([sys.executable, "-m", "anydepth_edge.bench.child", str(spec_path), str(result_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tail: List[str] = []
        progress: "queue.Queue" = queue.Queue()

        def read_stderr():  # a thread: the main thread never blocks in read(), so signals reach it at once
            for line in proc.stderr:
                progress.put(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while reader.is_alive() or not progress.empty():
                try:
                    line = progress.get(timeout=0.2)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired(proc.args, timeout_s) from None
                    continue
                if line.startswith("ITER "):
                    done, total = line.split()[1:3]
                    on_iter(int(done), int(total))
                else:
                    tail = (tail + [line.rstrip()])[-5:]
            proc.wait(timeout=timeout_s)
        except BaseException:  # Ctrl-C or SIGTERM (see console.interrupt_on_sigterm): the child goes too
            stop_child(proc)
            raise
        result = read_json(result_path)
    if result is None:
        return {"error": f"child exited with {proc.returncode}: " + (" | ".join(t for t in tail if t) or "no output")}
    return result


def stop_child(proc, grace_s: float = 5.0) -> None:
    """SIGTERM the child (it finishes its record or not, but frees the device), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
