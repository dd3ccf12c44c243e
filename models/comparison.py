"""A comparison: configs x seeds as independent jobs on an :class:`~models.executors.Executor`.

:class:`Comparison` validates its inputs, stores the comparison and its queued runs, submits
one job dict per run to its executor (the local process pool by default, anything with the
same four methods otherwise) and, on a monitor thread, writes every event into the run store
and into a live state that UIs read as a :class:`ComparisonSnapshot` (thread-safe).  It never
shares memory with the workers: cancel goes through the executor.

:class:`RunningComparisons` is the process-wide set of comparisons an app keeps (e.g. in
``st.cache_resource``); it also makes a second comparison wait while one is running, so two
browser sessions do not oversubscribe the cores.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR, SPLIT_SEED, home
from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer, parse_configs

from .executors import Executor, LocalProcessExecutor
from .jobs import Job, check_trainable, worker_spec
from .catalog import MODELS, is_import_path
from .nets import build_model
from .store import ACTIVE, FINISHED, RunStore
from .train import TrainConfig


@dataclass(frozen=True)
class RunState:
    """Live state of one run (copied out of the comparison under its lock)."""

    run_id: str
    config: str
    seed: int
    status: str
    epoch: int
    epochs: int
    fraction: float  # of this run's minibatches done
    train_loss: tuple
    train_acc: tuple
    val_acc: tuple
    batch_acc: tuple
    test_acc: float | None
    message: str | None


@dataclass(frozen=True)
class ComparisonSnapshot:
    """A comparison's state for a UI poll."""

    comparison_id: str
    status: str  # new | waiting | queued | running | done | cancelled | failed
    fraction: float  # of all minibatches of all runs
    elapsed_s: float
    eta_s: float | None
    counts: dict  # run status -> number of runs
    runs: tuple[RunState, ...]
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def accuracies(self) -> dict[str, dict[int, float | None]]:
        """``{config: {seed: test_acc or None}}`` so far, for diagnostics.results.compare."""
        out: dict[str, dict[int, float | None]] = {}
        for r in self.runs:
            out.setdefault(r.config, {})[r.seed] = r.test_acc if r.status == "done" else None
        return out

    def curves(self, key: str = "val_acc") -> dict[str, list[tuple]]:
        """``{config: [curve of each seed]}`` of ``train_loss``, ``train_acc``, ``val_acc`` or
        ``batch_acc``, for diagnostics.results.seed_band."""
        out: dict[str, list[tuple]] = {}
        for r in self.runs:
            out.setdefault(r.config, []).append(getattr(r, key))
        return out


class Comparison:
    """Configs x seeds on an executor, stored as it goes.

    Parameters
    ----------
    data : str or Dataset
        Dataset spec for :func:`diagnostics.data.ingest.load_dataset` (``demo``, a path, ...).
    configs : str or sequence of str
        Normalization names, the reference first (``"none,per_pixel"``).
    labels : str, optional
        Labels spec for a ``.npy`` dataset.
    seeds : int or sequence of int
        ``3`` means seeds 0, 1, 2.
    model : one of :data:`models.catalog.MODELS`, or a user's ``package.module:factory``
    train : TrainConfig
    mask_snr, std_floor : float
        Options of ``@mask`` and of the scalers.
    workers : int, optional
        Worker processes of the default executor (default: CPU cores, at most the runs).
    executor : Executor, optional
        Where the jobs run (default: a :class:`~models.executors.LocalProcessExecutor` made at
        ``start()``).  The comparison owns it: it cancels it on Cancel and shuts it down at
        the end, so give each comparison its own.
    store : RunStore, optional
        Default: the run store of the data directory.

    Use ``start()`` (validates and returns at once; raises NormScopeError for bad input before
    anything is stored), then ``snapshot()`` from any thread, ``cancel()``, ``wait()``.
    """

    def __init__(self, data: str | Dataset, configs: str | Sequence[str], *,
                 labels: str | None = None, seeds: int | Sequence[int] = 3, model: str = "cnn",
                 train: TrainConfig = TrainConfig(), mask_snr: float = DEFAULT_MASK_SNR,
                 std_floor: float = 0.0, workers: int | None = None,
                 executor: Executor | None = None, store: RunStore | None = None,
                 gate: threading.Semaphore | None = None):
        if executor is not None and workers is not None:
            raise ValueError("give workers (for the default executor) or an executor, not both")
        self.id = uuid.uuid4().hex[:12]
        self._dataset = data if isinstance(data, Dataset) else None
        self.data = data.id if isinstance(data, Dataset) else str(data)
        self.labels = None if labels is None else str(labels)
        self.configs = [c.name for c in parse_configs(configs)]
        self.seeds = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
        self.model = model
        self.train = train
        self.mask_snr = float(mask_snr)
        self.std_floor = float(std_floor)
        self.workers = workers
        self._executor = executor
        self._store = store
        self._gate = gate
        self._lock = threading.Lock()
        self._cancel_evt = threading.Event()
        self._done_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = "new"
        self._error: str | None = None
        self._t0 = 0.0
        self._runs: dict[str, dict] = {}
        self._order: list[str] = []
        self.dataset_id = ""
        self.dataset_name = ""
        self._home = ""

    # -- validation and start --------------------------------------------------------------
    def _check_options(self) -> None:
        if self.model not in MODELS and not is_import_path(self.model):
            raise NormScopeError(f"model {self.model!r} is unknown; use {', '.join(MODELS)} or "
                                 "package.module:factory")
        tc = self.train
        if tc.epochs < 1 or tc.batch_size < 1 or not tc.lr > 0:
            raise NormScopeError("epochs and batch size must be at least 1 and lr above 0")
        if not self.seeds:
            raise NormScopeError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise NormScopeError("seeds are listed twice; list each seed once")
        if self.workers is not None and self.workers < 1:
            raise NormScopeError(f"workers={self.workers} must be at least 1")
        if not np.isfinite(self.mask_snr) or self.mask_snr < 0:
            raise NormScopeError(f"mask_snr={self.mask_snr} must be a finite number >= 0")

    def _validate_data(self) -> Dataset:
        ds = self._dataset
        if ds is None:
            ds = load_dataset(self.data, labels=self.labels, home=self._home)
        self._dataset = None  # the workers load their own copy; do not keep it alive here
        self.data, self.labels = worker_spec(ds, self.data, self.labels, home=self._home)
        split = split_indices(ds.n, ds.y, seed=SPLIT_SEED)
        check_trainable(ds, split, batch_size=self.train.batch_size)
        if is_import_path(self.model):
            build_model(self.model, ds.X.shape[1:], len(ds.class_names))  # the contract, up front
        for name in self.configs:
            # Fitting catches a mask that removes every row (and bad std floors) up front;
            # the statistics pass is cheap next to training.
            if "@" in name or self.std_floor:
                Normalizer(name, mask_snr=self.mask_snr, std_floor=self.std_floor).fit(
                    ds.X, indices=split.train)
        return ds

    def jobs(self) -> list[Job]:
        """The jobs in run order: seed-major, so early results pair up across configs."""
        return [Job(run_id=rid, comparison_id=self.id, data=self.data, labels=self.labels,
                    dataset_id=self.dataset_id, config=self._runs[rid]["config"],
                    seed=self._runs[rid]["seed"], model=self.model, train=self.train.as_dict(),
                    mask_snr=self.mask_snr, std_floor=self.std_floor, split_seed=SPLIT_SEED,
                    home=self._home)
                for rid in self._order]

    def start(self) -> "Comparison":
        """Validate, store the comparison and its queued runs, and start in the background.

        Raises
        ------
        NormScopeError
            Bad input; nothing has been stored.
        """
        if self._thread is not None:
            raise RuntimeError("this comparison was started already")
        self._check_options()
        self._home = str(home())  # read now, as the store does; the jobs carry it
        if self._executor is None:
            # Made before the data is read: the fork server imports torch meanwhile.
            self._executor = LocalProcessExecutor(workers=self.workers)
        try:
            ds = self._validate_data()
        except BaseException:
            self._executor.shutdown()
            raise
        self.dataset_id, self.dataset_name = ds.id, ds.name
        del ds
        pos = 0
        for seed in self.seeds:
            for cfg in self.configs:
                rid = f"{self.id}-{pos:03d}"
                self._order.append(rid)
                self._runs[rid] = {"config": cfg, "seed": seed, "status": "queued", "epoch": 0,
                                   "step": 0, "steps": 1, "train_loss": [], "train_acc": [],
                                   "val_acc": [], "batch_acc": [], "test_acc": None,
                                   "message": None, "position": pos}
                pos += 1
        if self._store is None:
            self._store = RunStore()
        hyper = {**self.train.as_dict(), "mask_snr": self.mask_snr, "std_floor": self.std_floor,
                 "split_seed": SPLIT_SEED}
        self._store.create_comparison(
            {"id": self.id, "dataset_id": self.dataset_id, "dataset_name": self.dataset_name,
             "data_spec": self.data, "labels_spec": self.labels, "model": self.model,
             "configs": self.configs, "seeds": self.seeds, "hyper": hyper},
            [{"id": rid, "position": r["position"], "config": r["config"], "seed": r["seed"]}
             for rid, r in self._runs.items()],
        )
        self._t0 = time.time()
        self._status = "waiting" if self._gate is not None else "queued"
        self._thread = threading.Thread(target=self._monitor, name=f"comparison-{self.id}",
                                        daemon=True)
        self._thread.start()
        return self

    # -- public controls -------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask every run to stop (between minibatches); queued runs never start."""
        self._cancel_evt.set()
        if self._executor is not None:
            self._executor.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel_evt.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (True) or ``timeout`` seconds passed (False)."""
        return self._done_evt.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done_evt.is_set()

    def snapshot(self) -> ComparisonSnapshot:
        """A consistent copy of the live state (safe from any thread)."""
        with self._lock:
            runs = []
            total = done = 0.0
            counts: dict[str, int] = {}
            for rid in self._order:
                r = self._runs[rid]
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                frac = 1.0 if r["status"] not in ACTIVE else min(1.0, r["step"] / max(r["steps"], 1))
                total += 1
                done += frac
                runs.append(RunState(
                    run_id=rid, config=r["config"], seed=r["seed"], status=r["status"],
                    epoch=r["epoch"], epochs=self.train.epochs, fraction=frac,
                    train_loss=tuple(r["train_loss"]), train_acc=tuple(r["train_acc"]),
                    val_acc=tuple(r["val_acc"]), batch_acc=tuple(r["batch_acc"]),
                    test_acc=r["test_acc"], message=r["message"]))
            status, error = self._status, self._error
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        fraction = done / total if total else 0.0
        eta = None
        if 0.02 < fraction < 1 and status == "running":
            eta = elapsed * (1 - fraction) / fraction
        return ComparisonSnapshot(self.id, status, fraction, elapsed, eta, counts, tuple(runs),
                                  error)

    # -- monitor thread --------------------------------------------------------------------
    def _set(self, rid: str, **kw) -> None:
        with self._lock:
            self._runs[rid].update(kw)

    def _handle(self, event: dict) -> None:
        kind, rid, store = event["kind"], event["run_id"], self._store
        if rid not in self._runs:
            return
        if kind == "started":
            store.start_run(rid, versions=event.get("versions"))
            self._set(rid, status="running", pid=event.get("pid"))
        elif kind == "progress":
            self._set(rid, step=event["step"], steps=event["steps"], epoch=event["epoch"] - 1)
        elif kind == "epoch":
            store.add_epoch(rid, event)
            with self._lock:
                r = self._runs[rid]
                r["epoch"] = event["epoch"]
                r["steps"] = event["steps"]
                r["step"] = event["first_step"] + len(event["batch_acc"]) - 1
                for k in ("train_loss", "train_acc", "val_acc"):
                    r[k].append(event[k])
                r["batch_acc"].extend(event["batch_acc"])
        elif kind == "finished":
            status, message = event["status"], event.get("message") or None
            store.finish_run(rid, status, test_acc=event.get("test_acc"),
                             elapsed_s=event.get("elapsed_s"), message=message,
                             n_params=event.get("n_params"), init_digest=event.get("init_digest"))
            self._set(rid, status=status, test_acc=event.get("test_acc"), message=message)

    def _run_jobs(self) -> None:
        """Submit every job, then apply the executor's events until each run has finished."""
        ex = self._executor
        open_runs = set(self._order)
        for job in self.jobs():
            ex.submit(job.as_dict())
        while open_runs:
            for event in ex.events(timeout=0.2):
                self._handle(event)
                if event["kind"] == "finished":
                    open_runs.discard(event["run_id"])

    def _monitor(self) -> None:
        final = "failed"
        try:
            acquired = False
            while self._gate is not None and not self._cancel_evt.is_set():
                # Wait for another comparison to finish (one at a time keeps 1 thread a core).
                if self._gate.acquire(timeout=0.2):
                    acquired = True
                    break
            try:
                if not self._cancel_evt.is_set():
                    with self._lock:
                        self._status = "running"
                    self._store.set_comparison_status(self.id, "running")
                    self._run_jobs()
            finally:
                if acquired:
                    self._gate.release()
            if self._cancel_evt.is_set():
                self._store.cancel_queued(self.id, "cancelled", "cancelled before it started")
                with self._lock:
                    for r in self._runs.values():
                        if r["status"] == "queued":
                            r["status"] = "cancelled"
                final = "cancelled"
            else:
                final = "done"
        except Exception as exc:  # the monitor itself broke (e.g. the disk is full)
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
            try:
                self._executor.cancel()
                self._store.cancel_queued(self.id, "failed", self._error)
                for rid, r in list(self._runs.items()):
                    if r["status"] == "running":
                        self._store.finish_run(rid, "failed", message=self._error)
                        self._set(rid, status="failed", message=self._error)
            except Exception:
                pass
        finally:
            try:
                self._executor.shutdown()
            except Exception:
                pass
            try:
                self._store.set_comparison_status(self.id, final, final=True)
            except Exception:
                pass
            with self._lock:
                self._status = final
            self._done_evt.set()

    # -- results ---------------------------------------------------------------------------
    def running_pids(self) -> dict[str, int]:
        """``{run_id: worker pid}`` of the runs running now (for tests and diagnostics)."""
        with self._lock:
            return {rid: r["pid"] for rid, r in self._runs.items()
                    if r["status"] == "running" and r.get("pid")}

    def record(self):
        """The stored comparison with runs and curves (see :class:`models.store.RunStore`)."""
        return self._store.load_comparison(self.id)


class RunningComparisons:
    """Process-wide set of comparisons, thread-safe; at most ``max_running`` run at once.

    An app keeps one (``st.cache_resource``) and stores only the comparison id per session
    and in the URL; a reload or a second tab finds the live comparison by id, and a finished
    one from a previous server comes from the run store.
    """

    def __init__(self, *, max_running: int = 1):
        self._lock = threading.Lock()
        self._items: dict[str, Comparison] = {}
        self._gate = threading.BoundedSemaphore(max_running)

    def start(self, data: str, configs, **options) -> Comparison:
        """Create, validate and start a comparison (options as for :class:`Comparison`);
        raises NormScopeError on bad input."""
        comp = Comparison(data, configs, gate=self._gate, **options)
        comp.start()
        with self._lock:
            self._items[comp.id] = comp
        return comp

    def get(self, comparison_id: str) -> Comparison | None:
        with self._lock:
            return self._items.get(comparison_id)

    def active(self) -> list[Comparison]:
        with self._lock:
            return [c for c in self._items.values() if not c.finished]
