"""The float64 accumulator both engines fold into, and what a pass produces: :class:`PixelStats`.

Constant pixels (std effectively zero, decided relative to float eps like scikit-learn's
``_is_constant_feature``) are flagged and get NaN SNR and amplification, never a division by
zero; non-finite values are counted per pixel and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diagnostics.errors import NormScopeError

#: Values kept (per pass) to estimate the value distribution's shape (skewness, quantiles).
SAMPLE_VALUES = 1_000_000



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
        Class information per row (see :func:`~diagnostics.stats.bands.band_information`); filled by
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
    band_info: object = None  # bands.BandInformation when labels were given, else None

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
        return finalize(
            shape=self.shape, n=self.n, count=self.count, mean=self.mean, m2=self.m2,
            vmin=self.min, vmax=self.max, nonfinite=self.nonfinite, zeros=self.zeros,
            class_sum=self.class_sum if self.n_classes else None,
            class_count=self.class_count if self.n_classes else None,
            class_n=self.class_n if self.n_classes else None, sample=sample,
        )


def finalize(*, shape, n, count, mean, m2, vmin, vmax, nonfinite, zeros, class_sum,
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
        row_snr = row_nanmedian(snr2)
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
        sample=sample, sample_skewness=skewness(sample),
    )


def row_nanmedian(a: np.ndarray) -> np.ndarray:
    """Median of each row's non-NaN values (NaN for a row without any): ``np.nanmedian(a,
    axis=1)`` without its warning, and without the numpy.ma import it makes for small arrays."""
    s = np.sort(a, axis=1)  # NaN sorts last
    k = (~np.isnan(a)).sum(axis=1)
    rows = np.arange(a.shape[0])
    lo, hi = s[rows, np.maximum(k - 1, 0) // 2], s[rows, k // 2 - (k == 0)]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def skewness(sample: np.ndarray) -> float:
    # Computed once here: a cached property would be lost each time Streamlit copies the stats.
    # Products, not ``** 3``: a float power of a million values costs tens of milliseconds.
    s = sample.astype(np.float64)
    if s.size < 3:
        return 0.0
    d = s - s.mean()
    d2 = d * d
    m2 = d2.mean()
    return 0.0 if m2 == 0 else float((d2 * d).mean() / m2**1.5)


