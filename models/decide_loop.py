"""The evaluation plan of a comparison and decide mode's bookkeeping (no threads, no torch).

:class:`EvaluationOptions` are what a user chooses (``evaluation``, ``folds``,
``max_repetitions``, ``decide``, ``budget_s``, ``margin``), checked once with one sentence per
mistake.  :func:`make_plan` turns them into a :class:`Plan` for a dataset's labels: the
:class:`~diagnostics.verdicts.design.Design` (with its note when a small class forced fewer
folds) and, for every repetition, its cells ``(repetition, fold, seed)``.  The run seed is a
function of the cell only (``1000 * repetition + fold`` for CV, the holdout's own seed list),
never of the config, so every config of a cell starts from the same weights and batch order.

:class:`DecideLoop` follows the runs: it collects each finished run's per-example outcome and,
when a repetition is complete, says what comes next: decide mode calls
:func:`~diagnostics.verdicts.decide.decide` with look = completed repetitions and either stops
(decided, the maximum reached, or a time budget that the next repetition would overrun,
judged by the mean wall time of the repetitions so far) or asks for the next repetition.  A
fixed comparison (``decide=False``) runs every repetition and decides once at the end.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from diagnostics.config import SPLIT_SEED
from diagnostics.errors import NormScopeError
from diagnostics.verdicts.decide import DEFAULT_MARGIN, Decision, check_margin, decide
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
    """Decide mode's state: outcomes per cell, repetitions complete, the latest decision.

    Thread-safe for one writer (the comparison's monitor) and many readers (snapshots).
    """

    def __init__(self, plan: Plan, configs: list[str]):
        self.plan = plan
        self.configs = list(configs)
        self._lock = threading.Lock()
        self._outcomes: list[tuple] = []  # (config, rep, fold, pred, label)
        self._open: dict[int, set] = {}  # repetition -> run ids not finished yet
        self._cut: set[int] = set()  # repetitions with a cancelled or interrupted run
        self._started: dict[int, float] = {}
        self._times: list[float] = []  # wall seconds of each completed repetition
        self._t0: float | None = None
        self.completed: list[int] = []
        #: The latest decision: None before the first repetition is complete, or when a
        #: config has no outcome at all (then :attr:`error` says why)
        self.decision: Decision | None = None
        self.stopped_because: str | None = None
        self.error: str | None = None  # why no decision could be made (every run failed)

    def first_repetitions(self) -> list[int]:
        """Repetitions to queue at start: the first (decide mode) or all of them."""
        return [0] if self.plan.options.decide else list(range(self.plan.max_repetitions))

    def queued(self, repetition: int, run_ids, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._t0 = now if self._t0 is None else self._t0
            self._open.setdefault(repetition, set()).update(run_ids)
            self._started.setdefault(repetition, now)

    def finished(self, run_id: str, *, config: str, repetition: int, fold: int, status: str,
                 pred=None, label=None, now: float | None = None) -> bool:
        """Record a finished run; True when it completed its repetition."""
        now = time.monotonic() if now is None else now
        with self._lock:
            open_ = self._open.get(repetition)
            if open_ is None or run_id not in open_:
                return False
            open_.discard(run_id)
            if status == "done" and pred is not None:
                self._outcomes.append((config, repetition, fold, pred, label))
            elif status in ("cancelled", "interrupted"):
                self._cut.add(repetition)
            if open_:
                return False
            if repetition not in self._cut:
                self.completed.append(repetition)
                self._times.append(now - self._started[repetition])
            return True

    def evaluation(self) -> dict:
        """``{kind, folds, repetitions, max_repetitions, decide, stopped_because, note}``;
        ``repetitions`` counts the complete ones; ``stopped_because`` is None while more
        repetitions may come."""
        d = self.plan.design
        return {"kind": d.kind, "folds": d.folds, "repetitions": len(self.completed),
                "max_repetitions": d.max_repetitions, "decide": self.plan.options.decide,
                "stopped_because": self.stopped_because, "note": d.note}

    @property
    def mean_repetition_s(self) -> float | None:
        with self._lock:
            return sum(self._times) / len(self._times) if self._times else None

    def _decide(self, budget_exhausted: bool = False) -> Decision | None:
        look = len(self.completed)
        reps = set(self.completed)
        scores = scores_of(self.configs, (o for o in self._outcomes if o[1] in reps))
        big_r = self.plan.max_repetitions if self.plan.options.decide else look
        try:
            return decide(scores, self.plan.design, look=look, max_repetitions=big_r,
                          margin=self.plan.options.margin, budget_exhausted=budget_exhausted)
        except NormScopeError as exc:  # a config without any outcome: nothing to decide
            self.error = str(exc)
            return None

    def next_repetition(self, *, cancelled: bool = False, now: float | None = None) -> int | None:
        """After a repetition completed: the repetition to queue next, or None (stop or wait).

        Sets :attr:`decision` and, when stopping, :attr:`stopped_because` ("decided",
        "max_repetitions", "budget", "cancelled", or "failed" when a config has no outcome at
        all).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            if cancelled:  # what the complete repetitions say (if any); nothing more runs
                self.decision = self._decide() if self.completed else None
                self.stopped_because = "cancelled"
                return None
            if any(self._open.values()) or not self.completed:
                return None  # fixed mode: wait for the rest; cut short: nothing to add
            d = self._decide()
            self.decision = d
            if d is None:
                self.stopped_because = "failed"
                return None
            if d.stop or not self.plan.options.decide:
                self.stopped_because = d.stopped_because
                return None
            nxt = max(self._started) + 1
            budget = self.plan.options.budget_s
            mean = sum(self._times) / len(self._times)
            if budget is not None and (now - self._t0) + mean > budget:
                self.decision = self._decide(budget_exhausted=True)
                self.stopped_because = "budget"
                return None
            return nxt
