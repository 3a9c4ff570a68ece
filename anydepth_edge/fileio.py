"""Artifact files: atomic writes, content hashes, strict JSON.

Every artifact (ONNX, engine, sidecar, benchmark record) is written to a temporary file in the
same folder and renamed into place, so an interrupted job never leaves a half file under the
final name. Temporary names carry a mark and the writer's pid (`.<name>.~w<pid>~<random>.partial`;
live recordings and bags `.<name>.~rec<pid>.partial`): two processes never share one, and the
next write into the folder removes write temporaries whose process is gone (a killed export or
bench leaves no debris for long). The mark sits right before `.partial`, so no digits in a user's
file name (`2024.12.25.mcap`) can be read as a pid, and recordings (recovered by their writer's
next run, never deleted by the cleaner) have a mark of their own. JSON is strict: NaN and Infinity
are refused, not written.
"""

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from anydepth_edge.errors import UserError

PathLike = Union[str, "os.PathLike[str]"]


def ensure_writable_dir(path: PathLike) -> Path:
    """Create `path` if needed and check that we can write there; one clear error otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {p}: {e.strerror or e}") from None
    if not p.is_dir():
        raise UserError(f"output path {p} exists and is not a folder")
    if not os.access(str(p), os.W_OK | os.X_OK):
        raise UserError(f"output folder {p} is not writable")
    return p


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


_CLEANED_DIRS = set()  # folders this process has already cleaned


def remove_stale_partials(final: PathLike) -> List[Path]:
    """Delete the `.<name>.~w<pid>~<random>.partial` temp files in `final`'s folder whose writer process
    is gone. Once per folder per process: a run writing thousands of depth files into one folder
    must not rescan it for every file."""
    folder = Path(final).parent.resolve()
    if folder in _CLEANED_DIRS:
        return []
    _CLEANED_DIRS.add(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        m = _PARTIAL.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


WRITE_MARK = "~w"  # atomic_path's temporaries: removed once their writer is gone
RECORDING_MARK = "~rec"  # live recordings and bags: recovered, never removed by the cleaner
# atomic_path's names; anchored at the end, so only the mark this code appended is read as a pid
_PARTIAL = re.compile(r"^\..+\." + WRITE_MARK + r"(\d+)~[A-Za-z0-9_]+(?:\.[A-Za-z0-9]+)?\.partial$")


def write_partial_prefix(final_name: str, pid: int) -> str:
    return f".{final_name}.{WRITE_MARK}{pid}~"


def recording_partial_name(final_name: str, pid: int) -> str:
    return f".{final_name}.{RECORDING_MARK}{pid}.partial"


def recording_final_name(name: str) -> Optional[str]:
    """The file a recording partial `.<final>.~rec<pid>.partial` was being written as, or None."""
    m = re.fullmatch(r"\.(.+)\." + re.escape(RECORDING_MARK) + r"\d+\.partial", name)
    return m.group(1) if m else None


def recording_partial_pid(final_name: str, name: str) -> Optional[int]:
    """The writer's pid of a recording partial for `final_name`, or None when `name` is not one."""
    m = re.fullmatch(re.escape(f".{final_name}.{RECORDING_MARK}") + r"(\d+)\.partial", name)
    return int(m.group(1)) if m else None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def check_not_a_folder(final: PathLike) -> Path:
    """An artifact path taken by a folder is one clear error before any work is done."""
    final = Path(final)
    if final.is_dir():
        raise UserError(f"{final} is a folder: cannot write the artifact there (move it away or choose another --out-dir)")
    return final


@contextlib.contextmanager
def atomic_path(final: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success rename it to `final`, else delete it."""
    final = check_not_a_folder(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    fd, tmp = tempfile.mkstemp(prefix=write_partial_prefix(final.name, os.getpid()), suffix=suffix + ".partial",
                               dir=str(final.parent))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # fsync so a power cut after the rename cannot leave a renamed-but-empty file.
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(str(tmp_path), 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(str(tmp_path), str(final))
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(final: PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text_atomic(final: PathLike, text: str) -> Path:
    return write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: PathLike, obj: Any) -> Path:
    """Strict JSON: a NaN or Infinity anywhere is a ValueError naming where, never written."""
    bad = non_finite_paths(obj)
    if bad:
        raise ValueError(f"{Path(final).name}: not finite at {', '.join(bad[:5])}")
    return write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


def non_finite_paths(obj: Any, where: str = "") -> List[str]:
    """JSON paths ('parity.image.rel') of the NaN / Infinity floats in `obj`."""
    if isinstance(obj, float) or (hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0):
        value = float(obj.item() if hasattr(obj, "item") else obj)
        return [] if math.isfinite(value) else [where or "value"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_paths(v, f"{where}[{i}]")]
    return []


def _json_default(o: Any) -> Any:
    # numpy scalars and paths show up in records; keep them readable.
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def read_json(path: PathLike, max_bytes: int = 64 << 20) -> Optional[Dict[str, Any]]:
    """The JSON object in `path`, or None when the file is missing, unreadable, too large or not
    strict JSON (NaN / Infinity)."""
    try:
        if os.path.getsize(path) > max_bytes:
            return None
        with open(path, "r", encoding="utf-8") as fh:
            obj = json.load(fh, parse_constant=_refuse_constant)
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None

