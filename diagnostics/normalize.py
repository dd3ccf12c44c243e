"""Input normalizations with names that compose, fitted on the training split only.

A configuration name reads ``[compression+]scaler[@mask]``:

* compression (optional): ``log1p`` (``sign(x) * log1p(|x|)``, which is ``log1p`` for
  non-negative power), ``db`` (librosa's ``power_to_db`` conventions: ``ref=1.0``,
  ``amin=1e-10``, ``top_db=80`` relative to each example's maximum, as calling
  ``librosa.power_to_db`` on each clip does) or ``pcen`` (``librosa.pcen`` of
  ``sqrt(x) * 2**31`` along time, parameters ``pcen:gain=..:bias=..:power=..:t=..:eps=..``; see
  :mod:`diagnostics.transforms`).  A compression alone (``pcen``, ``db``) means ``+none``;
* scaler: ``none``, ``global`` (one mean and std), ``per_pixel`` (the z-score of every pixel
  over the examples, scikit-learn's ``StandardScaler`` on flattened data), ``per_row`` (one
  mean and std per row, i.e. per frequency band, over examples and frames), ``minmax`` and
  ``robust`` (per pixel, as scikit-learn's ``MinMaxScaler`` and ``RobustScaler`` on
  flattened data: range to [0, 1], and median / interquartile range), ``instance`` (each
  example's own z-score: nothing fitted), ``instance_row`` (each row of each example z-scored
  over its frames: nothing fitted) and ``shrink`` (per-pixel z-score whose variance is shrunk
  toward the band's, weight ``shrink:w=0.5``);
* ``@mask`` (optional): drop the rows whose row SNR on the training split (of the input as
  given, before any compression: the SNR the Statistics page shows) is under ``mask_snr``.

Examples: ``none``, ``per_pixel``, ``per_pixel@mask``, ``db+per_row``, ``log1p+global@mask``,
``pcen``, ``pcen:t=0.06+per_row@mask``, ``db+instance_row``, ``shrink:w=0.25``.

Compression is for non-negative power: on data with negative values (MFCCs, logmel in dB)
``db`` would floor every negative value at the same level, and ``log1p`` would take a second
log of log-domain values.  :func:`check_configs_for` (data or :class:`PixelStats`) and
:meth:`Normalizer.fit` refuse it with one sentence; :func:`valid_config_names` lists what a
dataset can take.

:class:`Normalizer` follows scikit-learn: ``__init__`` stores parameters, ``fit`` streams the
training examples in chunks (float64 moments from :mod:`diagnostics.stats`), learned state
ends in ``_``, ``transform`` returns float32.  Constant pixels (std zero relative to float
eps, scikit-learn's ``_is_constant_feature``) get scale 1; so do ranges and interquartile
ranges under ten float eps of the dtype scikit-learn holds them in, as its
``_handle_zeros_in_scale`` does for ``MinMaxScaler`` and ``RobustScaler``.  Nothing divides by
zero and nothing non-finite comes out.  ``indices`` are a multiset: a repeated index counts as
often as it is listed, as ``X[indices]`` does.

Over 450 lines on purpose: the config grammar, the checks of a config against the data and
the Normalizer that applies it are one contract (tested together against scikit-learn).
"""

from __future__ import annotations

import math

import warnings
from dataclasses import dataclass

import numpy as np

from .errors import NormScopeError
from diagnostics import transforms
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.stats.accumulate import PixelStats, StatsAccumulator, is_constant
from diagnostics.stats.moments import CHUNK_BYTES, row_mask

COMPRESSIONS = ("log1p", "db", "pcen")
SCALERS = ("none", "global", "per_pixel", "per_row", "minmax", "robust", "instance",
           "instance_row", "shrink")
#: Scalers with nothing fitted: each example is standardized by its own moments.
INSTANCE_SCALERS = ("instance", "instance_row")
MASK_SUFFIX = "mask"
#: librosa.power_to_db defaults: power floor, reference power and dynamic range (dB).
DB_AMIN = 1e-10
DB_REF = 1.0
DB_TOP = 80.0
#: Quantiles of the robust scaler (scikit-learn's default quantile_range).
ROBUST_QUANTILES = (25.0, 75.0)
#: Largest training-split slice (bytes of float64) gathered at once for the robust scaler's
#: per-pixel quantiles; bigger splits are processed in column blocks.
ROBUST_BLOCK_BYTES = 256 * 2**20
_F32_MAX = float(np.finfo(np.float32).max)


def valid_parts() -> str:
    """One line naming every valid part of a configuration name."""
    return (
        f"scalers {', '.join(SCALERS)}; optional prefix "
        f"{', '.join(c + '+' for c in COMPRESSIONS)} (alone: +none); optional suffix "
        f"@{MASK_SUFFIX}; parameters after colons, {transforms.param_help()} (e.g. db+per_row, "
        "per_pixel@mask, pcen:t=0.06+per_row)"
    )


@dataclass(frozen=True)
class Config:
    """A parsed configuration name.

    Attributes
    ----------
    scaler : str
        One of :data:`SCALERS`.
    compress : str or None
        One of :data:`COMPRESSIONS`, or None.
    mask : bool
        Drop low-SNR rows.
    compress_params, scaler_params : tuple of (key, value)
        Parameters that differ from the defaults (``pcen``'s, ``shrink``'s), in canonical
        order; :meth:`compress_kwargs` / :meth:`scaler_kwargs` fill in the defaults.
    """

    scaler: str
    compress: str | None = None
    mask: bool = False
    compress_params: tuple[tuple[str, float], ...] = ()
    scaler_params: tuple[tuple[str, float], ...] = ()

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``db+per_row@mask`` or ``pcen:t=0.06+none``."""
        head = (transforms.format_part(self.compress, self.compress_params) + "+"
                if self.compress else "")
        return (f"{head}{transforms.format_part(self.scaler, self.scaler_params)}"
                f"{'@' + MASK_SUFFIX if self.mask else ''}")

    def compress_kwargs(self) -> dict[str, float]:
        """Every parameter of the compression, defaults filled in (empty without any)."""
        return transforms.param_values(self.compress or "", self.compress_params)

    def scaler_kwargs(self) -> dict[str, float]:
        """Every parameter of the scaler, defaults filled in (empty without any)."""
        return transforms.param_values(self.scaler, self.scaler_params)

    def __str__(self) -> str:
        return self.name


def parse_config(name: str) -> Config:
    """Parse ``[compression+]scaler[@mask]`` (parts may carry ``:key=value`` parameters; a
    compression alone means ``compression+none``).

    Raises
    ------
    NormScopeError
        When the name does not parse; the message lists the valid parts.
    """
    if isinstance(name, Config):
        return name
    text = str(name).strip().lower()
    body, mask = text, False
    if "@" in text:
        body, _, suffix = text.partition("@")
        if suffix != MASK_SUFFIX:
            raise NormScopeError(
                f"configuration {name!r} has an unknown suffix @{suffix}; valid parts: "
                f"{valid_parts()}"
            )
        mask = True
    compress, c_params = None, ()
    if "+" not in body and body.partition(":")[0] in COMPRESSIONS:
        body = f"{body}+none"  # a compression alone: nothing scaled after it
    if "+" in body:
        compress, _, body = body.partition("+")
        if compress.partition(":")[0] not in COMPRESSIONS:
            raise NormScopeError(
                f"configuration {name!r} has an unknown compression "
                f"{compress.partition(':')[0]!r}; valid parts: {valid_parts()}"
            )
        compress, c_params = transforms.parse_part(compress, str(name))
    if body.partition(":")[0] not in SCALERS:
        raise NormScopeError(
            f"configuration {name!r} has an unknown scaler {body.partition(':')[0]!r}; valid "
            f"parts: {valid_parts()}"
        )
    body, s_params = transforms.parse_part(body, str(name))
    return Config(scaler=body, compress=compress, mask=mask, compress_params=c_params,
                  scaler_params=s_params)


def all_config_names() -> list[str]:
    """Every configuration name the grammar allows, canonical, in a fixed order.

    No compression, then each of :data:`COMPRESSIONS`, times each of :data:`SCALERS`; all of
    those without ``@mask`` first, then with it (4 x 9 x 2 = 72 names), parameters at their
    defaults.
    """
    heads = [""] + [f"{c}+" for c in COMPRESSIONS]
    return [f"{h}{s}{m}" for m in ("", f"@{MASK_SUFFIX}") for h in heads for s in SCALERS]


def parse_configs(text: str | list[str] | tuple[str, ...]) -> list[Config]:
    """Parse a comma-separated list (or a sequence) of names; duplicates are an error."""
    names = [s for s in (text.split(",") if isinstance(text, str) else text)]
    names = [str(s).strip() for s in names if str(s).strip()]
    if not names:
        raise NormScopeError(f"no configuration given; name at least one: {valid_parts()}")
    configs = [parse_config(s) for s in names]
    seen: set[str] = set()
    for c in configs:
        if c.name in seen:
            raise NormScopeError(f"configuration {c.name} is listed twice; list each once")
        seen.add(c.name)
    return configs


@dataclass(frozen=True)
class NegativeValues:
    """How many finite values of a dataset are negative.

    Attributes
    ----------
    count : int
        Negative finite values: exact, or estimated from the statistics' value sample (then at
        least the number of pixels whose minimum is negative), see ``exact``.
    total : int
        Finite values considered.
    min : float
        The smallest finite value (NaN without any).
    exact : bool
        Whether ``count`` was counted on the data itself.
    """

    count: int
    total: int
    min: float
    exact: bool

    def describe(self, what: str = "values") -> str:
        """E.g. ``"5,200 of 10,400 values (50%) are negative (down to -69.02)"``."""
        share = self.count / max(self.total, 1)
        pct = f"{share:.0%}" if share >= 0.01 else "under 1%"
        head = (f"{self.count:,} of {self.total:,} {what} ({pct})" if self.exact
                else f"{'about ' if share >= 0.01 else ''}{pct} of the {self.total:,} {what}")
        return f"{head} {'is' if self.exact and self.count == 1 else 'are'} negative " \
               f"(down to {self.min:.4g})"


def negative_values(source: PixelStats | np.ndarray, *,
                    indices: np.ndarray | None = None) -> NegativeValues:
    """Count the negative finite values of a dataset, or estimate them from its statistics.

    Parameters
    ----------
    source : PixelStats or np.ndarray, shape (N, H, W)
        Statistics (estimate from their value sample and per-pixel minima; no pass over the
        data) or the examples themselves (exact count, read in chunks; may be a memmap).
    indices : int array, optional
        With an array: the examples to count (a set; default all).
    """
    if isinstance(source, PixelStats):
        fin = np.isfinite(source.min)
        lo = float(np.min(source.min[fin])) if fin.any() else float("nan")
        total = int(source.count.sum())
        if not lo < 0:
            return NegativeValues(0, total, lo, exact=False)
        sample = source.sample
        share = float(np.mean(sample < 0)) if sample.size else 0.0
        at_least = int((source.min[fin] < 0).sum())  # each such pixel holds one at least
        return NegativeValues(max(int(round(share * total)), at_least), total, lo, exact=False)
    X = source
    if X.ndim != 3:
        raise NormScopeError(f"counting values needs an (N, H, W) array, got shape {X.shape}")
    N, H, W = X.shape
    idx = np.arange(N) if indices is None else np.unique(np.asarray(indices, np.int64))
    rows = max(1, CHUNK_BYTES // max(H * W * X.dtype.itemsize, 1))
    count = total = 0
    lo = np.inf
    for start in range(0, idx.size, rows):
        sel = idx[start : start + rows]
        chunk = np.asarray(X[sel[0] : sel[-1] + 1] if sel[-1] - sel[0] + 1 == sel.size else X[sel])
        finite = np.isfinite(chunk)
        count += int(np.count_nonzero((chunk < 0) & finite))
        total += int(np.count_nonzero(finite))
        if finite.any():
            lo = min(lo, float(np.min(chunk[finite])))
    return NegativeValues(count, total, lo if np.isfinite(lo) else float("nan"), exact=True)


#: What each compression would do to negative values (inside the refusal sentence).
_WHY_NOT_SIGNED = {
    "db": "dB would floor every negative value at the same level, erasing their differences",
    "log1p": "log1p would take a second log of log-domain values",
    "pcen": "PCEN divides by a smoothed energy and takes a root, defined for non-negative "
            "energy only",
}


def refusal(names: list[str], negatives: NegativeValues, *, what: str = "values") -> str:
    """The one sentence that refuses compression configs ``names`` on signed data."""
    methods = [m for m in COMPRESSIONS if any(parse_config(n).compress == m for n in names)]
    why = "; ".join(_WHY_NOT_SIGNED[m] for m in methods)
    return (f"{', '.join(names)} refused: {negatives.describe(what)}, and compression is for "
            f"non-negative power ({why}); use per_row (CMVN), global or none instead, as for "
            "MFCC or logmel features")


def check_configs_for(source: PixelStats | np.ndarray, configs: str | list | tuple, *,
                      indices: np.ndarray | None = None) -> list[Config]:
    """Parse configuration names and refuse those the data cannot take.

    Compression (``db+``, ``log1p+``, ``pcen+``) is refused on data with negative values.

    Parameters
    ----------
    source : PixelStats or np.ndarray, shape (N, H, W)
        The dataset's statistics, or its examples (counted exactly; only read when a
        configuration compresses).
    configs : str or sequence of str or Config
        As for :func:`parse_configs` (a comma-separated string or a list).
    indices : int array, optional
        With an array: the examples that matter (default all).

    Returns
    -------
    list of Config

    Raises
    ------
    NormScopeError
        A name that does not parse, or compression on signed data (one sentence: how many
        values are negative, why, what to use instead).
    """
    parsed = parse_configs([configs] if isinstance(configs, Config) else configs)
    squashed = [c.name for c in parsed if c.compress]
    if squashed:
        neg = negative_values(source, indices=indices)
        if neg.count > 0:
            raise NormScopeError(refusal(squashed, neg))
    return parsed


def check_config_for(source: PixelStats | np.ndarray, config: str | Config, *,
                     indices: np.ndarray | None = None) -> Config:
    """:func:`check_configs_for` for one name; returns its :class:`Config`."""
    return check_configs_for(source, [config], indices=indices)[0]


def valid_config_names(stats: PixelStats) -> list[str]:
    """The names of :func:`all_config_names` that data with these statistics can take.

    Without negative values every name; with them, none that compresses.
    """
    fin = np.isfinite(stats.min)
    signed = bool(fin.any()) and float(np.min(stats.min[fin])) < 0
    return [n for n in all_config_names() if not (signed and "+" in n)]


def compress(x: np.ndarray, method: str | None, params: dict | None = None) -> np.ndarray:
    """Apply a compression to a chunk (m, H, W); returns float64.

    ``db`` follows ``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)`` applied to each
    example on its own (the clip's maximum sets the floor), so the result never depends on
    how examples are chunked; so does ``pcen`` (:func:`diagnostics.transforms.pcen`, with
    ``params`` as keyword arguments).  Non-finite inputs stay non-finite (the caller decides).
    """
    if method == "pcen":
        return transforms.pcen(x, **(params or {}))
    x = np.asarray(x, dtype=np.float64)
    if method is None:
        return x
    if method == "log1p":
        # Symmetric so that negative inputs never reach log of a non-positive number.
        return np.sign(x) * np.log1p(np.abs(x))
    if method == "db":
        finite = np.isfinite(x)
        with np.errstate(invalid="ignore"):
            db = 10.0 * np.log10(np.maximum(DB_AMIN, np.where(finite, x, DB_AMIN)))
        db -= 10.0 * np.log10(max(DB_AMIN, DB_REF))
        top = np.max(db.reshape(db.shape[0], -1), axis=1).reshape(-1, *([1] * (db.ndim - 1)))
        db = np.maximum(db, top - DB_TOP)
        return np.where(finite, db, x)
    raise NormScopeError(f"compression {method!r} is unknown; use {' or '.join(COMPRESSIONS)}")


def _scaler_dtype(dtype: np.dtype, compression: str | None) -> np.dtype:
    """The dtype scikit-learn's MinMaxScaler holds its range in: float32 and float16 input
    stays as it is, anything else becomes float64 (and so does every compressed array here)."""
    dt = np.dtype(dtype)
    return dt if compression is None and dt in (np.float16, np.float32) else np.dtype(np.float64)


def _training_indices(indices, n: int) -> np.ndarray:
    """Sorted int64 indices (repeats kept) from None, integers or a boolean mask of ``n``."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    ind = np.asarray(indices)
    if ind.dtype == bool:
        if ind.shape != (n,):
            raise NormScopeError(f"a boolean training mask must have {n} entries, got {ind.shape}")
        ind = np.flatnonzero(ind)
    elif ind.size and ind.dtype.kind not in "iu":
        raise NormScopeError(f"training indices must be integers, got {ind.dtype}")
    idx = np.sort(ind.astype(np.int64).ravel())
    if idx.size == 0:
        raise NormScopeError("no training examples to fit the normalization on")
    if idx[0] < 0 or idx[-1] >= n:
        raise NormScopeError(f"training indices must lie in 0..{n - 1}, got {idx[0]}..{idx[-1]}")
    return idx


def _handle_zeros_in_scale(scale: np.ndarray, constant: np.ndarray) -> np.ndarray:
    # scikit-learn's rule: a scale that is zero (or a constant feature's) becomes 1.
    scale = np.array(scale, dtype=np.float64, copy=True)
    scale[constant | ~np.isfinite(scale) | (scale == 0)] = 1.0
    return scale


class Normalizer:
    """Fit a normalization on the training examples and apply it to any chunk.

    Parameters
    ----------
    config : str or Config
        A configuration name such as ``"db+per_row@mask"`` (see the module docstring).
    mask_snr : float
        Row-SNR threshold of ``@mask`` (ignored without it).
    std_floor : float
        Lower bound on every learned scale (std, IQR or range), and on every example's (or
        example-row's) std of the instance scalers; 0 leaves scales alone.  Constant pixels,
        examples and rows get scale 1 either way.
    chunk_rows : int, optional
        Examples per chunk while fitting (default: about 8 MB of float64).

    Attributes
    ----------
    config_ : Config
    stats_ : PixelStats
        Per-pixel statistics of the training split after compression (all rows).
    row_snr_ : float array, shape (H,)
    keep_rows_ : bool array, shape (H,)
        Rows that ``transform`` keeps.
    center_, scale_ : float64 arrays broadcastable to (H', W)
        ``transform`` returns ``(compress(x)[kept rows] - center_) / scale_``; for the
        instance scalers (nothing fitted) 0 and 1, after each example (``instance``) or each
        of its rows (``instance_row``) is z-scored by its own mean and std.
    n_floored_ : int or None
        Instance scalers only: training examples (``instance``) or example-rows
        (``instance_row``) whose std was zero up to round-off (scale 1: they come out as
        zeros) or under ``std_floor`` (scale ``std_floor``); None for the other scalers, whose
        constant pixels :attr:`stats_` counts.
    n_samples_seen_ : int
    shape_in_ : (H, W)
    """

    def __init__(self, config: str | Config = "none", *, mask_snr: float = DEFAULT_MASK_SNR,
                 std_floor: float = 0.0, chunk_rows: int | None = None):
        self.config = config
        self.mask_snr = mask_snr
        self.std_floor = std_floor
        self.chunk_rows = chunk_rows

    # -- fitting ---------------------------------------------------------------------------
    def _chunks(self, X: np.ndarray, idx: np.ndarray):
        H, W = X.shape[1:]
        rows = self.chunk_rows or max(1, CHUNK_BYTES // (H * W * 8))
        for start in range(0, idx.size, rows):
            sel = idx[start : start + rows]
            # A run of consecutive indices is read as a slice (a view of a memmap, no copy);
            # anything else, repeated indices included, by fancy indexing.
            run = sel[-1] - sel[0] + 1 == sel.size and bool(np.all(np.diff(sel) == 1))
            yield X[sel[0] : sel[-1] + 1] if run else X[sel]

    def fit(self, X: np.ndarray, *, indices: np.ndarray | None = None) -> "Normalizer":
        """Learn the normalization from ``X[indices]`` (the training split).

        Parameters
        ----------
        X : np.ndarray, shape (N, H, W)
            May be a memmap; it is read in chunks.
        indices : int array or bool mask of shape (N,), optional
            Training examples (default: all of ``X``).  A multiset, like ``X[indices]``: an
            index listed twice weighs twice (a bootstrap sample fits as drawn); order does
            not matter.

        Raises
        ------
        NormScopeError
            Bad configuration or parameters, no examples, a mask that removes every row, or
            compression (``db+``, ``log1p+``) on a training split with negative values.
        """
        cfg = parse_config(self.config)
        if not np.isfinite(self.std_floor) or self.std_floor < 0:
            raise NormScopeError(f"std_floor={self.std_floor} must be a finite number >= 0")
        if X.ndim != 3:
            raise NormScopeError(f"normalization needs an (N, H, W) array, got shape {X.shape}")
        N, H, W = X.shape
        idx = _training_indices(indices, N)

        acc = StatsAccumulator((H, W), sample_every=max(1, idx.size * H * W // 100_000))
        # The mask reads the row SNR of the input as given (the one the Statistics page shows):
        # after dB compression SNR depends on the arbitrary 0 dB reference and would pick
        # the wrong rows.
        raw = StatsAccumulator((H, W)) if cfg.mask and cfg.compress else None
        n_neg, n_fin, lo = 0, 0, np.inf
        kwargs = cfg.compress_kwargs()
        moments = []  # instance scalers: each training example's row moments, to count floors
        for chunk in self._chunks(X, idx):
            if cfg.compress:
                # Counted as we go (no extra pass); refused below, before anything is kept.
                fin = np.isfinite(chunk)
                neg = (chunk < 0) & fin
                n_fin += int(np.count_nonzero(fin))
                if neg.any():
                    n_neg += int(np.count_nonzero(neg))
                    lo = min(lo, float(np.min(chunk[neg])))
            squashed = compress(chunk, cfg.compress, kwargs)
            acc.partial_fit(squashed)
            if cfg.scaler in INSTANCE_SCALERS:
                moments.append(transforms.row_moments(squashed))
            if raw is not None:
                raw.partial_fit(chunk)
        if n_neg:
            raise NormScopeError(refusal([cfg.name], NegativeValues(n_neg, n_fin, lo, exact=True),
                                         what="training values"))
        stats = acc.finalize()
        mask_snr_rows = raw.finalize().row_snr if raw is not None else stats.row_snr

        keep = np.ones(H, bool)
        if cfg.mask:
            keep = ~row_mask(mask_snr_rows, threshold=self.mask_snr)
            if not keep.any():
                best = np.nanmax(mask_snr_rows) if np.isfinite(mask_snr_rows).any() else float("nan")
                raise NormScopeError(
                    f"{cfg.name}: mask_snr={self.mask_snr:g} removes all {H} rows (the highest "
                    f"row SNR is {best:.3g}); lower the threshold (--mask-snr) or drop @{MASK_SUFFIX}"
                )

        center, scale = self._fit_scaler(cfg, stats, keep, X, idx)
        if self.std_floor > 0 and cfg.scaler not in ("none", *INSTANCE_SCALERS):
            scale = np.maximum(scale, self.std_floor)
        self.n_floored_ = None
        if cfg.scaler in INSTANCE_SCALERS:
            cnt, mean, m2 = (np.concatenate(a) for a in zip(*moments))
            if cfg.scaler == "instance_row":
                cnt, mean, m2 = cnt[:, keep], mean[:, keep], m2[:, keep]
            else:
                cnt, mean, m2 = transforms.pool_rows(cnt, mean, m2, keep)
            _, floored = transforms.instance_scale(cnt, mean, m2, std_floor=self.std_floor)
            self.n_floored_ = int(floored.sum())
        self.config_ = cfg
        self.stats_ = stats
        self.row_snr_ = mask_snr_rows
        self.keep_rows_ = keep
        self.center_ = center
        self.scale_ = scale
        self.n_samples_seen_ = int(idx.size)
        self.shape_in_ = (H, W)
        return self

    def _fit_scaler(self, cfg: Config, stats: PixelStats, keep: np.ndarray, X: np.ndarray,
                    idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = stats.count[keep].astype(np.float64)
        mean = np.where(count > 0, stats.mean[keep], 0.0)
        std = np.where(count > 0, stats.std[keep], 0.0)
        s = cfg.scaler
        if s == "none" or s in INSTANCE_SCALERS:
            return np.zeros((1, 1)), np.ones((1, 1))
        if s == "per_pixel":
            return mean, _handle_zeros_in_scale(std, stats.constant[keep])
        if s == "shrink":
            with np.errstate(over="ignore", under="ignore"):
                var = std ** 2
            return mean, transforms.shrink_scale(mean, var, count, stats.constant[keep],
                                                 **cfg.scaler_kwargs())
        if s in ("global", "per_row"):
            # Pool the per-pixel moments (count-weighted, float64) over the whole kept image
            # or over each row: exact, no second pass.  In units of a power of two near the
            # largest moment, so that squares of values near 1e300 (or 1e-300) stay finite
            # (nonzero); the scale-free constant rule is taken in those units.
            axis = None if s == "global" else 1
            top = float(np.max(np.abs(np.concatenate([mean.ravel(), std.ravel()]))))
            g = math.frexp(top)[1] if math.isfinite(top) and top > 0 else 0
            with np.errstate(under="ignore"):
                mean_g, var_g = np.ldexp(mean, -g), np.ldexp(std, -g) ** 2
            n = count.sum(axis=axis, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                m = np.where(n > 0, (mean_g * count).sum(axis=axis, keepdims=True)
                             / np.maximum(n, 1), 0.0)
                v = np.where(n > 0, ((var_g + (mean_g - m) ** 2) * count).sum(
                    axis=axis, keepdims=True) / np.maximum(n, 1), 0.0)
            return (np.ldexp(m, g), _handle_zeros_in_scale(np.ldexp(np.sqrt(v), g),
                                                           is_constant(v, m, n)))
        # scikit-learn's MinMaxScaler and RobustScaler call a range or IQR under ten eps of
        # the dtype it is held in zero (``_handle_zeros_in_scale``): the same rule here.
        if s == "minmax":
            lo = np.where(count > 0, stats.min[keep], 0.0)
            rng = np.where(count > 0, stats.max[keep] - lo, 0.0)
            tiny = 10 * np.finfo(_scaler_dtype(X.dtype, cfg.compress)).eps
            return lo, _handle_zeros_in_scale(rng, rng < tiny)
        if s == "robust":
            med, iqr = self._quantiles(cfg, X, idx, keep)
            # RobustScaler's quantiles are float64 whatever the input (NumPy promotes them
            # with the float64 quantile range), so its threshold is float64's.
            return med, _handle_zeros_in_scale(iqr, iqr < 10 * np.finfo(np.float64).eps)
        raise NormScopeError(f"scaler {s!r} is unknown; valid parts: {valid_parts()}")

    def _quantiles(self, cfg: Config, X: np.ndarray, idx: np.ndarray,
                   keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel median and IQR of the kept rows, a block of pixels at a time."""
        rows = np.flatnonzero(keep)
        W = X.shape[2]
        n_cols = rows.size * W
        block = max(1, min(n_cols, ROBUST_BLOCK_BYTES // (8 * idx.size)))
        med = np.empty(n_cols)
        iqr = np.empty(n_cols)
        for start in range(0, n_cols, block):
            cols = np.arange(start, min(start + block, n_cols))
            kw = cfg.compress_kwargs()
            parts = [compress(c, cfg.compress, kw)[:, keep].reshape(c.shape[0], -1)[:, cols]
                     for c in self._chunks(X, idx)]
            data = np.concatenate(parts)
            data = np.where(np.isfinite(data), data, np.nan)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: see below
                q = np.nanpercentile(data, [ROBUST_QUANTILES[0], 50.0, ROBUST_QUANTILES[1]], axis=0)
            med[cols] = np.where(np.isfinite(q[1]), q[1], 0.0)
            iqr[cols] = np.where(np.isfinite(q[2] - q[0]), q[2] - q[0], 0.0)
        return med.reshape(rows.size, W), iqr.reshape(rows.size, W)

    # -- applying --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "scale_"):
            raise NormScopeError("this Normalizer is not fitted yet; call fit on the training split")

    @property
    def shape_out_(self) -> tuple[int, int]:
        """(H', W): the shape of one transformed example."""
        self._check_fitted()
        return int(self.keep_rows_.sum()), int(self.shape_in_[1])

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Normalize a chunk of examples.

        Parameters
        ----------
        X : np.ndarray, shape (n, H, W)

        Returns
        -------
        np.ndarray, shape (n, H', W), float32
            H' = number of kept rows.  Non-finite inputs become 0 (the fitted centre) and
            values beyond float32's range are clipped, so the output is always finite.
        """
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 3 or tuple(X.shape[1:]) != tuple(self.shape_in_):
            raise NormScopeError(
                f"transform needs examples of shape {self.shape_in_}, got an array of shape "
                f"{X.shape}; use the data the normalizer was fitted on"
            )
        if (X.dtype == np.float32 and self.config_.compress is None
                and self.config_.scaler == "none" and self.keep_rows_.all()):
            # Identity: skip the float64 round trip (the raw baseline of every comparison).
            out = np.array(X, dtype=np.float32)
            bad = ~np.isfinite(out)
            if bad.any():
                out[bad] = 0.0
            return out
        cfg = self.config_
        x = compress(X, cfg.compress, cfg.compress_kwargs())
        if not self.keep_rows_.all():
            x = x[:, self.keep_rows_]
        with np.errstate(invalid="ignore", over="ignore"):
            if cfg.scaler in INSTANCE_SCALERS:
                out = transforms.instance_normalize(x, rows=cfg.scaler == "instance_row",
                                                    std_floor=self.std_floor)
            else:
                out = (x - self.center_) / self.scale_
        out[~np.isfinite(x) | np.isnan(out)] = 0.0
        np.clip(out, -_F32_MAX, _F32_MAX, out=out)
        return out.astype(np.float32)

    def __repr__(self) -> str:
        return (f"Normalizer({str(self.config)!r}, mask_snr={self.mask_snr}, "
                f"std_floor={self.std_floor})")
