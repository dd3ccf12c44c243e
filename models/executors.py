"""Where jobs run: a small :class:`Executor` interface and the local process pool behind it.

The shape follows ``concurrent.futures.Executor`` and Dask's ``Client`` (submit work, stream
what happens, cancel, shut down), so a comparison written against it runs on the local pool
here or on a cluster engine without any change to its callers.  Jobs go in as plain dicts
(:meth:`models.jobs.Job.as_dict`); events come out as plain dicts (see :mod:`models.jobs`).

:class:`LocalProcessExecutor` keeps long-lived workers forked from the process's fork server
(torch preloaded there, so a worker starts in a fraction of a second), one torch thread each,
one per core by default.  Each worker talks to the parent over its own pipe: a killed worker
breaks only its pipe and its current job (a ``finished`` event with status ``failed``); the
other workers go on, and a replacement starts for the jobs left.  Cancel sets a flag that the
executor shares with its workers, read before every minibatch; a worker that does not stop
within :data:`CANCEL_GRACE_S` is terminated.

:class:`InlineExecutor` runs the jobs one after another on a thread of this process: for
tests and debugging (no processes, the same events).
"""

from __future__ import annotations

import collections
import os
import queue
import sys
import threading
import time
from multiprocessing.connection import wait as mp_wait
from typing import Protocol, runtime_checkable

from diagnostics.processes import warm_up

from .jobs import Job, run_job

#: Seconds a worker gets to notice Cancel before it is terminated.
CANCEL_GRACE_S = 1.5
#: What the fork server imports once, so that every worker forks with torch ready.
#: ``torch._dynamo`` too: torch imports it lazily at the first optimiser, about 1.2 s of CPU
#: that every worker would otherwise spend again.
PRELOAD = ("numpy", "torch", "torch._dynamo", "models.train", "models.jobs",
           "models.executors", "diagnostics.normalize")
#: Message of the ``finished`` event of a job that cancel reached before it started.
NOT_STARTED = "cancelled before it started"


@runtime_checkable
class Executor(Protocol):
    """Runs job dicts somewhere and reports on them as event dicts.

    The contract every implementation keeps:

    * ``submit(job)`` queues a job (a :meth:`models.jobs.Job.as_dict`); jobs start in the order
      submitted.  A job submitted after :meth:`cancel` ends at once as cancelled.
    * ``events(timeout)`` returns the events that arrived (a list of plain dicts, see
      :mod:`models.jobs`), waiting up to ``timeout`` seconds for the first; ``[]`` if none
      came, or at once when no job is left.  Every submitted job gets exactly one
      ``finished`` event, its last, whatever happens to it (done, diverged, failed, a dead
      worker, cancelled before or after it started).
    * ``cancel()`` asks every job to stop: running ones between two minibatches, queued ones
      never start.  The executor owns the means (a flag, a message); it is safe to call from
      any thread while another thread reads ``events``.
    * ``shutdown()`` stops the workers and frees what the executor holds; idempotent.  Jobs
      still running then end without further events.

    One executor serves one comparison: cancel applies to all its jobs.
    """

    def submit(self, job: dict) -> None: ...

    def events(self, timeout: float | None = None) -> list[dict]: ...

    def cancel(self) -> None: ...

    def shutdown(self) -> None: ...


def _not_started(job: dict) -> dict:
    return {"kind": "finished", "run_id": job["run_id"], "status": "cancelled",
            "test_acc": None, "message": NOT_STARTED, "elapsed_s": 0.0}


# -- the worker process -------------------------------------------------------------------
class _Flag:
    """Event-like view of a shared byte (lock-free: a killed process can never hold it)."""

    def __init__(self, value):
        self._v = value

    def is_set(self) -> bool:
        return bool(self._v.value)


def _worker_main(conn, cancel_value) -> None:
    """Worker process: receive job dicts on ``conn`` until None, run them one by one."""
    import signal

    import torch

    # Ctrl-C goes to the whole process group: the parent cancels cleanly, workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (e.g. inherited); harmless
        pass
    stop = _Flag(cancel_value)
    cache: dict = {}
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            run_job(Job.from_dict(msg), emit=conn.send, stop=stop, cache=cache)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or asked us to stop
    finally:
        conn.close()


def _check_main_importable() -> None:
    """Worker processes re-import the main script (Python's rule for spawn and forkserver);
    a script read from stdin cannot be, and every worker would die at start."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return
    path = getattr(main, "__file__", None)
    if path is not None and not os.path.isfile(path):
        raise RuntimeError(
            f"training workers cannot start: the main script {path!r} is not a file they can "
            "import; run the program from a file, a module (python -m) or python -c"
        )


# -- the local process pool ---------------------------------------------------------------
class LocalProcessExecutor:
    """Jobs on worker processes of this machine (see the module docstring).

    Parameters
    ----------
    workers : int, optional
        Most worker processes at once (default: CPU cores); never more than the jobs waiting.

    Making one starts the fork server (it imports torch in the background), so make it early;
    workers start at the first :meth:`events` after a :meth:`submit`.  Raises RuntimeError if
    workers could not import the main script.
    """

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        _check_main_importable()
        self.workers = workers or os.cpu_count() or 1
        self._ctx = warm_up(PRELOAD)
        self._cancel_value = self._ctx.RawValue("b", 0)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()  # guards _pending against submit() from another thread
        self._pending: collections.deque[dict] = collections.deque()
        self._workers: list[dict] = []
        self._out: list[dict] = []
        self._closed = False

    # -- the interface ----------------------------------------------------------------------
    def submit(self, job: dict) -> None:
        if self._closed:
            raise RuntimeError("this executor was shut down")
        with self._lock:
            self._pending.append(dict(job))

    def cancel(self) -> None:
        self._cancelled.set()
        self._cancel_value.value = 1

    def events(self, timeout: float | None = None) -> list[dict]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            self._step(wait)
            if self._out:
                out, self._out = self._out, []
                return out
            with self._lock:
                idle = not self._pending
            if (idle and not self._workers) or (deadline is not None
                                                and time.monotonic() >= deadline):
                return []

    def shutdown(self) -> None:
        self._closed = True
        for w in list(self._workers):
            self._stop_worker(w, force=True)
            w["conn"].close()
        self._workers.clear()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w["proc"].pid for w in self._workers]

    # -- the pool ---------------------------------------------------------------------------
    def _next_job(self) -> dict | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def _spawn(self) -> dict:
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, self._cancel_value), daemon=True,
                              name="normscope-worker")
        p.start()
        child.close()
        w = {"proc": p, "conn": parent, "job": None, "cancel_at": None}
        self._workers.append(w)
        return w

    def _assign(self, w: dict) -> bool:
        """Give ``w`` the next job; False if there is none (or cancel came first)."""
        if self._cancelled.is_set():
            return False
        job = self._next_job()
        if job is None:
            return False
        w["job"] = job["run_id"]
        try:
            w["conn"].send(job)
        except (BrokenPipeError, OSError):
            with self._lock:
                self._pending.appendleft(job)
            w["job"] = None
        return True

    def _retire(self, w: dict, reason: str) -> None:
        """Forget ``w``; its current job (if any) ends with ``reason``."""
        if w["job"] is not None:
            status = "cancelled" if self._cancelled.is_set() else "failed"
            self._out.append({"kind": "finished", "run_id": w["job"], "status": status,
                              "test_acc": None, "message": reason, "elapsed_s": None})
        w["conn"].close()
        self._workers.remove(w)

    def _step(self, wait: float) -> None:
        """One round: cancel, start workers for waiting jobs, read every pipe (waiting up to
        ``wait`` seconds for one), replace dead workers, retire idle ones."""
        if self._cancelled.is_set():
            self._cancel_value.value = 1
            while (job := self._next_job()) is not None:
                self._out.append(_not_started(job))
            now = time.monotonic()
            for w in list(self._workers):
                if w["job"] is None:
                    self._stop_worker(w)
                    self._retire(w, "")
                elif w["cancel_at"] is None:
                    w["cancel_at"] = now
                elif now - w["cancel_at"] > CANCEL_GRACE_S:
                    w["proc"].kill()
                    w["proc"].join(2)
                    self._retire(w, "cancelled (the worker was stopped)")
        while len(self._workers) < self.workers and self._pending and not self._cancelled.is_set():
            if not self._assign(self._spawn()):
                break
        if not self._workers:
            return
        objs = [w["conn"] for w in self._workers] + [w["proc"].sentinel for w in self._workers]
        ready = mp_wait(objs, timeout=wait)
        for w in list(self._workers):
            dead = False
            if w["conn"] in ready:
                try:
                    while w["conn"].poll():
                        event = w["conn"].recv()
                        self._out.append(event)
                        if event["kind"] == "finished" and event["run_id"] == w["job"]:
                            w["job"] = None
                            w["cancel_at"] = None
                except (EOFError, OSError, ValueError, TypeError, KeyError):
                    dead = True  # a pipe closed (or garbled) by a dying worker
            if dead or not w["proc"].is_alive():
                w["proc"].join(1)
                code = w["proc"].exitcode
                self._retire(w, f"the worker process died (exit code {code}); the other runs "
                                "went on")
                continue  # a replacement starts in the next round if jobs are waiting
            if w["job"] is None and not self._assign(w):
                self._stop_worker(w)
                self._retire(w, "")

    @staticmethod
    def _stop_worker(w: dict, force: bool = False) -> None:
        p = w["proc"]
        try:
            w["conn"].send(None)
        except (BrokenPipeError, OSError):
            pass
        p.join(0.5 if not force else 0.2)
        if p.is_alive():
            p.kill()
            p.join(1)


# -- in this process ----------------------------------------------------------------------
class InlineExecutor:
    """Jobs one after another on one thread of this process: the same events and cancel as
    :class:`LocalProcessExecutor`, without processes (tests, debugging, profiling).

    Training runs with this process's torch thread count; a worker cache is kept between jobs.
    """

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open = 0  # jobs submitted whose finished event was not returned yet
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, job: dict) -> None:
        if self._closed:
            raise RuntimeError("this executor was shut down")
        with self._lock:
            self._open += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="normscope-inline",
                                                daemon=True)
                self._thread.start()
        self._jobs.put(dict(job))

    def cancel(self) -> None:
        self._stop.set()

    def events(self, timeout: float | None = None) -> list[dict]:
        with self._lock:
            if not self._open:
                return []
        out: list[dict] = []
        try:
            out.append(self._events.get(timeout=timeout))
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        with self._lock:
            self._open -= sum(e["kind"] == "finished" for e in out)
        return out

    def shutdown(self) -> None:
        self._closed = True
        self._stop.set()
        self._jobs.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def _loop(self) -> None:
        cache: dict = {}
        while (job := self._jobs.get()) is not None:
            if self._stop.is_set():
                self._events.put(_not_started(job))
            else:
                run_job(Job.from_dict(job), emit=self._events.put, stop=self._stop, cache=cache)
