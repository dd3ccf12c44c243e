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
    assert loop.cells == 3 and loop.look()
    assert loop.next_repetition(open_runs=0, workers=2, now=2) is None
    assert loop.stopped_because == "decided" and loop.decision.look == 1
    assert loop.decision.cells == 3
    assert loop.decision.pairs[0].verdict == "worse" and loop.evaluation()["repetitions"] == 1


def test_decide_mode_looks_after_every_fold_not_only_at_a_repetitions_end(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=4), ["none", "per_pixel"])
    loop.queued(0, [f"{c}-{f}" for c in loop.configs for f in range(3)], now=0)
    label = np.arange(60) % 3
    grew = []
    for f in range(3):
        for c, acc in (("none", 0.95), ("per_pixel", 0.4)):
            pred = np.where(rng.random(60) < acc, label, (label + 1) % 3)
            grew.append(loop.finished(f"{c}-{f}", config=c, repetition=0, fold=f,
                                      status="done", pred=pred, label=label, now=1))
    assert grew == [False, True] * 3  # a fold is complete once every config has run it
    assert loop.look() and loop.decision.cells == 3  # the first look: 3 folds
    # Folds complete out of order count from the first one on.
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=4), ["none"])
    loop.queued(0, ["a", "b", "c"], now=0)
    z = np.zeros(20, int)
    assert not loop.finished("b", config="none", repetition=0, fold=1, status="done", pred=z,
                             label=z)
    assert loop.finished("a", config="none", repetition=0, fold=0, status="done", pred=z,
                         label=z) and loop.cells == 2


def test_the_next_repetition_is_queued_before_the_workers_run_dry(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=2), ["none", "global"])
    loop.queued(0, ["r0"] * 1, now=0)
    assert loop.next_repetition(open_runs=5, workers=2, now=1) is None  # queue still full
    assert loop.next_repetition(open_runs=2, workers=2, now=1) == 1
    loop.queued(1, ["r1"], now=1)
    assert loop.next_repetition(open_runs=0, workers=2, now=2) is None  # the maximum is queued


def test_decide_mode_adds_repetitions_up_to_the_maximum(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, max_repetitions=3), ["none", "global"])
    for rep in range(3):
        assert _run_repetition(loop, rep, {"none": 0.8, "global": 0.8}, rng, t=10 * rep)
        assert loop.look() == (rep == 2)
        assert loop.decision.look == rep + 1 and loop.decision.cells == 3 * (rep + 1)
        nxt = loop.next_repetition(open_runs=0, workers=2, now=10 * rep + 2)
        assert nxt == (rep + 1 if rep < 2 else None)
    assert loop.stopped_because == "max_repetitions" and loop.decision.stop


def test_the_budget_stops_before_a_repetition_that_would_not_fit(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3, budget_s=25.0), ["none", "global"])
    _run_repetition(loop, 0, {"none": 0.8, "global": 0.8}, rng, t=0)  # takes 1 s
    loop.look()
    assert loop.next_repetition(open_runs=0, workers=2, now=1) == 1  # 1 s spent + 1 s <= 25
    _run_repetition(loop, 1, {"none": 0.8, "global": 0.8}, rng, t=1)
    loop._times[-1] = 19.0  # this one took 19 s
    loop.look()
    assert loop.next_repetition(open_runs=0, workers=2, now=20) is None  # 20 + 10 s > 25
    assert loop.stopped_because is None
    loop.finish()
    assert loop.stopped_because == "budget" and loop.decision.stopped_because == "budget"
    assert any("time budget ran out" in line for line in loop.decision.answer.text)


def test_fixed_mode_decides_once_every_repetition_is_in(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=2, max_repetitions=2, decide=False),
                      ["none", "global"])
    assert loop.first_repetitions() == [0, 1]
    assert loop.next_repetition(open_runs=0, workers=2) is None  # everything is queued
    ids = {(c, r, f): f"{c}{r}{f}" for c in loop.configs for r in range(2) for f in range(2)}
    loop.queued(0, [v for (c, r, f), v in ids.items() if r == 0], now=0)
    loop.queued(1, [v for (c, r, f), v in ids.items() if r == 1], now=0)
    z = np.zeros(4, int)
    for (c, r, f), rid in ids.items():
        loop.finished(rid, config=c, repetition=r, fold=f, status="done", pred=z, label=z)
        if rid != "global11":
            assert not loop.look() and loop.decision is None  # waits for every run
    assert loop.look() and loop.decision.max_repetitions == 2
    assert loop.stopped_because == "max_repetitions" and loop.decision.cells == 4


def test_cancel_and_a_config_without_outcomes_stop_with_a_reason(y, rng):
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3), ["none", "bad"])
    _run_repetition(loop, 0, {"none": 0.8, "bad": None}, rng, t=0)
    assert loop.look()
    assert loop.stopped_because == "failed" and "'bad' has no results" in loop.error
    loop = DecideLoop(_plan(y, evaluation="cv", folds=3), ["none", "global"])
    _run_repetition(loop, 0, {"none": 0.8, "global": 0.8}, rng, t=0)
    assert not loop.look()
    loop.queued(1, ["c"], now=1)
    assert not loop.finished("c", config="none", repetition=1, fold=0, status="cancelled")
    assert loop.completed == [0] and loop.cells == 3  # a fold cut short is no look
    loop.finish(cancelled=True)
    assert loop.stopped_because == "cancelled" and loop.decision.cells == 3


def _state(config, rep, fold, fraction, status="done"):
    from models.snapshot import RunState

    return RunState(run_id=f"{config}{rep}{fold}", config=config, seed=0, status=status, epoch=0,
                    epochs=1, fraction=fraction, train_loss=(), train_acc=(), val_acc=(),
                    batch_acc=(), test_acc=None, message=None, repetition=rep, fold=fold)


def test_decide_mode_progress_counts_every_repetition_it_may_need():
    from models.snapshot import ComparisonSnapshot, plan_progress

    # Repetition 2 of at most 5 (2 configs x 3 folds a repetition): repetition 1 done, and
    # half of repetition 2, in 60 s.  Queued runs alone would read 75% and 20 s left.
    runs = [_state(c, r, f, 1.0 if r == 0 else 0.5, "done" if r == 0 else "running")
            for r in range(2) for f in range(3) for c in ("none", "global")]
    ev = {"kind": "cv", "folds": 3, "max_repetitions": 5, "decide": True,
          "stopped_because": None, "running": 2}
    fraction, eta, per_rep = plan_progress(runs, ev, 60.0, True)
    assert fraction == pytest.approx(9 / 30) and per_rep == pytest.approx(40.0)
    assert eta == pytest.approx(60.0 * 21 / 9)  # at most: every repetition up to the fifth
    snap = ComparisonSnapshot("c", "running", fraction, 60.0, eta, {}, tuple(runs),
                              evaluation=ev, per_repetition_s=per_rep)
    assert snap.progress_line() == ("running: repetition 2 of at most 5, 30% of the most it may "
                                    "run, after 60 s; about 40 s a repetition, at most about "
                                    "2.3 min more (it stops once the pairs are decided)")
    # A fixed comparison counts its queued runs.
    fixed = {**ev, "decide": False}
    fraction, eta, per_rep = plan_progress(runs, fixed, 60.0, True)
    assert fraction == pytest.approx(9 / 12) and eta == pytest.approx(20.0) and per_rep is None
    snap = ComparisonSnapshot("c", "running", fraction, 60.0, eta, {}, tuple(runs),
                              evaluation=fixed)
    assert snap.progress_line() == "running: 75% after 60 s, about 20 s left"
