"""Run a comparison (configs x seeds) as independent jobs on local worker processes.

* A :class:`Job` is small and serialisable (a dict of strings and numbers): the dataset is
  named by its spec and checked by its id, never pickled, so a cluster backend could run
  :func:`run_job` elsewhere without touching the training code.
* Workers are long-lived processes from a ``forkserver`` context (torch preloaded, so a
  worker starts in a fraction of a second), one torch thread each, one per core by default.
  Each worker talks to the parent over its own pipe: a killed worker breaks only its pipe
  and its current run (marked ``failed``); the other workers go on, and a replacement
  starts for the jobs left.
* Cancel sets a flag in shared memory that the training loop reads before every minibatch;
  a worker that does not stop within :data:`CANCEL_GRACE_S` is terminated.
* The parent's monitor thread writes everything into the run store and keeps a snapshot
  for the UI (:meth:`Comparison.snapshot`, thread-safe).

:class:`Registry` is the process-wide set of comparisons an app keeps (e.g. in
``st.cache_resource``); it also makes a second comparison wait while one is running, so two
browser sessions do not oversubscribe the cores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from diagnostics.data.dataset import Dataset, Split, split_indices
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.normalize import Normalizer, parse_configs

from .nets import MODELS, build_model, is_import_path
from .store import RunStore
from .train import TrainConfig

#: Seconds a worker gets to notice Cancel before it is terminated.
CANCEL_GRACE_S = 1.5
#: Minimum seconds between two progress messages of one worker (epochs are always sent).
PROGRESS_EVERY_S = 0.25
#: Bytes of normalized copies of the dataset a worker keeps between jobs.
CACHE_BYTES = 512 * 2**20
#: The split of every comparison (the Statistics page uses the same one).
SPLIT_SEED = 0
_PRELOAD = ["numpy", "torch", "models.train", "models.runner", "diagnostics.normalize"]


@dataclass(frozen=True)
class Job:
    """One training run, as plain data: what to load, how to normalize, what to train."""

    run_id: str
    comparison_id: str
    data: str  # dataset spec for diagnostics.data.ingest.load_dataset
    labels: str | None  # labels spec (a .npy path) or None
    dataset_id: str  # the id the comparison saw; a worker refuses a changed dataset
    config: str  # normalization name, e.g. "db+per_row@mask"
    seed: int
    model: str = "cnn"
    train: dict = field(default_factory=dict)  # TrainConfig.as_dict()
    mask_snr: float = DEFAULT_MASK_SNR
    std_floor: float = 0.0
    split_seed: int = SPLIT_SEED
    home: str | None = None  # NORMSCOPE_HOME of the parent (where registered datasets live)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**d)


def library_versions() -> dict:
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "platform": platform.platform()}


# -- validation (parent side, before anything is written) ---------------------------------
def check_trainable(ds: Dataset, split: Split, *, batch_size: int) -> None:
    """Raise NormScopeError unless a classifier can be trained and tested on ``ds``."""
    if ds.y is None:
        raise NormScopeError(
            f"{ds.name} has no labels, and comparisons need labels to train a classifier: "
            "give them with --labels (or save X and y together in an .npz)"
        )
    present = np.unique(ds.y)
    if present.size < 2:
        only = ds.class_names[int(present[0])] if present.size else "none"
        raise NormScopeError(
            f"{ds.name} has a single class ({only}); a comparison needs at least two classes"
        )
    for part in ("train", "val", "test"):
        idx = split.part(part)
        missing = np.setdiff1d(present, np.unique(ds.y[idx]))
        if missing.size:
            c = int(missing[0])
            count = int((ds.y == c).sum())
            raise NormScopeError(
                f"class {ds.class_names[c]!r} has only {count} example(s), too few for the "
                f"70/15/15 split (its {part} part is empty); give it at least 4 examples or "
                "remove it"
            )
    n_train = len(split.train)
    if n_train < batch_size:
        raise NormScopeError(
            f"the training split has {n_train} examples, fewer than one batch of {batch_size}; "
            f"use a batch size of at most {n_train} or more data"
        )


def worker_spec(ds: Dataset, data: str, labels: str | None) -> tuple[str, str | None]:
    """How a worker opens ``ds`` again: its id when built in or registered (audio folders
    and uploads are), otherwise the absolute path of the array file (and labels file)."""
    from diagnostics.data.builtin import BUILTINS
    from diagnostics.data.store import is_registered

    if ds.id in BUILTINS or is_registered(ds.id):
        return ds.id, None
    path = Path(str(data)).expanduser()
    if not path.is_file():
        raise NormScopeError(
            f"dataset {ds.name} ({ds.id}) cannot be reopened by the training workers: give "
            "its file path, a built-in name or a registered dataset id"
        )
    return str(path.resolve()), None if labels is None else str(Path(labels).expanduser().resolve())


# -- the worker side ----------------------------------------------------------------------
class _Flag:
    """Event-like view of a shared byte (lock-free: a killed process can never hold it)."""

    def __init__(self, value):
        self._v = value

    def is_set(self) -> bool:
        return bool(self._v.value)


def prepare_data(job: Job, cache: dict | None = None):
    """Load the dataset named by ``job``, split it and normalize it (train-fitted).

    Returns ``(normalizer, Xn, ds, split)``; ``cache`` (a dict) reuses the dataset and the
    normalized arrays between jobs of one worker.
    """
    cache = {} if cache is None else cache
    if job.home is not None:
        # Worker processes keep the environment of the fork server's start; follow the parent.
        os.environ["NORMSCOPE_HOME"] = job.home
    key = (job.data, job.labels, job.home)
    if cache.get("data_key") != key:
        cache.clear()
        ds = load_dataset(job.data, labels=job.labels)
        cache.update(data_key=key, ds=ds, split=split_indices(ds.n, ds.y, seed=job.split_seed))
    ds, split = cache["ds"], cache["split"]
    if ds.id != job.dataset_id:
        raise NormScopeError(
            f"{job.data} changed since the comparison started (id {ds.id}, expected "
            f"{job.dataset_id}); start the comparison again"
        )
    # Jobs come seed-major (none s0, per_pixel s0, none s1, ...): keep a few normalized
    # copies, least recently used first out, within a memory budget.
    norms: dict = cache.setdefault("norms", {})
    nkey = (job.config, job.mask_snr, job.std_floor)
    if nkey not in norms:
        norm = Normalizer(job.config, mask_snr=job.mask_snr, std_floor=job.std_floor)
        norm.fit(ds.X, indices=split.train)
        Xn = np.empty((ds.n, *norm.shape_out_), np.float32)
        step = 256
        for i in range(0, ds.n, step):
            Xn[i : i + step] = norm.transform(ds.X[i : i + step])
        while norms and sum(v[1].nbytes for v in norms.values()) + Xn.nbytes > CACHE_BYTES:
            norms.pop(next(iter(norms)))
        norms[nkey] = (norm, Xn)
    norms[nkey] = norms.pop(nkey)  # most recently used last
    norm, Xn = norms[nkey]
    return norm, Xn, ds, split


def run_job(job: Job, *, send, stop=None, cache: dict | None = None) -> dict:
    """Run one job and report through ``send((kind, run_id, data))``.

    Messages: ``started`` (versions), ``progress`` (epoch, step, steps), ``epoch`` (metrics of
    the finished epoch with its minibatches), and one final ``finished`` (status, test_acc,
    elapsed_s, message, n_params, init_digest).  Never raises for a bad run: problems end as
    status ``failed`` with a message.  Returns the final message's data.
    """
    from .train import fit

    t0 = time.perf_counter()
    send(("started", job.run_id, {"versions": library_versions(), "pid": os.getpid()}))
    info: dict[str, Any] = {}
    try:
        _, Xn, ds, split = prepare_data(job, cache)
        tc = TrainConfig.from_dict(job.train)
        steps = -(-len(split.train) // tc.batch_size) * tc.epochs
        last = [0.0]
        first_step = [1]

        def callback(kind: str, data: dict) -> None:
            if kind == "start":
                info.update(n_params=data["n_params"], init_digest=data["init_digest"])
            elif kind == "batch":
                now = time.perf_counter()
                if now - last[0] >= PROGRESS_EVERY_S:
                    last[0] = now
                    send(("progress", job.run_id, {"step": data["step"], "steps": steps,
                                                    "epoch": data["epoch"], "acc": data["acc"]}))
            elif kind == "epoch":
                data = dict(data, first_step=first_step[0], steps=steps)
                first_step[0] += len(data["batch_acc"])
                send(("epoch", job.run_id, data))

        h = fit(Xn[split.train], ds.y[split.train], Xn[split.val], ds.y[split.val],
                Xn[split.test], ds.y[split.test], n_classes=len(ds.class_names),
                model=job.model, config=tc, seed=job.seed, callback=callback, stop=stop)
        result = {"status": h.status, "test_acc": h.test_acc, "message": h.message,
                  "n_params": h.n_params, "init_digest": h.init_digest}
    except NormScopeError as exc:
        result = {"status": "failed", "test_acc": None, "message": str(exc), **info}
    except Exception as exc:  # a bug or a resource problem: keep the other runs going
        tb = traceback.format_exc(limit=3)
        result = {"status": "failed", "test_acc": None,
                  "message": f"{type(exc).__name__}: {exc} | {tb[-600:]}", **info}
    result["elapsed_s"] = time.perf_counter() - t0
    send(("finished", job.run_id, result))
    return result


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
            run_job(Job.from_dict(msg), send=conn.send, stop=stop, cache=cache)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or asked us to stop
    finally:
        conn.close()


def _context():
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # Preloading torch once in the fork server makes every worker start fast.  There is
        # one fork server per process: keep what others (the audio pool) asked to preload.
        from multiprocessing import forkserver

        current = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
        ctx.set_forkserver_preload(current + [m for m in _PRELOAD if m not in current])
    return ctx


def _check_main_importable() -> None:
    """Worker processes re-import the main script (Python's rule for spawn and forkserver);
    a script read from stdin cannot be, and every worker would die at start."""
    import sys

    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return
    path = getattr(main, "__file__", None)
    if path is not None and not os.path.isfile(path):
        raise RuntimeError(
            f"training workers cannot start: the main script {path!r} is not a file they can "
            "import; run the program from a file, a module (python -m) or python -c"
        )


def _warm_up() -> None:
    """Start the fork server now (it preloads torch in the background); idempotent."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


# -- the parent side ----------------------------------------------------------------------
@dataclass(frozen=True)
class RunProgress:
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
class Progress:
    """Snapshot of a comparison for a UI poll."""

    comparison_id: str
    status: str  # waiting | queued | running | done | cancelled | failed
    fraction: float  # of all minibatches of all runs
    elapsed_s: float
    eta_s: float | None
    counts: dict
    runs: tuple[RunProgress, ...]
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "failed")

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
    """Configs x seeds on a local process pool, stored as it goes.

    Parameters
    ----------
    data : str
        Dataset spec for :func:`diagnostics.data.ingest.load_dataset` (``demo``, a path, ...).
    configs : str or sequence of str
        Normalization names, the reference first (``"none,per_pixel"``).
    labels : str, optional
        Labels spec for a ``.npy`` dataset.
    seeds : int or sequence of int
        ``3`` means seeds 0, 1, 2.
    model : {"cnn", "mlp", "linear"}
    train : TrainConfig
    mask_snr, std_floor : float
        Options of ``@mask`` and of the scalers.
    workers : int, optional
        Worker processes (default: CPU cores, at most the number of runs).

    Use ``start()`` (validates and returns at once; raises NormScopeError for bad input before
    anything is stored), then ``snapshot()`` from any thread, ``cancel()``, ``wait()``.
    """

    def __init__(self, data: str | Dataset, configs: str | Sequence[str], *,
                 labels: str | None = None, seeds: int | Sequence[int] = 3, model: str = "cnn",
                 train: TrainConfig = TrainConfig(), mask_snr: float = DEFAULT_MASK_SNR,
                 std_floor: float = 0.0, workers: int | None = None,
                 store: RunStore | None = None, gate: threading.Semaphore | None = None):
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
        self._cancel_value = None
        self._home: str | None = None

    # -- validation and start --------------------------------------------------------------
    def _validate(self) -> Dataset:
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
        ds = self._dataset if self._dataset is not None else load_dataset(self.data, labels=self.labels)
        self._dataset = None  # the workers load their own copy; do not keep it alive here
        self.data, self.labels = worker_spec(ds, self.data, self.labels)
        split = split_indices(ds.n, ds.y, seed=SPLIT_SEED)
        check_trainable(ds, split, batch_size=tc.batch_size)
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
                    mask_snr=self.mask_snr, std_floor=self.std_floor,
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
        _check_main_importable()
        _warm_up()  # the fork server imports torch while we validate
        self._home = os.environ.get("NORMSCOPE_HOME")  # read now, as the store does
        ds = self._validate()
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
        with self._lock:
            if self._cancel_value is not None:
                self._cancel_value.value = 1

    @property
    def cancelled(self) -> bool:
        return self._cancel_evt.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (True) or ``timeout`` seconds passed (False)."""
        return self._done_evt.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done_evt.is_set()

    def snapshot(self) -> Progress:
        """A consistent copy of the live state (safe from any thread)."""
        with self._lock:
            runs = []
            total = done = 0.0
            counts: dict[str, int] = {}
            for rid in self._order:
                r = self._runs[rid]
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                finished = r["status"] not in ("queued", "running")
                frac = 1.0 if finished else min(1.0, r["step"] / max(r["steps"], 1))
                total += 1
                done += frac
                runs.append(RunProgress(
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
        return Progress(self.id, status, fraction, elapsed, eta, counts, tuple(runs), error)

    # -- monitor thread --------------------------------------------------------------------
    def _set(self, rid: str, **kw) -> None:
        with self._lock:
            self._runs[rid].update(kw)

    def _handle(self, kind: str, rid: str, data: dict) -> None:
        store = self._store
        if rid not in self._runs:
            return
        if kind == "started":
            store.start_run(rid, versions=data.get("versions"))
            self._set(rid, status="running", pid=data.get("pid"))
        elif kind == "progress":
            self._set(rid, step=data["step"], steps=data["steps"], epoch=data["epoch"] - 1)
        elif kind == "epoch":
            store.add_epoch(rid, data)
            with self._lock:
                r = self._runs[rid]
                r["epoch"] = data["epoch"]
                r["steps"] = data["steps"]
                r["step"] = data["first_step"] + len(data["batch_acc"]) - 1
                for k in ("train_loss", "train_acc", "val_acc"):
                    r[k].append(data[k])
                r["batch_acc"].extend(data["batch_acc"])
        elif kind == "finished":
            status = data["status"]
            store.finish_run(rid, status, test_acc=data.get("test_acc"),
                             elapsed_s=data.get("elapsed_s"), message=data.get("message") or None,
                             n_params=data.get("n_params"), init_digest=data.get("init_digest"))
            self._set(rid, status=status, test_acc=data.get("test_acc"),
                      message=data.get("message") or None)

    def _fail(self, rid: str, status: str, message: str) -> None:
        self._store.finish_run(rid, status, message=message)
        self._set(rid, status=status, message=message)

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
                    self._pool_loop()
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
                self._store.cancel_queued(self.id, "failed", self._error)
                for rid, r in list(self._runs.items()):
                    if r["status"] == "running":
                        self._fail(rid, "failed", self._error)
            except Exception:
                pass
        finally:
            try:
                self._store.set_comparison_status(self.id, final, final=True)
            except Exception:
                pass
            with self._lock:
                self._status = final
            self._done_evt.set()

    def _pool_loop(self) -> None:
        ctx = _context()
        cancel_value = ctx.RawValue("b", 0)
        with self._lock:
            self._cancel_value = cancel_value
        if self._cancel_evt.is_set():
            cancel_value.value = 1
        pending = self.jobs()
        pending.reverse()  # pop() from the end keeps run order
        n_workers = min(self.workers or os.cpu_count() or 1, len(pending))
        workers: list[dict] = []

        def spawn() -> dict:
            parent, child = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_worker_main, args=(child, cancel_value), daemon=True,
                            name=f"normscope-worker-{self.id}")
            p.start()
            child.close()
            w = {"proc": p, "conn": parent, "job": None, "cancel_at": None}
            workers.append(w)
            return w

        def assign(w: dict) -> None:
            if pending and not self._cancel_evt.is_set():
                job = pending.pop()
                w["job"] = job.run_id
                try:
                    w["conn"].send(job.as_dict())
                except (BrokenPipeError, OSError):
                    pending.append(job)
                    w["job"] = None

        def retire(w: dict, reason: str) -> None:
            rid = w["job"]
            if rid is not None:
                status = "cancelled" if self._cancel_evt.is_set() else "failed"
                self._fail(rid, status, reason)
            w["conn"].close()
            workers.remove(w)

        try:
            for _ in range(n_workers):
                assign(spawn())
            while workers:
                if self._cancel_evt.is_set():
                    cancel_value.value = 1
                    now = time.monotonic()
                    for w in list(workers):
                        if w["job"] is None:
                            self._stop_worker(w)
                            retire(w, "")
                        elif w["cancel_at"] is None:
                            w["cancel_at"] = now
                        elif now - w["cancel_at"] > CANCEL_GRACE_S:
                            w["proc"].kill()
                            w["proc"].join(2)
                            retire(w, "cancelled (the worker was stopped)")
                    if not workers:
                        break
                objs = [w["conn"] for w in workers] + [w["proc"].sentinel for w in workers]
                ready = mp_wait(objs, timeout=0.1)
                for w in list(workers):
                    dead = False
                    if w["conn"] in ready:
                        try:
                            while w["conn"].poll():
                                kind, rid, data = w["conn"].recv()
                                self._handle(kind, rid, data)
                                if kind == "finished" and rid == w["job"]:
                                    w["job"] = None
                                    w["cancel_at"] = None
                        except (EOFError, OSError, ValueError, TypeError):
                            dead = True  # a pipe closed (or garbled) by a dying worker
                    if dead or not w["proc"].is_alive():
                        w["proc"].join(1)
                        code = w["proc"].exitcode
                        retire(w, f"the worker process died (exit code {code}); the other runs "
                                  "went on")
                        if pending and not self._cancel_evt.is_set():
                            assign(spawn())
                        continue
                    if w["job"] is None:
                        if pending and not self._cancel_evt.is_set():
                            assign(w)
                        else:
                            self._stop_worker(w)
                            retire(w, "")
        finally:
            for w in list(workers):
                self._stop_worker(w, force=True)
                if w["job"] is not None:
                    try:
                        self._fail(w["job"], "cancelled" if self._cancel_evt.is_set() else "failed",
                                   "the comparison stopped before this run finished")
                    except Exception:
                        pass
                w["conn"].close()

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

    # -- results ---------------------------------------------------------------------------
    def running_pids(self) -> dict[str, int]:
        """``{run_id: worker pid}`` of the runs running now (for tests and diagnostics)."""
        with self._lock:
            return {rid: r["pid"] for rid, r in self._runs.items()
                    if r["status"] == "running" and r.get("pid")}

    def record(self):
        """The stored comparison with runs and curves (see :class:`models.store.RunStore`)."""
        return self._store.load_comparison(self.id)


class Registry:
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
        """Create, validate and start a comparison; raises NormScopeError on bad input."""
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

    def cancel_all(self) -> None:
        for c in self.active():
            c.cancel()
