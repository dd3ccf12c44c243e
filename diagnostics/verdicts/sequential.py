"""Error control for many pairs looked at many times: Holm's and Shaffer's step-down, and alpha
spending.

Decide mode tests the same pairs at every look and stops when they are decided.  Testing each
look at 5% would make a false "better" far likelier than 5%; a Lan-DeMets alpha spending
function shares the 5% out over the looks (Pocock type by default, see :data:`SPENDING`;
O'Brien-Fleming type is kept for comparison), so that over all looks the chance of crossing
stays at 5%.

Looks need not be equally spaced: a schedule is the information fraction of each look
(``t_1 < ... < t_K <= 1``; an int K means K equally spaced looks, ``s/K``).  The boundaries
are those of a Brownian motion observed at those fractions (the canonical joint distribution of
group-sequential statistics: ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``), so any schedule fixed in
advance is valid, and a look that is skipped only makes the test more conservative.
:mod:`diagnostics.verdicts.decide` looks after every cross-validation fold and measures
information by the corrected variance of the repeated k-fold t-test (see
:func:`diagnostics.verdicts.decide.look_schedule`).

The two meet in :func:`sequential_p`: the smallest overall level at which a p-value seen at
a given look would cross that look's boundary.  Holm's step-down on those values is the
group-sequential Holm procedure (closed testing with Bonferroni-split boundaries, Maurer &
Bretz 2013): a true null can only be rejected if its own sequential test, run at level
alpha/|true nulls|, crosses at some look, which happens with probability at most that level.

Pairwise equality hypotheses are logically related: among k configs, if "a = b" is false then
"a = c" and "b = c" cannot both be true.  Shaffer's step-down (:func:`shaffer`, Shaffer 1986;
recommended for all pairwise comparisons of classifiers by Garcia & Herrera 2008, extending
Demsar 2006) divides alpha at each step by the most hypotheses that can still be true together,
never more than Holm's count, so it decides at least as much with the same guarantee: the
first true null to be rejected is rejected at a step whose divisor is at least the number t of
true nulls, so a false rejection needs some true null below alpha/t (Bonferroni over t).  The
argument holds for the sequential p-values as for plain ones.  It does not apply to the
equivalence (TOST) nulls, which any subset of pairs can satisfy at once: those stay with Holm.

NumPy and SciPy only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import ndtr, ndtri

# Overall levels at which boundaries are tabulated (4 a decade); between them log-log
# interpolation, below them the first segment extended (only the order of such tiny values
# matters).  Above 0.5 the O'Brien-Fleming nominal levels stop growing with alpha (nearly
# everything is spent at the first look), so there the mapping is continued linearly to 1
# (ordinal only).
_ALPHAS = np.logspace(-7, math.log10(0.5), 31)
_GRID = 201  # points per look in the numerical integration (boundaries within 1e-4 of 301)
_CHUNK = 16  # alphas integrated at once (memory: _CHUNK * _GRID**2 floats)
_SQ2PI = math.sqrt(2.0 * math.pi)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (as ``statsmodels`` ``multipletests(method="holm")``).

    Parameters
    ----------
    p : (m,) p-values in [0, 1]

    Returns
    -------
    (m,) adjusted p-values: ``max_{j<=i} min(1, (m - j) * p_(j))`` in sorted order, put back.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("holm needs a 1-D array of p-values in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


@functools.lru_cache(maxsize=None)
def true_null_counts(k: int) -> frozenset[int]:
    """How many of the k(k-1)/2 pairwise equalities of k configs can hold together.

    The configs fall into groups of equal ones; a group of j gives j(j-1)/2 true pairs.  So
    ``S(k) = union over j = 1..k of {j(j-1)/2 + s : s in S(k - j)}``, ``S(0) = {0}``
    (Shaffer 1986): for k = 4, {0, 1, 2, 3, 6}.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    if k <= 1:
        return frozenset({0})
    return frozenset(j * (j - 1) // 2 + s for j in range(1, k + 1) for s in true_null_counts(k - j))


def shaffer_divisors(k: int) -> np.ndarray:
    """Shaffer's divisor at each step of the step-down over all k(k-1)/2 pairs: before step i
    (0-based) i hypotheses are rejected, and at most ``max{s in S(k): s <= m - i}`` of the rest
    can be true (Holm would use ``m - i``).  For k = 4: 6, 3, 3, 3, 2, 1."""
    m = k * (k - 1) // 2
    counts = sorted(true_null_counts(k))
    return np.array([max(s for s in counts if s <= m - i) for i in range(m)], dtype=np.float64)


def shaffer(p: np.ndarray, k: int) -> np.ndarray:
    """Shaffer's (static, "S1") step-down adjusted p-values for all pairs of k configs.

    Parameters
    ----------
    p : (k(k-1)/2,) p-values in [0, 1], one per pair, in any order
    k : the number of configs

    Returns
    -------
    (m,) adjusted p-values: ``max_{j<=i} min(1, t_j * p_(j))`` in sorted order, put back, with
    ``t_j`` from :func:`shaffer_divisors`.  Never above :func:`holm`'s; equal to it for k <= 2.
    """
    p = np.asarray(p, dtype=np.float64)
    m = k * (k - 1) // 2
    if p.ndim != 1 or p.size != m:
        raise ValueError(f"shaffer needs the {m} p-values of every pair of {k} configs")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("shaffer needs p-values in [0, 1]")
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(shaffer_divisors(k) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def obf_spending(t: float | np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming alpha spent by information fraction ``t`` (two-sided).

    ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` (Lan & DeMets 1983); alpha(1) = alpha.
    Computed from the lower tail, so that tiny amounts keep their precision.
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 2.0 * ndtr(ndtri(alpha / 2.0) / np.sqrt(t))


def pocock_spending(t: float | np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets Pocock-type alpha spent by information fraction ``t``:
    ``alpha(t) = alpha ln(1 + (e - 1) t)``; alpha(1) = alpha.

    It spends about 30% of alpha at the first of five looks (O'Brien-Fleming: 0.1%), so a large
    effect, such as per-pixel z-scoring of linear power, is decided after one repetition; the
    price is a slightly higher last boundary.  Decide mode uses it (see :data:`SPENDING`).
    """
    t = np.asarray(t, dtype=np.float64)
    return alpha * np.log1p((math.e - 1.0) * t)


def information_times(looks) -> np.ndarray:
    """A schedule as information fractions: ``K`` (an int) is ``1/K, 2/K, ..., 1``; a sequence
    is checked to be strictly increasing in (0, 1]."""
    if isinstance(looks, (int, np.integer)):
        if looks < 1:
            raise ValueError(f"looks={looks} must be 1 or more")
        return np.arange(1, looks + 1) / looks
    t = np.asarray(looks, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or not (np.all(np.diff(t) > 0) and t[0] > 0 and t[-1] <= 1):
        raise ValueError("information times must be strictly increasing in (0, 1]")
    return t


def boundaries(looks, alpha: float, *, spending=None) -> np.ndarray:
    """Two-sided z boundaries ``c_1..c_K`` for the looks of a schedule.

    ``looks`` is K (equally spaced) or the information fractions (see
    :func:`information_times`).  Recursive numerical integration (Armitage, McPherson & Rowe
    1969) of a Brownian motion ``S`` in information time: look s stops when
    ``|S(t_s)| >= c_s sqrt(t_s)``, and each c_s is solved so that the chance of stopping first
    at look s under the null is ``alpha(t_s) - alpha(t_{s-1})``.  ``inf`` where a look spends
    nothing.  ``spending(t, alpha)`` gives the two-sided alpha spent by information fraction t.
    """
    return _boundaries(information_times(looks), np.array([float(alpha)]),
                       SPENDING if spending is None else spending)[:, 0]


def _boundaries(t: np.ndarray, alphas: np.ndarray, spending) -> np.ndarray:
    """(K, A) boundaries of schedule ``t`` for each of ``alphas`` (in chunks of alphas)."""
    out = np.empty((t.size, alphas.size))
    for lo in range(0, alphas.size, _CHUNK):
        out[:, lo:lo + _CHUNK] = _boundaries_chunk(t, alphas[lo:lo + _CHUNK], spending)
    return out


def _boundaries_chunk(t: np.ndarray, alphas: np.ndarray, spending) -> np.ndarray:
    # One trapezoid grid per alpha on [-b, b] (b that alpha's boundary on the S scale), so the
    # truncation at the boundary falls on a grid point; every alpha advanced together.
    spent = np.maximum.accumulate(np.array([spending(ti, alphas) for ti in t], float), axis=0)
    inc = np.diff(np.vstack([np.zeros((1, alphas.size)), spent]), axis=0)  # (K, A)
    c = np.empty(inc.shape)
    u = np.linspace(-1.0, 1.0, _GRID)
    s1 = math.sqrt(t[0])
    b = np.full(alphas.size, np.inf)
    pos = inc[0] > 0
    b[pos] = -ndtri(inc[0][pos] / 2.0) * s1
    c[0] = b / s1
    x = np.minimum(b, 9.0 * s1)[:, None] * u  # (A, G)
    f = np.exp(-0.5 * (x / s1) ** 2) / (s1 * _SQ2PI)  # density of S(t_1) inside the boundary
    for s in range(1, t.size):
        sig = math.sqrt(t[s] - t[s - 1])
        w = f * (x[:, 1] - x[:, 0])[:, None]  # trapezoid weights
        w[:, [0, -1]] *= 0.5
        target = inc[s]
        lo, hi = np.zeros(alphas.size), np.full(alphas.size, 60.0)
        for _ in range(46):  # bisection, all alphas at once: the exit chance falls with b
            mid = 0.5 * (lo + hi)
            exit_ = np.sum(w * (ndtr((-mid[:, None] - x) / sig) + ndtr((x - mid[:, None]) / sig)), 1)
            over = exit_ > target
            lo, hi = np.where(over, mid, lo), np.where(over, hi, mid)
        bs = np.where(target <= 0, np.inf, np.where(target >= w.sum(1), 0.0, 0.5 * (lo + hi)))
        st = math.sqrt(t[s])
        c[s] = bs / st
        y = np.minimum(bs, 9.0 * st)[:, None] * u
        kern = np.exp(-0.5 * ((y[:, :, None] - x[:, None, :]) / sig) ** 2)  # (A, G, G)
        f = np.matmul(kern, w[:, :, None])[:, :, 0] / (sig * _SQ2PI)
        x = y
    return c


@functools.lru_cache(maxsize=16)
def _table(times: tuple) -> np.ndarray:
    """(K, len(_ALPHAS)) nominal two-sided levels of each look at each tabulated alpha."""
    levels = 2.0 * ndtr(-_boundaries(np.array(times), _ALPHAS, SPENDING))
    # Guard the interpolation against round-off: nominal levels grow with alpha.
    return np.maximum.accumulate(np.maximum(levels, 1e-300), axis=1)


def _key(looks) -> tuple:
    return tuple(float(x) for x in np.round(information_times(looks), 12))


def prepare(looks) -> None:
    """Compute the boundaries of a schedule now (they are cached), e.g. on a thread while the
    first runs train, so that the first look does not wait for them (about a second for the
    23 looks of 5 x 5 folds)."""
    key = _key(looks)
    if len(key) > 1:
        _table(key)


def nominal_level(look: int, looks, alpha: float) -> float:
    """The two-sided nominal p-value a test must reach at ``look`` (1-based) of the schedule
    ``looks`` (K equally spaced looks, or their information fractions)."""
    key = _key(looks)
    if len(key) == 1:
        return alpha
    row = _table(key)[look - 1]
    return float(np.exp(np.interp(math.log(alpha), np.log(_ALPHAS), np.log(row))))


def sequential_p(p, look: int, looks):
    """The smallest overall two-sided level at which nominal ``p`` crosses the boundary of
    ``look``: a test that rejects when this is <= alpha has overall level alpha across looks.

    Parameters
    ----------
    p : float or array of nominal two-sided p-values
    look : 1-based index of the look
    looks : K (equally spaced looks) or the information fraction of each look

    Returns
    -------
    float or array like ``p``; equal to ``p`` for a single look, never below ``p``.
    """
    key = _key(looks)
    if not 1 <= look <= len(key):
        raise ValueError(f"look={look} must be between 1 and the {len(key)} looks")
    pa = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if len(key) == 1:
        q = pa
    else:
        row = np.log(_table(key)[look - 1])
        la = np.log(_ALPHAS)
        lp = np.log(np.maximum(pa, 1e-300))
        slope = (la[1] - la[0]) / max(row[1] - row[0], 1e-12)
        below = np.exp(la[0] + slope * (lp - row[0]))  # extends the first segment (all tiny)
        inside = np.exp(np.interp(lp, row, la))
        top = math.exp(row[-1])  # beyond alpha = 0.5: linear to (1, 1); only the order matters
        above = _ALPHAS[-1] + (pa - top) / (1.0 - top) * (1.0 - _ALPHAS[-1])
        q = np.where(lp <= row[0], below, np.where(lp <= row[-1], inside, above))
        q = np.minimum(1.0, np.maximum(q, pa))
    return float(q) if np.ndim(p) == 0 else q


#: The spending function of decide mode.  Pocock-type, over the information of the corrected
#: t (diagnostics.verdicts.decide.look_schedule): the users' typical question (a 10-30 point
#: effect of per-pixel z-scoring) is settled within the first repetition; O'Brien-Fleming
#: would almost always force a second one.  bench/bench_verdict.py measures the error rates.
SPENDING = pocock_spending
