"""The float64 accumulator both engines fold into, and what a pass produces: :class:`PixelStats`.

Constant pixels (std effectively zero, decided relative to float eps like scikit-learn's
``_is_constant_feature``) are flagged and get NaN SNR and amplification, never a division by
zero; non-finite values are counted per pixel and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diagnostics.errors import NormScopeError

#: Values kept (per pass) to estimate the value distribution's shape (skewness, quantiles).
SAMPLE_VALUES = 1_000_000

# --- powers of two per pixel: float64 data from 1e-300 to 1e300 -------------------------------
# Moments are kept in units of 2**exp per pixel (exact: multiplying by a power of two only
# moves the exponent), so squares of values near 1e300 do not overflow and squares of
# differences near 1e-300 do not underflow.  Where no pixel needs it, every exp is 0 and the
# arithmetic is the plain one.
#: Pixels whose largest |value| lies within 2**±SCALE_BAND keep exp 0: a sum of 2**63 squares
#: of such values stays below 2**575, a square of a difference of such values (down to
#: 2**-SCALE_BAND * eps) above 2**-620, both far from float64's limits (2**±1022).
SCALE_BAND = 256
#: A pass at fixed exponents is exact while each pixel's largest |value| lies within
#: 2**±SCALE_SLACK of its unit (see :func:`scale_fits`); the engines pass again otherwise.
SCALE_SLACK = 384
#: Exponents stay within ±1000, so that 2**-exp is a normal float64 (subnormal data, below
#: 2**-1022, is still scaled up far enough).
SCALE_LIMIT = 1000


def scale_exponents(amax: np.ndarray) -> np.ndarray:
    """Per-pixel power-of-two exponents for values whose largest magnitude is ``amax``.

    0 where ``amax`` lies within ``2**±SCALE_BAND`` (or is 0, NaN or inf), else the exponent
    of ``amax`` (``amax < 2**exp``), clipped to ``±SCALE_LIMIT``: int64 array.
    """
    a = np.asarray(amax, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        _, e = np.frexp(np.where(np.isfinite(a), a, 0.0))
        e = e.astype(np.int64)
        return np.where((a > 0) & (np.abs(e) > SCALE_BAND),
                        np.clip(e, -SCALE_LIMIT, SCALE_LIMIT), 0)


def magnitude(vmin: np.ndarray, vmax: np.ndarray) -> np.ndarray:
    """Largest finite |value| per pixel from its minimum and maximum (0 where none)."""
    with np.errstate(invalid="ignore"):
        a = np.fmax(np.abs(np.asarray(vmin, np.float64)), np.abs(np.asarray(vmax, np.float64)))
    return np.where(np.isfinite(a), a, 0.0)


def scale_fits(exp: np.ndarray, vmin: np.ndarray, vmax: np.ndarray) -> bool:
    """Whether moments summed in units of ``2**exp`` are exact for values in ``[vmin, vmax]``
    (every pixel's largest |value| within ``2**±SCALE_SLACK`` of its unit, or 0)."""
    a = magnitude(vmin, vmax)
    _, e = np.frexp(a)
    return bool(np.all((a == 0) | (np.abs(e.astype(np.int64) - exp) <= SCALE_SLACK)))


def sample_values(rows: np.ndarray) -> np.ndarray:
    """Sampled values as float32, or as float64 where float32 would change them: beyond
    float32's range (inf) or below its smallest normal (0 or lost digits)."""
    if rows.dtype.itemsize <= 4 and rows.dtype.kind in "fiub":
        return np.asarray(rows, np.float32)
    x = np.asarray(rows, np.float64)
    with np.errstate(invalid="ignore"):
        a = np.abs(x[np.isfinite(x) & (x != 0)])
    f32 = np.finfo(np.float32)
    if a.size and (a.max() > f32.max or a.min() < f32.tiny):
        return x
    return x.astype(np.float32)



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

    The mean is kept relative to a per-pixel ``origin`` (the first values' mean): Chan's
    update takes differences of means, and absolute means near 1e4 with a spread of 1e-2
    keep ~8 digits of them (~1e-11 in the std after a few hundred merges); relative to one
    origin, shared by the accumulators of a pass, they are exact to round-off (~1e-15).

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
        # mean, m2 and class_sum are in units of 2**exp (per pixel; see scale_exponents).
        self.exp = np.zeros(p, np.int64)
        self.origin = np.zeros(p)  # the mean is origin + mean (both in units of 2**exp)
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
        if all_finite:
            cmin, cmax = x.min(0), x.max(0)
        else:
            cmin = np.min(np.where(finite, x, np.inf), 0)
            cmax = np.max(np.where(finite, x, -np.inf), 0)
        self.min = np.fmin(self.min, cmin)
        self.max = np.fmax(self.max, cmax)
        self.nonfinite += m - cnt
        self.zeros += (x == 0).sum(0)
        self._take_sample(x, finite if not all_finite else None)
        # Values beyond 2**±SCALE_BAND: moments in units of a power of two per pixel.
        if self._align(scale_exponents(magnitude(cmin, cmax)), cnt) is not None:
            with np.errstate(under="ignore"):
                x = np.ldexp(x, -self.exp)  # this chunk in the accumulator's units
        with np.errstate(invalid="ignore", divide="ignore"):
            if all_finite:
                mean_x = x.mean(0)
            else:
                mean_x = np.where(cnt > 0, np.nansum(x, 0) / np.maximum(cnt, 1), 0.0)
            self._adopt(mean_x)
            d = x - self.origin  # exact where values lie near the origin (Sterbenz)
            if all_finite:
                cmean = d.mean(0)
                d -= cmean  # two-pass within the chunk, in place: d is ours
                cm2 = np.einsum("ij,ij->j", d, d)
            else:
                cmean = np.where(cnt > 0, np.nansum(d, 0) / np.maximum(cnt, 1), 0.0)
                cm2 = np.nansum((d - cmean) ** 2, 0)
        self._merge_moments(cnt, cmean, cm2)
        if self.n_classes and labels is not None:
            xz = x if all_finite else np.where(finite, x, 0.0)
            for c in np.flatnonzero(np.bincount(labels)):
                rows = labels == c
                self.class_sum[c] += xz[rows].sum(0)
                self.class_count[c] += finite[rows].sum(0) if not all_finite else rows.sum()
                self.class_n[c] += int(rows.sum())
        self.n += m
        return self

    def _align(self, exp_b: np.ndarray, count_b: np.ndarray) -> np.ndarray | None:
        """Bring this accumulator to the units that also fit moments in units of ``2**exp_b``
        (of ``count_b`` values per pixel): the larger exponent where both hold values (the
        smaller values' part then lies far below the larger's round-off), the one that holds
        values elsewhere.  Returns the shift ``exp_b - new`` (for ``np.ldexp``) of the incoming
        moments, or None when every exponent is 0 (nothing to do)."""
        if not (exp_b.any() or self.exp.any()):
            return None
        ea = self.exp
        new = np.where(self.count > 0, np.where(count_b > 0, np.maximum(ea, exp_b), ea), exp_b)
        if (new != ea).any():
            d = ea - new
            with np.errstate(under="ignore"):
                self.origin = np.ldexp(self.origin, d)
                self.mean = np.ldexp(self.mean, d)
                self.m2 = np.ldexp(self.m2, 2 * d)
                if self.n_classes:
                    self.class_sum = np.ldexp(self.class_sum, d[None, :])
            self.exp = new
        return exp_b - new

    def add_moments(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray,
                    exp: np.ndarray | None = None,
                    origin: np.ndarray | None = None) -> "StatsAccumulator":
        """Fold in the moments of other values: ``count``, ``mean`` (their mean is ``origin
        + mean``, origin default 0) and ``m2`` per pixel, in units of ``2**exp`` (default this
        accumulator's); counts only, not ``n``."""
        origin = np.zeros_like(mean) if origin is None else origin
        if exp is not None:
            shift = self._align(exp, count)
            if shift is not None and shift.any():
                with np.errstate(under="ignore"):
                    mean, m2 = np.ldexp(mean, shift), np.ldexp(m2, 2 * shift)
                    origin = np.ldexp(origin, shift)
        self._merge_moments(count, self._relative(origin, mean), m2)
        return self

    def _adopt(self, origin: np.ndarray) -> None:
        """Pixels without values yet take ``origin`` (this accumulator's units) as theirs."""
        empty = self.count == 0
        if empty.any():
            self.origin = np.where(empty, np.where(np.isfinite(origin), origin, 0.0), self.origin)
            self.mean = np.where(empty, 0.0, self.mean)

    def _relative(self, origin: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """``origin + mean`` relative to this accumulator's origin (adopted where it has no
        values yet); the difference of two origins of one pass is 0, of nearby ones exact."""
        self._adopt(origin)
        with np.errstate(invalid="ignore"):
            return (origin - self.origin) + mean

    def _take_sample(self, x: np.ndarray, finite: np.ndarray | None) -> None:
        start = (-self._sampled) % self.sample_every
        rows = x[start :: self.sample_every]
        self._sampled += x.shape[0]
        if not len(rows) or sum(len(s) for s in self._samples) >= SAMPLE_VALUES:
            return
        vals = rows.ravel() if finite is None else rows[finite[start :: self.sample_every]]
        self._samples.append(sample_values(vals))

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
        shift = self._align(other.exp, other.count)
        origin, mean, m2, class_sum = other.origin, other.mean, other.m2, other.class_sum
        if shift is not None and shift.any():
            with np.errstate(under="ignore"):
                origin, mean = np.ldexp(origin, shift), np.ldexp(mean, shift)
                m2 = np.ldexp(m2, 2 * shift)
                class_sum = np.ldexp(class_sum, shift[None, :])
        self._merge_moments(other.count, self._relative(origin, mean), m2)
        self.min = np.fmin(self.min, other.min)
        self.max = np.fmax(self.max, other.max)
        self.nonfinite += other.nonfinite
        self.zeros += other.zeros
        self.class_sum += class_sum
        self.class_count += other.class_count
        self.class_n += other.class_n
        self._samples.extend(other._samples)
        self.n += other.n
        return self

    @property
    def full_mean(self) -> np.ndarray:
        """The running mean itself (``origin + mean``), in units of ``2**exp``."""
        return self.origin + self.mean

    def finalize(self) -> PixelStats:
        """Turn the running moments into a :class:`PixelStats`."""
        if self.n == 0:
            raise NormScopeError("no examples to summarise; the selection is empty")
        sample = np.concatenate(self._samples)[:SAMPLE_VALUES] if self._samples else np.zeros(0, np.float32)
        return finalize(
            shape=self.shape, n=self.n, count=self.count, mean=self.full_mean, m2=self.m2,
            vmin=self.min, vmax=self.max, nonfinite=self.nonfinite, zeros=self.zeros,
            class_sum=self.class_sum if self.n_classes else None,
            class_count=self.class_count if self.n_classes else None,
            class_n=self.class_n if self.n_classes else None, sample=sample, exp=self.exp,
        )


def finalize(*, shape, n, count, mean, m2, vmin, vmax, nonfinite, zeros, class_sum,
              class_count, class_n, sample, exp=None) -> PixelStats:
    """PixelStats from the merged moments; ``mean``, ``m2`` and ``class_sum`` in units of
    ``2**exp`` per pixel (default 1): every ratio (SNR, the constant rule) is taken in those
    units, and only the results people read are scaled back."""
    H, W = shape
    has = count > 0
    exp = np.zeros(count.shape, np.int64) if exp is None else np.asarray(exp, np.int64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        var_u = np.where(has, np.maximum(m2, 0.0) / np.maximum(count, 1), np.nan)
        mean_u = np.where(has, mean, np.nan)
        std_u = np.sqrt(var_u)
        constant = is_constant(var_u, mean_u, count)  # scale-free: in the pixel's own units
        std_safe = np.where(constant, np.nan, std_u)
        snr = np.abs(mean_u) / std_safe
        total = count.sum()
        if total == 0:
            raise NormScopeError(
                "every value is NaN or infinite; there is nothing to summarise: check how the "
                "array was computed"
            )
        # Over all pixels: in the units of the largest exponent (smaller pixels' parts then
        # lie below its round-off).
        g = int(exp[has].max()) if has.any() else 0
        mean_g, var_g = np.ldexp(mean_u, exp - g), np.ldexp(var_u, 2 * (exp - g))
        gmean_g = float(np.nansum(mean_g * count) / total)
        gvar_g = float(np.nansum((var_g + (mean_g - gmean_g) ** 2) * count) / total)
        gstd_g = float(np.sqrt(max(gvar_g, 0.0)))
        gmean, gstd = float(np.ldexp(gmean_g, g)), float(np.ldexp(gstd_g, g))
        amplification = np.ldexp(gstd_g / std_safe, g - exp)
        mean, std = np.ldexp(mean_u, exp), np.ldexp(std_u, exp)
        zero_frac = np.where(has, zeros / np.maximum(count, 1), np.nan)
        snr2 = snr.reshape(H, W)
        row_snr = row_nanmedian(snr2)
        class_means = None
        if class_sum is not None:
            class_means = np.where(class_count > 0, class_sum / np.maximum(class_count, 1), np.nan)
            class_means = np.ldexp(class_means, exp[None, :]).reshape(-1, H, W)
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
    top = float(np.max(np.abs(s)))
    if top > 0 and math.isfinite(top):  # skewness is scale-free: keep cubes of 1e300 finite
        s = np.ldexp(s, -math.frexp(top)[1])
    d = s - s.mean()
    d2 = d * d
    m2 = d2.mean()
    return 0.0 if m2 == 0 else float((d2 * d).mean() / m2**1.5)


