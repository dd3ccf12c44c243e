"""The fork server that every worker pool of this process shares (audio features, training).

Python keeps one fork server per process, and it reads its list of modules to preload once,
when it starts.  Each pool asks for its modules through :func:`context`; the server preloads
the union of everything asked for so far, so whichever pool starts it first does not drop the
modules of the other (as long as both asked before it started).  Keeping the list here means
nobody has to read it back from CPython's private ``forkserver._forkserver``.

:func:`process_start` and :func:`owner_alive` tell whether the process that owns a record
(a comparison in the run store) still runs, even where pids are reused.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Iterable
from multiprocessing.context import BaseContext
from pathlib import Path

_lock = threading.Lock()
#: Every module asked for so far; ``__main__`` first, as in Python's own default.
_preload: list[str] = ["__main__"]


def context(preload: Iterable[str] = ()) -> BaseContext:
    """A ``forkserver`` context whose server also preloads ``preload`` (``spawn`` where the
    platform has no fork server).  Thread-safe; the modules are added to those asked before."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    with _lock:
        _preload.extend(m for m in preload if m not in _preload)
        ctx.set_forkserver_preload(list(_preload))
    return ctx


def warm_up(preload: Iterable[str] = ()) -> BaseContext:
    """:func:`context`, and start the fork server now (it imports ``preload`` in the
    background while the caller goes on); idempotent."""
    ctx = context(preload)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
    return ctx


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where /proc
    cannot tell.  A pid plus its start time names one process even when pids are reused (a
    server restarted as PID 1 in a container gets pid 1 again, with a new start time)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22 (starttime), after "(comm)"


def owner_alive(pid: int, start: str | None) -> bool:
    """True if the process that wrote a comparison still runs (same pid AND same start)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:  # written before start times were kept: trust the pid alone
        return True
    now = process_start(pid)
    return now is None or now == start
