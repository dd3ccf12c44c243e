"""Class information per band (row): how well the labels explain each band's per-example energy.

Row SNR (mean/std) cannot tell a noise band from a band whose signal comes and goes with the
class; :func:`band_information` measures the second, from a bounded sample of examples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .moments import chunk_rows_for


#: Examples read to estimate the class information per band (enough for a share of variance).
BAND_INFO_EXAMPLES = 4000


@dataclass(frozen=True, eq=False)
class BandInformation:
    """How much class information each row (band) carries, from per-example band energy.

    Attributes
    ----------
    eta2 : float64 array, shape (H,)
        Correlation ratio of each row's per-example energy (mean over the row's frames; log10
        of it for non-negative data such as power): between-class variance / total variance.
        0 = the labels explain none of it, 1 = all.  NaN where the energy never varies.
    chance : float
        What eta2 reaches by chance with these class sizes, ``(C - 1) / (n - 1)``.
    log : bool
        Whether log10 energy was used (all values >= 0).
    """

    eta2: np.ndarray
    chance: float
    log: bool


def band_information(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    indices: np.ndarray | None = None,
    n_classes: int | None = None,
    chunk_rows: int | None = None,
    max_examples: int = BAND_INFO_EXAMPLES,
) -> BandInformation:
    """Class information per row, label-aware.

    Row SNR (mean/std) cannot tell a noise band from a band whose signal comes and goes with
    the class (speech: the word moves in time, so every pixel's SNR is low).  The energy of a
    band over the whole example does not move with time shifts; how well the labels explain it
    says whether masking that band removes information.

    At most ``max_examples`` examples, evenly spread over ``indices``, are read (an estimate of
    a share of variance needs no more), so the cost stays bounded whatever N is; their band
    energies, (m, H) floats, are then reduced two-pass in float64.

    Parameters
    ----------
    X : np.ndarray, shape (N, H, W)
    labels : int array, shape (N,)
    indices : int array, optional
        Examples to use (the training split); default all.
    """
    N, H, W = X.shape
    idx = np.arange(N) if indices is None else np.sort(np.asarray(indices, np.int64))
    if idx.size > max_examples:
        idx = idx[np.linspace(0, idx.size - 1, max_examples).round().astype(np.int64)]
    y = np.asarray(labels, np.int64)[idx]
    C = int(n_classes if n_classes is not None else y.max() + 1)
    rows = chunk_rows or chunk_rows_for(H * W * 8)
    E = np.empty((idx.size, H))
    for start in range(0, idx.size, rows):
        chunk = np.asarray(X[idx[start : start + rows]], dtype=np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without finite values: NaN
            E[start : start + len(chunk)] = np.nanmean(
                np.where(np.isfinite(chunk), chunk, np.nan), axis=2)
    finite = np.isfinite(E)
    use_log = bool(finite.any()) and float(np.nanmin(E)) >= 0
    if use_log:
        # Floor 80 dB under the loudest band energy (librosa's top_db): silent clips must not
        # become -inf or huge negative outliers.
        top = float(np.nanmax(E))
        E = np.log10(np.maximum(E, max(top, 1e-300) * 1e-8))
    eta2 = np.full(H, np.nan)
    for h in range(H):
        ok = finite[:, h]
        e, yh = E[ok, h], y[ok]
        if e.size < 2:
            continue
        d = e - e.mean()  # centred first: large offsets must not cancel the squares
        total = float((d * d).sum())
        if total <= 1e-24 * max(1.0, float((e * e).sum())):
            continue  # the band energy never varies: no information, none to measure
        n_c = np.bincount(yh, minlength=C).astype(np.float64)
        s_c = np.bincount(yh, weights=d, minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            between = float(np.nansum(np.where(n_c > 0, s_c**2 / np.maximum(n_c, 1), 0.0)))
        eta2[h] = min(max(between / total, 0.0), 1.0)
    present = int((np.bincount(y, minlength=C) > 0).sum())
    chance = (present - 1) / max(idx.size - 1, 1)
    return BandInformation(eta2=eta2, chance=float(chance), log=use_log)
