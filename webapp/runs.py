"""The app's one door to ``models``: the running comparisons, training defaults, the run store.

Every import of ``models`` by the app is here, so a rename there is a change in this module
only.  torch is imported lazily (the first time the Compare tab starts or shows a comparison);
the run store is SQLite only.
"""

from __future__ import annotations

import hashlib
import hmac

import streamlit as st

from diagnostics import config
from diagnostics import limits as _limits
from diagnostics.errors import NormScopeError
from diagnostics.advise import DEFAULT_BUDGET_S
from diagnostics.plots.report import NEWEST_COMPARISONS
from models.store import FINISHED, RunStore

__all__ = ["FINISHED", "registry", "mark_interrupted", "store", "start", "model_names",
           "default_epochs", "running", "comparison_ids", "report_records", "limits",
           "may_cancel", "start_advice", "advice", "advice_list", "export_available",
           "export_zip"]


@st.cache_resource
def registry():
    """The process-wide set of running comparisons (threads + worker pool), created once
    per server (stale runs were marked by :func:`mark_interrupted` at the first script run)."""
    from models.comparison import RunningComparisons

    return RunningComparisons()


@st.cache_resource(show_spinner=False)
def _mark_interrupted(home: str) -> int:
    return RunStore().mark_interrupted()


def mark_interrupted() -> int:
    """Once per server and data directory, before anything reads the run store: runs left
    'running' by a server that died become 'interrupted' (torch is not imported for this)."""
    return _mark_interrupted(str(config.home()))


def store() -> RunStore:
    """The run store of the current data directory (read from the environment each time)."""
    return RunStore()


def model_names() -> tuple[str, ...]:
    """The built-in models and those the server's operator lists in ``NORMSCOPE_MODELS``:
    never a model named in a browser (that would run code a stranger chose)."""
    from models.catalog import MODELS, operator_models

    return tuple(MODELS) + operator_models()


def model_help() -> str:
    """One line per model, for the picker's help."""
    from models.catalog import MODELS, operator_models

    lines = [f"{k}: {v}" for k, v in MODELS.items()]
    lines += [f"{m}: listed by this server's operator" for m in operator_models()]
    return "\n\n".join(lines)


def default_epochs() -> int:
    return int(SETTINGS["cmp_epochs"])


#: The Compare tab's settings: widget key (and URL parameter) -> default.  Every config of one
#: comparison shares them; they are stored with the comparison and carried in links.
SETTINGS = {"cmp_model": "cnn", "cmp_more": [], "cmp_epochs": 15, "cmp_seeds": 3, "cmp_opt": "adam",
            "cmp_lr": 1e-3, "cmp_wd": 0.0, "cmp_bs": 32, "cmp_patience": 5,
            "cmp_eval": "auto", "cmp_folds": 5, "cmp_reps": 5, "cmp_decide": True,
            "cmp_budget": 0, "cmp_margin": 1.0}
#: The Advise tab's settings, likewise (its budget in minutes, the most epochs of a run).
ADVISE_SETTINGS = {"adv_budget": DEFAULT_BUDGET_S / 60, "adv_epochs": 15, "adv_model": "cnn"}
EVALUATIONS = ("auto", "cv", "holdout")  # models.decide_loop's kinds, without importing torch
OPTIMIZERS = ("adam", "adamw", "sgd")  # models.train.OPTIMIZERS, without importing torch


def limits():
    """This server's limits (:func:`diagnostics.limits.load`: read at each call, so an
    operator's change applies to the next request; NormScopeError for a bad setting)."""
    return _limits.load()


def start(dataset_id: str, configs: list[str], *, seeds: int, model: str | list[str],
          epochs: int, mask_snr: float, optimizer: str = "adam", lr: float = 1e-3,
          weight_decay: float = 0.0, batch_size: int = 32, patience: int = 5,
          evaluation: str = "auto", folds: int = 5, max_repetitions: int = 5,
          decide: bool = True, budget_min: float = 0.0, margin_points: float = 1.0,
          owner: str | None = None) -> str:
    """Start a comparison in the background; return its id (NormScopeError on bad input, or
    on a request over this server's :func:`limits`; nothing is stored then).

    ``model`` is one name or a list of two or more (one block of runs per model); each must
    be one of :func:`model_names`, so a browser never names code to run.  ``budget_min`` of
    0 means no time limit; ``margin_points`` is the equivalence margin in accuracy points
    (1 = 0.01); ``owner`` is the starter's private token (see :func:`may_cancel`), which also
    counts the comparisons per session.  The configs limit counts configs x models: each
    model is a block of runs of every config."""
    allowed = model_names()
    names = [model] if isinstance(model, str) else list(model)
    for m in names:
        if m not in allowed:
            raise NormScopeError(f"model {m!r} is not offered on this server; choose one of "
                                 f"{', '.join(allowed)}")
    lim = limits()
    lim.check(epochs=epochs, configs=len(configs) * len(names), folds=folds,
              seeds=seeds if evaluation != "cv" else None,
              repetitions=max_repetitions if evaluation != "holdout" else None)
    from models.train import TrainConfig

    train = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                        batch_size=batch_size, patience=patience)
    comp = registry().start(dataset_id, configs, owner=_digest(owner), limits=lim,
                            workers=_workers(lim), seeds=seeds, model=model, train=train,
                            mask_snr=mask_snr, evaluation=evaluation, folds=folds,
                            max_repetitions=max_repetitions, decide=decide,
                            budget_s=budget_min * 60 if budget_min else None,
                            margin=margin_points / 100)
    return comp.id


def _workers(lim) -> int | None:
    """Worker processes of an app comparison: the cores, at most ``max_workers``."""
    import os

    cores = os.cpu_count() or 1
    return lim.max_workers if lim.max_workers < cores else None


def _digest(token: str | None) -> str | None:
    # The registry keeps a digest, never the token itself.
    return None if not token else hashlib.sha256(token.encode()).hexdigest()


def may_cancel(comparison_id: str, token: str | None) -> bool:
    """Whether the holder of ``token`` may cancel a running comparison: its starter (the
    token of the page that started it, kept in that page's URL), or anyone where the operator
    allows it (``NORMSCOPE_ANYONE_CAN_CANCEL``)."""
    try:
        if limits().anyone_can_cancel:
            return True
    except NormScopeError:
        pass  # a bad limits setting allows nothing more than the default
    return owns(comparison_id, token)


def owns(comparison_id: str, token: str | None) -> bool:
    """Whether ``token`` is the private token of the page that started this comparison."""
    owner, mine = registry().owner(comparison_id), _digest(token)
    return owner is not None and mine is not None and hmac.compare_digest(owner, mine)


def predictions(comparison_id: str) -> dict:
    """Per-example predictions of a stored comparison's runs (for its verdict)."""
    return store().predictions(comparison_id)


def running(comparison_id: str):
    """The live comparison with this id if it runs in this server now, else None (then it is
    read from the store).  Its ``snapshot()`` is the progress to draw; ``cancel()`` stops it."""
    comp = registry().get(comparison_id)
    if comp is None or comp.finished or comp.snapshot().finished:
        return None
    return comp


def comparison_ids(dataset_id: str) -> set[str]:
    """Ids of every stored comparison of a dataset (what a link's ``runs`` may name)."""
    return {rec.id for rec in store().list_comparisons(dataset_id, limit=10_000)}


def report_records(dataset_id: str, selected: list[str]) -> list:
    """Stored comparisons for the HTML report: the selected ones of this dataset, else the
    newest stored ones (missing ones and other datasets' are left out)."""
    s = store()
    ids = selected or [rec.id for rec in s.list_comparisons(dataset_id, limit=NEWEST_COMPARISONS)]
    records = (s.load_comparison(cid) for cid in ids)
    return [rec for rec in records if rec is not None and rec.dataset_id == dataset_id]


def store_notice() -> str | None:
    """The run store's one-sentence notice when a damaged ``runs.db`` was moved aside at this
    server's first open (None otherwise)."""
    return _store_notice(str(config.home()))


@st.cache_resource(show_spinner=False)
def _store_notice(home: str) -> str | None:
    return RunStore().notice


# -- the advisor -------------------------------------------------------------------------


def start_advice(ds, proposal, *, budget_min: float, epochs: int,
                 mask_snr: float, model: str = "cnn") -> str:
    """Start the advisor's comparison of ``proposal``'s candidates in the background (decide
    mode within ``budget_min`` minutes); return its id (NormScopeError on bad input, such as
    a budget too small for one repetition)."""
    from diagnostics.advise import DEFAULT_MAX_REPETITIONS
    from models.advisor import start_advice as start_

    comp = start_(ds, proposal, data=ds.id, budget_s=float(budget_min) * 60,
                  epochs=epochs, model=model, max_repetitions=DEFAULT_MAX_REPETITIONS,
                  mask_snr=mask_snr, store=store(), start=registry().start)
    return comp.id


def advice(comparison_id: str) -> dict | None:
    """The stored advice of a comparison, its recommendation filled in once it has finished
    (see :func:`models.advisor.advice_of`); None if the advisor did not run it."""
    from models.advisor import advice_of

    return advice_of(store(), comparison_id)


def advice_list(dataset_id: str) -> list[tuple[str, float, dict]]:
    """``(comparison id, created, doc)`` of a dataset's stored advice, newest first."""
    return store().list_advice(dataset_id)


def export_available() -> bool:
    """Whether this build has the export of a fitted normalization (``models.export``),
    looked up without importing it (it imports torch)."""
    import importlib.util

    try:
        return importlib.util.find_spec("models.export") is not None
    except (ImportError, ValueError):
        return False


@st.cache_data(show_spinner="Fitting and exporting the normalization…", max_entries=8)
def export_zip(dataset_id: str, config: str, mask_snr: float) -> bytes:
    """The export of ``config`` fitted on the dataset (normalizer.npz, the torch module,
    USAGE.md) as zip bytes, for the Advise tab's download (computed on click, cached by
    dataset id, config and mask threshold)."""
    from diagnostics.data.ingest import load_dataset
    from models.export import export_zip as make

    data, _name = make(load_dataset(dataset_id), config, mask_snr=mask_snr)
    return data
