"""Comparisons simulated at the statistics level, for the error-rate checks of the verdicts.

Two configs, a and b, are cross-validated on one simulated dataset; many datasets at once,
vectorised.  What makes it realistic (each is a way naive tests go wrong):

* example difficulty: each example has its own chance of being classified correctly (Beta);
* config x example interaction: a and b err on partly different examples, with effects that
  average out in the population, so on one finite dataset either can be ahead by chance;
* split effects shared by both configs (they share the split): a run's accuracy moves with
  the training examples it saw, through per-example "helpfulness" summed over the training
  set, so runs whose training sets overlap (all of them, 3/4 within a repetition) correlate;
* per-run training noise, separate for each config;
* binomial example noise, the two configs' errors correlated within a run (Gaussian copula).

Two truths a config's 95% interval can be held to (both by Monte Carlo):

* ``truth``: the population accuracy of the config, expected over datasets of this size,
  splits, runs and examples (the target of Nadeau & Bengio's correction; the strict one);
* ``truth_given_data`` (per simulated dataset): the expected accuracy on new examples of
  models trained on this dataset's folds, averaged over training runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit, ndtr


@dataclass(frozen=True)
class World:
    n: int = 800  # examples in the dataset
    k: int = 5  # folds
    reps: int = 5  # repetitions (R_max)
    acc: float = 0.80  # population accuracy of config a
    effect: float = 0.0  # true accuracy of b minus a (population)
    concentration: float = 5.0  # Beta(acc * c, (1 - acc) * c) example difficulty
    interaction_sd: float = 0.5  # logit sd of per-example config effects (mean 0)
    split_sd: float = 0.15  # logit sd of the effect of the training set (shared by configs) at
    # n = 800; it shrinks as 1/sqrt(n_train) for other sizes, as for a stable learner
    run_sd: float = 0.10  # logit sd of per-run, per-config training noise
    agree: float = 0.6  # copula correlation of a's and b's errors within a run


def _draw_logits(w: World, rng: np.random.Generator, size) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(w.acc * w.concentration, (1 - w.acc) * w.concentration, size)
    base = logit(np.clip(p, 1e-6, 1 - 1e-6))
    return (base + w.interaction_sd * rng.standard_normal(size),
            base + w.interaction_sd * rng.standard_normal(size))


@functools.lru_cache(maxsize=32)
def calibrate(w: World) -> tuple[float, float, float]:
    """(shift of b in logits, truth_a, truth_b): the shift that makes truth_b - truth_a equal
    ``w.effect``; common random numbers so the bisection is smooth."""
    rng = np.random.default_rng(12345)
    m = 400_000
    la, lb = _draw_logits(w, rng, m)
    split = _split_scale(w) / np.sqrt(w.n * (w.k - 1) / w.k)  # sd of u at this size
    noise = split * rng.standard_normal(m) + w.run_sd * rng.standard_normal(m)
    noise_b = split * rng.standard_normal(m) + w.run_sd * rng.standard_normal(m)
    truth_a = float(expit(la + noise).mean())
    lo, hi = -4.0, 4.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if expit(lb + mid + noise_b).mean() - truth_a < w.effect:
            lo = mid
        else:
            hi = mid
    shift = (lo + hi) / 2
    return shift, truth_a, float(expit(lb + shift + noise_b).mean())


def _split_scale(w: World) -> float:
    """u = scale * mean helpfulness of the training set has sd split_sd at n = 800."""
    return w.split_sd * np.sqrt(800 * (w.k - 1) / w.k)


@functools.lru_cache(maxsize=32)
def _accuracy_curve(w: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x grid and E[expit(L + x + run noise)] for config a and b (population L)."""
    shift, _, _ = calibrate(w)
    rng = np.random.default_rng(54321)
    la, lb = _draw_logits(w, rng, 200_000)
    v = w.run_sd * rng.standard_normal(200_000)
    x = np.linspace(-1.5, 1.5, 121)
    ga = np.array([expit(la + xi + v).mean() for xi in x])
    gb = np.array([expit(lb + shift + xi + v).mean() for xi in x])
    return x, ga, gb


@dataclass(frozen=True)
class Simulated:
    counts: np.ndarray  # (sims, 2, reps, k) correct counts; each test fold has n/k examples
    truth: tuple[float, float]  # population accuracy of a and b
    truth_given_data: np.ndarray  # (sims, 2): see the module notes


def simulate(w: World, sims: int, seed: int = 0) -> Simulated:
    """``sims`` simulated cross-validated comparisons of a and b on datasets of ``w.n``."""
    shift, truth_a, truth_b = calibrate(w)
    rng = np.random.default_rng(seed)
    la, lb = _draw_logits(w, rng, (sims, w.n))
    lb = lb + shift
    help_ = rng.standard_normal((sims, w.n))  # what each example adds when trained on
    n_test = w.n // w.k
    n_train = w.n - n_test
    out = np.empty((sims, 2, w.reps, w.k), np.int64)
    us = np.empty((sims, w.reps, w.k))
    for r in range(w.reps):
        order = np.argsort(rng.random((sims, w.n)), axis=1)
        fold = np.empty((sims, w.n), np.int64)
        np.put_along_axis(fold, order, np.arange(w.n) % w.k, axis=1)
        total = help_.sum(1, keepdims=True)
        shared = rng.standard_normal((sims, w.n))
        for c, lc in enumerate((la, lb)):
            z = np.sqrt(w.agree) * shared + np.sqrt(1 - w.agree) * rng.standard_normal((sims, w.n))
            run = w.run_sd * rng.standard_normal((sims, w.k))
            for f in range(w.k):
                in_f = fold == f
                # mean helpfulness of the training set, scaled to sd split_sd for one run;
                # overlapping training sets share most of it
                train_mean = (total[:, 0] - np.where(in_f, help_, 0).sum(1)) / n_train
                u = _split_scale(w) * train_mean
                us[:, r, f] = u
                prob = expit(lc + (u + run[:, f])[:, None])
                out[:, c, r, f] = np.sum(in_f & (ndtr(z) < prob), axis=1)
        assert np.all(np.bincount(fold[0], minlength=w.k) == n_test)
    x, ga, gb = _accuracy_curve(w)
    given = np.stack([np.interp(us, x, g).mean(axis=(1, 2)) for g in (ga, gb)], axis=1)
    return Simulated(out, (truth_a, truth_b), given)


def as_scores(counts: np.ndarray, n_test: int, names=("a", "b")) -> dict:
    """One simulated comparison (2, reps, k) as :data:`diagnostics.verdicts.decide.Scores`."""
    return {name: {(r, f): (int(counts[c, r, f]), n_test) for r in range(counts.shape[1])
                   for f in range(counts.shape[2])} for c, name in enumerate(names)}


def run_decide(counts: np.ndarray, w: World, *, margin: float = 0.01):
    """Decide mode on each simulated comparison (``counts`` of :class:`Simulated`): look after
    every fold of its schedule until ``stop``.

    Returns (verdict at stop, repetitions' worth of folds used at stop (J / k), the stopping
    Decision) per comparison.
    """
    from diagnostics.verdicts.design import Design
    from diagnostics.verdicts.decide import decide, look_schedule

    design = Design("cv", w.k, max_repetitions=w.reps)
    looks = look_schedule(design, w.reps).cells
    out = []
    for one in counts:
        scores = as_scores(one, w.n // w.k)
        for j in looks:
            d = decide(scores, design, cells=j, margin=margin)
            if d.stop:
                break
        out.append((d.pairs[0].verdict, j / w.k, d))
    return out


def simulate_many(w: World, effects: tuple[float, ...], sims: int, seed: int = 0) -> np.ndarray:
    """(sims, C, reps, k) correct counts of C configs cross-validated together, as
    :func:`simulate` does for two: config c's population accuracy is a's plus ``effects[c]``
    (a config with effect 0 is a itself, with its own per-example interactions and training
    noise, so configs with equal effects are exchangeable: their pairs are true nulls).  The
    split effects and the error copula are shared by all configs, as the split is."""
    rng = np.random.default_rng(seed)
    p = rng.beta(w.acc * w.concentration, (1 - w.acc) * w.concentration, (sims, w.n))
    base = logit(np.clip(p, 1e-6, 1 - 1e-6))
    shifts = [0.0 if e == 0 else calibrate(World(**{**w.__dict__, "effect": e}))[0]
              for e in effects]
    logits = [base + w.interaction_sd * rng.standard_normal((sims, w.n)) + s for s in shifts]
    help_ = rng.standard_normal((sims, w.n))
    n_train = w.n - w.n // w.k
    out = np.empty((sims, len(effects), w.reps, w.k), np.int64)
    for r in range(w.reps):
        order = np.argsort(rng.random((sims, w.n)), axis=1)
        fold = np.empty((sims, w.n), np.int64)
        np.put_along_axis(fold, order, np.arange(w.n) % w.k, axis=1)
        total = help_.sum(1)
        u = np.stack([_split_scale(w) * (total - np.where(fold == f, help_, 0).sum(1)) / n_train
                      for f in range(w.k)], axis=1)  # (sims, k), shared by the configs
        shared = rng.standard_normal((sims, w.n))
        for c, lc in enumerate(logits):
            z = np.sqrt(w.agree) * shared + np.sqrt(1 - w.agree) * rng.standard_normal((sims, w.n))
            run = w.run_sd * rng.standard_normal((sims, w.k))
            for f in range(w.k):
                prob = expit(lc + (u[:, f] + run[:, f])[:, None])
                out[:, c, r, f] = np.sum((fold == f) & (ndtr(z) < prob), axis=1)
    return out


@dataclass(frozen=True)
class ManyRun:
    """One simulated comparison of several configs in decide mode, up to its stop."""

    false_any_look: bool  # a pair of the equal configs was called better/worse at some look
    naive_any_look: bool  # ... by its own sequential p-value at 5%, without any adjustment
    decision: object  # the Decision at the stop
    repetitions: float  # folds used / k


def run_decide_many(counts: np.ndarray, w: World, equal: str) -> list[ManyRun]:
    """Decide mode on each comparison of :func:`simulate_many` (configs named a, b, c, ...),
    looking after every fold of its schedule until it stops; ``equal`` names the configs whose
    pairs are true nulls."""
    from diagnostics.verdicts.design import Design
    from diagnostics.verdicts.decide import decide, look_schedule
    from diagnostics.verdicts.sequential import sequential_p

    names = tuple("abcdefgh"[:counts.shape[1]])
    design = Design("cv", w.k, max_repetitions=w.reps)
    sched = look_schedule(design, w.reps)
    out = []
    for one in counts:
        scores = as_scores(one, w.n // w.k, names=names)
        false = naive = False
        for j in sched.cells:
            d = decide(scores, design, cells=j)
            nulls = [p for p in d.pairs if p.a in equal and p.b in equal]
            false |= any(p.verdict in ("better", "worse") for p in nulls)
            naive |= any(p.p_value is not None
                         and sequential_p(p.p_value, sched.look_of(j), sched.times) <= 0.05
                         for p in nulls)
            if d.stop:
                break
        out.append(ManyRun(false, naive, d, j / w.k))
    return out
