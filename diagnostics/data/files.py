"""Files on disk, safely: regular files only, free space, claimed temporary folders and
outputs that appear only when complete.

The lowest module of :mod:`diagnostics.data`: it imports nothing of NormScope.

- :func:`open_regular` opens without blocking and refuses FIFOs, devices and sockets, so a named
  pipe called ``x.npy`` or ``dog/0.wav`` can never hang a read.
- :func:`claim_dir` / :func:`is_abandoned`: a temporary folder is claimed with an advisory lock
  (``flock``) held by the process that fills it.  The kernel drops the lock when that process
  ends, however it ends, so a clean-up at start-up removes only the folders of dead writers and
  never trusts a process id.
- :func:`atomic_output` writes under a temporary name in the target's folder and renames when
  complete: a full disk leaves the old file or nothing, never a truncated result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; stale folders are then recognised by age only
    fcntl = None

#: A temporary folder nobody holds is removed only when it is at least this old (seconds), so a
#: writer between creating its folder and locking it is never disturbed.
STALE_AGE_S = 60.0
#: Without flock (Windows) a temporary folder is taken as abandoned after this long (seconds).
STALE_AGE_UNLOCKED_S = 24 * 3600.0


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder, not a regular file."""


def describe_mode(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ("a FIFO (named pipe)", "a folder", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: str | os.PathLike):
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    The open itself never blocks (``O_NONBLOCK``: a FIFO without a writer would otherwise wait
    forever), and the check is made on the opened descriptor, so a file swapped for a FIFO
    between a check and the open is caught too.

    Raises
    ------
    NotRegularFile
        For FIFOs, devices, sockets and folders; ``str(exc)`` says which.
    OSError
        If the file cannot be opened (missing, no permission, ...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise NotRegularFile(errno.EISDIR, "is a folder, not a file", os.fspath(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"is {describe_mode(mode)}, not a regular file",
                                 os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike) -> None:
    """Raise :class:`NotRegularFile` unless ``path`` (followed through links) is a regular file."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(errno.EINVAL, f"is {describe_mode(mode)}, not a regular file",
                             os.fspath(path))


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``folder`` (None when it cannot be asked)."""
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:
        return None


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``320 MiB``, ``12 KiB``: sizes in messages."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.{1 if n < 10 * size else 0}f} {unit}"
    return f"{int(n)} bytes"


# --- claimed temporary folders ------------------------------------------------------------------

def claim_dir(path: Path) -> int | None:
    """Lock the folder ``path`` for as long as the returned descriptor is open (see module doc).

    Returns None where locks are not available; release with :func:`release_dir`.
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release_dir(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing drops the lock


def remove_if_abandoned(path: Path, *, min_age_s: float = STALE_AGE_S) -> bool:
    """Remove the temporary folder ``path`` if no live process holds it; True if removed.

    A folder is abandoned when nobody holds its lock and it is older than ``min_age_s`` (by its
    modification time).  The lock is held while it is removed, so two cleaners never collide
    with a writer that reuses the name.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    age = time.time() - st.st_mtime
    if fcntl is None:
        if age < STALE_AGE_UNLOCKED_S:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True
    fd = claim_dir(path)
    if fd is None:
        return False  # a live writer holds it (or it vanished)
    try:
        if age < min_age_s:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    finally:
        release_dir(fd)


# --- outputs ------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """Write ``path`` under a temporary name in its folder; rename it into place when complete.

    On any failure (a full disk, an exception in the body) the temporary file is removed and
    ``path`` is left as it was.  ``mode`` is "wb" or "w" (text; ``encoding``/``newline`` in
    ``open_kwargs``).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # a full disk shows here at the latest, before the rename
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
