"""Error control for many pairs looked at many times: Holm's step-down and alpha spending.

Decide mode tests the same pairs after every repetition and stops when they are decided.
Testing each look at 5% would make a false "better" far likelier than 5%; a Lan-DeMets alpha
spending function shares the 5% out over the looks (Pocock type by default, see
:data:`SPENDING`; O'Brien-Fleming type is kept for comparison), so that over all looks the
chance of crossing stays at 5%.

The two meet in :func:`sequential_p`: the smallest overall level at which a p-value seen at
a given look would cross that look's boundary.  Holm's step-down on those values is the
group-sequential Holm procedure (closed testing with Bonferroni-split boundaries, Maurer &
Bretz 2013): a true null can only be rejected if its own sequential test, run at level
alpha/|true nulls|, crosses at some look, which happens with probability at most that level.

NumPy and SciPy only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

# Overall levels at which boundaries are tabulated; between them log-log interpolation.
# Above 0.5 the O'Brien-Fleming nominal levels stop growing with alpha (nearly everything is
# spent at the first look), so there the mapping is continued linearly to 1 (ordinal only).
_ALPHAS = np.logspace(-8, math.log10(0.5), 97)
_GRID = 301  # points per look in the numerical integration


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


def boundaries(max_looks: int, alpha: float, *, spending=None) -> np.ndarray:
    """Two-sided z boundaries ``c_1..c_K`` for K equally spaced looks (information s/K).

    Recursive numerical integration (Armitage, McPherson & Rowe 1969) of the score
    ``S_s = sum of s independent N(0, 1) increments``: look s stops when ``|S_s| >= c_s sqrt(s)``,
    and each c_s is solved so that the chance of stopping first at look s under the null is
    ``alpha(s/K) - alpha((s-1)/K)``.  ``inf`` where a look spends nothing.  ``spending(t, alpha)``
    gives the two-sided alpha spent by information fraction t.
    """
    spending = SPENDING if spending is None else spending
    spent = spending(np.arange(max_looks + 1) / max_looks, alpha)
    spent[0] = 0.0
    c = np.empty(max_looks)
    b = float(-ndtri(spent[1] / 2.0)) if spent[1] > 0 else math.inf
    c[0] = b
    x = np.linspace(-min(b, 9.0), min(b, 9.0), _GRID)
    f = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # density of S_1 inside the boundary
    for s in range(2, max_looks + 1):
        w = f * (x[1] - x[0])  # trapezoid weights on the uniform grid
        w[[0, -1]] *= 0.5
        mass = float(w.sum())
        target = spent[s] - spent[s - 1]

        def exit_prob(bs: float) -> float:
            return float(np.sum(w * (ndtr(-bs - x) + ndtr(x - bs)))) - target

        if target <= 0:
            bs = math.inf
        elif target >= mass:
            bs = 0.0
        else:
            bs = brentq(exit_prob, 0.0, 60.0, xtol=1e-10)
        c[s - 1] = bs / math.sqrt(s)
        lim = min(bs, 9.0 * math.sqrt(s))
        y = np.linspace(-lim, lim, _GRID)
        f = (np.exp(-0.5 * (y[:, None] - x[None, :]) ** 2) / math.sqrt(2 * math.pi)) @ w
        x = y
    return c


@functools.lru_cache(maxsize=16)
def _table(max_looks: int) -> np.ndarray:
    """(K, len(_ALPHAS)) nominal two-sided levels of each look at each tabulated alpha."""
    levels = np.array([2.0 * ndtr(-boundaries(max_looks, a)) for a in _ALPHAS]).T
    # Guard the interpolation against round-off: nominal levels grow with alpha.
    return np.maximum.accumulate(np.maximum(levels, 1e-300), axis=1)


def nominal_level(look: int, max_looks: int, alpha: float) -> float:
    """The two-sided nominal p-value a test must reach at ``look`` (of ``max_looks``)."""
    if max_looks == 1:
        return alpha
    row = _table(max_looks)[look - 1]
    return float(np.exp(np.interp(math.log(alpha), np.log(_ALPHAS), np.log(row))))


def sequential_p(p, look: int, max_looks: int):
    """The smallest overall two-sided level at which nominal ``p`` crosses the boundary of
    ``look``: a test that rejects when this is <= alpha has overall level alpha across looks.

    Parameters
    ----------
    p : float or array of nominal two-sided p-values
    look, max_looks : 1 <= look <= max_looks

    Returns
    -------
    float or array like ``p``; equal to ``p`` when ``max_looks == 1``, never below ``p``.
    """
    if not 1 <= look <= max_looks:
        raise ValueError(f"look={look} must be between 1 and max_looks={max_looks}")
    pa = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if max_looks == 1:
        q = pa
    else:
        row = np.log(_table(max_looks)[look - 1])
        la = np.log(_ALPHAS)
        lp = np.log(np.maximum(pa, 1e-300))
        slope = (la[1] - la[0]) / (row[1] - row[0])
        below = np.exp(la[0] + slope * (lp - row[0]))  # extends the first segment (all tiny)
        inside = np.exp(np.interp(lp, row, la))
        top = math.exp(row[-1])  # beyond alpha = 0.5: linear to (1, 1); only the order matters
        above = _ALPHAS[-1] + (pa - top) / (1.0 - top) * (1.0 - _ALPHAS[-1])
        q = np.where(lp <= row[0], below, np.where(lp <= row[-1], inside, above))
        q = np.minimum(1.0, np.maximum(q, pa))
    return float(q) if np.ndim(p) == 0 else q


#: The spending function of decide mode.  Pocock-type: the users' typical question (a 10-30
#: point effect of per-pixel z-scoring) is settled at the first repetition; O'Brien-Fleming
#: would almost always force a second one.  bench/bench_verdict.py measures both.
SPENDING = pocock_spending
