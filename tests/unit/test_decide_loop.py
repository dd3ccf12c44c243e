"""Decide mode's bookkeeping without training: options, the plan's cells and seeds, and when
the loop stops (decided, the maximum, the time budget, cancel, a config without outcomes)."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.errors import NormScopeError
from models.decide_loop import DecideLoop, EvaluationOptions, make_plan


@pytest.fixture
def y() -> np.ndarray:
    return np.repeat(np.arange(3), 30)


def _plan(y, **kw):
    return make_plan(EvaluationOptions(**kw), y, seeds=[0, 1, 2], class_names=("a", "b", "c"))


def _run_repetition(loop: DecideLoop, rep: int, acc: dict, rng, *, t: float) -> bool:
    """Queue and finish every run of ``rep``; ``acc[config]`` is its accuracy (None: failed)."""
    ids = {}
    for _, fold, _ in loop.plan.cells(rep):
        for c in loop.configs:
            ids[(c, fold)] = f"{c}-{rep}-{fold}"
    loop.queued(rep, ids.values(), now=t)
    done = False
    for (c, fold), rid in ids.items():
        label = np.arange(60) % 3
        if acc[c] is None:
            done = loop.finished(rid, config=c, repetition=rep, fold=fold, status="failed",
                                 now=t + 1)
            continue
        pred = np.where(rng.random(60) < acc[c], label, (label + 1) % 3)
        done = loop.finished(rid, config=c, repetition=rep, fold=fold, status="done",
                             pred=pred, label=label, now=t + 1)
    return done


@pytest.mark.parametrize("kw, match", [
    (dict(evaluation="kfold"), "evaluation 'kfold' is unknown; use auto, cv, holdout"),
    (dict(folds=1), "folds=1 is too few"),
    (dict(max_repetitions=0), "max_repetitions=0 must be 1 or more"),
    (dict(budget_s=0), "too small for even one repetition"),
    (dict(budget_s=-5.0), "too small for even one repetition"),
    (dict(budget_s=float("nan")), "not a number of seconds"),
    (dict(budget_s="soon"), "not a number of seconds"),
    (dict(margin=-0.01), "must be a non-negative number"),
    (dict(margin=float("nan")), "must be a non-negative number"),
    (dict(margin=2), "give it as a fraction"),
])
def test_bad_options_are_one_sentence(kw, match):
    with pytest.raises(NormScopeError, match=match):
        EvaluationOptions(**kw).check()


def test_cv_seeds_depend_on_the_cell_only_and_holdout_keeps_its_seeds(y):
    cv = _plan(y, evaluation="cv", folds=3, max_repetitions=2)
    assert cv.cells(1) == [(1, 0, 1000), (1, 1, 1001), (1, 2, 1002)]
    assert cv.labels == (0, 1) and cv.job_design()["kind"] == "cv"
    ho = make_plan(EvaluationOptions(evaluation="holdout"), y, seeds=[4, 7])
    assert ho.design.max_repetitions == 2 and ho.cells(1) == [(1, 0, 7)] and ho.labels == (4, 7)
    assert ho.hyper()["kind"] == "holdout" and ho.hyper()["decide"] is True


def test_auto_uses_cv_with_the_folds_asked_and_names_a_small_class():
    y = np.r_[np.zeros(40, int), np.ones(3, int)]
    plan = make_plan(EvaluationOptions(folds=4), y, seeds=[0], class_names=("dog", "cat"))
    assert plan.design.kind == "cv" and plan.design.folds == 3
    assert plan.design.note.startswith("class 'cat' has only 3 examples")
    with pytest.raises(NormScopeError, match="class 'cat' has 1 example"):
        make_plan(EvaluationOptions(), np.r_[np.zeros(40, int), 1], seeds=[0],
                  class_names=("dog", "cat"))


def test_decide_mode_stops_once_decided(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=4), ["none", "per_pixel"])
    assert loop.first_repetitions() == [0]
    assert _run_repetition(loop, 0, {"none": 0.95, "per_pixel": 0.4}, rng, t=0)
    assert loop.next_repetition(now=2) is None
    assert loop.stopped_because == "decided" and loop.decision.look == 1
    assert loop.decision.pairs[0].verdict == "worse" and loop.evaluation()["repetitions"] == 1


def test_decide_mode_adds_repetitions_up_to_the_maximum(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=3), ["none", "global"])
    for rep in range(3):
        assert _run_repetition(loop, rep, {"none": 0.8, "global": 0.8}, rng, t=10 * rep)
        nxt = loop.next_repetition(now=10 * rep + 2)
        assert nxt == (rep + 1 if rep < 2 else None)
        assert loop.decision.look == rep + 1
    assert loop.stopped_because == "max_repetitions" and loop.decision.stop


def test_the_budget_stops_before_a_repetition_that_would_not_fit(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, budget_s=25.0), ["none", "global"])
    _run_repetition(loop, 0, {"none": 0.8, "global": 0.8}, rng, t=0)  # takes 1 s
    assert loop.next_repetition(now=1) == 1  # 1 s spent + 1 s mean <= 25
    loop.queued(1, ["x"], now=1)
    loop.finished("x", config="none", repetition=1, fold=0, status="done",
                  pred=np.zeros(60, int), label=np.zeros(60, int), now=20)  # this one took 19 s
    assert loop.next_repetition(now=20) is None  # 20 s spent + 10 s mean > 25
    assert loop.stopped_because == "budget" and loop.decision.stopped_because == "budget"
    assert any("time budget ran out" in line for line in loop.decision.answer.text)


def test_fixed_mode_decides_once_every_repetition_is_in(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=2, max_repetitions=2, decide=False),
                      ["none", "global"])
    assert loop.first_repetitions() == [0, 1]
    loop.queued(0, ["a"], now=0)
    loop.queued(1, ["b"], now=0)
    z = np.zeros(4, int)
    assert loop.finished("a", config="none", repetition=0, fold=0, status="done", pred=z,
                         label=z)
    assert loop.next_repetition() is None and loop.decision is None  # waits for repetition 1
    assert loop.finished("b", config="global", repetition=1, fold=0, status="done", pred=z,
                         label=z)
    assert loop.next_repetition() is None and loop.decision.max_repetitions == 2
    assert loop.stopped_because == "max_repetitions"


def test_cancel_and_a_config_without_outcomes_stop_with_a_reason(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3), ["none", "bad"])
    _run_repetition(loop, 0, {"none": 0.8, "bad": None}, rng, t=0)
    assert loop.next_repetition() is None
    assert loop.stopped_because == "failed" and "'bad' has no results" in loop.error
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3), ["none", "global"])
    _run_repetition(loop, 0, {"none": 0.8, "global": 0.7}, rng, t=0)
    loop.queued(1, ["c"], now=1)
    assert loop.finished("c", config="none", repetition=1, fold=0, status="cancelled")
    assert loop.completed == [0]  # a repetition cut short is no look
    assert loop.next_repetition(cancelled=True) is None and loop.stopped_because == "cancelled"
    assert loop.decision.look == 1
