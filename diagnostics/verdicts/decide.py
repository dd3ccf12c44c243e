# Over 450 lines: intervals, pair tests, their adjustment and the decision are one statistical contract, checked together by simulation.
"""The statistics of a comparison and its answer: intervals, adjusted pair verdicts, decide mode.

Input is plain data (:data:`Scores`): for each config and each (repetition, fold), the test
outcome as ``(n_correct, n_test)`` or as the per-example correctness (a bool vector aligned
to that fold's test indices, which also allows McNemar's test).

Statistics (every interval and test says what it covers):

* **Cross-validation**: the corrected repeated k-fold t (Nadeau & Bengio 2003; Bouckaert &
  Frank 2004).  Over the J = k*r runs, ``var = (1/J + n_test/n_train) * s^2`` with ``s^2`` the
  sample variance of the per-run values, ``df = J - 1``.  The second term stands for what the
  runs share (overlapping training sets, one dataset), so the interval covers examples and
  training runs.  Per-run values are accuracies for a config and paired differences (same
  split, same initial weights) for a pair; the centre is the pooled value over all tested
  examples.
* **Holdout** (one test set, r training seeds): ``var = s^2/r + v/n_test``, run-to-run spread
  plus the example sampling of the one test set (``v = p(1-p)`` for a config; for a pair the
  variance of per-example differences when given, else ``p_a(1-p_a) + p_b(1-p_b)``, which
  assumes the configs err independently: wider than the truth when they agree, as they
  usually do), Welch-Satterthwaite df.
* **Zero spread**: ``s`` is never taken below one example per run (``1/n_test``).  Identical
  runs carry no evidence of a spread of zero, only that it is below what one test set can
  resolve; so no division by zero, and two configs with identical predictions become
  ``equivalent`` only once enough runs make even that resolution fit inside the margin.
* **Pairs**: every pair of configs is tested; the p-values (made sequential, below) are
  adjusted over that whole family by Shaffer's step-down (Holm's, with each step divided by
  the most pairs that can still be equal together: for 4 configs 6, 3, 3, 3, 2, 1 instead of
  6, 5, 4, 3, 2, 1; :func:`diagnostics.verdicts.sequential.shaffer`).  It controls the
  familywise error over every pair, so it also does over the pairs reported (every config
  against the reference, the best against every other config), even though the best is
  chosen by looking at the data: a subset chosen after the fact cannot have more false
  verdicts than the family.  Testing only the chosen pairs at their own level would not have
  that guarantee.
* **Decide mode**: looks after every fold (once every config has run it), from the third
  fold of the first repetition on, up to k x R folds (:func:`look_schedule`).  Each look's
  nominal p-value is turned into the overall level at which it crosses the Lan-DeMets
  Pocock-type boundary of that look (:mod:`diagnostics.verdicts.sequential`), so that stopping
  when the pairs are decided keeps the false better/worse rate at 5% or less (checked by
  simulation in bench/bench_verdict.py and tests/unit; converting t statistics through their
  nominal p-values is an approximation at small df).  Information is that of the corrected
  t: J runs give ``1 / (1/J + n_test/n_train)``, so the first repetition holds most of it
  (5 folds of 25: 64%) and the spending follows it, rather than the count of runs: what all
  runs share (one dataset) never averages out, and later repetitions add less.  The TOST gets
  the same spending and its own Holm adjustment (Shaffer's logic does not apply to it).  A
  pair's ``ci95`` is the plain 95% interval of this look; its verdict comes from the adjusted
  tests, so an interval that just excludes 0 can still be ``unclear`` (the answer then says
  "unadjusted"), while better/worse always have an interval that excludes 0.  A fixed
  comparison (every repetition run) is analysed once, at the end, with all of alpha
  (``single_look``).
* **Words** (b relative to a): ``equivalent`` when the adjusted TOST puts the difference
  inside +/- margin (this wins over better/worse: a real difference inside the margin is too
  small to matter); else ``better``/``worse`` when the adjusted test says so; else
  ``unclear``.  Fewer than 2 runs per config (one holdout seed) is always ``unclear``; and
  ``equivalent`` needs 2+ complete repetitions, so one partition of the data never says
  "either will do" (better/worse at an early look needs that look's boundary).
* **McNemar** (exact binomial on discordant examples, pooled over runs) is supporting
  evidence only: the same example tested in several repetitions is not independent.

NumPy and SciPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np
from scipy import stats as sps
from scipy.special import stdtr, stdtrit  # t cdf and quantile: ufuncs, far faster than sps.t

from ..errors import NormScopeError
from .design import Design
from .sequential import holm, sequential_p, shaffer
from . import answer as answer_text

#: Decide mode's first look, in folds per config: 3 runs give the corrected t 2 degrees of
#: freedom.  Earlier looks (1 df) would spend alpha where a test can hardly find anything
#: (simulated: lower power at every effect size); later ones make a clear effect wait for
#: folds it does not need (tests/unit/verdict_sim.py, bench/bench_verdict.py).
FIRST_LOOK_FOLDS = 3

Outcome = Union[tuple[int, int], np.ndarray]
#: ``{config: {(repetition, fold): (n_correct, n_test) or bool vector}}``; the first config is
#: the reference.  Holdout runs use fold 0.
Scores = Mapping[str, Mapping[tuple[int, int], Outcome]]

ALPHA = 0.05
DEFAULT_MARGIN = 0.01  # 1 accuracy point
WORDS = ("better", "worse", "equivalent", "unclear")


@dataclass(frozen=True)
class ConfigResult:
    """One config: pooled accuracy, 95% interval (None with < 2 runs), runs, test predictions."""

    name: str
    accuracy: float
    ci95: tuple[float, float] | None
    n_runs: int
    n_examples: int  # test predictions counted: every example once per repetition


@dataclass(frozen=True)
class Pair:
    """``b - a`` in accuracy, its 95% interval and tests; ``verdict`` describes b against a.

    ``p_value`` is the nominal corrected t-test of this look; ``p_adjusted`` is sequential
    (boundary of this look) and Shaffer-adjusted over all pairs; ``p_equivalence`` the same
    for the TOST, Holm-adjusted.  None where fewer than 2 runs exist.
    """

    a: str
    b: str
    diff: float
    ci95: tuple[float, float] | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str
    p_equivalence: float | None
    mcnemar_p: float | None
    n_runs: int

    def flipped(self) -> "Pair":
        """The same pair read as ``a - b``."""
        ci = None if self.ci95 is None else (-self.ci95[1], -self.ci95[0])
        word = {"better": "worse", "worse": "better"}.get(self.verdict, self.verdict)
        return Pair(self.b, self.a, -self.diff, ci, self.p_value, self.p_adjusted, word,
                    self.p_equivalence, self.mcnemar_p, self.n_runs)

    def involves(self, name: str) -> bool:
        return name in (self.a, self.b)


@dataclass(frozen=True)
class Answer:
    """``best`` is named only when its adjusted tests against every other config are decided."""

    best: str | None
    text: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """Everything the app, the CLI, the JSON and the report say about one look."""

    design: Design
    look: int  # repetitions begun (holdout: seeds)
    max_repetitions: int
    margin: float
    configs: tuple[ConfigResult, ...]
    pairs: tuple[Pair, ...]
    best: str | None  # highest accuracy among the configs not shown worse than another
    decided_pairs: tuple[Pair, ...]  # pairs involving the best, decided
    undecided_pairs: tuple[Pair, ...]
    stop: bool
    stopped_because: str | None  # "decided" | "max_repetitions" | "budget" | None
    answer: Answer
    cells: int = 0  # folds per config in this look (holdout: seeds): k * look when whole

    def as_json(self) -> dict:
        """The issue's schema: evaluation, configs, pairs, answer."""
        def num(x):
            return float(x) if x is not None and math.isfinite(x) else None

        def ci(c):
            return None if c is None else [float(c[0]), float(c[1])]
        return {
            "evaluation": {"kind": self.design.kind, "folds": self.design.folds,
                           "repetitions": self.look, "cells": self.cells,
                           "stopped_because": self.stopped_because},
            "configs": [{"name": c.name, "accuracy": c.accuracy, "ci95": ci(c.ci95),
                         "n_runs": c.n_runs, "n_examples": c.n_examples} for c in self.configs],
            "pairs": [{"a": p.a, "b": p.b, "diff": num(p.diff), "ci95": ci(p.ci95),
                       "p_value": p.p_value, "p_adjusted": p.p_adjusted, "verdict": p.verdict}
                      for p in self.pairs],
            "answer": {"best": self.answer.best, "text": list(self.answer.text)},
        }


# ---------------------------------------------------------------- input, validated once


@dataclass(frozen=True)
class _Runs:
    """One config's runs on the cells in use: counts, and per-example vectors where given."""

    correct: np.ndarray  # (J,) float64
    n: np.ndarray  # (J,) float64
    examples: tuple  # (J,) bool vectors or None


def _outcome(name: str, cell, v) -> tuple[int, int, np.ndarray | None]:
    where = f"scores[{name!r}][{cell}]"
    if isinstance(v, np.ndarray) and v.dtype == bool:
        if v.ndim != 1 or v.size == 0:
            raise NormScopeError(f"{where} must be a non-empty 1-D bool vector, got shape {v.shape}")
        return int(v.sum()), int(v.size), v
    try:
        c, n = (int(x) for x in v)
        if (c, n) != tuple(v):
            raise ValueError
    except (TypeError, ValueError):
        raise NormScopeError(f"{where} must be (n_correct, n_test) as whole numbers, or a bool "
                             "vector") from None
    if n < 1 or not 0 <= c <= n:
        raise NormScopeError(f"{where}=({c}, {n}): need n_test >= 1 and 0 <= n_correct <= n_test")
    return c, n, None


def _collect(scores: Scores, design: Design, look: int | None,
             cells: int | None) -> tuple[list[str], list, dict, int]:
    """Names, the cells in use, per-config runs, and J (folds per config of this look).

    ``cells`` = J uses the cells of index ``k * repetition + fold < J``; else ``look`` uses the
    first ``look`` repetition ids present (J = k * look); else every repetition present.
    """
    names = list(scores)
    if not names:
        raise NormScopeError("there are no configs to compare")
    for name, cs in scores.items():
        for cell in cs:
            if not (isinstance(cell, tuple) and len(cell) == 2 and all(
                    isinstance(i, (int, np.integer)) and i >= 0 for i in cell)):
                raise NormScopeError(f"scores[{name!r}] key {cell!r} must be (repetition, fold)")
    k = design.folds
    present = {c for cs in scores.values() for c in cs}
    reps = sorted({cell[0] for cell in present})
    if cells is not None:
        j = int(cells)
        if j < 1:
            raise NormScopeError(f"cells={cells} must be 1 or more")
        used = sorted(c for c in present if k * c[0] + c[1] < j)
        if not used:
            raise NormScopeError(f"there are no results in the first {j} folds")
    else:
        look = len(reps) if look is None else look
        if look < 1 or look > len(reps):
            raise NormScopeError(f"look={look} needs {look} repetitions of results; "
                                 f"there are {len(reps)}")
        keep = set(reps[:look])
        used = sorted(c for c in present if c[0] in keep)
        j = k * look
    parsed = {n: {c: _outcome(n, c, scores[n][c]) for c in used if c in scores[n]} for n in names}
    for n in names:
        if not parsed[n]:
            raise NormScopeError(f"config {n!r} has no results in the first {j} folds"
                                 if cells is not None else
                                 f"config {n!r} has no results in the first {-(-j // k)} "
                                 "repetitions")
    for c in used:  # one split per cell: every config was tested on the same examples
        sizes = {parsed[n][c][1] for n in names if c in parsed[n]}
        if len(sizes) > 1:
            raise NormScopeError(f"cell {c} has test sets of sizes {sorted(sizes)}; configs "
                                 "must share each (repetition, fold) split")
    return names, used, parsed, j


def _runs(parsed: dict, cells: list) -> _Runs:
    got = [parsed[c] for c in cells if c in parsed]
    return _Runs(np.array([g[0] for g in got], float), np.array([g[1] for g in got], float),
                 tuple(g[2] for g in got))


# ---------------------------------------------------------------- statistics


def _spread(x: np.ndarray, n: np.ndarray) -> float:
    """Sample std of per-run values, floored at one example per run (see the module notes)."""
    return max(float(np.std(x, ddof=1)), 1.0 / float(np.mean(n)))


def _se_df(x: np.ndarray, n: np.ndarray, centre: float, design: Design,
           example_var: float | None) -> tuple[float, float] | None:
    """Standard error and df of ``centre`` from per-run values ``x`` (None with < 2 runs)."""
    j = x.size
    if j < 2:
        return None
    s = _spread(x, n)
    if design.kind == "cv":
        return s * math.sqrt(1.0 / j + design.test_train_ratio), j - 1.0
    run_var, ex_var = s * s / j, max(example_var or 0.0, 0.0) / float(np.mean(n))
    df = (run_var + ex_var) ** 2 / (run_var ** 2 / (j - 1) + ex_var ** 2 / max(np.mean(n) - 1, 1))
    return math.sqrt(run_var + ex_var), df


def _interval(centre: float, se_df, clip: tuple[float, float]) -> tuple[float, float] | None:
    if se_df is None:
        return None
    half = float(stdtrit(se_df[1], 0.975)) * se_df[0]
    return max(centre - half, clip[0]), min(centre + half, clip[1])


def _config(name: str, r: _Runs, design: Design) -> ConfigResult:
    acc = float(r.correct.sum() / r.n.sum())
    sd = _se_df(r.correct / r.n, r.n, acc, design, acc * (1 - acc))
    return ConfigResult(name, acc, _interval(acc, sd, (0.0, 1.0)), int(r.n.size), int(r.n.sum()))


def _mcnemar(ea: tuple, eb: tuple) -> float | None:
    """Exact McNemar p over the discordant examples of the runs where both vectors exist."""
    both = [(a, b) for a, b in zip(ea, eb) if a is not None and b is not None]
    if not both:
        return None
    only_b = sum(int(np.sum(~a & b)) for a, b in both)
    only_a = sum(int(np.sum(a & ~b)) for a, b in both)
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def _pair_stats(a: dict, b: dict, cells: list, design: Design, margin: float) -> dict:
    """Nominal statistics of ``b - a`` over the cells both have."""
    common = [c for c in cells if c in a and c in b]
    ra, rb = _runs(a, common), _runs(b, common)
    if not common:
        return dict(diff=math.nan, ci95=None, p=None, p_tost=None, mcnemar=None, n_runs=0)
    n = ra.n
    diff = float((rb.correct.sum() - ra.correct.sum()) / n.sum())
    ex_var = None
    if design.kind == "holdout":
        if all(e is not None for e in ra.examples + rb.examples):
            d_i = np.mean([eb.astype(float) - ea for ea, eb in zip(ra.examples, rb.examples)], 0)
            ex_var = float(np.var(d_i, ddof=1)) if d_i.size > 1 else 0.0
        else:
            pa, pb = ra.correct.sum() / n.sum(), rb.correct.sum() / n.sum()
            ex_var = pa * (1 - pa) + pb * (1 - pb)
    sd = _se_df((rb.correct - ra.correct) / n, n, diff, design, ex_var)
    out = dict(diff=diff, ci95=_interval(diff, sd, (-1.0, 1.0)), p=None, p_tost=None,
               mcnemar=_mcnemar(ra.examples, rb.examples), n_runs=len(common))
    if sd is not None:
        se, df = sd
        out["p"] = float(2 * stdtr(df, -abs(diff) / se))
        out["p_tost"] = float(max(stdtr(df, -(diff + margin) / se), stdtr(df, (diff - margin) / se)))
    return out


def _adjust(values: list, look: int, times: tuple, one_sided: bool, configs: int) -> list:
    """Sequential (``look`` of the schedule ``times``) then step-down adjusted p-values; None
    stays None (untested pairs are not in the family: they cannot be falsely rejected).

    Differences (two-sided) use Shaffer's step-down over every pair of the ``configs`` configs
    when every pair is tested, else Holm's over those tested (which is chosen by which pairs
    have runs, never by their values).  Equivalence (one-sided TOST) uses Holm's: any set of
    pairs can be equivalent at once, so Shaffer's logic does not apply.
    """
    idx = [i for i, v in enumerate(values) if v is not None]
    if one_sided:  # a one-sided level alpha uses the two-sided boundary of 2 alpha
        q = [sequential_p(min(1.0, 2 * values[i]), look, times) / 2 for i in idx]
    else:
        q = [sequential_p(values[i], look, times) for i in idx]
    every_pair = len(values) == configs * (configs - 1) // 2 and len(idx) == len(values)
    adjusted = (shaffer(np.array(q), configs) if every_pair and not one_sided
                else holm(np.array(q)) if q else [])
    out: list = [None] * len(values)
    for i, v in zip(idx, adjusted):
        out[i] = float(v)
    return out


def _word(s: dict, p_adj, e_adj, whole_reps: int, alpha: float) -> str:
    if s["n_runs"] < 2 or p_adj is None:
        return "unclear"
    if e_adj is not None and e_adj <= alpha and whole_reps >= 2:
        return "equivalent"
    if p_adj <= alpha and s["diff"] != 0:
        return "better" if s["diff"] > 0 else "worse"
    return "unclear"


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Schedule:
    """Decide mode's looks: folds per config (holdout: seeds) at each look, and the
    information fraction of each."""

    cells: tuple[int, ...]
    times: tuple[float, ...]

    def look_of(self, cells: int) -> int:
        """The 1-based look of ``cells`` folds: the last look at or before it (the first
        look when there are fewer)."""
        return max(1, sum(1 for c in self.cells if c <= cells))


def look_schedule(design: Design, max_repetitions: int) -> Schedule:
    """The looks of decide mode over at most ``max_repetitions`` repetitions.

    Cross-validation: a look after every fold from :data:`FIRST_LOOK_FOLDS` on, to k x R.
    The information of J runs is that of the corrected t (1 / its variance factor),
    ``I(J) = 1 / (1/J + n_test/n_train)``, and a look's fraction is ``I(J) / I(kR)``.
    Holdout: a look after every seed, equally spaced (the split, and with it the test-set
    part of the variance, is fixed).
    """
    r = int(max_repetitions)
    if design.kind != "cv":
        return Schedule(tuple(range(1, r + 1)), tuple(j / r for j in range(1, r + 1)))
    total = design.folds * r
    ratio = design.test_train_ratio
    cells = tuple(range(min(FIRST_LOOK_FOLDS, total), total + 1))
    info = lambda j: 1.0 / (1.0 / j + ratio)  # noqa: E731
    return Schedule(cells, tuple(info(j) / info(total) for j in cells))


def check_margin(margin) -> float:
    """``margin`` as a float in [0, 0.5), or NormScopeError with one sentence."""
    try:
        m = float(margin)
    except (TypeError, ValueError):
        raise NormScopeError(f"margin={margin!r} must be a number of accuracy (0.01 = 1 point)") from None
    if not math.isfinite(m) or m < 0:
        raise NormScopeError(f"margin={margin!r} must be a non-negative number of accuracy "
                             "(0.01 = 1 point)")
    if m >= 0.5:
        raise NormScopeError(f"margin={margin!r} is {m * 100:g} accuracy points; give it as a "
                             "fraction, e.g. 0.01 for 1 point")
    return m


def decide(scores: Scores, design: Design, *, look: int | None = None,
           cells: int | None = None, max_repetitions: int | None = None,
           single_look: bool = False, margin: float = DEFAULT_MARGIN, alpha: float = ALPHA,
           budget_exhausted: bool = False) -> Decision:
    """Intervals, adjusted pair verdicts and the answer after ``cells`` folds (or ``look``
    repetitions).

    Parameters
    ----------
    scores : Scores
        Outcomes per config and (repetition, fold); the first config is the reference.
    design : Design
        Gives the kind (cv / holdout), k for the correction, and the default budget.
    look : int, optional
        Repetitions to use (the first ``look`` repetition ids present); default all present.
    cells : int, optional
        Folds per config to use instead (J: the cells ``k * repetition + fold < J``), as
        decide mode looks after every fold.
    max_repetitions : int, optional
        Planned maximum R of decide mode (default ``design.max_repetitions``): the looks are
        those of :func:`look_schedule`.
    single_look : bool
        Analyse this look alone, with all of alpha: a fixed comparison, looked at once.
    margin : float
        Equivalence margin in accuracy (0.01 = 1 point).
    alpha : float
        Familywise error of the better/worse verdicts over all looks and pairs.
    budget_exhausted : bool
        The caller's time budget ran out: stop now, whatever is decided.

    Returns
    -------
    Decision

    Raises
    ------
    NormScopeError
        Bad scores, a bad margin, or a look beyond ``max_repetitions``.
    """
    margin = check_margin(margin)
    if not 0 < alpha < 1:
        raise NormScopeError(f"alpha={alpha} must be between 0 and 1")
    names, used, parsed, j = _collect(scores, design, look, cells)
    k = design.folds
    reps = -(-j // k)  # repetitions begun
    big_r = design.max_repetitions if max_repetitions is None else int(max_repetitions)
    if reps > big_r:
        raise NormScopeError(f"look={reps} is beyond max_repetitions={big_r}")
    if single_look:
        at, times = 1, (1.0,)
    else:
        sched = look_schedule(design, big_r)
        at, times = sched.look_of(j), sched.times
    configs = tuple(_config(n, _runs(parsed[n], used), design) for n in names)
    keys = [(i, q) for i in range(len(names)) for q in range(i + 1, len(names))]
    st = [_pair_stats(parsed[names[i]], parsed[names[q]], used, design, margin) for i, q in keys]
    p_adj = _adjust([s["p"] for s in st], at, times, one_sided=False, configs=len(names))
    e_adj = _adjust([s["p_tost"] for s in st], at, times, one_sided=True, configs=len(names))
    table = {}
    for (i, q), s, pa, ea in zip(keys, st, p_adj, e_adj):
        p = Pair(names[i], names[q], s["diff"], s["ci95"], s["p"], pa,
                 _word(s, pa, ea, j // k, alpha), ea, s["mcnemar"], s["n_runs"])
        table[(names[i], names[q])], table[(names[q], names[i])] = p, p.flipped()

    # The best: highest accuracy among configs that no other config is shown to beat.
    beaten = {p.a for p in table.values() if p.verdict == "better"}
    ranked = sorted(range(len(names)), key=lambda i: (-configs[i].accuracy, i))
    best = next((names[i] for i in ranked if names[i] not in beaten), names[ranked[0]])

    ref = names[0]
    order = [(ref, n) for n in names[1:]] + [(n, best) for n in names if n not in (best, ref)]
    if "none" in names and "per_pixel" in names:
        order.insert(0, ("none", "per_pixel"))  # the user's question comes first
    pairs, seen = [], set()
    for a, b in order:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            pairs.append(table[(a, b)])
    mine = [table[(n, best)] for n in names if n != best]
    decided = tuple(p for p in mine if p.verdict != "unclear")
    undecided = tuple(p for p in mine if p.verdict == "unclear")
    # Decided means settled in the best's favour (better or equivalent); anything else would
    # have made another config the best.
    settled = not undecided and all(p.verdict in ("better", "equivalent") for p in mine)
    because = ("decided" if settled else "budget" if budget_exhausted
               else "max_repetitions" if j >= k * big_r else None)
    named, text = answer_text.answer(names=names, table=table, configs=configs, best=best,
                                     settled=settled, design=design, cells=j, margin=margin,
                                     stopped_because=because)
    return Decision(design, reps, big_r, margin, configs, tuple(pairs), best, decided,
                    undecided, because is not None, because, Answer(named, text), j)
