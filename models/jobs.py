"""One training run as plain data, and how any worker runs it.

A :class:`Job` is small and serialisable (:meth:`Job.as_dict` gives a dict of strings, numbers
and a dict of hyper-parameters): the dataset is named by its spec (a built-in name, a
registered id or an absolute file path) and checked by its id, never pickled, and the data
directory travels in the job (``home``) rather than in the environment.  So any executor (the
local process pool, a cluster) can call :func:`run_job` without touching the training code,
and a worker never changes ``os.environ``.

:func:`run_job` reports through ``emit(event)``, each event a plain dict
``{"kind": ..., "run_id": ..., **fields}``:

``started``   ``versions`` (python, numpy, torch, platform), ``pid``
``progress``  ``step``, ``steps``, ``epoch`` (at most every :data:`PROGRESS_EVERY_S`)
``epoch``     the metrics of a finished epoch (see :func:`models.train.fit`) with
              ``first_step`` and ``steps``
``finished``  ``status``, ``test_acc``, ``message``, ``elapsed_s``, ``n_params``,
              ``init_digest``, ``best_epoch``; a done run adds its per-example predictions as
              plain lists: ``test_index`` (dataset rows), ``pred``, ``label``; always the
              last event of a job, exactly once

The split of a job comes from its evaluation design (``design``, ``repetition``, ``fold``):
fold ``fold`` of repetition ``repetition`` of stratified k-fold cross-validation, or the fixed
holdout.  Every config of one (repetition, fold) gets the same split, and the comparison gives
them the same ``seed``, hence the same initial weights and batch order.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR, SPLIT_SEED
from diagnostics.data.dataset import Dataset
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer
from diagnostics.verdicts.design import Design, Fold, design_folds

from .train import TrainConfig

#: Minimum seconds between two progress events of one job (epochs are always sent).
PROGRESS_EVERY_S = 0.25
#: Bytes of normalized copies of the dataset a worker keeps between jobs.
CACHE_BYTES = 512 * 2**20
#: The kinds of event a job emits, in order (``progress`` and ``epoch`` repeat).
EVENT_KINDS = ("started", "progress", "epoch", "finished")


def holdout_design(split_seed: int = SPLIT_SEED) -> dict:
    """The design dict of today's fixed 70/15/15 split (a job's default)."""
    return {"kind": "holdout", "folds": 1, "seed": int(split_seed), "val_fraction": 0.15}


def design_of(d: dict) -> Design:
    """A :class:`~diagnostics.verdicts.design.Design` from a job's design dict."""
    return Design(str(d["kind"]), int(d["folds"]), seed=int(d.get("seed", SPLIT_SEED)),
                  val_fraction=float(d.get("val_fraction", 0.15)))


@dataclass(frozen=True)
class Job:
    """One training run, as plain data: what to load, how to normalize, what to train."""

    run_id: str
    comparison_id: str
    data: str  # dataset spec for diagnostics.data.ingest.load_dataset (id, built-in, abs. path)
    labels: str | None  # labels spec (an absolute .npy path) or None
    dataset_id: str  # the id the comparison saw; a worker refuses a changed dataset
    config: str  # normalization name, e.g. "db+per_row@mask"
    seed: int
    model: str = "cnn"
    train: dict = field(default_factory=dict)  # TrainConfig.as_dict()
    mask_snr: float = DEFAULT_MASK_SNR
    std_floor: float = 0.0
    split_seed: int = SPLIT_SEED
    #: The data directory that holds registered datasets; None: the worker's own default
    #: (diagnostics.config.home()).  A comparison always names its own.
    home: str | None = None
    repetition: int = 0  # which repetition of the design (holdout: the index of the seed)
    fold: int = 0  # which fold of that repetition (holdout: 0)
    #: kind (cv | holdout), folds, seed (of the splits), val_fraction; see holdout_design
    design: dict = field(default_factory=holdout_design)

    def as_dict(self) -> dict:
        """The job as a plain dict (JSON-serialisable); :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**d)


def library_versions() -> dict:
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "platform": platform.platform()}


# -- validation (parent side, before anything is written) ---------------------------------
def check_trainable(ds: Dataset, split, *, batch_size: int,
                    parts: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Raise NormScopeError unless a classifier can be trained and tested on ``ds``.

    ``split`` has ``train``, ``val`` and ``test`` index arrays (a holdout Split or a CV Fold);
    every class must be present in each of ``parts``.  With ``split=None`` only the labels are
    checked (present, two classes or more).
    """
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
    if split is None:  # labels only
        return
    for part in parts:
        idx = getattr(split, part)
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


def check_runnable(ds: Dataset, design: Design, configs, *, model: str, batch_size: int,
                   mask_snr: float, std_floor: float) -> None:
    """Raise NormScopeError unless every config can train under ``design`` (checked on the
    first fold: the others have the same sizes and class counts, within one example)."""
    from .catalog import is_import_path
    from .nets import build_model

    split = design_folds(design, ds.y, repetition=0)[0]
    # A CV fold may leave a tiny class out of validation (it only stops training early).
    parts = ("train", "val", "test") if design.kind == "holdout" else ("train", "test")
    check_trainable(ds, split, batch_size=batch_size, parts=parts)
    if is_import_path(model):
        build_model(model, ds.X.shape[1:], len(ds.class_names))  # the contract, up front
    for name in configs:
        # Fitting catches a mask that removes every row (and bad std floors) up front; the
        # statistics pass is cheap next to training.
        if "@" in name or std_floor:
            Normalizer(name, mask_snr=mask_snr, std_floor=std_floor).fit(ds.X, indices=split.train)


def worker_spec(ds: Dataset, data: str, labels: str | None, *,
                home: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """How a worker opens ``ds`` again: its id when built in or registered under ``home``
    (audio folders and uploads are), otherwise the absolute path of the array file (and
    labels file)."""
    from diagnostics.data.builtin import BUILTINS
    from diagnostics.data.store import is_registered

    if ds.id in BUILTINS or is_registered(ds.id, home=home):
        return ds.id, None
    spec = getattr(ds.X, "spec", None)  # a zarr/HDF5 source: reopened in place by its spec
    if spec is not None and hasattr(spec, "text"):
        return spec.text(), None if labels is None else str(Path(labels).expanduser().resolve())
    path = Path(str(data)).expanduser()
    if not path.is_file():
        raise NormScopeError(
            f"dataset {ds.name} ({ds.id}) cannot be reopened by the training workers: give "
            "its file path, a built-in name or a registered dataset id"
        )
    return str(path.resolve()), None if labels is None else str(Path(labels).expanduser().resolve())


# -- the worker side ----------------------------------------------------------------------
def job_split(job: Job, ds: Dataset, cache: dict | None = None) -> Fold:
    """The (train, val, test) indices of ``job``: its fold of its repetition of the design."""
    design = design_of(job.design)
    folds_cache = {} if cache is None else cache.setdefault("folds", {})
    key = (tuple(sorted(job.design.items())), job.repetition if design.kind == "cv" else 0)
    if key not in folds_cache:
        folds_cache.clear()  # one repetition at a time: jobs come repetition by repetition
        folds_cache[key] = design_folds(design, ds.y, repetition=job.repetition)
    parts = folds_cache[key]
    if not 0 <= job.fold < len(parts):
        raise NormScopeError(f"fold {job.fold} does not exist; the design has {len(parts)}")
    return parts[job.fold]


def prepare_data(job: Job, cache: dict | None = None):
    """Load the dataset named by ``job`` (from ``job.home``), take the job's split and
    normalize it (fitted on that split's training part only).  Never touches ``os.environ``.

    Returns ``(normalizer, Xn, ds, split)`` (``split`` a
    :class:`~diagnostics.verdicts.design.Fold`); ``cache`` (a dict) reuses the dataset, the
    folds and the normalized arrays between jobs of one worker.
    """
    cache = {} if cache is None else cache
    key = (job.data, job.labels, job.home)
    if cache.get("data_key") != key:
        cache.clear()
        cache.update(data_key=key, ds=load_dataset(job.data, labels=job.labels, home=job.home))
    ds = cache["ds"]
    if ds.id != job.dataset_id:
        raise NormScopeError(
            f"{job.data} changed since the comparison started (id {ds.id}, expected "
            f"{job.dataset_id}); start the comparison again"
        )
    split = job_split(job, ds, cache)
    # Jobs come fold-major (none f0, per_pixel f0, none f1, ...): keep a few normalized
    # copies, least recently used first out, within a memory budget.  A copy is fitted on one
    # training part, so the key names the split: (repetition, fold) for CV (one split for
    # every repetition of a holdout).
    norms: dict = cache.setdefault("norms", {})
    cv = job.design.get("kind") == "cv"
    nkey = (job.config, job.mask_snr, job.std_floor, tuple(sorted(job.design.items())),
            job.repetition if cv else None, job.fold)
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


def run_job(job: Job, *, emit: Callable[[dict], Any], stop=None,
            cache: dict | None = None) -> dict:
    """Run one job and report through ``emit(event)`` (plain dicts, see the module docstring).

    ``stop`` is anything with ``is_set()`` (read before every minibatch).  Never raises for a
    bad run: problems end as status ``failed`` with a message.  Returns the ``finished`` event.
    """
    from .train import fit

    t0 = time.perf_counter()
    rid = job.run_id
    emit({"kind": "started", "run_id": rid, "versions": library_versions(), "pid": os.getpid()})
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
                    emit({"kind": "progress", "run_id": rid, "step": data["step"],
                          "steps": steps, "epoch": data["epoch"]})
            elif kind == "epoch":
                event = {**data, "kind": "epoch", "run_id": rid, "first_step": first_step[0],
                         "steps": steps}
                first_step[0] += len(data["batch_acc"])
                emit(event)

        h = fit(Xn[split.train], ds.y[split.train], Xn[split.val], ds.y[split.val],
                Xn[split.test], ds.y[split.test], n_classes=len(ds.class_names),
                model=job.model, config=tc, seed=job.seed, callback=callback, stop=stop)
        result = {"status": h.status, "test_acc": h.test_acc, "message": h.message,
                  "n_params": h.n_params, "init_digest": h.init_digest,
                  "best_epoch": h.best_epoch}
        if h.status == "done":  # per-example predictions, as plain lists of ints
            result.update(test_index=[int(i) for i in split.test], pred=list(h.test_pred),
                          label=[int(v) for v in ds.y[split.test]])
    except NormScopeError as exc:
        result = {"status": "failed", "test_acc": None, "message": str(exc), **info}
    except Exception as exc:  # a bug or a resource problem: keep the other runs going
        tb = traceback.format_exc(limit=3)
        result = {"status": "failed", "test_acc": None,
                  "message": f"{type(exc).__name__}: {exc} | {tb[-600:]}", **info}
    event = {"kind": "finished", "run_id": rid, **result,
             "elapsed_s": time.perf_counter() - t0}
    emit(event)
    return event
