"""The evaluation plan of a comparison and decide mode's bookkeeping (no threads, no torch).

:class:`EvaluationOptions` are what a user chooses (``evaluation``, ``folds``,
``max_repetitions``, ``decide``, ``budget_s``, ``margin``), checked once with one sentence per
mistake.  :func:`make_plan` turns them into a :class:`Plan` for a dataset's labels: the
:class:`~diagnostics.verdicts.design.Design` (with its note when a small class forced fewer
folds) and, for every repetition, its cells ``(repetition, fold, seed)``.  The run seed is a
function of the cell only (``1000 * repetition + fold`` for CV, the holdout's own seed list),
never of the config, so every config of a cell starts from the same weights and batch order.

:class:`DecideLoop` follows the runs: it collects each finished run's per-example outcome and
counts the folds that are complete (every config's run of that (repetition, fold) finished),
in the plan's order.  Decide mode looks each time that count grows (from the schedule's first
look, :func:`~diagnostics.verdicts.decide.look_schedule`) and stops when the pairs of the best
are decided, or the maximum is reached.  It queues the next repetition while the current one
is still running, as soon as the workers would otherwise run dry, so that no worker waits at a
repetition's end; a repetition that would overrun the time budget (judged by the wall time of
the repetitions so far) is not queued, and the comparison then stops with "budget" when what
was queued is done.  Runs still queued or running when decide mode stops are not needed and
are cancelled.  A fixed comparison (``decide=False``) runs every repetition and decides once
at the end, as a single look.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from diagnostics.config import SPLIT_SEED
from diagnostics.errors import NormScopeError
from diagnostics.verdicts.decide import (DEFAULT_MARGIN, Decision, check_margin, decide,
                                         look_schedule)
from diagnostics.verdicts.sequential import prepare
from diagnostics.verdicts.design import (DEFAULT_FOLDS, DEFAULT_MAX_REPETITIONS, Design,
                                         default_design, make_design)
from diagnostics.verdicts.stored import evaluation_hyper, scores_of

EVALUATIONS = ("auto", "cv", "holdout")
#: Seeds of CV cells: ``SEED_STRIDE * repetition + fold`` (folds stay below it).
SEED_STRIDE = 1000


@dataclass(frozen=True)
class EvaluationOptions:
    """How a comparison evaluates its configs (the same for every config).

    evaluation : auto | cv | holdout; auto is 5-fold CV up to 20,000 examples, holdout above
    folds : k of cross-validation (fewer, with a note, when a class is smaller than k)
    max_repetitions : most repetitions of CV (holdout: one per seed, so len(seeds))
    decide : add repetitions only until the pairs of the best are decided (else run them all)
    budget_s : seconds of training decide mode may use (None: no limit)
    margin : equivalence margin in accuracy (0.01 = 1 point)
    """

    evaluation: str = "auto"
    folds: int = DEFAULT_FOLDS
    max_repetitions: int = DEFAULT_MAX_REPETITIONS
    decide: bool = True
    budget_s: float | None = None
    margin: float = DEFAULT_MARGIN

    def check(self) -> "EvaluationOptions":
        """Raise NormScopeError (one sentence) for a bad option; returns self."""
        if self.evaluation not in EVALUATIONS:
            raise NormScopeError(f"evaluation {self.evaluation!r} is unknown; use "
                                 f"{', '.join(EVALUATIONS)}")
        for name in ("folds", "max_repetitions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise NormScopeError(f"{name}={v!r} must be a whole number")
        if self.folds < 2:
            raise NormScopeError(f"folds={self.folds} is too few for cross-validation; use 2 "
                                 "or more")
        if self.max_repetitions < 1:
            raise NormScopeError(f"max_repetitions={self.max_repetitions} must be 1 or more")
        check_budget(self.budget_s)
        check_margin(self.margin)
        return self


def check_budget(budget_s) -> float | None:
    """``budget_s`` as seconds (None: no limit), or NormScopeError with one sentence."""
    if budget_s is None:
        return None
    try:
        b = float(budget_s)
    except (TypeError, ValueError):
        raise NormScopeError(f"budget {budget_s!r} is not a number of seconds") from None
    if isinstance(budget_s, bool) or math.isnan(b):
        raise NormScopeError(f"budget {budget_s!r} is not a number of seconds")
    if not math.isfinite(b) or b <= 0:
        raise NormScopeError(f"budget {budget_s!r} is too small for even one repetition; give "
                             "a number of seconds above 0, or no budget")
    return b


@dataclass(frozen=True)
class Plan:
    """The design and the cells of every repetition (see the module docstring)."""

    design: Design
    options: EvaluationOptions
    #: What ``comparisons.seeds`` lists for repetition r: its seed (holdout) or r (CV).
    labels: tuple[int, ...]

    @property
    def max_repetitions(self) -> int:
        return self.design.max_repetitions

    def cells(self, repetition: int) -> list[tuple[int, int, int]]:
        """``(repetition, fold, seed)`` of one repetition, in fold order."""
        if self.design.kind == "holdout":
            return [(repetition, 0, self.labels[repetition])]
        return [(repetition, f, SEED_STRIDE * repetition + f) for f in range(self.design.folds)]

    def job_design(self) -> dict:
        """The design dict every job carries (see :class:`models.jobs.Job`)."""
        d = self.design
        return {"kind": d.kind, "folds": d.folds, "seed": d.seed, "val_fraction": d.val_fraction}

    def hyper(self) -> dict:
        """``hyper["evaluation"]`` of the stored comparison."""
        o = self.options
        return evaluation_hyper(self.design, decide_mode=o.decide, margin=o.margin,
                                budget_s=o.budget_s, asked=o.evaluation)


def _named(text: str | None, class_names) -> str | None:
    """The design's sentences name classes by index; say their names."""
    if not text:
        return text
    for i, name in enumerate(class_names):
        text = text.replace(f"class {i} has", f"class {str(name)!r} has")
    return text


def make_plan(options: EvaluationOptions, y: np.ndarray, *, seeds: list[int],
              class_names=()) -> Plan:
    """The plan of a comparison on labels ``y`` (class indices).

    Raises
    ------
    NormScopeError
        A class with a single example (CV), or no seed for a holdout.
    """
    o = options.check()
    y = np.asarray(y)
    try:
        if o.evaluation == "auto":
            design = default_design(y.size, y, max_repetitions=o.max_repetitions,
                                    seed=SPLIT_SEED)
            if design.kind == "cv" and o.folds != DEFAULT_FOLDS:
                design = make_design(y, kind="cv", folds=o.folds,
                                     max_repetitions=o.max_repetitions, seed=SPLIT_SEED)
        else:
            design = make_design(y, kind=o.evaluation, folds=o.folds,
                                 max_repetitions=o.max_repetitions, seed=SPLIT_SEED)
    except NormScopeError as exc:
        raise NormScopeError(_named(str(exc), class_names)) from None
    if design.kind == "holdout":
        if not seeds:
            raise NormScopeError("give at least one seed")
        design = Design("holdout", 1, len(seeds), design.seed, design.val_fraction)
        return Plan(design, o, tuple(int(s) for s in seeds))
    design = Design("cv", design.folds, design.max_repetitions, design.seed,
                    design.val_fraction, _named(design.note, class_names))
    return Plan(design, o, tuple(range(design.max_repetitions)))


class DecideLoop:
    """Decide mode's state: outcomes per cell, complete folds, the latest decision, timing.

    Thread-safe for one writer (the comparison's monitor) and many readers (snapshots).
    """

    def __init__(self, plan: Plan, configs: list[str]):
        self.plan = plan
        self.configs = list(configs)
        self._lock = threading.Lock()
        self._outcomes: list[tuple] = []  # (config, rep, fold, pred, label)
        self._open: dict[int, set] = {}  # repetition -> run ids not finished yet
        self._cell_left: dict[tuple, int] = {}  # (rep, fold) -> runs not finished yet
        self._cut: set[tuple] = set()  # cells with a cancelled or interrupted run
        self._started: dict[int, float] = {}
        self._times: list[float] = []  # wall seconds of each completed repetition
        self._t0: float | None = None
        self._looked = 0  # folds (per config) at the latest look
        self._budget_refused = False
        self.completed: list[int] = []  # repetitions whose every run finished, none cut
        #: Folds per config complete, in plan order (the first ``cells`` cells all done)
        self.cells = 0
        #: The latest decision: None before the first look, or when a config has no outcome
        #: at all (then :attr:`error` says why)
        self.decision: Decision | None = None
        self.stopped_because: str | None = None
        self.error: str | None = None  # why no decision could be made (every run failed)
        if plan.options.decide:  # the boundaries, while the first runs train
            times = look_schedule(plan.design, plan.max_repetitions).times
            threading.Thread(target=prepare, args=(times,), name="boundaries", daemon=True).start()

    @property
    def folds(self) -> int:
        return self.plan.design.folds

    def first_repetitions(self) -> list[int]:
        """Repetitions to queue at start: the first (decide mode) or all of them."""
        return [0] if self.plan.options.decide else list(range(self.plan.max_repetitions))

    def queued(self, repetition: int, run_ids, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._t0 = now if self._t0 is None else self._t0
            self._open.setdefault(repetition, set()).update(run_ids)
            self._started.setdefault(repetition, now)
            for _, fold, _ in self.plan.cells(repetition):
                self._cell_left.setdefault((repetition, fold), len(self.configs))

    def finished(self, run_id: str, *, config: str, repetition: int, fold: int, status: str,
                 pred=None, label=None, now: float | None = None) -> bool:
        """Record a finished run; True when the complete folds grew (a look may be due)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            open_ = self._open.get(repetition)
            if open_ is None or run_id not in open_:
                return False
            open_.discard(run_id)
            cell = (repetition, fold)
            if status == "done" and pred is not None:
                self._outcomes.append((config, repetition, fold, pred, label))
            elif status in ("cancelled", "interrupted"):
                self._cut.add(cell)
            self._cell_left[cell] = self._cell_left.get(cell, 1) - 1
            if not open_ and not any(c[0] == repetition for c in self._cut):
                self.completed.append(repetition)
                self._times.append(now - self._started[repetition])
            before = self.cells
            k = self.folds
            while True:  # the complete prefix, in plan order (repetition, then fold)
                nxt = divmod(self.cells, k)
                if self._cell_left.get(nxt, 1) > 0 or nxt in self._cut:
                    break
                self.cells += 1
            return self.cells > before

    def evaluation(self) -> dict:
        """``{kind, folds, repetitions, cells, max_repetitions, decide, stopped_because, note,
        running, per_repetition_s}``: ``repetitions`` counts the complete ones, ``cells`` the
        complete folds per config, ``running`` the repetition under way (1-based; 0 before
        any), ``per_repetition_s`` the mean wall time of a complete repetition (None before
        one); ``stopped_because`` is None while more folds may come."""
        d = self.plan.design
        with self._lock:
            per = sum(self._times) / len(self._times) if self._times else None
            running = max(self._started) + 1 if self._started else 0
        return {"kind": d.kind, "folds": d.folds, "repetitions": len(self.completed),
                "cells": self.cells, "max_repetitions": d.max_repetitions,
                "decide": self.plan.options.decide, "stopped_because": self.stopped_because,
                "note": d.note, "running": running, "per_repetition_s": per}

    @property
    def mean_repetition_s(self) -> float | None:
        with self._lock:
            return sum(self._times) / len(self._times) if self._times else None

    def _decide(self, budget_exhausted: bool = False) -> Decision | None:
        j = self.cells
        if j < 1:
            return None
        k = self.folds
        scores = scores_of(self.configs, (o for o in self._outcomes if k * o[1] + o[2] < j))
        decide_mode = self.plan.options.decide
        try:
            return decide(scores, self.plan.design, cells=j,
                          max_repetitions=self.plan.max_repetitions if decide_mode else -(-j // k),
                          single_look=not decide_mode, margin=self.plan.options.margin,
                          budget_exhausted=budget_exhausted)
        except NormScopeError as exc:  # a config without any outcome: nothing to decide
            self.error = str(exc)
            return None

    def look(self) -> bool:
        """After the complete folds grew: decide when a look is due; True once stopped.

        Decide mode looks at every fold count of its schedule (the first look waits for
        ``look_schedule(...).cells[0]`` folds); a fixed comparison once every queued run has
        finished.  Sets :attr:`decision` and, when stopping, :attr:`stopped_because`
        ("decided", "max_repetitions", or "failed" when a config has no outcome at all).
        """
        with self._lock:
            if self.stopped_because is not None:
                return True
            j = self.cells
            if self.plan.options.decide:
                first = look_schedule(self.plan.design, self.plan.max_repetitions).cells[0]
                if j < first or j == self._looked:
                    return False
            elif any(self._open.values()):
                return False
            self._looked = j
            d = self._decide()
            self.decision = d
            if d is None:
                self.stopped_because = "failed"
            elif d.stop:
                self.stopped_because = d.stopped_because
            elif not self.plan.options.decide:
                self.stopped_because = "max_repetitions"
            return self.stopped_because is not None

    def next_repetition(self, *, open_runs: int, workers: int,
                        now: float | None = None) -> int | None:
        """The repetition to queue now, or None.

        Decide mode queues the next repetition once the runs still open (queued or running)
        no longer fill the workers' queue (``open_runs <= workers``), unless it has stopped,
        the maximum is queued, or the time spent plus a repetition's wall time (the mean of
        the complete ones, else the one under way so far) would overrun the budget.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            if (self.stopped_because is not None or not self.plan.options.decide
                    or open_runs > workers or not self._started):
                return None
            nxt = max(self._started) + 1
            if nxt >= self.plan.max_repetitions:
                return None
            budget = self.plan.options.budget_s
            if budget is not None:
                per = (sum(self._times) / len(self._times) if self._times
                       else now - self._started[nxt - 1])
                if (now - self._t0) + per > budget:
                    self._budget_refused = True
                    return None
            return nxt

    def finish(self, *, cancelled: bool = False) -> None:
        """Nothing more runs: the decision on the complete folds, and why it stopped
        ("cancelled", "budget" when a repetition was refused for time, else the decision's
        own reason or "max_repetitions")."""
        with self._lock:
            if self.stopped_because is not None:
                return
            if cancelled:
                first = (look_schedule(self.plan.design, self.plan.max_repetitions).cells[0]
                         if self.plan.options.decide else 1)
                self.decision = self._decide() if self.cells >= first else None
                self.stopped_because = "cancelled"
                return
            d = self._decide(budget_exhausted=self._budget_refused)
            self.decision = d
            self.stopped_because = ("failed" if d is None else "budget" if self._budget_refused
                                    else d.stopped_because or "max_repetitions")
