"""Per-pixel statistics in one streaming pass, in float64, with a stable merge.

Two engines give the same numbers:

* numpy (``_stream_stats``, the default): blocks of rows (read with ``preadv`` from a
  memmapped file, a view or a gather otherwise) handed to worker threads on demand.  Each
  worker keeps float64 sums of ``x - K`` and of its square, ``K`` its running mean (so large
  offsets cancel before squaring), and folds them into a :class:`StatsAccumulator` with the
  Chan-Golub-LeVeque update every 16 MB; blocks holding NaN or inf go through
  :meth:`StatsAccumulator.partial_fit` (two-pass per chunk in float64, as scikit-learn's
  ``_incremental_mean_and_var``).  Accumulators merge with each other the same way.
* numba (``_numba_stats``, shipped with librosa): the same sums in one compiled pass, about
  four times faster per value, but importing numba and loading the compiled kernels costs
  about 0.4 s, most of a one-off command's run.  ``auto`` takes it only where that is paid
  already (kernels loaded in this process) or repaid (arrays of several GB).

Worker threads: one per free core (:func:`_n_threads`); blocks are handed out on demand, so a
core that becomes busy during a pass slows it down but never stalls it.

Non-finite values are counted per pixel and left out; constant pixels (std effectively zero,
decided relative to float eps like scikit-learn's ``_is_constant_feature``) are flagged and
get NaN SNR and amplification, never a division by zero.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np

from diagnostics.errors import NormScopeError

#: Values kept (per pass) to estimate the value distribution's shape (skewness, quantiles).
SAMPLE_VALUES = 1_000_000
#: Arrays at least this large (bytes) take the numba engine even where numba is not loaded
#: yet: its faster pass then outweighs importing numba and loading the compiled kernels (about
#: 0.4 s, most of a one-off ``stats`` command on a 600 MB file).
NUMBA_MIN_BYTES = 4 * 2**30
#: Arrays at least this large take the numba engine where its kernels are already loaded (a
#: long-running process that used it before): nothing is left to pay for it.
NUMBA_LOADED_MIN_BYTES = 64 * 2**20
#: Target size of one float64 chunk in the numpy engine (bounds extra memory).
CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True, eq=False)
class PixelStats:
    """Per-pixel statistics over a set of examples. Arrays are (H, W) unless noted.

    Attributes
    ----------
    n : int
        Number of examples summarised.
    count : int64 array
        Finite values seen at each pixel.
    mean, std, min, max : float64 arrays
        Over finite values; ``std`` has ddof=0.  NaN where a pixel had no finite value.
    nonfinite : int64 array
        NaN/inf values at each pixel (left out of everything else).
    zero_frac : float64 array
        Share of exact zeros among the finite values.
    constant : bool array
        Pixels whose std is zero relative to float eps (or that have no finite value).
    snr : float64 array
        ``|mean| / std``; NaN at constant pixels.
    row_snr : float64 array, shape (H,)
        Median of the row's finite pixel SNRs; NaN if every pixel in the row is constant.
    amplification : float64 array
        ``global_std / std``: how much per-pixel z-scoring inflates each pixel relative to one
        global scale.  NaN at constant pixels.
    global_mean, global_std : float
        Over all finite values of all pixels.
    class_means : float64 array, shape (C, H, W), or None
        Per-class mean maps (NaN where a class has no finite value).
    class_counts : int64 array, shape (C,), or None
    sample : float32 array
        Up to ``SAMPLE_VALUES`` finite values, evenly spread over the examples, for the value
        distribution (skewness, quantiles, histogram).
    band_info : BandInformation or None
        Class information per row (see :func:`band_information`); filled by
        :func:`diagnostics.stats.summary.dataset_stats` when labels exist.
    """

    n: int
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    nonfinite: np.ndarray
    zero_frac: np.ndarray
    constant: np.ndarray
    snr: np.ndarray
    row_snr: np.ndarray
    amplification: np.ndarray
    global_mean: float
    global_std: float
    class_means: np.ndarray | None
    class_counts: np.ndarray | None
    sample: np.ndarray
    sample_skewness: float = 0.0
    band_info: "BandInformation | None" = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mean.shape)  # type: ignore[return-value]

    @property
    def n_constant(self) -> int:
        return int(self.constant.sum())

    @property
    def n_nonfinite(self) -> int:
        return int(self.nonfinite.sum())

    @property
    def skewness(self) -> float:
        """Sample skewness of the value distribution (0 for a symmetric one)."""
        return self.sample_skewness


def is_constant(var: np.ndarray, mean: np.ndarray, count: np.ndarray) -> np.ndarray:
    """True where a variance is zero up to float64 round-off (scikit-learn's criterion).

    The bound ``n * eps * var + (n * mean * eps)**2`` is the error a float64 variance
    computed from ``n`` values near ``mean`` can carry; anything below it is noise.
    """
    eps = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore", over="ignore"):
        bound = count * eps * var + (count * mean * eps) ** 2
        return ~(var > bound) | (count == 0)


class StatsAccumulator:
    """Streaming per-pixel statistics: ``partial_fit`` on chunks, ``merge``, ``finalize``.

    Parameters
    ----------
    shape : (H, W)
    n_classes : int
        Number of classes for per-class mean maps (0: none).
    sample_every : int
        Keep the values of every ``sample_every``-th example seen (for skewness).
    """

    def __init__(self, shape: tuple[int, int], *, n_classes: int = 0, sample_every: int = 1):
        self.shape = tuple(shape)
        p = int(np.prod(self.shape))
        self.n = 0
        self.count = np.zeros(p, np.int64)
        self.mean = np.zeros(p)
        self.m2 = np.zeros(p)
        self.min = np.full(p, np.inf)
        self.max = np.full(p, -np.inf)
        self.nonfinite = np.zeros(p, np.int64)
        self.zeros = np.zeros(p, np.int64)
        self.n_classes = n_classes
        self.class_sum = np.zeros((n_classes, p))
        self.class_count = np.zeros((n_classes, p), np.int64)
        self.class_n = np.zeros(n_classes, np.int64)
        self.sample_every = max(1, int(sample_every))
        self._samples: list[np.ndarray] = []
        self._sampled = 0

    def partial_fit(self, chunk: np.ndarray, labels: np.ndarray | None = None) -> "StatsAccumulator":
        """Add a chunk of examples, shape (m, H, W) of any real dtype."""
        if tuple(chunk.shape[1:]) != self.shape:
            raise NormScopeError(
                f"a chunk of shape {tuple(chunk.shape)} does not fit statistics of "
                f"{self.shape[0]} x {self.shape[1]} examples"
            )
        m = chunk.shape[0]
        if m == 0:
            return self
        x = np.asarray(chunk, dtype=np.float64).reshape(m, -1)
        finite = np.isfinite(x)
        all_finite = bool(finite.all())
        cnt = np.full(x.shape[1], m, np.int64) if all_finite else finite.sum(0)
        if not all_finite:
            x = np.where(finite, x, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            if all_finite:
                cmean = x.mean(0)
                cm2 = ((x - cmean) ** 2).sum(0)  # two-pass within the chunk
                self.min = np.minimum(self.min, x.min(0))
                self.max = np.maximum(self.max, x.max(0))
            else:
                cmean = np.where(cnt > 0, np.nansum(x, 0) / np.maximum(cnt, 1), 0.0)
                cm2 = np.nansum((x - cmean) ** 2, 0)
                self.min = np.fmin(self.min, np.nanmin(np.where(finite, x, np.inf), 0))
                self.max = np.fmax(self.max, np.nanmax(np.where(finite, x, -np.inf), 0))
        self.nonfinite += m - cnt
        self.zeros += (x == 0).sum(0)
        self._merge_moments(cnt, cmean, cm2)
        if self.n_classes and labels is not None:
            xz = x if all_finite else np.where(finite, x, 0.0)
            for c in np.flatnonzero(np.bincount(labels)):
                rows = labels == c
                self.class_sum[c] += xz[rows].sum(0)
                self.class_count[c] += finite[rows].sum(0) if not all_finite else rows.sum()
                self.class_n[c] += int(rows.sum())
        self._take_sample(x, finite if not all_finite else None)
        self.n += m
        return self

    def _take_sample(self, x: np.ndarray, finite: np.ndarray | None) -> None:
        start = (-self._sampled) % self.sample_every
        rows = x[start :: self.sample_every]
        self._sampled += x.shape[0]
        if not len(rows) or sum(len(s) for s in self._samples) >= SAMPLE_VALUES:
            return
        vals = rows.ravel() if finite is None else rows[finite[start :: self.sample_every]]
        self._samples.append(vals.astype(np.float32))

    def _merge_moments(self, nb: np.ndarray, mb: np.ndarray, m2b: np.ndarray) -> None:
        # Chan, Golub & LeVeque (1979): pairwise update of count, mean and sum of squares.
        na = self.count
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - self.mean
            frac = np.where(n > 0, nb / np.maximum(n, 1), 0.0)
            self.mean = self.mean + delta * frac
            self.m2 = self.m2 + m2b + delta**2 * na * frac
        self.count = n

    def merge(self, other: "StatsAccumulator") -> "StatsAccumulator":
        """Fold another accumulator (e.g. from another worker) into this one."""
        if other.shape != self.shape or other.n_classes != self.n_classes:
            raise NormScopeError("cannot merge statistics of different shapes or class counts")
        self._merge_moments(other.count, other.mean, other.m2)
        self.min = np.fmin(self.min, other.min)
        self.max = np.fmax(self.max, other.max)
        self.nonfinite += other.nonfinite
        self.zeros += other.zeros
        self.class_sum += other.class_sum
        self.class_count += other.class_count
        self.class_n += other.class_n
        self._samples.extend(other._samples)
        self.n += other.n
        return self

    def finalize(self) -> PixelStats:
        """Turn the running moments into a :class:`PixelStats`."""
        if self.n == 0:
            raise NormScopeError("no examples to summarise; the selection is empty")
        sample = np.concatenate(self._samples)[:SAMPLE_VALUES] if self._samples else np.zeros(0, np.float32)
        return _finalize(
            shape=self.shape, n=self.n, count=self.count, mean=self.mean, m2=self.m2,
            vmin=self.min, vmax=self.max, nonfinite=self.nonfinite, zeros=self.zeros,
            class_sum=self.class_sum if self.n_classes else None,
            class_count=self.class_count if self.n_classes else None,
            class_n=self.class_n if self.n_classes else None, sample=sample,
        )


def _finalize(*, shape, n, count, mean, m2, vmin, vmax, nonfinite, zeros, class_sum,
              class_count, class_n, sample) -> PixelStats:
    H, W = shape
    has = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(has, np.maximum(m2, 0.0) / np.maximum(count, 1), np.nan)
        mean = np.where(has, mean, np.nan)
        std = np.sqrt(var)
        constant = is_constant(var, mean, count)
        std_safe = np.where(constant, np.nan, std)
        snr = np.abs(mean) / std_safe
        total = count.sum()
        if total == 0:
            raise NormScopeError(
                "every value is NaN or infinite; there is nothing to summarise: check how the "
                "array was computed"
            )
        gmean = float(np.nansum(mean * count) / total)
        gvar = float(np.nansum((var + (mean - gmean) ** 2) * count) / total)
        gstd = float(np.sqrt(max(gvar, 0.0)))
        amplification = gstd / std_safe
        zero_frac = np.where(has, zeros / np.maximum(count, 1), np.nan)
        snr2 = snr.reshape(H, W)
        row_snr = _row_nanmedian(snr2)
        class_means = None
        if class_sum is not None:
            class_means = np.where(class_count > 0, class_sum / np.maximum(class_count, 1), np.nan)
            class_means = class_means.reshape(-1, H, W)
    vmin = np.where(has, vmin, np.nan)
    vmax = np.where(has, vmax, np.nan)
    r = lambda a: np.asarray(a).reshape(H, W)  # noqa: E731
    return PixelStats(
        n=int(n), count=r(count), mean=r(mean), std=r(std), min=r(vmin), max=r(vmax),
        nonfinite=r(nonfinite), zero_frac=r(zero_frac), constant=r(constant), snr=snr2,
        row_snr=row_snr, amplification=r(amplification), global_mean=gmean, global_std=gstd,
        class_means=class_means, class_counts=None if class_n is None else class_n.copy(),
        sample=sample, sample_skewness=_skewness(sample),
    )


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
    """Median of each row's non-NaN values (NaN for a row without any): ``np.nanmedian(a,
    axis=1)`` without its warning, and without the numpy.ma import it makes for small arrays."""
    s = np.sort(a, axis=1)  # NaN sorts last
    k = (~np.isnan(a)).sum(axis=1)
    rows = np.arange(a.shape[0])
    lo, hi = s[rows, np.maximum(k - 1, 0) // 2], s[rows, k // 2 - (k == 0)]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def _skewness(sample: np.ndarray) -> float:
    # Computed once here: a cached property would be lost each time Streamlit copies the stats.
    # Products, not ``** 3``: a float power of a million values costs tens of milliseconds.
    s = sample.astype(np.float64)
    if s.size < 3:
        return 0.0
    d = s - s.mean()
    d2 = d * d
    m2 = d2.mean()
    return 0.0 if m2 == 0 else float((d2 * d).mean() / m2**1.5)


def _chunk_rows(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(row_bytes, 1))


def _advise_sequential(X: np.ndarray) -> None:
    # Tell the kernel we read front to back: bigger read-ahead when the page cache is cold.
    mm = getattr(X, "_mmap", None) or getattr(getattr(X, "base", None), "_mmap", None)
    if mm is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(mmap.MADV_SEQUENTIAL)
        except (OSError, ValueError):
            pass


def compute_stats(
    X: np.ndarray,
    *,
    indices: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    n_classes: int = 0,
    engine: str = "auto",
    chunk_rows: int | None = None,
) -> PixelStats:
    """Per-pixel statistics of ``X[indices]`` in one streaming pass.

    Parameters
    ----------
    X : np.ndarray, shape (N, H, W)
        Any real dtype; may be a memmap (it is read in chunks, never copied whole).
    indices : int array or bool mask of shape (N,), optional
        Examples to summarise (e.g. the training split); default all.  A set: order and
        repeats do not matter.
    labels : int array, shape (N,), optional
        Class of every example in ``X``, for per-class mean maps (needs ``n_classes``).
    n_classes : int
    engine : {"auto", "numpy", "numba"}
        ``auto`` takes numba for arrays of ``NUMBA_MIN_BYTES`` or more, or of
        ``NUMBA_LOADED_MIN_BYTES`` or more once its kernels are loaded; numpy otherwise.
    chunk_rows : int, optional
        Examples per block for the numpy engine (default: about 2 MB of float64).

    Returns
    -------
    PixelStats
    """
    if engine not in ("auto", "numpy", "numba"):
        raise NormScopeError(f"engine={engine!r} is unknown; use auto, numpy or numba")
    if X.ndim != 3:
        raise NormScopeError(f"statistics need an (N, H, W) array, got shape {X.shape}")
    N, H, W = X.shape
    idx = _as_indices(indices, N)
    if labels is None or n_classes <= 0:
        labels, n_classes = None, 0
    else:
        labels = np.asarray(labels)
        if labels.shape != (N,) or labels.dtype.kind not in "iu":
            raise NormScopeError(
                f"labels must be {N} integers (one per example), got shape {labels.shape} "
                f"of type {labels.dtype}"
            )
        lab = labels[idx]
        if lab.min() < 0 or lab.max() >= n_classes:
            raise NormScopeError(
                f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}), found "
                f"{lab.min()}..{lab.max()}; encode them with datasets.encode_labels"
            )
    if engine == "auto":
        nbytes = idx.size * H * W * X.dtype.itemsize
        loaded = _KERNELS is not None and nbytes >= NUMBA_LOADED_MIN_BYTES
        engine = "numba" if (nbytes >= NUMBA_MIN_BYTES or loaded) and _numba_ok(X) else "numpy"
    elif engine == "numba" and not _numba_ok(X):
        raise NormScopeError(
            f"engine='numba' needs a C-contiguous float32 or float64 array, got {X.dtype}; "
            "use engine='auto'"
        )
    _advise_sequential(X)
    if engine == "numba":
        return _numba_stats(X, idx, labels, n_classes)
    if X.dtype.kind in "fiu":
        return _stream_stats(X, idx, labels, n_classes, chunk_rows or _block_rows(H * W))
    rows = chunk_rows or _chunk_rows(H * W * 8)
    acc = StatsAccumulator((H, W), n_classes=n_classes,
                           sample_every=max(1, idx.size * H * W // SAMPLE_VALUES))
    # Consecutive indices are read as slices: a view of the memmap, no fancy-index copy.
    contiguous = idx.size == 0 or idx[-1] - idx[0] + 1 == idx.size
    for start in range(0, idx.size, rows):
        sel = idx[start : start + rows]
        chunk = X[sel[0] : sel[-1] + 1] if contiguous else X[sel]
        acc.partial_fit(chunk, None if labels is None else labels[sel])
    return acc.finalize()


def _as_indices(indices, n: int) -> np.ndarray:
    """Sorted unique int64 example indices from None (all), integers or a boolean mask."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    ind = np.asarray(indices)
    if ind.dtype == bool:
        if ind.shape != (n,):
            raise NormScopeError(f"a boolean example mask must have {n} entries, got {ind.shape}")
        ind = np.flatnonzero(ind)
    elif ind.size and ind.dtype.kind not in "iu":
        raise NormScopeError(f"example indices must be integers, got {ind.dtype}")
    idx = ind.astype(np.int64).ravel()
    if idx.size > 1 and not (idx[1:] > idx[:-1]).all():  # np.unique would import numpy.ma
        idx = np.sort(idx)
        idx = idx[np.concatenate(([True], idx[1:] != idx[:-1]))]
    if idx.size == 0:
        raise NormScopeError("no examples to summarise; the selection is empty")
    if idx[0] < 0 or idx[-1] >= n:
        raise NormScopeError(f"example indices must lie in 0..{n - 1}, got {idx[0]}..{idx[-1]}")
    return idx


# --- the numpy engine: blocks of rows on worker threads, shifted float64 sums, Chan merges ------

#: Rows per block of the numpy engine: about this many bytes as float64, so the float64 copy of
#: a block stays in a core's L2 cache between the few ufuncs that read it (bigger blocks run at
#: half the speed; smaller ones pay the Python call overhead).
BLOCK_F64_BYTES = 2 * 2**20
#: A worker folds its shifted sums into its running moments (Chan's update) and moves the shift
#: to its running mean after about this many bytes of float64 values: sums stay short and
#: centred, so neither round-off nor a drifting mean builds up.
FOLD_BYTES = 16 * 2**20
#: Most worker threads of either engine (memory bandwidth is saturated well before more).
MAX_THREADS = 4
#: Environment variable that fixes the number of worker threads (default: see _n_threads).
THREADS_ENV = "NORMSCOPE_THREADS"


def _block_rows(P: int) -> int:
    return max(1, BLOCK_F64_BYTES // max(8 * P, 1))


class _Stream:
    """One worker of the numpy engine: a running :class:`StatsAccumulator` plus shifted sums.

    A block whose values are all finite (its per-pixel min and max are, which are needed
    anyway) takes the fast way: ``d = x - K`` once in float64 (``K`` the worker's running mean,
    so large offsets cancel before squaring), then the sums of ``d`` and ``d * d``; exact zeros
    are counted only at pixels whose block range holds 0.  A block with a NaN or inf goes
    through :meth:`StatsAccumulator.partial_fit`, which counts them and leaves them out.
    """

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, K: np.ndarray, n_classes: int,
                 block_rows: int):
        P = int(np.prod(shape))
        self.acc = StatsAccumulator(shape, n_classes=n_classes, sample_every=2**62)
        self.K = K.copy()
        self.s1, self.s2, self.tmp = np.zeros(P), np.zeros(P), np.empty(P)
        self.csum = np.zeros((n_classes, P))
        self.crows = np.zeros(n_classes, np.int64)
        self.rows = 0
        self.fold_rows = max(1, FOLD_BYTES // (8 * P))
        self.lo: np.ndarray | None = None  # running min and max in X's dtype
        self.hi: np.ndarray | None = None
        self.d = np.empty((block_rows, P))
        self.grouped = np.empty((block_rows if n_classes else 0, P))
        self.gather = np.empty((block_rows, *shape), dtype)

    def add(self, x: np.ndarray, labels: np.ndarray | None) -> None:
        """Add a block ``x`` of shape (m, P)."""
        m = x.shape[0]
        lo, hi = np.minimum.reduce(x, axis=0), np.maximum.reduce(x, axis=0)
        # min and max propagate NaN and carry inf: the block is finite iff these two are.
        bottom, top = float(lo.min()), float(hi.max())
        if not (math.isfinite(bottom) and math.isfinite(top)):
            self.acc.partial_fit(x.reshape(m, *self.acc.shape), labels)
            return
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            np.minimum(self.lo, lo, out=self.lo)
            np.maximum(self.hi, hi, out=self.hi)
        if bottom <= 0 <= top:  # exact zeros are possible only where a pixel's range holds 0
            cross = (lo <= 0) & (hi >= 0)
            if cross.all():
                self.acc.zeros += np.count_nonzero(x == 0, axis=0)
            elif cross.any():
                self.acc.zeros[cross] += np.count_nonzero(x[:, cross] == 0, axis=0)
        d = self.d[:m]
        np.copyto(d, x)  # a plain cast, then a float64 subtraction: twice as fast as mixed types
        d -= self.K
        if labels is None:
            self.s1 += np.add.reduce(d, axis=0, out=self.tmp)
        else:  # rows grouped by class, one sum per class; their total is the block's sum
            order = np.argsort(labels, kind="stable")
            grouped = np.take(d, order, axis=0, out=self.grouped[:m])
            ordered = labels[order]
            starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
            ends = np.append(starts[1:], m)
            for a, b in zip(starts.tolist(), ends.tolist()):  # reduceat is 5x slower on axis 0
                part = np.add.reduce(grouped[a:b], axis=0, out=self.tmp)
                self.csum[ordered[a]] += part
                self.s1 += part
            self.crows[ordered[starts]] += ends - starts
        np.multiply(d, d, out=d)
        self.s2 += np.add.reduce(d, axis=0, out=self.tmp)
        self.rows += m
        if self.rows >= self.fold_rows:
            self.fold()

    def fold(self) -> None:
        """Merge the shifted sums into the accumulator; the shift moves to the running mean."""
        m, acc = self.rows, self.acc
        if m == 0:
            return
        shift = self.s1 / m
        acc._merge_moments(np.full(self.K.size, m, np.int64), self.K + shift,
                           self.s2 - self.s1 * shift)
        if self.crows.size:
            acc.class_sum += self.csum + self.K * self.crows[:, None]
            acc.class_count += self.crows[:, None]
            acc.class_n += self.crows
            self.csum[:] = 0
            self.crows[:] = 0
        acc.n += m
        self.K = np.where(acc.count > 0, acc.mean, self.K)
        self.s1[:] = 0
        self.s2[:] = 0
        self.rows = 0

    def finish(self) -> StatsAccumulator:
        self.fold()
        if self.lo is not None:
            self.acc.min = np.fmin(self.acc.min, self.lo.astype(np.float64))
            self.acc.max = np.fmax(self.acc.max, self.hi.astype(np.float64))
        return self.acc


def _stream_stats(X: np.ndarray, idx: np.ndarray, labels: np.ndarray | None, n_classes: int,
                  block_rows: int) -> PixelStats:
    """The numpy engine: blocks of ``block_rows`` examples handed out to worker threads on
    demand (numpy's ufuncs release the GIL), each worker a :class:`_Stream`, merged at the end
    with Chan's update.  Rows of a memmapped file are read with ``preadv`` into the worker's
    block buffer; rows of other arrays are a slice (a view) or a gather into it."""
    N, H, W = X.shape
    P = H * W
    n = idx.size
    head = np.asarray(X[idx[: min(8, n)]], dtype=np.float64).reshape(-1, P)
    fin = np.isfinite(head)
    with np.errstate(invalid="ignore", divide="ignore"):
        K = np.where(fin, head, 0.0).sum(0) / fin.sum(0)
    K = np.where(np.isfinite(K), K, 0.0)  # first estimate of the mean: the shift
    blocks = [(lo, min(lo + block_rows, n)) for lo in range(0, n, block_rows)]
    workers = [_Stream((H, W), X.dtype, K, n_classes, block_rows)
               for _ in range(min(_n_threads(), len(blocks)))]
    source = _backing_file(X)
    row_bytes = P * X.dtype.itemsize

    def work(w: _Stream, todo) -> None:
        for lo, hi in todo:
            sel = idx[lo:hi]
            if source is not None:
                x = _pread_rows(source[0], source[1], row_bytes, sel, w.gather[: hi - lo])
            elif sel[-1] - sel[0] == hi - lo - 1:
                x = X[sel[0] : sel[-1] + 1]
            else:
                x = np.take(X, sel, axis=0, out=w.gather[: hi - lo])
            w.add(x.reshape(hi - lo, P), None if labels is None else labels[sel])

    try:
        if len(workers) == 1:
            work(workers[0], blocks)
        else:
            _on_threads(work, workers, blocks)
    finally:
        if source is not None:
            os.close(source[0])
    acc = workers[0].finish()
    for w in workers[1:]:
        acc.merge(w.finish())
    # Sample for the value distribution: evenly spaced examples.
    step = max(1, n * P // SAMPLE_VALUES)
    rows = np.asarray(X[idx[::step]], dtype=np.float32).ravel()
    sample = (rows if not acc.nonfinite.any() else rows[np.isfinite(rows)])[:SAMPLE_VALUES]
    return _finalize(
        shape=(H, W), n=acc.n, count=acc.count, mean=acc.mean, m2=acc.m2, vmin=acc.min,
        vmax=acc.max, nonfinite=acc.nonfinite, zeros=acc.zeros,
        class_sum=acc.class_sum if n_classes else None,
        class_count=acc.class_count if n_classes else None,
        class_n=acc.class_n if n_classes else None, sample=sample,
    )


def _backing_file(X: np.ndarray) -> tuple[int, int] | None:
    """A descriptor open on the file that ``X`` maps, and the file offset of ``X[0]``.

    Only where reading the file gives ``X``'s values: ``X`` a C-contiguous view of a shared
    memmap (not copy-on-write) whose mapping is of that very file (same device and inode in
    /proc/self/maps, so a file replaced since it was opened is never read).  Reading rows with
    ``preadv`` into a block buffer costs a third less than touching a fresh mapping, which
    page-faults every 64 KB.  None elsewhere: the caller then reads through the mapping.
    """
    mm, name = getattr(X, "_mmap", None), getattr(X, "filename", None)
    if (mm is None or name is None or getattr(X, "mode", "c") not in ("r", "r+", "w+")
            or not X.flags.c_contiguous or X.size == 0):
        return None
    try:
        addr = np.frombuffer(mm, np.uint8).ctypes.data  # where the mapping starts
        with open("/proc/self/maps") as fh:
            for line in fh:
                span, _, _, dev, inode = line.split(maxsplit=5)[:5]
                lo, hi = (int(a, 16) for a in span.split("-"))
                if lo <= addr < hi:
                    break
            else:
                return None
        fd = os.open(name, os.O_RDONLY)
    except (OSError, ValueError, TypeError, BufferError):
        return None
    st = os.fstat(fd)
    major, minor = (int(a, 16) for a in dev.split(":"))
    if (int(inode), major, minor) != (st.st_ino, os.major(st.st_dev), os.minor(st.st_dev)):
        os.close(fd)
        return None
    start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY  # the file offset of the mapping
    return fd, X.ctypes.data - addr + start


def _pread_rows(fd: int, pos: int, row_bytes: int, sel: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Read rows ``sel`` (sorted) of the file's array at ``pos`` into ``out``, one ``preadv``
    per run of consecutive rows."""
    m = sel.size
    cuts = (np.flatnonzero(sel[1:] - sel[:-1] != 1) + 1).tolist()
    buf = memoryview(out[:m].reshape(-1).view(np.uint8))
    for a, b in zip([0, *cuts], [*cuts, m]):
        want = (b - a) * row_bytes
        if os.preadv(fd, [buf[a * row_bytes : b * row_bytes]], pos + int(sel[a]) * row_bytes) != want:
            raise NormScopeError("the array file became shorter while it was read; open it again")
    return out[:m]


def _on_threads(work, workers: list, blocks: list) -> None:
    """Run ``work(worker, blocks)`` on one thread per worker, every thread taking the next
    block when it is free: a core that another process keeps busy slows the pass down, it
    never stalls it (a static split across threads waits for the slowest one)."""
    todo = iter(blocks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_blocks():
        while True:
            with lock:
                block = next(todo, None)
            if block is None or errors:
                return
            yield block

    def run(w) -> None:
        try:
            work(w, next_blocks())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers[1:]]
    for t in threads:
        t.start()
    run(workers[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _n_threads() -> int:
    """Worker threads for one pass, between 1 and ``MAX_THREADS``; ``NORMSCOPE_THREADS`` fixes
    it.  One per free core: the cores this process may use (its CPU affinity and its cgroup's
    CPU quota) less those that other processes keep busy right now.  Where no core is free,
    one per core again.

    Measured on 2 cores (the training split of 20,000 x 60 x 130, whole ``stats`` process):
    idle, two threads beat one (0.23 s against 0.28 s); beside one busy process two ran up
    to 10 % slower than one, because the thread that shares its core with the busy process
    is preempted while it holds the GIL (between two ufuncs) and the other waits for it;
    beside two or more, every core is shared anyway and two threads get a larger share than
    one (0.52 s against 0.64 s).
    """
    fixed = os.environ.get(THREADS_ENV, "").strip()
    if fixed:
        try:
            return max(1, int(fixed))
        except ValueError:
            raise NormScopeError(f"{THREADS_ENV}={fixed!r} must be a whole number") from None
    cores = _usable_cores()
    free = cores - _busy_cores()
    return max(1, min(MAX_THREADS, free if free > 0 else cores))


def _busy_cores() -> int:
    """Cores that other processes keep busy now: the tasks runnable at this instant
    (/proc/loadavg's fourth field, which sees a process that started a moment ago, unlike the
    load averages) less this process's own (this thread, and numpy's BLAS threads that spin a
    while after numpy is imported); the least of three looks, so that a task that merely
    passes through does not count (about 2 ms).  Elsewhere the 1-minute load average."""
    try:
        seen = []
        for look in range(3):
            if look:
                time.sleep(0.001)
            with open("/proc/loadavg") as fh:
                total = int(fh.read().split()[3].split("/")[0])
            seen.append(total - _runnable_here())
        return max(0, min(seen))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


def _runnable_here() -> int:
    """Threads of this process that are running or runnable (state R in /proc/self/task)."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                n += fh.read().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            pass  # a thread that ended meanwhile
    return n


def _usable_cores() -> int:
    """Cores this process may run on: its affinity mask, bounded by a cgroup v2 CPU quota
    (``cpu.max``, as containers set it) where one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _numba_ok(X: np.ndarray) -> bool:
    return X.dtype in (np.float32, np.float64) and X.reshape(X.shape[0], -1).flags.c_contiguous


_KERNELS = None
#: Rows handed to a worker at a time: small enough to balance load between threads on a busy
#: machine, large enough that the call overhead (microseconds) does not count.
BLOCK_BYTES = 4 * 2**20


def _get_kernels():
    """Compile (once per machine: numba caches the machine code on disk) the two kernels.

    Each adds rows ``idx[lo:hi]`` of ``X2`` into one worker's accumulators, in place.  ``fast``
    assumes every value is finite and works on four rows at a time, so the per-pixel
    accumulators are loaded and stored once per four values (that, not the float64
    arithmetic, is what bounds a naive loop).  A non-finite value turns its pixel's sums
    non-finite, which the caller sees afterwards and then reruns ``careful``, which checks
    every value.  Serial and ``nogil``: threads are managed in Python, handing out blocks of
    rows on demand, so a core busy with another process slows the pass down but never stalls
    it (a static split across threads waits for the slowest one).
    """
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import numba

    @numba.njit(cache=True, nogil=True)
    def fast(X2, idx, lo, hi, labels, K, n_classes, a1, a2, amn, amx, az, csum):
        P = X2.shape[1]
        j = lo
        while j < hi:
            if j + 4 <= hi:
                r0 = X2[idx[j]]
                r1 = X2[idx[j + 1]]
                r2 = X2[idx[j + 2]]
                r3 = X2[idx[j + 3]]
                for p in range(P):
                    k = K[p]
                    x0 = r0[p]
                    x1 = r1[p]
                    x2 = r2[p]
                    x3 = r3[p]
                    d0 = np.float64(x0) - k
                    d1 = np.float64(x1) - k
                    d2 = np.float64(x2) - k
                    d3 = np.float64(x3) - k
                    a1[p] += (d0 + d1) + (d2 + d3)
                    a2[p] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                    l01 = x0 if x0 < x1 else x1
                    l23 = x2 if x2 < x3 else x3
                    l4 = l01 if l01 < l23 else l23
                    amn[p] = l4 if l4 < amn[p] else amn[p]
                    h01 = x0 if x0 > x1 else x1
                    h23 = x2 if x2 > x3 else x3
                    h4 = h01 if h01 > h23 else h23
                    amx[p] = h4 if h4 > amx[p] else amx[p]
                    az[p] += (np.int32(x0 == 0) + np.int32(x1 == 0)
                              + np.int32(x2 == 0) + np.int32(x3 == 0))
                step = 4
            else:
                r0 = X2[idx[j]]
                for p in range(P):
                    x0 = r0[p]
                    d0 = np.float64(x0) - K[p]
                    a1[p] += d0
                    a2[p] += d0 * d0
                    amn[p] = x0 if x0 < amn[p] else amn[p]
                    amx[p] = x0 if x0 > amx[p] else amx[p]
                    az[p] += np.int32(x0 == 0)
                step = 1
            if n_classes > 0:
                # Separate loop: rows of one block may share a class (aliasing sums).
                for q in range(j, j + step):
                    row = X2[idx[q]]
                    cs = csum[labels[q]]
                    for p in range(P):
                        cs[p] += np.float64(row[p]) - K[p]
            j += step

    @numba.njit(cache=True, nogil=True)
    def careful(X2, idx, lo, hi, labels, K, n_classes, a1, a2, amn, amx, az, csum, cnt, ccnt):
        P = X2.shape[1]
        for j in range(lo, hi):
            row = X2[idx[j]]
            c = labels[j] if n_classes > 0 else 0
            for p in range(P):
                x = row[p]
                v = np.float64(x)
                if np.isfinite(v):
                    d = v - K[p]
                    a1[p] += d
                    a2[p] += d * d
                    amn[p] = min(amn[p], x)
                    amx[p] = max(amx[p], x)
                    az[p] += np.int32(x == 0)
                    cnt[p] += 1
                    if n_classes > 0:
                        csum[c, p] += d
                        ccnt[c, p] += 1

    _KERNELS = (fast, careful)
    return _KERNELS


def _run_blocks(kernel, X2, idx, lab, K, n_classes, n_acc: int) -> list[list[np.ndarray]]:
    """Run ``kernel`` over all rows in blocks on worker threads; per-worker accumulators."""
    P = X2.shape[1]
    C = max(n_classes, 1)
    n = idx.size
    rows = max(4, (BLOCK_BYTES // max(P * X2.dtype.itemsize, 1)) // 4 * 4)
    blocks = [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
    n_workers = min(_n_threads(), len(blocks))

    def new_acc():
        # int32 zero counts: a worker sees fewer than 2**31 rows.
        acc = [np.zeros(P), np.zeros(P), np.full(P, np.inf, X2.dtype),
               np.full(P, -np.inf, X2.dtype), np.zeros(P, np.int32), np.zeros((C, P))]
        if n_acc > len(acc):
            acc += [np.zeros(P, np.int64), np.zeros((C, P), np.int64)]
        return acc

    accs = [new_acc() for _ in range(n_workers)]

    def work(acc, todo):
        for lo, hi in todo:
            kernel(X2, idx, lo, hi, lab, K, n_classes, *acc)

    if n_workers == 1:
        work(accs[0], blocks)
    else:
        _on_threads(work, accs, blocks)
    return accs


def _numba_stats(X: np.ndarray, idx: np.ndarray, labels, n_classes: int) -> PixelStats:
    N, H, W = X.shape
    # A plain, read-only ndarray view: one compiled signature per dtype whatever X is
    # (memmap or not, writeable or not), so the disk cache is hit.
    X2 = np.asarray(X).reshape(N, H * W).view()
    X2.flags.writeable = False
    # Shift by an estimate of the mean (a few rows suffice) so that large offsets cancel
    # before squaring.
    head = np.asarray(X2[idx[: min(8, idx.size)]], dtype=np.float64)
    fin = np.isfinite(head)
    with np.errstate(invalid="ignore", divide="ignore"):
        K = np.where(fin, head, 0.0).sum(0) / fin.sum(0)
    K = np.where(np.isfinite(K), K, 0.0)
    lab = np.zeros(idx.size, np.int64) if not n_classes else np.asarray(labels)[idx].astype(np.int64)
    fast, careful = _get_kernels()
    accs = _run_blocks(fast, X2, idx, lab, K, n_classes, 6)
    s1, s2 = sum(a[0] for a in accs), sum(a[1] for a in accs)
    class_n = np.bincount(lab, minlength=n_classes).astype(np.int64) if n_classes else None
    all_finite = bool(np.isfinite(s1).all() and np.isfinite(s2).all())
    if all_finite:
        cnt = np.full(H * W, idx.size, np.int64)
        class_count = None if not n_classes else np.repeat(class_n[:, None], H * W, axis=1)
    else:  # some value is NaN or inf: count them per pixel and leave them out
        accs = _run_blocks(careful, X2, idx, lab, K, n_classes, 8)
        s1, s2 = sum(a[0] for a in accs), sum(a[1] for a in accs)
        cnt = sum(a[6] for a in accs)
        class_count = sum(a[7] for a in accs) if n_classes else None
    mn = np.min([a[2] for a in accs], axis=0).astype(np.float64)
    mx = np.max([a[3] for a in accs], axis=0).astype(np.float64)
    zer = sum(a[4].astype(np.int64) for a in accs)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        mean = K + d
        m2 = s2 - s1 * d
    class_sum = None
    if n_classes:
        class_sum = sum(a[5] for a in accs) + K[None, :] * class_count
    # Sample for the value distribution: evenly spaced examples.
    step = max(1, idx.size * H * W // SAMPLE_VALUES)
    rows = np.asarray(X2[idx[::step]], dtype=np.float32).ravel()
    sample = (rows if all_finite else rows[np.isfinite(rows)])[:SAMPLE_VALUES]
    return _finalize(
        shape=(H, W), n=idx.size, count=cnt, mean=mean, m2=m2, vmin=mn, vmax=mx,
        nonfinite=idx.size - cnt, zeros=zer, class_sum=class_sum,
        class_count=class_count, class_n=class_n, sample=sample,
    )


def row_mask(
    row_snr: np.ndarray,
    *,
    threshold: float = 0.0,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rows to hold out: row SNR under ``threshold`` (or undefined), plus a manual range.

    Parameters
    ----------
    row_snr : float array, shape (H,)
    threshold : float
        Rows whose SNR is below it are masked; 0 masks nothing by SNR.  Rows whose SNR is
        undefined (every pixel constant) are masked whenever ``threshold > 0``.
    rows : (first, last), optional
        An inclusive range of rows to mask as well.

    Returns
    -------
    bool array, shape (H,)
        True = masked.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise NormScopeError(f"mask threshold {threshold} must be a finite number >= 0")
    mask = np.zeros(row_snr.shape, bool)
    if threshold > 0:
        with np.errstate(invalid="ignore"):
            mask |= ~(row_snr >= threshold)
    if rows is not None:
        lo, hi = int(rows[0]), int(rows[1])
        if lo > hi or lo < 0 or hi >= row_snr.size:
            raise NormScopeError(
                f"row range {lo}-{hi} is outside 0-{row_snr.size - 1} or reversed"
            )
        mask[lo : hi + 1] = True
    return mask


def energy_share(stats: PixelStats, mask: np.ndarray) -> float:
    """Share of the signal energy (sum of |per-pixel mean|) held by the masked rows."""
    e = np.nansum(np.abs(stats.mean), axis=1)
    total = e.sum()
    return 0.0 if total == 0 else float(e[mask].sum() / total)


def format_share(share: float) -> str:
    """A share as a percentage that never rounds a real share to "0.0%" (or up to "100.0%")."""
    if not np.isfinite(share):
        return "n/a"
    if share <= 0:
        return "0%"
    if share < 0.0001:
        return "<0.01%"
    if share < 0.01:
        return f"{share:.2%}"
    if share < 1 and share > 0.999:
        return ">99.9%"
    return f"{share:.1%}"


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
    rows = chunk_rows or _chunk_rows(H * W * 8)
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
