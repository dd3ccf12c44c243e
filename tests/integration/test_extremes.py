"""Numbers at the extremes: statistics of float64 data from 1e-300 to 1e300 agree with numpy's
float64 on the same data rescaled by a power of two (exact), in both engines and in the
accumulator that the normalizations fit with; none of it is called constant, and nothing
turns into inf or 0 on the way (the value sample included)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.stats.accumulate import StatsAccumulator
from diagnostics.stats.moments import compute_stats

ENGINES = ("numpy", "numba")
# 2**-1000 is about 9e-302, 2**1000 about 1e301; 1020 reaches 1e307.
EXPONENTS = (-1000, -700, -300, 0, 300, 700, 1000, 1020)
RTOL = 1e-12


def base(rng, n=300, h=5, w=6) -> np.ndarray:
    """Ordinary float64 data: offsets, spreads and signs that differ per pixel."""
    return rng.normal(3.0, 1.0, (n, h, w)) * rng.uniform(0.5, 2.0, (h, w)) + rng.normal(
        0, 2, (h, w))


def reference(X: np.ndarray, k: np.ndarray, labels=None, n_classes=0) -> dict:
    """numpy float64 on ``X`` rescaled by ``2**-k`` per pixel (exact), scaled back."""
    Y = np.ldexp(X, -k)
    out = {"mean": np.ldexp(np.nanmean(Y, 0), k), "std": np.ldexp(np.nanstd(Y, 0), k)}
    if labels is not None:
        out["class_means"] = np.stack([np.ldexp(np.nanmean(Y[labels == c], 0), k)
                                       for c in range(n_classes)])
    return out


def close(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("e", EXPONENTS)
def test_one_scale_matches_numpy_on_rescaled_data(rng, engine, e):
    B = base(rng)
    X = np.ldexp(B, e)
    labels = np.arange(len(X)) % 3
    with np.errstate(all="raise"):  # no overflow, underflow or invalid value on the way
        st = compute_stats(X, engine=engine, labels=labels, n_classes=3)
    ref = reference(X, np.full(X.shape[1:], e), labels, 3)
    assert close(st.mean, ref["mean"]) < RTOL and close(st.std, ref["std"]) < RTOL
    assert close(st.class_means, ref["class_means"]) < RTOL
    assert st.n_constant == 0
    b = compute_stats(B, engine=engine)  # every ratio is scale-free: the same as at scale 1
    assert np.allclose(st.snr, b.snr, rtol=RTOL) and np.allclose(st.amplification,
                                                                  b.amplification, rtol=RTOL)
    assert np.isclose(st.global_std, np.ldexp(b.global_std, e), rtol=RTOL)
    assert np.isclose(st.global_mean, np.ldexp(b.global_mean, e), rtol=RTOL)
    assert np.isclose(st.skewness, b.skewness, rtol=1e-6)
    # The value sample keeps the values (float32 would make them inf or 0).
    assert np.all(np.isfinite(st.sample)) and np.all(st.sample != 0)
    assert np.allclose(np.sort(st.sample)[[0, -1]], [X.min(), X.max()], rtol=1e-7)
    assert st.sample.dtype == (np.float32 if abs(e) < 100 else np.float64)


@pytest.mark.parametrize("engine", ENGINES)
def test_pixels_from_1e_minus_300_to_1e300_in_one_array(rng, engine):
    B = base(rng)
    k = rng.integers(-1000, 1001, B.shape[1:])
    X = np.ldexp(B, k)
    st = compute_stats(X, engine=engine)
    ref = reference(X, k)
    assert close(st.mean, ref["mean"]) < RTOL and close(st.std, ref["std"]) < RTOL
    assert st.n_constant == 0 and np.all(np.isfinite(st.snr))
    assert np.allclose(st.snr, compute_stats(B, engine=engine).snr, rtol=RTOL)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("first", ["zeros", "tiny", "huge"])
def test_first_rows_unlike_the_rest(rng, engine, first):
    """The engines choose their powers of two from the first rows; when the rest of the data
    lies far from them, the pass is repeated with the range it found."""
    X = np.ldexp(base(rng), 900)
    X[:8] = {"zeros": 0.0, "tiny": 1e-300, "huge": 1.7e308}[first]
    st = compute_stats(X, engine=engine)
    ref = reference(X, np.full(X.shape[1:], 1000 if first == "huge" else 900))
    assert close(st.mean, ref["mean"]) < RTOL and close(st.std, ref["std"]) < RTOL
    assert st.n_constant == 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("e", (-1000, 1000))
def test_extremes_with_nan_and_inf_blocks(rng, engine, e):
    X = np.ldexp(base(rng), e)
    X[5, 0, 0], X[200, 1, 2], X[7, 3, 3] = np.nan, np.inf, -np.inf
    st = compute_stats(X, engine=engine, chunk_rows=16 if engine == "numpy" else None)
    ref = reference(np.where(np.isfinite(X), X, np.nan), np.full(X.shape[1:], e))
    assert close(st.mean, ref["mean"]) < RTOL and close(st.std, ref["std"]) < RTOL
    assert st.n_nonfinite == 3 and st.n_constant == 0


def test_accumulator_chunks_at_different_scales_merge_right(rng):
    """The accumulator the normalizations fit with: each chunk brings its own powers of two."""
    B = base(rng, n=400)
    X = B.copy()
    X[:100] = np.ldexp(X[:100], -1000)  # tiny first: they count, but next to ...
    X[100:] = np.ldexp(X[100:], 1000)  # ... values 2**2000 times larger, below round-off
    a = StatsAccumulator(X.shape[1:])
    for lo in range(0, 400, 37):
        a.partial_fit(X[lo:lo + 37])
    st = a.finalize()
    with np.errstate(under="ignore"):
        ref = reference(X, np.full(X.shape[1:], 1000))  # the tiny rows rescale to 0 here
    assert close(st.mean, ref["mean"]) < RTOL and close(st.std, ref["std"]) < RTOL
    # Merging two accumulators at different scales gives the same as one pass.
    b1, b2 = StatsAccumulator(X.shape[1:]), StatsAccumulator(X.shape[1:])
    b1.partial_fit(X[:100])
    b2.partial_fit(X[100:])
    merged = b1.merge(b2).finalize()
    assert close(merged.mean, st.mean) < RTOL and close(merged.std, st.std) < RTOL
    assert merged.n_constant == 0 and np.all(np.isfinite(merged.std))


@pytest.mark.parametrize("e", (-1000, 1000))
@pytest.mark.parametrize("scaler", ("per_pixel", "per_row", "global"))
def test_normalizations_fit_extreme_data_as_they_fit_scale_one(rng, e, scaler):
    from diagnostics.normalize import Normalizer

    B = base(rng)
    X = np.ldexp(B, e)
    fit, one = Normalizer(scaler).fit(X), Normalizer(scaler).fit(B)
    assert close(fit.center_, np.ldexp(one.center_, e)) < RTOL
    assert close(fit.scale_, np.ldexp(one.scale_, e)) < RTOL
    z = fit.transform(X)
    assert np.all(np.isfinite(z)) and np.allclose(z, one.transform(B), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scale", ("1e-300", "1e300"))
def test_cli_stats_of_extreme_float64_data(cli, home, tmp_path, rng, scale):
    """The issue's case: such data came out as 100% constant pixels with global_std 0."""
    B = base(rng)
    np.save(tmp_path / "x.npy", B * float(scale))
    r = cli("stats", str(tmp_path / "x.npy"), "--on", "all", "--json",
            env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["constant_pixels"] == 0
    text = cli("stats", str(tmp_path / "x.npy"), env={"NORMSCOPE_HOME": str(home)})
    assert text.returncode == 0 and "constant pixels 0" in text.stdout, text.stderr
    assert "Traceback" not in text.stderr  # was a TypeError in formatting above about 1e154
    k = 996 if scale == "1e300" else -997  # numpy's own std of the data overflows at 1e300
    assert np.isclose(doc["global_std"], np.ldexp(np.ldexp(B * float(scale), -k).std(), k),
                      rtol=1e-9)
