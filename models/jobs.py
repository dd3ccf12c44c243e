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
``progress``  ``step``, ``steps``, ``epoch``, ``acc`` (at most every :data:`PROGRESS_EVERY_S`)
``epoch``     the metrics of a finished epoch (see :func:`models.train.fit`) with
              ``first_step`` and ``steps``
``finished``  ``status``, ``test_acc``, ``message``, ``elapsed_s``, ``n_params``,
              ``init_digest``; always the last event of a job, exactly once
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
from diagnostics.data.dataset import Dataset, Split, split_indices
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer

from .train import TrainConfig

#: Minimum seconds between two progress events of one job (epochs are always sent).
PROGRESS_EVERY_S = 0.25
#: Bytes of normalized copies of the dataset a worker keeps between jobs.
CACHE_BYTES = 512 * 2**20
#: The kinds of event a job emits, in order (``progress`` and ``epoch`` repeat).
EVENT_KINDS = ("started", "progress", "epoch", "finished")


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


def worker_spec(ds: Dataset, data: str, labels: str | None, *,
                home: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """How a worker opens ``ds`` again: its id when built in or registered under ``home``
    (audio folders and uploads are), otherwise the absolute path of the array file (and
    labels file)."""
    from diagnostics.data.builtin import BUILTINS
    from diagnostics.data.store import is_registered

    if ds.id in BUILTINS or is_registered(ds.id, home=home):
        return ds.id, None
    path = Path(str(data)).expanduser()
    if not path.is_file():
        raise NormScopeError(
            f"dataset {ds.name} ({ds.id}) cannot be reopened by the training workers: give "
            "its file path, a built-in name or a registered dataset id"
        )
    return str(path.resolve()), None if labels is None else str(Path(labels).expanduser().resolve())


# -- the worker side ----------------------------------------------------------------------
def prepare_data(job: Job, cache: dict | None = None):
    """Load the dataset named by ``job`` (from ``job.home``), split it and normalize it
    (train-fitted).  Never touches ``os.environ``.

    Returns ``(normalizer, Xn, ds, split)``; ``cache`` (a dict) reuses the dataset and the
    normalized arrays between jobs of one worker.
    """
    cache = {} if cache is None else cache
    key = (job.data, job.labels, job.home)
    if cache.get("data_key") != key:
        cache.clear()
        ds = load_dataset(job.data, labels=job.labels, home=job.home)
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
                          "steps": steps, "epoch": data["epoch"], "acc": data["acc"]})
            elif kind == "epoch":
                event = {**data, "kind": "epoch", "run_id": rid, "first_step": first_step[0],
                         "steps": steps}
                first_step[0] += len(data["batch_acc"])
                emit(event)

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
    event = {"kind": "finished", "run_id": rid, **result,
             "elapsed_s": time.perf_counter() - t0}
    emit(event)
    return event
