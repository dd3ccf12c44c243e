"""A comparison: configs x (repetition, fold) cells as independent jobs on an
:class:`~models.executors.Executor`.

:class:`Comparison` validates its inputs, plans the evaluation (k-fold cross-validation x
repetitions, or the fixed holdout x seeds; :mod:`models.decide_loop`), stores the comparison and
its queued runs, submits one job dict per run to its executor (the local process pool by
default, anything with the same four methods otherwise) and, on a monitor thread, writes every
event into the run store and into a live state that UIs read as a :class:`ComparisonSnapshot`
(thread-safe).  In decide mode (the default) it starts with one repetition and adds the next
only while the pairs of the best config are undecided, the maximum is not reached and the
time budget allows.  It never shares memory with the workers: cancel goes through the executor.

:class:`RunningComparisons` is the process-wide set of comparisons an app keeps (e.g. in
``st.cache_resource``); it also makes a second comparison wait while one is running, so two
browser sessions do not oversubscribe the cores.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Sequence

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR, SPLIT_SEED, home
from diagnostics.data.dataset import Dataset
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import parse_configs

from .executors import NOT_STARTED, Executor, LocalProcessExecutor
from .jobs import Job, check_runnable, check_trainable, worker_spec
from .catalog import MODELS, is_import_path
from .decide_loop import DecideLoop, EvaluationOptions, Plan, make_plan
from .store import ACTIVE, RunStore
from .train import TrainConfig
from .snapshot import ComparisonSnapshot, RunState, plan_progress

__all__ = ["Comparison", "ComparisonSnapshot", "RunState", "RunningComparisons"]


class Comparison:
    """Configs x evaluation cells on an executor, stored as it goes.

    Parameters
    ----------
    data : str or Dataset
        Dataset spec for :func:`diagnostics.data.ingest.load_dataset` (``demo``, a path, ...).
    configs : str or sequence of str
        Normalization names, the reference first (``"none,per_pixel"``).
    labels : str, optional
        Labels spec for a ``.npy`` dataset.
    seeds : int or sequence of int
        Repetitions of a holdout: ``3`` means seeds 0, 1, 2 (CV derives its seeds from the
        cells: ``1000 * repetition + fold``).
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
    evaluation, folds, max_repetitions, decide, budget_s, margin
        The evaluation: see :class:`models.decide_loop.EvaluationOptions` (auto | cv |
        holdout, k, most CV repetitions, decide mode, seconds or None, 0.01 = 1 point).

    Use ``start()`` (validates and returns at once; raises NormScopeError for bad input before
    anything is stored), then ``snapshot()`` from any thread, ``cancel()``, ``wait()``.
    """

    def __init__(self, data: str | Dataset, configs: str | Sequence[str], *,
                 labels: str | None = None, seeds: int | Sequence[int] = 3, model: str = "cnn",
                 train: TrainConfig = TrainConfig(), mask_snr: float = DEFAULT_MASK_SNR,
                 std_floor: float = 0.0, workers: int | None = None,
                 executor: Executor | None = None, store: RunStore | None = None,
                 gate: threading.Semaphore | None = None, evaluation: str = "auto",
                 folds: int = 5, max_repetitions: int = 5, decide: bool = True,
                 budget_s: float | None = None, margin: float = 0.01):
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
        self.options = EvaluationOptions(evaluation, folds, max_repetitions, bool(decide),
                                         budget_s, margin)
        self.plan: Plan | None = None
        self._loop: DecideLoop | None = None
        self._executor = executor
        self._store = store
        self._gate = gate
        self._lock = threading.Lock()
        self._cancel_evt = threading.Event()
        self._done_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = "new"
        self._error: str | None = None
        self._not_needed: str | None = None  # message of runs cancelled once decide mode stopped
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
        self.options.check()

    def _validate_data(self) -> Dataset:
        ds = self._dataset
        if ds is None:
            ds = load_dataset(self.data, labels=self.labels, home=self._home)
        self._dataset = None  # the workers load their own copy; do not keep it alive here
        self.data, self.labels = worker_spec(ds, self.data, self.labels, home=self._home)
        check_trainable(ds, None, batch_size=self.train.batch_size)  # labels, two classes
        self.plan = make_plan(self.options, ds.y, seeds=self.seeds, class_names=ds.class_names)
        check_runnable(ds, self.plan.design, self.configs, model=self.model,
                       batch_size=self.train.batch_size, mask_snr=self.mask_snr,
                       std_floor=self.std_floor)
        return ds

    def jobs(self, run_ids: Sequence[str] | None = None) -> list[Job]:
        """The jobs of ``run_ids`` (default: every run queued so far) in run order: cell-major
        (repetition, then fold), so early results pair up across configs."""
        if self.plan is None:  # not started: no run is planned yet
            return []
        design = self.plan.job_design()
        out = []
        for rid in self._order if run_ids is None else run_ids:
            r = self._runs[rid]
            out.append(Job(run_id=rid, comparison_id=self.id, data=self.data,
                           labels=self.labels, dataset_id=self.dataset_id, config=r["config"],
                           seed=r["seed"], model=self.model, train=self.train.as_dict(),
                           mask_snr=self.mask_snr, std_floor=self.std_floor,
                           split_seed=SPLIT_SEED, home=self._home, repetition=r["repetition"],
                           fold=r["fold"], design=design))
        return out

    def _new_runs(self, repetition: int) -> list[str]:
        """Add the runs of one repetition to the live state (fold-major); their ids."""
        ids = []
        with self._lock:
            for rep, fold, seed in self.plan.cells(repetition):
                for cfg in self.configs:
                    pos = len(self._order)
                    rid = f"{self.id}-{pos:03d}"
                    self._order.append(rid)
                    self._runs[rid] = dict(
                        config=cfg, seed=seed, repetition=rep, fold=fold, position=pos,
                        status="queued", epoch=0, step=0, steps=1, test_acc=None, message=None,
                        **{k: [] for k in ("train_loss", "train_acc", "val_acc", "batch_acc")})
                    ids.append(rid)
        return ids

    def _stored_runs(self, ids: Sequence[str]) -> list[dict]:
        keys = ("position", "config", "seed", "repetition", "fold")
        return [{"id": rid, **{k: self._runs[rid][k] for k in keys}} for rid in ids]

    def _queued_labels(self) -> list[int]:
        """``comparisons.seeds``: the seed (holdout) or index (CV) of each repetition queued."""
        reps = sorted({r["repetition"] for r in self._runs.values()})
        return [self.plan.labels[r] for r in reps]

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
        self._loop = DecideLoop(self.plan, self.configs)
        self._first = [self._new_runs(r) for r in self._loop.first_repetitions()]
        if self._store is None:
            self._store = RunStore()
        hyper = {**self.train.as_dict(), "mask_snr": self.mask_snr, "std_floor": self.std_floor,
                 "split_seed": SPLIT_SEED, "evaluation": self.plan.hyper()}
        self._store.create_comparison(
            {"id": self.id, "dataset_id": self.dataset_id, "dataset_name": self.dataset_name,
             "data_spec": self.data, "labels_spec": self.labels, "model": self.model,
             "configs": self.configs, "seeds": self._queued_labels(), "hyper": hyper},
            self._stored_runs(self._order))
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
            counts: dict[str, int] = {}
            for rid in self._order:
                r = self._runs[rid]
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                frac = 1.0 if r["status"] not in ACTIVE else min(1.0, r["step"] / max(r["steps"], 1))
                runs.append(RunState(
                    run_id=rid, config=r["config"], seed=r["seed"], status=r["status"],
                    epoch=r["epoch"], epochs=self.train.epochs, fraction=frac,
                    train_loss=tuple(r["train_loss"]), train_acc=tuple(r["train_acc"]),
                    val_acc=tuple(r["val_acc"]), batch_acc=tuple(r["batch_acc"]),
                    test_acc=r["test_acc"], message=r["message"], repetition=r["repetition"],
                    fold=r["fold"]))
            status, error = self._status, self._error
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        evaluation = self.evaluation()
        fraction, eta, per_rep = plan_progress(runs, evaluation, elapsed, status == "running")
        return ComparisonSnapshot(self.id, status, fraction, elapsed, eta, counts, tuple(runs),
                                  error, evaluation, self.decision, per_rep)

    @property
    def decision(self):
        """The latest Decision (see :attr:`models.decide_loop.DecideLoop.decision`)."""
        return None if self._loop is None else self._loop.decision

    def evaluation(self) -> dict | None:
        """See :meth:`models.decide_loop.DecideLoop.evaluation` (None before :meth:`start`)."""
        return None if self._loop is None else self._loop.evaluation()

    # -- monitor thread --------------------------------------------------------------------
    def _set(self, rid: str, **kw) -> None:
        with self._lock:
            self._runs[rid].update(kw)

    def _handle(self, event: dict) -> bool:
        """Apply one event; True when a finished run completed a fold (a look may be due)."""
        kind, rid, store = event["kind"], event["run_id"], self._store
        if rid not in self._runs:
            return False
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
            if status == "cancelled" and self._not_needed is not None:
                if message == NOT_STARTED:  # never needed, never started: no trace of it
                    r = self._runs[rid]
                    with self._lock:
                        del self._runs[rid]
                        self._order.remove(rid)
                    store.discard_queued(self.id, [rid], seeds=self._queued_labels())
                    return self._loop.finished(rid, config=r["config"], fold=r["fold"],
                                               repetition=r["repetition"], status=status)
                message = self._not_needed
            preds = None
            if status == "done" and event.get("test_index") is not None:
                preds = (event["test_index"], event["pred"], event["label"])
            store.finish_run(rid, status, test_acc=event.get("test_acc"),
                             elapsed_s=event.get("elapsed_s"), message=message,
                             n_params=event.get("n_params"), init_digest=event.get("init_digest"),
                             predictions=preds)
            self._set(rid, status=status, test_acc=event.get("test_acc"), message=message)
            r, (_, pred, label) = self._runs[rid], preds or (None, None, None)
            return self._loop.finished(rid, config=r["config"], repetition=r["repetition"],
                                       fold=r["fold"], status=status, pred=pred, label=label)
        return False

    def _submit(self, run_ids: list[str], open_runs: set) -> None:
        self._loop.queued(self._runs[run_ids[0]]["repetition"], run_ids)
        open_runs.update(run_ids)
        for job in self.jobs(run_ids):
            self._executor.submit(job.as_dict())

    def _stop_early(self, open_runs: set) -> None:
        """Decide mode stopped with runs still queued or running: they are not needed."""
        loop = self._loop
        if not open_runs or self._cancel_evt.is_set():
            return
        why = ("decided" if loop.stopped_because == "decided"
               else f"stopped ({loop.stopped_because})")
        self._not_needed = f"not needed: the comparison was {why} after {loop.cells} folds"
        self._executor.cancel()

    def _run_jobs(self) -> None:
        """Submit the first repetitions' jobs, apply the executor's events until each run has
        finished; in decide mode look whenever a fold is complete, queue the next repetition
        before the workers run dry, and cancel what is not needed once stopped."""
        ex, loop = self._executor, self._loop
        workers = int(getattr(ex, "workers", 1) or 1)
        open_runs: set = set()
        for ids in self._first:
            self._submit(ids, open_runs)
        stopped = False
        while open_runs:
            for event in ex.events(timeout=0.2):
                grew = self._handle(event)
                if event["kind"] == "finished":
                    open_runs.discard(event["run_id"])
                if grew and not stopped and not self._cancel_evt.is_set() and loop.look():
                    stopped = True
                    self._stop_early(open_runs)
            if stopped or self._cancel_evt.is_set():
                continue
            nxt = loop.next_repetition(open_runs=len(open_runs), workers=workers)
            if nxt is not None:
                ids = self._new_runs(nxt)
                self._store.add_runs(self.id, self._stored_runs(ids), seeds=self._queued_labels())
                self._submit(ids, open_runs)
        loop.finish(cancelled=self._cancel_evt.is_set())
        if loop.stopped_because is not None:
            self._store.set_evaluation(self.id, stopped_because=loop.stopped_because,
                                       cells=loop.cells if loop.decision is None
                                       else loop.decision.cells)

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
