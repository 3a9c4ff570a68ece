"""Artifact files: atomic writes, content hashes, JSON sidecars.

Every artifact (ONNX, engine, sidecar, benchmark record) is written to a temporary file in the
same folder and renamed into place, so an interrupted job never leaves a half file under the
final name.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

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


@contextlib.contextmanager
def atomic_path(final: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success rename it to `final`, else delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".partial", dir=str(final.parent))
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
    return write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


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


def read_json(path: PathLike) -> Optional[Dict[str, Any]]:
    """The JSON object in `path`, or None when the file is missing or unreadable."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None

