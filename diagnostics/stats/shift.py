"""Shift per band: does each band's per-example energy differ between two sets of examples?

Training and evaluation data recorded on another device or in another room differ mainly in
their frequency statistics.  :func:`band_shift` compares, band by band, the distribution of the
per-example band energy (the mean of the band over the example's frames) of two sets: the
train and test splits of one dataset, or two registered datasets with the same number of bands
(their frame counts may differ: the energy is a mean over frames).

The test is the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``), per band, with
Holm's adjustment over the bands.  KS rather than Wasserstein-1 because

* its p-value is distribution-free under "no shift", so Holm over the bands bounds the chance
  of naming any band when nothing shifts by ``alpha`` (family-wise), with no permutation loop;
  Wasserstein-1 needs a permutation null per band for a threshold;
* it is invariant to any monotone transform of the energy, so the verdict is the same on
  linear power, log power or dB: no choice of scale can move it;
* its statistic D (the largest gap between the two empirical CDFs, 0..1) compares across bands
  without normalising by a band's spread.

Each shifted band is then described by how its level (mean) and spread (standard
deviation) moved: an **offset** keeps the spread (``x + c``), a **gain** scales the spread with
the level (``g * x``, for positive values).  Both are removed exactly by per-example
normalization: ``instance`` (each example z-scored on its own) removes one gain or offset
shared by every band, ``instance_row`` (each band of each example z-scored on its own) one per
band.  Statistics in float64.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .findings import Finding, ranges
from .moments import chunk_rows_for

#: Family-wise error rate over the bands (Holm).
ALPHA = 0.05
#: Examples read from each set at most (evenly spread): KS needs no more to see a shift.
SHIFT_EXAMPLES = 4000
#: A gain or offset model fits a band when the spread ratio it predicts is within this factor
#: (standard deviations of a few hundred examples are only good to about 10%).
FIT_TOLERANCE = 1.5

KINDS = ("gain", "offset", "other")


@dataclass(frozen=True, eq=False)
class BandShift:
    """Per-band comparison of two sets' per-example band energies.

    Attributes
    ----------
    ks : float64 array, shape (H,)
        KS statistic D of each band (0 = same distribution, 1 = disjoint).
    p : float64 array, shape (H,)
        Unadjusted two-sided KS p-values.
    p_holm : float64 array, shape (H,)
        Holm-adjusted p-values (family: the H bands).
    shifted : bool array, shape (H,)
        ``p_holm < alpha``.
    kind : tuple of str, length H
        ``gain``, ``offset`` or ``other`` for shifted bands, ``""`` elsewhere.
    level_ratio, level_diff, spread_ratio : float64 arrays, shape (H,)
        Mean of b over mean of a (NaN unless both are positive), mean of b minus mean of a,
        and standard deviation of b over a's (NaN where a's is zero); shifted bands only.
    n_a, n_b : int
        Examples compared from each set.
    names : (str, str)
        What the two sets are called ("train", "test").
    alpha : float
    """

    ks: np.ndarray
    p: np.ndarray
    p_holm: np.ndarray
    shifted: np.ndarray
    kind: tuple[str, ...]
    level_ratio: np.ndarray
    level_diff: np.ndarray
    spread_ratio: np.ndarray
    n_a: int
    n_b: int
    names: tuple[str, str]
    alpha: float

    @property
    def bands(self) -> np.ndarray:
        """Indices of the shifted bands."""
        return np.flatnonzero(self.shifted)


def band_energy(X: np.ndarray, indices: np.ndarray | None = None, *,
                max_examples: int = SHIFT_EXAMPLES) -> np.ndarray:
    """Per-example band energy: the mean of each row over its finite frames, float64 (m, H).

    At most ``max_examples`` examples, evenly spread over ``indices``, are read, in chunks.
    """
    N, H, W = X.shape
    idx = np.arange(N) if indices is None else np.sort(np.asarray(indices, np.int64))
    if idx.size > max_examples:
        idx = idx[np.linspace(0, idx.size - 1, max_examples).round().astype(np.int64)]
    E = np.empty((idx.size, H))
    rows = chunk_rows_for(H * W * 8)
    for start in range(0, idx.size, rows):
        chunk = np.asarray(X[idx[start : start + rows]], dtype=np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without finite values: NaN
            E[start : start + len(chunk)] = np.nanmean(
                np.where(np.isfinite(chunk), chunk, np.nan), axis=2)
    return E


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (as statsmodels' ``multipletests(method="holm")``)."""
    p = np.asarray(p, np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _classify(a: np.ndarray, b: np.ndarray) -> tuple[str, float, float, float]:
    """Kind of a band's shift from its means and standard deviations (on a few hundred
    examples these are more precise than medians and interquartile ranges: fewer bands are
    misread on simulated gains and offsets)."""
    ma, mb = float(a.mean()), float(b.mean())
    diff = mb - ma
    ratio = mb / ma if ma > 0 and mb > 0 else float("nan")
    sa, sb = float(a.std(ddof=1)), float(b.std(ddof=1))
    spread = sb / sa if sa > 0 else float("nan")
    if not np.isfinite(spread) or spread <= 0:
        return "other", ratio, diff, spread
    # Distance of the spread ratio from what each model predicts (log scale): an offset keeps
    # the spread (ratio 1), a gain scales it with the level (ratio = level ratio).
    off_err = abs(np.log(spread))
    gain_err = abs(np.log(spread) - np.log(ratio)) if np.isfinite(ratio) else np.inf
    tol = np.log(FIT_TOLERANCE)
    if min(off_err, gain_err) > tol:
        return "other", ratio, diff, spread
    return ("gain" if gain_err < off_err else "offset"), ratio, diff, spread


def shift_between(Ea: np.ndarray, Eb: np.ndarray, *, names: tuple[str, str] = ("a", "b"),
                  alpha: float = ALPHA) -> BandShift:
    """Compare two sets of per-example band energies (m_a, H) and (m_b, H), band by band.

    Non-finite energies are left out of their band.  A band with fewer than two finite values
    in either set, or constant and equal in both, gets D = 0 and p = 1.
    """
    from scipy.stats import ks_2samp

    Ea = np.asarray(Ea, np.float64)
    Eb = np.asarray(Eb, np.float64)
    if Ea.ndim != 2 or Eb.ndim != 2 or Ea.shape[1] != Eb.shape[1]:
        raise ValueError(f"band energies of shapes {Ea.shape} and {Eb.shape} do not match")
    H = Ea.shape[1]
    ks, p = np.zeros(H), np.ones(H)
    ratio, diff, spread = np.full(H, np.nan), np.full(H, np.nan), np.full(H, np.nan)
    fin_a, fin_b = np.isfinite(Ea), np.isfinite(Eb)
    for h in range(H):
        a, b = Ea[fin_a[:, h], h], Eb[fin_b[:, h], h]
        if a.size < 2 or b.size < 2:
            continue
        r = ks_2samp(a, b)
        ks[h], p[h] = float(r.statistic), float(r.pvalue)
    p_holm = holm(p)
    shifted = p_holm < alpha
    kinds = [""] * H
    for h in np.flatnonzero(shifted):
        a, b = Ea[fin_a[:, h], h], Eb[fin_b[:, h], h]
        kinds[h], ratio[h], diff[h], spread[h] = _classify(a, b)
    return BandShift(ks=ks, p=p, p_holm=p_holm, shifted=shifted, kind=tuple(kinds),
                     level_ratio=ratio, level_diff=diff, spread_ratio=spread,
                     n_a=int(Ea.shape[0]), n_b=int(Eb.shape[0]), names=tuple(names),
                     alpha=float(alpha))


def band_shift(Xa: np.ndarray, Xb: np.ndarray, *, indices_a: np.ndarray | None = None,
               indices_b: np.ndarray | None = None, names: tuple[str, str] = ("a", "b"),
               alpha: float = ALPHA, max_examples: int = SHIFT_EXAMPLES) -> BandShift:
    """Per-band shift between ``Xa[indices_a]`` and ``Xb[indices_b]`` (see the module docs).

    Parameters
    ----------
    Xa, Xb : arrays of shape (N_a, H, W_a) and (N_b, H, W_b)
        The same number of rows H; frame counts may differ.
    indices_a, indices_b : int arrays, optional
        Examples of each set to use (e.g. the train and test splits of one dataset).
    """
    if Xa.shape[1] != Xb.shape[1]:
        raise ValueError(f"{Xa.shape[1]} rows against {Xb.shape[1]}")
    return shift_between(band_energy(Xa, indices_a, max_examples=max_examples),
                         band_energy(Xb, indices_b, max_examples=max_examples),
                         names=names, alpha=alpha)


def _shared(values: np.ndarray) -> bool:
    """Whether positive factors (or differences) agree within :data:`FIT_TOLERANCE`."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return False
    if np.all(v > 0):
        return float(v.max() / v.min()) <= FIT_TOLERANCE
    spread = float(v.max() - v.min())
    return spread <= (FIT_TOLERANCE - 1) * float(np.max(np.abs(v)))


def shift_finding(res: BandShift, *, row_noun: str = "band") -> Finding:
    """One finding: which bands shift, what kind of shift, and the normalization that removes
    it; or that no shift was detected (never that there is none)."""
    a, b = res.names
    H = res.ks.size
    test = (f"two-sample KS per {row_noun}, Holm-adjusted over {H} {row_noun}s, "
            f"α = {res.alpha:g}; {res.n_a:,} {a} vs {res.n_b:,} {b} examples")
    idx = res.bands
    if idx.size == 0:
        return Finding("band_shift", "info",
                       f"No {row_noun} shifts detectably between {a} and {b} ({test}); a shift "
                       "smaller than this test can see is not ruled out.")
    kinds = [res.kind[h] for h in idx]
    counts = {k: kinds.count(k) for k in KINDS if kinds.count(k)}
    worst = int(idx[np.argmax(res.ks[idx])])
    head = (f"{idx.size} of {H} {row_noun}s shift between {a} and {b} "
            f"({row_noun}s {ranges(idx)}; largest KS D = {res.ks[worst]:.2f} in {row_noun} "
            f"{worst}; {test})")
    parts = []
    if counts.get("gain"):
        g = res.level_ratio[[h for h in idx if res.kind[h] == "gain"]]
        parts.append(f"{counts['gain']} by a gain (level and spread scale together, "
                     f"factor {np.nanmin(g):.3g}-{np.nanmax(g):.3g})")
    if counts.get("offset"):
        d = res.level_diff[[h for h in idx if res.kind[h] == "offset"]]
        parts.append(f"{counts['offset']} by an offset (the level moves by "
                     f"{np.nanmin(d):+.3g} to {np.nanmax(d):+.3g}, the spread stays)")
    if counts.get("other"):
        parts.append(f"{counts['other']} otherwise (the spread changes unlike a gain or an offset)")
    text = head + ": " + "; ".join(parts) + "."
    if not counts.get("other"):
        same = [h for h in idx]
        values = (res.level_ratio[same] if set(kinds) == {"gain"}
                  else res.level_diff[same] if set(kinds) == {"offset"} else np.array([]))
        if idx.size == H and _shared(values):
            text += (" One shift shared by every band: per-example normalization (`instance`, "
                     "each example z-scored on its own) removes it.")
        else:
            text += (" Frequency-wise instance normalization (`instance_row`, each "
                     f"{row_noun} of each example z-scored on its own) removes a gain or an "
                     f"offset of each {row_noun}.")
    else:
        text += (f" Per-example normalization removes gains and offsets only; check the "
                 f"{row_noun}s marked 'other' before relying on it.")
    return Finding("band_shift", "warning", text)


def as_dict(res: BandShift) -> dict:
    """JSON-ready (finite numbers or None)."""
    fin = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
    return {"names": list(res.names), "n": [res.n_a, res.n_b], "alpha": res.alpha,
            "test": "ks_2samp per band, Holm over bands",
            "ks": fin(res.ks), "p": fin(res.p), "p_holm": fin(res.p_holm),
            "shifted": res.bands.tolist(), "kind": list(res.kind),
            "level_ratio": fin(res.level_ratio), "level_diff": fin(res.level_diff),
            "spread_ratio": fin(res.spread_ratio)}
