"""The transforms behind the newer parts of a configuration name, and their parameters.

:mod:`diagnostics.normalize` owns the grammar and the :class:`~diagnostics.normalize.Normalizer`;
this module holds what those parts compute, so that the grammar module stays one contract:

* ``pcen`` (a compression, like ``db``): per-channel energy normalization through
  ``librosa.pcen`` on each example, time along the last axis (Wang et al. 2017; Lostanlen et al.
  2019, "Per-Channel Energy Normalization: Why and How").
* ``instance`` / ``instance_row`` (scalers without fitted parameters): the z-score of each
  example over all its (kept) values, or of each of its rows over the frames (frequency-wise
  instance normalization, the residual-normalization line of DCASE 2021 task 1A).
* ``shrink`` (a fitted scaler): the per-pixel z-score with every pixel's variance shrunk toward
  its band's (see :func:`shrink_scale`).

Parameters ride in the configuration name after colons, ``part:key=value:key=value``, e.g.
``pcen:t=0.06:gain=0.8+per_row@mask`` or ``shrink:w=0.25``.  The name stays one token for a
shell (no brackets, spaces or commas, so ``--configs a,b`` still splits) and survives a share
link (``:`` and ``=`` are percent-encoded and decoded back).  Values equal to the default are left
out of the canonical name, and every value is kept to 6 significant digits, so
``parse(name).name == name``.

PCEN input scaling
------------------
librosa's defaults (``gain=0.98, bias=2, power=0.5, eps=1e-6``) assume the *magnitude* of a
spectrogram of audio in the int32 range (its docstring: scale float audio in [-1, 1] by
``2**31``).  NormScope's audio features are mel *power* of float audio (values in about
[0, 2000] on the spoken-word set), so ``pcen`` takes ``sqrt(x) * 2**31``: the magnitude-like
square root of the power, on the int32 scale librosa's defaults were tuned for.  Any other
non-negative data goes through the same map.  ``t`` is the time constant in seconds at librosa's
default frame rate (``sr=22050``, ``hop_length=512``: 43.1 frames per second, the product's
default features too); for other features give ``t * your_frame_rate / 43.07``.  Negative
inputs are refused when fitting (as for ``db``); at transform time a negative value counts as 0
and a non-finite one enters the filter as 0 (it would otherwise spoil the rest of its row) and
comes out non-finite, which ``transform`` then sets to 0 like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diagnostics.errors import NormScopeError
from diagnostics.stats.accumulate import is_constant

#: The frame rate ``t`` is given at, and the input scaling (see the module docstring).
PCEN_SR = 22050
PCEN_HOP = 512
PCEN_INPUT_SCALE = 2.0**31
#: Examples per librosa.pcen call: bounds the float64 temporaries (about 6 of this size).
PCEN_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Param:
    """One settable parameter of a part: its key, default, and closed/open range."""

    key: str
    default: float
    lo: float
    hi: float
    lo_open: bool = False
    what: str = ""

    def check(self, part: str, value: float) -> None:
        ok = math.isfinite(value) and (value > self.lo if self.lo_open else value >= self.lo) \
            and value <= self.hi
        if not ok:
            lo = "(" if self.lo_open else "["
            hi = "inf)" if math.isinf(self.hi) else f"{fmt_number(self.hi)}]"
            raise NormScopeError(
                f"{part} parameter {self.key}={fmt_number(value)} is out of range: {self.what} "
                f"must lie in {lo}{fmt_number(self.lo)}, {hi} (default {fmt_number(self.default)})")


#: The parts that take parameters, in canonical order.
PARAMS: dict[str, tuple[Param, ...]] = {
    "pcen": (
        Param("gain", 0.98, 0.0, 1.0, what="the gain (exponent of the smoothed energy)"),
        Param("bias", 2.0, 0.0, 1e6, what="the bias added before the root"),
        Param("power", 0.5, 0.0, 1.0, what="the root's exponent (0: log1p)"),
        Param("t", 0.4, 0.0, 60.0, lo_open=True,
              what="the time constant in seconds (at 43.1 frames per second)"),
        Param("eps", 1e-6, 0.0, 1.0, lo_open=True, what="the floor of the smoothed energy"),
    ),
    "shrink": (
        Param("w", 0.5, 0.0, 1.0, what="the weight of the band's variance"),
    ),
}


def fmt_number(v: float) -> str:
    """6 significant digits without a ``+`` (``1e+06`` would split a configuration name)."""
    return f"{float(v):g}".replace("e+", "e")


def param_help() -> str:
    """One line naming every part's parameters with their defaults."""
    return "; ".join(f"{part}:" + ":".join(f"{p.key}={fmt_number(p.default)}" for p in ps)
                     for part, ps in PARAMS.items())


def parse_part(text: str, where: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """Split ``part:key=value:...`` into the part and its non-default parameters (canonical
    order, values rounded to 6 significant digits).

    Raises
    ------
    NormScopeError
        A parameter on a part without any, an unknown key, a value that is not a number, a
        key given twice, or a value out of range: one sentence.
    """
    name, *pairs = text.split(":")
    if not pairs:
        return name, ()
    spec = PARAMS.get(name)
    if spec is None:
        takes = " and ".join(PARAMS)
        raise NormScopeError(f"configuration {where!r}: {name!r} takes no parameters (only "
                             f"{takes} do: {param_help()})")
    keys = {p.key: p for p in spec}
    given: dict[str, float] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if key not in keys:
            raise NormScopeError(f"configuration {where!r}: {name} has no parameter {key!r}; "
                                 f"its parameters are {', '.join(keys)} ({param_help()})")
        if not eq:
            raise NormScopeError(f"configuration {where!r}: give {name}'s {key} as {key}=NUMBER")
        if key in given:
            raise NormScopeError(f"configuration {where!r}: {name}'s {key} is given twice")
        try:
            v = float(value)
        except ValueError:
            raise NormScopeError(f"configuration {where!r}: {name}'s {key}={value!r} is not a "
                                 "number") from None
        keys[key].check(name, v)
        given[key] = float(fmt_number(v))
    return name, tuple((p.key, given[p.key]) for p in spec
                       if p.key in given and given[p.key] != p.default)


def format_part(name: str, params: tuple[tuple[str, float], ...]) -> str:
    """The canonical text of a part: ``pcen`` or ``pcen:gain=0.8:t=0.06``."""
    return name + "".join(f":{k}={fmt_number(v)}" for k, v in params)


def param_values(name: str, params: tuple[tuple[str, float], ...]) -> dict[str, float]:
    """Every parameter of ``name`` with the defaults filled in."""
    given = dict(params)
    return {p.key: float(given.get(p.key, p.default)) for p in PARAMS.get(name, ())}


# --- PCEN --------------------------------------------------------------------------------------

def pcen_b(t: float) -> float:
    """librosa's smoothing coefficient for a time constant of ``t`` seconds at 22050 / 512."""
    t_frames = t * PCEN_SR / float(PCEN_HOP)
    return float((np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2))


def pcen_input(x: np.ndarray) -> np.ndarray:
    """The array librosa.pcen receives: ``sqrt(max(x, 0)) * 2**31``, non-finite values as 0."""
    x = np.asarray(x, dtype=np.float64)
    s = np.where(np.isfinite(x), x, 0.0)
    np.maximum(s, 0.0, out=s)
    np.sqrt(s, out=s)
    s *= PCEN_INPUT_SCALE
    return s


def pcen(x: np.ndarray, *, gain: float = 0.98, bias: float = 2.0, power: float = 0.5,
         t: float = 0.4, eps: float = 1e-6) -> np.ndarray:
    """PCEN of each example, time along the last axis; returns float64 of ``x``'s shape.

    ``librosa.pcen(sqrt(x) * 2**31, sr=22050, hop_length=512, gain=gain, bias=bias,
    power=power, time_constant=t, eps=eps, axis=-1)`` in blocks of examples (the filter runs
    along time only, so blocks never change a value).  Non-finite inputs stay non-finite.
    """
    import librosa  # lazy: 0.02 s, but only the configs that use it pay for it

    x = np.asarray(x)
    per = max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * 8)
    rows = max(1, PCEN_BLOCK_BYTES // per)
    out = np.empty(x.shape, np.float64)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows]
        with np.errstate(divide="ignore"):  # bias=0 takes log(0) = -inf for silence: 0 out
            out[start : start + rows] = librosa.pcen(
                pcen_input(block), sr=PCEN_SR, hop_length=PCEN_HOP, gain=gain, bias=bias,
                power=power, time_constant=t, eps=eps, axis=-1)
    bad = ~np.isfinite(x)
    if bad.any():
        out[bad] = np.asarray(x, np.float64)[bad]
    return out


# --- instance normalization ----------------------------------------------------------------------

def row_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite count, mean and sum of squared deviations of every row of every example.

    Parameters
    ----------
    x : float array, shape (n, H, W)

    Returns
    -------
    count : int64 (n, H); mean, m2 : float64 (n, H)
        Two passes in float64 over the finite values (mean 0 where a row has none).
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    cnt = finite.sum(axis=-1)
    xz = np.where(finite, x, 0.0)
    mean = xz.sum(axis=-1) / np.maximum(cnt, 1)
    dev = np.where(finite, x - mean[..., None], 0.0)
    return cnt, mean, (dev * dev).sum(axis=-1)


def pool_rows(cnt: np.ndarray, mean: np.ndarray, m2: np.ndarray,
              keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the row moments of each example over its (kept) rows (Chan et al.); shapes (n,)."""
    if keep is not None:
        cnt, mean, m2 = cnt[:, keep], mean[:, keep], m2[:, keep]
    n = cnt.sum(axis=1)
    m = (cnt * mean).sum(axis=1) / np.maximum(n, 1)
    return n, m, (m2 + cnt * (mean - m[:, None]) ** 2).sum(axis=1)


def instance_scale(cnt: np.ndarray, mean: np.ndarray, m2: np.ndarray, *,
                   std_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The scale of each example (or example-row) and whether it was floored.

    A std that is zero up to float64 round-off (scikit-learn's constant-feature rule,
    :func:`~diagnostics.stats.accumulate.is_constant`) becomes 1, so a constant example or
    band comes out as zeros, never as a division by ~0; ``std_floor`` then bounds every scale
    from below.  Returns ``(scale, floored)``, both of ``cnt``'s shape.
    """
    var = m2 / np.maximum(cnt, 1)
    const = is_constant(var, mean, cnt)
    scale = np.where(const, 1.0, np.sqrt(var))
    floored = const.copy()
    if std_floor > 0:
        low = scale < std_floor
        floored |= low
        scale = np.where(low, std_floor, scale)
    return scale, floored


def instance_normalize(x: np.ndarray, *, rows: bool, std_floor: float = 0.0) -> np.ndarray:
    """Per-example (``rows=False``) or per-example-per-row (``rows=True``) z-score.

    Parameters
    ----------
    x : float64 array, shape (n, H, W)
        Compressed values of the kept rows; non-finite values are left out of the moments
        and stay non-finite.

    Returns
    -------
    float64 array of ``x``'s shape.
    """
    cnt, mean, m2 = row_moments(x)
    if rows:
        scale, _ = instance_scale(cnt, mean, m2, std_floor=std_floor)
        return (x - mean[..., None]) / scale[..., None]
    n, m, s2 = pool_rows(cnt, mean, m2)
    scale, _ = instance_scale(n, m, s2, std_floor=std_floor)
    return (x - m[:, None, None]) / scale[:, None, None]


# --- shrink ---------------------------------------------------------------------------------------

def shrink_scale(mean: np.ndarray, var: np.ndarray, count: np.ndarray, constant: np.ndarray, *,
                 w: float) -> np.ndarray:
    """Per-pixel scale whose variance is shrunk toward its band's: ``sqrt((1-w) s2 + w b2)``.

    ``s2`` is the pixel's variance over the training examples and ``b2`` the band's average
    within-pixel variance (count-weighted over the row's pixels: the spread a typical pixel of
    that band has, not the spread of the band's means).  This is the moderated variance of
    limma (Smyth 2004), which shrinks every feature's variance toward a common one: every scale
    is at least ``sqrt(w)`` times the band's, so per-pixel z-scoring can no longer blow up a
    pixel of faint noise, while pixels with a real spread keep most of their own scale.
    ``w=0`` is ``per_pixel``, ``w=1`` centres per pixel and scales per band.  A pixel gets
    scale 1 only where its whole band is constant (scikit-learn's rule).

    Parameters
    ----------
    mean, var, count, constant : arrays of shape (H', W)
        Per-pixel training moments of the kept rows.
    """
    var = np.where(constant, 0.0, var)  # round-off of a constant pixel is no spread
    n_row = count.sum(axis=1, keepdims=True)
    band = (var * count).sum(axis=1, keepdims=True) / np.maximum(n_row, 1)
    s2 = (1.0 - w) * var + w * band
    band_const = np.all(constant, axis=1, keepdims=True) | (n_row == 0)
    scale = np.sqrt(np.maximum(s2, 0.0))
    zero = (constant & band_const) | ~np.isfinite(scale) | (scale == 0)
    return np.where(zero, 1.0, scale)
