"""The files `run` writes (--record, --save-depth): the checks before a run (no silent overwrite,
enough free space), one clear line when a write fails (a full disk above all), and moving a
finished file into place without clobbering one that appeared meanwhile. Torch-free, Python 3.8.
"""

import contextlib
import errno
import os

import shutil
from pathlib import Path
from typing import List

from anydepth_edge.fileio import ensure_writable_dir, glob_escape, pid_alive, recording_partial_name, recording_partial_pid
from anydepth_edge.errors import UserError

# errnos that mean "the disk (or this file system's file size limit, or the quota) is full"
SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
MAX_NUMBERED = 1000


class OutputFailed(UserError):
    """An output file could not be written or did not come out whole: the run fails naming it."""


def write_failure(option: str, path, exc: OSError) -> OutputFailed:
    """One line for an OSError while writing `path`; a full disk always says 'no space'."""
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{code}: {exc.strerror}" if code and exc.strerror else str(exc)
    if exc.errno in SPACE_ERRNOS:
        return OutputFailed(f"{option}: no space left to write {path} ({reason})")
    return OutputFailed(f"{option}: cannot write {path} ({reason})")


def free_bytes(folder) -> int:
    """Free bytes where `folder` is, or would be once created (its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(str(p)).free


def check_free_space(option: str, folder, min_mb: float) -> None:
    free = free_bytes(folder)
    if free < min_mb * 1e6:
        raise UserError(f"{option}: only {free / 1e6:.0f} MB free in {folder} (a run that writes files wants at "
                        f"least {min_mb:.0f} MB): free some space, or lower --min-free-mb")


def check_record_target(path, overwrite: bool, min_free_mb: float) -> Path:
    """--record PATH: an .mp4 name, not an existing file unless --overwrite, room beside it."""
    p = Path(path)
    if p.suffix.lower() != ".mp4":
        raise UserError(f"--record {path}: give an .mp4 file name")
    if p.is_dir():
        raise UserError(f"--record {path} is a folder: give an .mp4 file name")
    if os.path.lexists(str(p)) and not overwrite:
        raise UserError(f"--record {path} exists: pass --overwrite to replace it, or give another name")
    folder = ensure_writable_dir(p.parent)
    check_free_space("--record", folder, min_free_mb)
    return p


def check_depth_folder(folder, overwrite: bool, min_free_mb: float) -> Path:
    """--save-depth DIR: empty (temporary files aside) unless --overwrite, with room to write."""
    d = ensure_writable_dir(folder)
    with os.scandir(str(d)) as entries:
        used = sorted(e.name for e in entries if not e.name.endswith(".partial"))
    if used and not overwrite:
        raise UserError(f"--save-depth {folder} is not empty ({len(used)} entries, e.g. {used[0]}): pass --overwrite "
                        "to write into it anyway (files of the same name are replaced), or give an empty folder")
    check_free_space("--save-depth", d, min_free_mb)
    return d


def same_folder(a, b) -> bool:
    """Whether two paths name one folder (symlinks and relative paths resolved)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or (Path(a).exists() and os.path.samefile(str(a), str(b)))
    except OSError:
        return False


def partial_path(final) -> Path:
    """This process's temporary name for `final` (the pid keeps two runs' temp files apart)."""
    final = Path(final)
    return final.with_name(recording_partial_name(final.name, os.getpid()))


def stale_partials(final) -> List[Path]:
    """Temporary files for `final` whose writer is gone. One with our own pid is stale too: we have
    not made ours yet, so it is from before a reboot (pids repeat from boot to boot)."""
    final = Path(final)
    found = ((p, recording_partial_pid(final.name, p.name))
             for p in final.parent.glob(f".{glob_escape(final.name)}.*.partial"))
    return sorted(p for p, pid in found if pid is not None and (pid == os.getpid() or not pid_alive(pid)))


def recovered_path(final) -> Path:
    """Where a crashed run's recording of `final` is kept: `<stem>.recovered<suffix>` beside it."""
    final = Path(final)
    return final.with_name(f"{final.stem}.recovered{final.suffix}")


def numbered(final: Path, n: int) -> Path:
    return final if n == 0 else final.with_name(f"{final.stem}-{n}{final.suffix}")


def publish(tmp, final, overwrite: bool) -> Path:
    """Move the finished `tmp` to `final`. Without `overwrite` a file that appeared at `final`
    meanwhile is never replaced: the first free `<stem>-N<suffix>` is used. Returns where it went."""
    tmp, final = Path(tmp), Path(final)
    if overwrite:
        os.replace(str(tmp), str(final))
        fsync_dir(final.parent)
        return final
    for n in range(MAX_NUMBERED):
        if _move_no_clobber(tmp, numbered(final, n)):
            fsync_dir(final.parent)
            return numbered(final, n)
    raise OutputFailed(f"{final}: {MAX_NUMBERED} files of that name exist; the output stays in {tmp}")


def _move_no_clobber(tmp: Path, target: Path) -> bool:
    try:
        os.link(str(tmp), str(target))  # fails when target exists: rename without clobbering
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system (FAT, exFAT): check, then rename
        if os.path.lexists(str(target)):
            return False
        os.rename(str(tmp), str(target))
        return True
    os.unlink(str(tmp))
    return True


def fsync_dir(folder) -> None:
    """Make a new or renamed directory entry durable (a power cut must not lose it)."""
    with contextlib.suppress(OSError):  # not every file system (or OS) lets a folder be fsynced
        fd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
