"""Jobs on a Dask cluster: :class:`DaskExecutor`, behind the same :class:`~models.executors.Executor`
interface as the local process pool.

* **Where.** ``--cluster tcp://HOST:PORT`` on the CLI, or ``NORMSCOPE_DASK_SCHEDULER`` for the
  app and the CLI (:func:`scheduler_address`).  A scheduler that does not answer within
  :func:`~diagnostics.cluster.connect_timeout` seconds (5, or ``NORMSCOPE_DASK_CONNECT_S``)
  is one NormScopeError (CLI exit 2, app ``st.error``).
* **Jobs** go out as futures (``pure=False``, one per run) running :func:`models.jobs.run_job`
  on a worker with one torch thread.  The ``finished`` event is the future's result; the other
  events (``started``, ``progress``, ``epoch``) stream back through a ``distributed.Queue``
  named for this executor, and :meth:`DaskExecutor.events` hands them to the comparison as the
  local pool's are.
* **Cancel** sets a ``distributed.Event`` that each job reads, at most every
  :data:`STOP_POLL_S` seconds, between two minibatches (``Future.cancel`` does not stop a
  running task); jobs that had not started are cancelled on the scheduler.
* **A lost worker**: its job is run again by the scheduler on another worker, as Dask does
  for every task whose worker dies, up to the scheduler's ``allowed-failures`` (Dask's default
  3; the README and the tests set 1: *retries once*).  A job that runs out of retries
  (``KilledWorker``) ends ``failed``; every other job goes on.  The rerun gives the same numbers
  (the same seed and split); its repeated ``started`` and epoch events are dropped here.
* **A lost scheduler**: runs not finished end ``interrupted``; finished ones are kept.
* **Data** reaches the workers in one of two ways (:meth:`DaskExecutor.attach_data`):
  scattered once per comparison when X is at most :func:`scatter_limit` bytes (default
  :data:`SCATTER_MAX_BYTES`, ``NORMSCOPE_DASK_SCATTER_MB`` changes it), else opened by the
  workers themselves by its spec and content id from the comparison's ``NORMSCOPE_HOME``,
  which must then be on storage they share (checked by one probe task; refused with one
  sentence when neither works).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import numpy as np

from diagnostics.errors import NormScopeError

from diagnostics.cluster import SCHEDULER_ENV, connect, scheduler_address

from .executors import NOT_STARTED

#: Environment variable: most MiB of X scattered to the workers (larger: opened by them).
SCATTER_ENV = "NORMSCOPE_DASK_SCATTER_MB"
#: Default most bytes of X scattered (a copy lands on every worker: keep it well under their
#: memory; 256 MiB is 34,000 examples of 60 x 130 float32).
SCATTER_MAX_BYTES = 256 * 2**20
#: Seconds between two reads of the cancel Event in a running job (each read asks the
#: scheduler: 1-5 ms, too much for every minibatch).
STOP_POLL_S = 0.5
#: Seconds the client may stay disconnected from the scheduler before the runs not finished
#: are taken as interrupted.
LOST_AFTER_S = 3.0


def scatter_limit() -> int:
    """Most bytes of X scattered to the workers (``NORMSCOPE_DASK_SCATTER_MB``)."""
    text = os.environ.get(SCATTER_ENV, "").strip()
    if not text:
        return SCATTER_MAX_BYTES
    try:
        mb = float(text)
    except ValueError:
        raise NormScopeError(f"{SCATTER_ENV}={text!r} must be a number of MiB") from None
    return int(max(mb, 0) * 2**20)


# -- the worker side ----------------------------------------------------------------------
class _PolledEvent:
    """``is_set()`` of a distributed Event, asking the scheduler at most every STOP_POLL_S."""

    def __init__(self, name: str):
        from distributed import Event

        self._ev = Event(name)
        self._next = 0.0
        self._set = False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now >= self._next:
            self._next = now + STOP_POLL_S
            try:
                self._set = bool(self._ev.is_set())
            except Exception:  # noqa: BLE001 - scheduler gone: stop rather than run blind
                self._set = True
        return self._set


#: Per worker process: the job caches (dataset, folds, normalized copies) of the latest
#: comparisons, so jobs of one comparison on one worker share them.
_CACHES: dict[str, dict] = {}
_CACHES_LOCK = threading.Lock()
_KEEP_CACHES = 2


def _cache_for(comparison_id: str) -> dict:
    with _CACHES_LOCK:
        cache = _CACHES.pop(comparison_id, None) or {}
        _CACHES[comparison_id] = cache
        while len(_CACHES) > _KEEP_CACHES:
            _CACHES.pop(next(iter(_CACHES)))
        return cache


def _remote_job(job: dict, queue_name: str, stop_name: str, data=None) -> dict:
    """What a worker runs for one job: :func:`models.jobs.run_job`, events to the queue."""
    import torch
    from distributed import Queue

    from diagnostics.data.dataset import Dataset

    from .jobs import Job, run_job

    torch.set_num_threads(1)  # one torch thread per worker, as locally
    q = Queue(queue_name)
    cache = _cache_for(job["comparison_id"])
    key = (job["data"], job["labels"], job["home"])
    if data is not None and cache.get("data_key") != key:
        X, y, names, name, ident = data
        cache.clear()
        cache.update(data_key=key, ds=Dataset(X=X, y=y, class_names=tuple(names), name=name,
                                              id=ident))

    def emit(event: dict) -> None:
        if event["kind"] != "finished":  # the finished event is the future's result
            q.put(event)

    return run_job(Job.from_dict(job), emit=emit, stop=_PolledEvent(stop_name), cache=cache)


def _probe(spec: str, labels, home) -> str:
    """Open the dataset as a job would (on a worker); its id."""
    from diagnostics.data.ingest import load_dataset

    return load_dataset(spec, labels=labels, home=home).id


# -- the client side ----------------------------------------------------------------------
class DaskExecutor:
    """Jobs as futures on a Dask scheduler (see the module docstring).

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` of the scheduler.
    connect_timeout : float, optional
        Seconds to wait for it (NormScopeError after that); default
        :func:`diagnostics.cluster.connect_timeout`.
    """

    def __init__(self, address: str, *, connect_timeout: float | None = None):
        from distributed import Event, Queue

        self.address = address
        self._client = connect(address, timeout=connect_timeout)
        tag = uuid.uuid4().hex[:12]
        self._queue_name = f"normscope-events-{tag}"
        self._stop_name = f"normscope-stop-{tag}"
        self._queue = Queue(self._queue_name, client=self._client)
        self._stop = Event(self._stop_name, client=self._client)
        self._lock = threading.Lock()
        self._futures: dict[str, object] = {}  # run_id -> future, until its finished event
        self._started: set[str] = set()
        self._last_epoch: dict[str, int] = {}
        self._out: list[dict] = []
        self._data = None  # the scattered dataset (a future), if scattered
        self.data_mode: str | None = None  # "scattered" | "shared"
        self._cancelled = False
        self._closed = False
        self._lost_since: float | None = None

    # -- data -------------------------------------------------------------------------------
    def attach_data(self, ds, spec: str, labels: str | None, home: str | None) -> str:
        """Make ``ds`` reachable by the workers, once per comparison; returns how
        (``scattered`` or ``shared``).  NormScopeError when neither works."""
        X = ds.X
        nbytes = int(np.prod(X.shape)) * X.dtype.itemsize
        limit = scatter_limit()
        if nbytes <= limit:
            payload = (np.ascontiguousarray(np.asarray(X)), ds.y, list(ds.class_names), ds.name,
                       ds.id)
            self._data = self._client.scatter(payload, broadcast=True, hash=False)
            self.data_mode = "scattered"
            return self.data_mode
        fut = self._client.submit(_probe, spec, labels, home, pure=False)
        try:
            seen = fut.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - any failure to open it there
            seen = f"{type(exc).__name__}: {str(exc)[:160]}"
        if seen != ds.id:
            mib = nbytes / 2**20
            raise NormScopeError(
                f"dataset {ds.name} ({mib:,.0f} MiB) is larger than the {limit / 2**20:,.0f} MiB "
                f"scattered to Dask workers, and the workers cannot open it themselves ({seen}); "
                f"put NORMSCOPE_HOME ({home}) and the data on storage the workers share, or "
                f"raise {SCATTER_ENV}"
            )
        self.data_mode = "shared"
        return self.data_mode

    # -- the interface ------------------------------------------------------------------------
    def submit(self, job: dict) -> None:
        if self._closed:
            raise RuntimeError("this executor was shut down")
        rid = job["run_id"]
        if self._cancelled:
            self._out.append(_not_started(rid))
            return
        fut = self._client.submit(_remote_job, dict(job), self._queue_name, self._stop_name,
                                  self._data, pure=False, key=f"normscope-{rid}-{uuid.uuid4().hex[:6]}")
        with self._lock:
            self._futures[rid] = fut

    def cancel(self) -> None:
        self._cancelled = True
        try:
            self._stop.set()
        except Exception:  # noqa: BLE001 - scheduler gone: the jobs stop on their own
            pass
        with self._lock:
            waiting = [(rid, f) for rid, f in self._futures.items() if rid not in self._started]
        for rid, f in waiting:
            try:
                self._client.cancel([f])
            except Exception:  # noqa: BLE001
                pass

    def events(self, timeout: float | None = None) -> list[dict]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._step()
            if self._out:
                out, self._out = self._out, []
                return out
            with self._lock:
                idle = not self._futures
            if idle or (deadline is not None and time.monotonic() >= deadline):
                return []
            time.sleep(0.05)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stop.set()  # running jobs stop at their next look
            with self._lock:
                futs = list(self._futures.values())
            if futs:
                self._client.cancel(futs)
        except Exception:  # noqa: BLE001
            pass
        try:
            self._client.close(timeout=3)
        except Exception:  # noqa: BLE001
            pass

    # -- internals ----------------------------------------------------------------------------
    def _drain(self) -> None:
        try:
            msgs = self._queue.get(batch=True, timeout=2)
        except Exception:  # noqa: BLE001 - the scheduler went away: see _step
            return
        for ev in msgs or []:
            rid, kind = ev.get("run_id"), ev.get("kind")
            with self._lock:
                live = rid in self._futures
            if not live:
                continue  # a late event of a finished (or given up) run
            if kind == "started":
                if rid in self._started:
                    continue  # a rerun after a lost worker: the run already started
                self._started.add(rid)
            elif kind == "epoch":
                if ev["epoch"] <= self._last_epoch.get(rid, 0):
                    continue  # a rerun repeats epochs already recorded
                self._last_epoch[rid] = ev["epoch"]
            self._out.append(ev)

    def _step(self) -> None:
        self._drain()
        status = getattr(self._client, "status", "running")
        if status != "running":
            self._lost_since = self._lost_since or time.monotonic()
            if time.monotonic() - self._lost_since >= LOST_AFTER_S or status == "closed":
                self._interrupt_all(f"the Dask scheduler at {self.address} was lost")
            return
        self._lost_since = None
        with self._lock:
            done = [(rid, f) for rid, f in self._futures.items() if f.done()]
        if done:
            self._drain()  # the events a finished job sent before it returned
        for rid, f in done:
            event = self._finished_event(rid, f)
            with self._lock:
                self._futures.pop(rid, None)
            self._out.append(event)

    def _finished_event(self, rid: str, f) -> dict:
        st = f.status
        if st == "finished":
            try:
                return dict(f.result(timeout=10))
            except Exception as exc:  # noqa: BLE001
                return _failed(rid, f"its result was lost ({type(exc).__name__})")
        if st == "cancelled":
            if self._cancelled:
                return (_not_started(rid) if rid not in self._started else
                        {**_failed(rid, "cancelled"), "status": "cancelled"})
            return {**_failed(rid, f"the Dask scheduler at {self.address} was lost"),
                    "status": "interrupted"}
        try:
            exc = f.exception(timeout=5)
        except Exception as e:  # noqa: BLE001
            exc = e
        name = type(exc).__name__
        if name == "KilledWorker":
            return _failed(rid, "the Dask worker running it died, and so did its retry; the "
                                "other runs went on")
        return _failed(rid, f"{name}: {str(exc)[:300]}")

    def _interrupt_all(self, why: str) -> None:
        with self._lock:
            rids = list(self._futures)
            self._futures.clear()
        for rid in rids:
            self._out.append({**_failed(rid, why), "status": "interrupted"})


def _failed(rid: str, message: str) -> dict:
    return {"kind": "finished", "run_id": rid, "status": "failed", "test_acc": None,
            "message": message, "elapsed_s": None}


def _not_started(rid: str) -> dict:
    return {"kind": "finished", "run_id": rid, "status": "cancelled", "test_acc": None,
            "message": NOT_STARTED, "elapsed_s": 0.0}
