# Over 450 lines: one comparison's validation, planning, monitor thread and live state belong together.
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

Over 450 lines on purpose: one class holds a comparison's whole life (start, monitor, a decide
loop per model), which reads best in one place.
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
from diagnostics.verdicts.models import joint_stop

from .executors import Executor, LocalProcessExecutor
from .jobs import Job, check_runnable, check_trainable, worker_spec
from .catalog import MODELS, is_import_path, model_list
from .decide_loop import DecideLoop, EvaluationOptions, Plan, make_plan
from .store import ACTIVE, RunStore
from .train import TrainConfig
from .snapshot import ComparisonSnapshot, RunState

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
    model : one of :data:`models.catalog.MODELS`, or a user's ``package.module:factory``; or
        a sequence of two or more (``"cnn,cnn_bn0"`` or a list): each model is its own block
        of runs (every config on every cell, paired within the model), with its own decide
        loop; ``model`` is then stored comma-joined and ``hyper["models"]`` lists them.
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
                 labels: str | None = None, seeds: int | Sequence[int] = 3,
                 model: str | Sequence[str] = "cnn",
                 train: TrainConfig = TrainConfig(), mask_snr: float = DEFAULT_MASK_SNR,
                 std_floor: float = 0.0, workers: int | None = None,
                 executor: Executor | None = None, store: RunStore | None = None,
                 gate: threading.Semaphore | None = None, evaluation: str = "auto",
                 folds: int = 5, max_repetitions: int = 5, decide: bool = True,
                 budget_s: float | None = None, margin: float = 0.01,
                 cluster: str | None = None):
        if executor is not None and workers is not None:
            raise ValueError("give workers (for the default executor) or an executor, not both")
        self.id = uuid.uuid4().hex[:12]
        self._dataset = data if isinstance(data, Dataset) else None
        self.data = data.id if isinstance(data, Dataset) else str(data)
        self.labels = None if labels is None else str(labels)
        self.configs = [c.name for c in parse_configs(configs)]
        self.seeds = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
        self.models = model_list(model)
        self.model = ",".join(self.models)  # one model: its name, as before
        self.train = train
        self.mask_snr = float(mask_snr)
        self.std_floor = float(std_floor)
        self.workers = workers
        self.options = EvaluationOptions(evaluation, folds, max_repetitions, bool(decide),
                                         budget_s, margin)
        self.plan: Plan | None = None
        self._loop: DecideLoop | None = None  # the first model's (the only one, usually)
        self._loops: dict[str, DecideLoop] = {}
        self._executor = executor
        self.cluster = cluster  # a Dask scheduler address; None: $NORMSCOPE_DASK_SCHEDULER
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
        if not self.models:
            raise NormScopeError("give at least one model")
        if len(set(self.models)) != len(self.models):
            raise NormScopeError(f"models {self.model} list a model twice; list each once")
        for m in self.models:
            if m not in MODELS and not is_import_path(m):
                raise NormScopeError(f"model {m!r} is unknown; use {', '.join(MODELS)} or "
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
        for m in self.models:
            check_runnable(ds, self.plan.design, self.configs, model=m,
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
                           seed=r["seed"], model=r["model"], train=self.train.as_dict(),
                           mask_snr=self.mask_snr, std_floor=self.std_floor,
                           split_seed=SPLIT_SEED, home=self._home, repetition=r["repetition"],
                           fold=r["fold"], design=design))
        return out

    def _new_runs(self, repetition: int, model: str | None = None) -> list[str]:
        """Add the runs of one repetition of ``model`` (default: the first) to the live state
        (fold-major); their ids."""
        model = self.models[0] if model is None else model
        ids = []
        with self._lock:
            for rep, fold, seed in self.plan.cells(repetition):
                for cfg in self.configs:
                    pos = len(self._order)
                    rid = f"{self.id}-{pos:03d}"
                    self._order.append(rid)
                    self._runs[rid] = dict(
                        config=cfg, seed=seed, repetition=rep, fold=fold, position=pos,
                        model=model,
                        status="queued", epoch=0, step=0, steps=1, test_acc=None, message=None,
                        **{k: [] for k in ("train_loss", "train_acc", "val_acc", "batch_acc")})
                    ids.append(rid)
        return ids

    def _stored_runs(self, ids: Sequence[str]) -> list[dict]:
        keys = ("position", "config", "seed", "repetition", "fold", "model")
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
            from diagnostics.cluster import scheduler_address

            from .dask_executor import DaskExecutor

            address = scheduler_address(self.cluster)
            if address is not None:
                if self.workers is not None:
                    raise NormScopeError("--workers sets the local pool; a Dask cluster's "
                                         "workers are set where they are started")
                self._executor = DaskExecutor(address)  # NormScopeError if nobody answers
            else:
                # Made before the data is read: the fork server imports torch meanwhile.
                self._executor = LocalProcessExecutor(workers=self.workers)
        try:
            ds = self._validate_data()
            attach = getattr(self._executor, "attach_data", None)
            if attach is not None:  # a cluster: scatter the data once, or check the workers
                attach(ds, self.data, self.labels, self._home)
        except BaseException:
            self._executor.shutdown()
            raise
        self.dataset_id, self.dataset_name = ds.id, ds.name
        del ds
        self._loops = {m: DecideLoop(self.plan, self.configs) for m in self.models}
        self._loop = self._loops[self.models[0]]
        self._first = [self._new_runs(r, m) for r in self._loop.first_repetitions()
                       for m in self.models]
        if self._store is None:
            self._store = RunStore()
        hyper = {**self.train.as_dict(), "mask_snr": self.mask_snr, "std_floor": self.std_floor,
                 "split_seed": SPLIT_SEED, "evaluation": self.plan.hyper()}
        if len(self.models) > 1:  # one model: the hyper of before, for existing readers
            hyper["models"] = list(self.models)
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
                    test_acc=r["test_acc"], message=r["message"], repetition=r["repetition"],
                    fold=r["fold"], model=r["model"]))
            status, error = self._status, self._error
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        fraction = done / total if total else 0.0
        eta = None
        if 0.02 < fraction < 1 and status == "running":
            eta = elapsed * (1 - fraction) / fraction
        return ComparisonSnapshot(self.id, status, fraction, elapsed, eta, counts, tuple(runs),
                                  error, self.evaluation(), self.decision,
                                  self.decisions if len(self.models) > 1 else {})

    @property
    def decision(self):
        """The latest Decision (see :attr:`models.decide_loop.DecideLoop.decision`) of the
        first model (the only one, usually; :attr:`decisions` has every model's)."""
        return None if self._loop is None else self._loop.decision

    @property
    def decisions(self) -> dict:
        """``{model: latest Decision or None}`` (empty before :meth:`start`)."""
        return {m: loop.decision for m, loop in self._loops.items()}

    def evaluation(self) -> dict | None:
        """See :meth:`models.decide_loop.DecideLoop.evaluation` (None before :meth:`start`).
        With several models: ``repetitions`` is the fewest any model completed,
        ``stopped_because`` is set once every model stopped (:func:`joint_stop`) and
        ``models`` holds each model's own."""
        if self._loop is None:
            return None
        if len(self._loops) == 1:
            return self._loop.evaluation()
        each = {m: loop.evaluation() for m, loop in self._loops.items()}
        return {**each[self.models[0]],
                "repetitions": min(e["repetitions"] for e in each.values()),
                "stopped_because": joint_stop([e["stopped_because"] for e in each.values()]),
                "models": each}

    # -- monitor thread --------------------------------------------------------------------
    def _set(self, rid: str, **kw) -> None:
        with self._lock:
            self._runs[rid].update(kw)

    def _handle(self, event: dict) -> str | None:
        """Apply one event; the run's model when a finished run completed its repetition."""
        kind, rid, store = event["kind"], event["run_id"], self._store
        if rid not in self._runs:
            return None
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
            preds = None
            if status == "done" and event.get("test_index") is not None:
                preds = (event["test_index"], event["pred"], event["label"])
            store.finish_run(rid, status, test_acc=event.get("test_acc"),
                             elapsed_s=event.get("elapsed_s"), message=message,
                             n_params=event.get("n_params"), init_digest=event.get("init_digest"),
                             predictions=preds)
            self._set(rid, status=status, test_acc=event.get("test_acc"), message=message)
            r, (_, pred, label) = self._runs[rid], preds or (None, None, None)
            loop = self._loops[r["model"]]
            done = loop.finished(rid, config=r["config"], repetition=r["repetition"],
                                 fold=r["fold"], status=status, pred=pred, label=label)
            return r["model"] if done else None
        return None

    def _submit(self, run_ids: list[str], open_runs: set) -> None:
        r = self._runs[run_ids[0]]  # one repetition of one model
        self._loops[r["model"]].queued(r["repetition"], run_ids)
        open_runs.update(run_ids)
        for job in self.jobs(run_ids):
            self._executor.submit(job.as_dict())

    def _run_jobs(self) -> None:
        """Submit the first repetitions' jobs, apply the executor's events until each run has
        finished and, in decide mode, queue the next repetition while the loop asks for it."""
        ex = self._executor
        open_runs: set = set()
        for ids in self._first:
            self._submit(ids, open_runs)
        while open_runs:
            for event in ex.events(timeout=0.2):
                model = self._handle(event)
                if event["kind"] == "finished":
                    open_runs.discard(event["run_id"])
                if model is None:
                    continue
                # Each model decides on its own: it adds repetitions until its own best is
                # decided (so the comparison runs until every model is decided, or budget).
                nxt = self._loops[model].next_repetition(cancelled=self._cancel_evt.is_set())
                if nxt is not None and not self._cancel_evt.is_set():
                    ids = self._new_runs(nxt, model)
                    self._store.add_runs(self.id, self._stored_runs(ids),
                                         seeds=self._queued_labels())
                    self._submit(ids, open_runs)
        if len(self._loops) > 1:
            each = {m: loop.stopped_because for m, loop in self._loops.items()}
            self._store.set_evaluation(self.id, stopped_because=joint_stop(list(each.values())),
                                       stopped_by_model=each)
        elif self._loop.stopped_because is not None:
            self._store.set_evaluation(self.id, stopped_because=self._loop.stopped_because)

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
                self._error = (str(exc) if isinstance(exc, NormScopeError)  # e.g. a full disk
                               else f"{type(exc).__name__}: {exc}")
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
        self._owners: dict[str, str | None] = {}  # comparison id -> its starter's key
        self._starting: list[str | None] = []  # starters whose comparison is being started

    def start(self, data: str, configs, *, owner: str | None = None, limits=None,
              **options) -> Comparison:
        """Create, validate and start a comparison (options as for :class:`Comparison`);
        raises NormScopeError on bad input.

        ``owner``: a key of the starter (see :meth:`owner`); ``limits``: a
        :class:`diagnostics.limits.Limits` whose queue limits (comparisons running or waiting,
        in all and per owner) are checked, counting those still being started.  On a Dask
        cluster (``cluster`` or ``$NORMSCOPE_DASK_SCHEDULER``) comparisons do not wait for each
        other: the scheduler queues their jobs up to the cluster's capacity."""
        from diagnostics.cluster import scheduler_address

        on_cluster = options.get("executor") is None and scheduler_address(
            options.get("cluster")) is not None
        with self._lock:
            if limits is not None:
                owners = [self._owners.get(c.id) for c in self._items.values()
                          if not c.finished] + self._starting
                limits.check_queue(queued=len(owners), of_session=0 if owner is None else
                                   sum(o == owner for o in owners))
            self._starting.append(owner)
        try:
            comp = Comparison(data, configs, gate=None if on_cluster else self._gate, **options)
            comp.start()
            with self._lock:
                self._items[comp.id] = comp
                self._owners[comp.id] = owner
        finally:
            with self._lock:
                self._starting.remove(owner)
        return comp

    def owner(self, comparison_id: str) -> str | None:
        """The ``owner`` key a comparison was started with (None: none given, or unknown)."""
        with self._lock:
            return self._owners.get(comparison_id)

    def get(self, comparison_id: str) -> Comparison | None:
        with self._lock:
            return self._items.get(comparison_id)

    def active(self) -> list[Comparison]:
        with self._lock:
            return [c for c in self._items.values() if not c.finished]
