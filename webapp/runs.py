"""The app's one door to ``models``: the running comparisons, training defaults, the run store.

Every import of ``models`` by the app is here, so a rename there is a change in this module
only.  torch is imported lazily (the first time the Compare tab starts or shows a comparison);
the run store is SQLite only.
"""

from __future__ import annotations

import streamlit as st

from diagnostics import config
from diagnostics.plots.report import NEWEST_COMPARISONS
from models.store import FINISHED, RunStore

__all__ = ["FINISHED", "registry", "mark_interrupted", "store", "start", "model_names",
           "default_epochs", "running", "comparison_ids", "report_records"]


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
EVALUATIONS = ("auto", "cv", "holdout")  # models.decide_loop's kinds, without importing torch
OPTIMIZERS = ("adam", "adamw", "sgd")  # models.train.OPTIMIZERS, without importing torch


def start(dataset_id: str, configs: list[str], *, seeds: int, model: str | list[str],
          epochs: int, mask_snr: float, optimizer: str = "adam", lr: float = 1e-3,
          weight_decay: float = 0.0, batch_size: int = 32, patience: int = 5,
          evaluation: str = "auto", folds: int = 5, max_repetitions: int = 5,
          decide: bool = True, budget_min: float = 0.0, margin_points: float = 1.0) -> str:
    """Start a comparison in the background; return its id (NormScopeError on bad input).

    ``model`` is one name or a list of two or more (one block of runs per model); each must
    be one of :func:`model_names`, so a browser never names code to run.  ``budget_min`` of
    0 means no time limit; ``margin_points`` is the equivalence margin in accuracy points
    (1 = 0.01)."""
    from diagnostics.errors import NormScopeError

    allowed = model_names()
    for m in [model] if isinstance(model, str) else model:
        if m not in allowed:
            raise NormScopeError(f"model {m!r} is not offered on this server; choose one of "
                                 f"{', '.join(allowed)}")
    from models.train import TrainConfig

    train = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                        batch_size=batch_size, patience=patience)
    comp = registry().start(dataset_id, configs, seeds=seeds, model=model, train=train,
                            mask_snr=mask_snr, evaluation=evaluation, folds=folds,
                            max_repetitions=max_repetitions, decide=decide,
                            budget_s=budget_min * 60 if budget_min else None,
                            margin=margin_points / 100)
    return comp.id


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
