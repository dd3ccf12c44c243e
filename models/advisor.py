"""The advisor's run: its candidates as one decide-mode comparison, and its stored advice.

Shared by the command line (``python -m diagnostics advise``) and the app's Advise tab, so
both check the budget, start the comparison and store the recommendation the same way.
It imports torch (through :class:`~models.train.TrainConfig`): import it lazily.
"""

from __future__ import annotations

import os

from diagnostics.advise import (Proposal, advice_json, check_budget_fits,
                                planned_repetitions, recommend, run_seconds)
from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError

from .decide_loop import EvaluationOptions, make_plan
from .store import FINISHED, RunStore
from .train import TrainConfig

__all__ = ["start_advice", "finish_advice", "advice_of"]


def _measured(store: RunStore, dataset_id: str, model: str, epochs: int) -> list[float]:
    """Wall seconds of the stored CV runs of this dataset, model and epochs (the budget's
    estimate of a run when there are any)."""
    return [r.elapsed_s for r in store.list_runs(dataset_id=dataset_id, limit=200)
            if r.status == "done" and r.model == model and r.elapsed_s
            and r.hyper.get("epochs") == epochs and r.repetition is not None]


def start_advice(ds: Dataset, proposal: Proposal, *, data=None, labels: str | None = None,
                 budget_s: float, epochs: int | None = None, model: str = "cnn",
                 workers: int | None = None, folds: int = 5, max_repetitions: int = 3,
                 margin: float = 0.01, mask_snr: float, store: RunStore | None = None,
                 start=None):
    """Check the budget, start the candidates' comparison and store the pending advice.

    Parameters
    ----------
    ds : Dataset
        The dataset (with labels) the proposal was made for.
    proposal : Proposal
        :func:`diagnostics.advise.propose` of its training split.
    data : str or Dataset, optional
        What the comparison opens (default ``ds``; a plain file's path, which has no id).
    budget_s : float
        Seconds of decide mode; refused (NormScopeError, one sentence) when one repetition of
        every candidate would not fit.  Decide mode plans for as many repetitions as the
        budget fits by the time estimate, at most ``max_repetitions``
        (:func:`diagnostics.advise.planned_repetitions`).
    start : callable, optional
        ``start(data, configs, **options) -> Comparison`` (the app's
        :meth:`~models.comparison.RunningComparisons.start`); default a new
        :class:`~models.comparison.Comparison` started here.

    Returns
    -------
    Comparison
        Started; its id is the advice's id.
    """
    if ds.y is None or len(ds.class_names) < 2:
        raise NormScopeError(f"the advisor trains classifiers, so {ds.name} needs labels of at "
                             "least two classes (a labels file, an .npz with y, or class folders)")
    store = store or RunStore()
    tc = TrainConfig(epochs=epochs or TrainConfig().epochs)
    options = EvaluationOptions("auto", folds, max_repetitions, True, budget_s, margin).check()
    plan = make_plan(options, ds.y, seeds=[0, 1, 2], class_names=ds.class_names)
    configs = proposal.configs
    cells = plan.design.folds if plan.design.kind == "cv" else 1
    n_train = int(ds.n * (1 - 1 / max(cells, 2)) * (1 - plan.design.val_fraction))
    measured = _measured(store, ds.id, model, tc.epochs)
    w = workers or min(os.cpu_count() or 1, len(configs) * cells)
    run_s = run_seconds(n_train, ds.X.shape[1:], tc.epochs, measured=measured)
    check_budget_fits(float(budget_s), n_configs=len(configs), folds=cells, epochs=tc.epochs,
                      run_s=run_s, workers=w, measured=bool(measured))
    planned = planned_repetitions(float(budget_s), n_runs=len(configs) * cells, run_s=run_s,
                                  workers=w, max_repetitions=max_repetitions)
    opts = dict(labels=labels, model=model, train=tc, mask_snr=mask_snr, store=store,
                evaluation="auto", folds=folds, max_repetitions=planned, decide=True,
                budget_s=float(budget_s), margin=margin)
    if start is None:
        from .comparison import Comparison

        comp = Comparison(ds if data is None else data, configs, workers=workers, **opts).start()
    else:
        comp = start(ds if data is None else data, configs, **opts)
    store.save_advice(comp.id, ds.id, advice_json(None, proposal, comp.id, None))
    return comp


def finish_advice(store: RunStore, comparison_id: str, *, elapsed_s: float | None = None) -> dict:
    """Compute the recommendation of a finished advice comparison, store it, return the doc.

    Idempotent: a stored recommendation is recomputed from the same runs, so it is the same.

    Raises
    ------
    NormScopeError
        Unknown id, a comparison still running, or one with no completed repetition.
    """
    from diagnostics.results import comparison_json

    pending = store.load_advice(comparison_id)
    rec = store.load_comparison(comparison_id, batches=False)
    if pending is None or rec is None:
        raise NormScopeError(f"no advice {comparison_id} in the run store {store.path}")
    if rec.status not in FINISHED:
        raise NormScopeError(f"advice {comparison_id} is still running")
    doc = comparison_json(rec, store.predictions(comparison_id), elapsed_s=elapsed_s)
    out = advice_json(recommend(doc), pending["candidates"], comparison_id, doc["answer"])
    out["left_out"] = pending.get("left_out", [])
    store.save_advice(comparison_id, rec.dataset_id, out)
    return out


def advice_of(store: RunStore, comparison_id: str) -> dict | None:
    """The stored advice, its recommendation filled in once the comparison has finished
    (a comparison that ended without a verdict keeps ``recommendation`` null and gets
    ``error``, one sentence); None if the advisor did not run this id."""
    doc = store.load_advice(comparison_id)
    if doc is None or doc.get("recommendation") is not None:
        return doc
    rec = store.load_comparison(comparison_id, batches=False)
    if rec is None or rec.status not in FINISHED:
        return doc
    try:
        return finish_advice(store, comparison_id)
    except NormScopeError as exc:
        return {**doc, "error": str(exc)}
