"""Verdicts of a comparison from its runs: live (decide mode) or stored (JSON, report, app).

A comparison records its evaluation design and options in ``hyper["evaluation"]`` (see
:func:`evaluation_hyper`) and each run's ``repetition`` and ``fold``; every done run stores its
per-example predictions.  From those, :func:`scores_of` builds the :data:`Scores` that
:func:`~diagnostics.verdicts.decide.decide` reads, and :func:`verdict_of` gives the same
:class:`~diagnostics.verdicts.decide.Decision` that decide mode saw when it stopped.

Only complete folds count, in the plan's order (repetition, then fold): a fold is complete when
every config's run of it finished, none cancelled or interrupted, and the look is the longest
run of complete folds from the first (decide mode looks after every fold).  A comparison that
stopped records the folds of its last look (``hyper["evaluation"]["cells"]``), so that runs
finishing after the stop never change its verdict.  Failed or diverged runs are finished but
have no outcome; their cells are simply missing.

Records are read duck-typed (``rec.configs``, ``rec.hyper``, ``rec.runs`` with ``id``,
``config``, ``repetition``, ``fold``, ``status``), so this module needs neither the store nor
torch.  NumPy and SciPy only.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ..errors import NormScopeError
from .decide import Decision, Scores, decide, look_schedule
from .design import Design

#: Run statuses that end a repetition early: its remaining folds were never tested.
CUT_SHORT = frozenset({"cancelled", "interrupted", "queued", "running"})


def evaluation_hyper(design: Design, *, decide_mode: bool, margin: float,
                     budget_s: float | None, asked: str) -> dict:
    """What a comparison stores in ``hyper["evaluation"]``: the design and the options.

    ``asked`` is the evaluation asked for (auto | cv | holdout); ``kind`` the one used.
    """
    return {"kind": design.kind, "folds": design.folds, "max_repetitions": design.max_repetitions,
            "seed": design.seed, "val_fraction": design.val_fraction, "note": design.note,
            "decide": bool(decide_mode), "margin": float(margin),
            "budget_s": None if budget_s is None else float(budget_s), "asked": asked,
            "stopped_because": None}


def design_from_hyper(ev: Mapping) -> Design:
    """The :class:`Design` stored by :func:`evaluation_hyper`."""
    return Design(str(ev["kind"]), int(ev["folds"]), int(ev.get("max_repetitions", 1)),
                  int(ev.get("seed", 0)), float(ev.get("val_fraction", 0.15)), ev.get("note"))


def scores_of(configs: Iterable[str], outcomes: Iterable[tuple]) -> dict:
    """:data:`Scores` from ``(config, repetition, fold, pred, label)`` outcomes.

    Each outcome becomes the per-example correctness ``pred == label`` (a bool vector in the
    run's test order); configs keep the order given (the reference first).
    """
    scores: dict = {c: {} for c in configs}
    for config, rep, fold, pred, label in outcomes:
        ok = np.asarray(pred) == np.asarray(label)
        if ok.size:
            scores.setdefault(config, {})[(int(rep), int(fold))] = ok
    return scores


def complete_repetitions(runs: Iterable) -> list[int]:
    """Repetitions (sorted) whose runs have all finished, none of them cut short."""
    status: dict[int, set] = {}
    for r in runs:
        if r.repetition is not None:
            status.setdefault(int(r.repetition), set()).add(r.status)
    return sorted(rep for rep, s in status.items() if not s & CUT_SHORT)


def complete_cells(rec) -> int:
    """Folds per config complete from the first, in plan order (see the module notes); at
    most the folds of the last look when the comparison recorded them."""
    ev = (rec.hyper or {}).get("evaluation") or {}
    k = max(int(ev.get("folds", 1) or 1), 1)
    status: dict[int, set] = {}
    count: dict[int, int] = {}
    for r in rec.runs:
        if r.repetition is not None:
            i = k * int(r.repetition) + int(r.fold or 0)
            status.setdefault(i, set()).add(r.status)
            count[i] = count.get(i, 0) + 1
    j = 0
    while j in status and not status[j] & CUT_SHORT and count[j] >= len(rec.configs):
        j += 1
    return min(j, int(ev["cells"])) if ev.get("cells") is not None else j


def scores_from_record(rec, predictions: Mapping[str, Mapping]) -> Scores:
    """:data:`Scores` of a stored comparison, from its complete folds (:func:`complete_cells`).

    Parameters
    ----------
    rec : models.store.ComparisonRecord
    predictions : ``{run_id: {"test_index", "pred", "label"}}`` (``RunStore.predictions``)
    """
    ev = (rec.hyper or {}).get("evaluation") or {}
    k = max(int(ev.get("folds", 1) or 1), 1)
    j = complete_cells(rec)
    return scores_of(rec.configs, (
        (r.config, r.repetition, r.fold or 0, predictions[r.id]["pred"],
         predictions[r.id]["label"])
        for r in rec.runs
        if r.status == "done" and r.repetition is not None
        and k * r.repetition + (r.fold or 0) < j and r.id in predictions))


def verdict_of(rec, predictions: Mapping[str, Mapping] | None) -> Decision | None:
    """The decision of a stored comparison, as decide mode saw it (None when there is none).

    The design comes from ``rec.hyper["evaluation"]``; the look is the complete folds
    (:func:`complete_cells`); decide mode spends alpha over its planned ``max_repetitions``
    (no verdict before its first look), a fixed comparison analyses what it has as a single
    look.  None for a comparison stored before evaluation designs, before its first look, or
    when a config has no outcome at all (every run failed).
    """
    ev = (rec.hyper or {}).get("evaluation")
    if not ev or predictions is None:
        return None
    design = design_from_hyper(ev)
    j = complete_cells(rec)
    reps = -(-j // design.folds)
    big_r = max(int(ev.get("max_repetitions", reps)), reps) if ev.get("decide") else reps
    if j < 1 or (ev.get("decide") and j < look_schedule(design, big_r).cells[0]):
        return None
    scores = scores_from_record(rec, predictions)
    if any(not cells for cells in scores.values()):
        return None
    try:
        return decide(scores, design, cells=j, max_repetitions=big_r,
                      single_look=not ev.get("decide"), margin=ev.get("margin", 0.01),
                      budget_exhausted=ev.get("stopped_because") == "budget")
    except NormScopeError:
        return None


def pair_words(decision: Decision) -> tuple[list[str], list[str]]:
    """(decided, undecided) pairs of a decision in words, e.g. ``"per_pixel worse than none"``
    (b against a, as in the pairs table): what progress lines and the app show after a look."""
    words = {"better": "better than", "worse": "worse than", "equivalent": "equivalent to"}
    decided = [f"{p.b} {words[p.verdict]} {p.a}" for p in decision.pairs if p.verdict in words]
    undecided = [f"{p.b} vs {p.a}" for p in decision.pairs if p.verdict not in words]
    return decided, undecided
