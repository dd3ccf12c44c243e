"""Contract of every normalization: fit on train only, shapes, oracles, degenerate inputs, mask."""

from __future__ import annotations

import itertools

import librosa
import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from diagnostics.errors import NormScopeError
from diagnostics.normalize import (COMPRESSIONS, SCALERS, Config, Normalizer, compress,
                                   parse_config, parse_configs)
from diagnostics.stats.moments import compute_stats

ALL = [f"{c + '+' if c else ''}{s}{'@mask' if m else ''}"
       for c, s, m in itertools.product((None,) + COMPRESSIONS, SCALERS, (False, True))]


@pytest.fixture
def split(rng):
    idx = rng.permutation(240)
    return np.sort(idx[:160]), np.sort(idx[160:])


@pytest.mark.parametrize("name", ALL)
def test_fit_uses_training_examples_only(spectro, split, rng, name):
    train, test = split
    a = Normalizer(name).fit(spectro, indices=train)
    changed = spectro.copy()
    changed[test] = rng.exponential(500.0, changed[test].shape)  # wildly different test part
    b = Normalizer(name).fit(changed, indices=train)
    c = Normalizer(name).fit(spectro[train])
    for other in (b, c):
        np.testing.assert_array_equal(a.keep_rows_, other.keep_rows_)
        np.testing.assert_allclose(a.center_, other.center_, rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.scale_, other.scale_, rtol=1e-12, atol=0)
    assert a.n_samples_seen_ == len(train)


@pytest.mark.parametrize("name", ALL)
def test_transform_shape_dtype_finite(spectro, split, name):
    train, test = split
    nz = Normalizer(name).fit(spectro, indices=train)
    out = nz.transform(spectro[test])
    kept = int(nz.keep_rows_.sum())
    assert out.shape == (len(test), kept, spectro.shape[2]) == (len(test), *nz.shape_out_)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert kept == (spectro.shape[1] if "@mask" not in name else kept) and kept >= 1


@pytest.mark.parametrize("name", ALL)
def test_chunked_fit_equals_one_shot(spectro, split, name):
    train, _ = split
    a = Normalizer(name).fit(spectro, indices=train)
    b = Normalizer(name, chunk_rows=7).fit(spectro, indices=train)
    np.testing.assert_array_equal(a.keep_rows_, b.keep_rows_)
    np.testing.assert_allclose(a.center_, b.center_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.scale_, b.scale_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_constant_and_nonfinite_pixels_never_give_inf_or_nan(spectro, split, name):
    train, test = split
    X = spectro.copy()
    X[:, 0, :] = 3.0  # a constant row
    X[:, 4, 5] = 0.0  # a constant pixel
    X[train[:3], 6, 2] = np.nan  # a few non-finite training values
    X[test[:2], 7, 1] = np.inf
    nz = Normalizer(name).fit(X, indices=train)
    out = nz.transform(X)
    assert np.isfinite(out).all()
    # (dB floors zero power per example, so the pixel is constant only without db)
    if nz.config_.scaler == "per_pixel" and nz.config_.compress != "db" and nz.keep_rows_[4]:
        row = int(nz.keep_rows_[:4].sum())
        assert nz.scale_[row, 5] == 1.0  # constant pixel: scale 1 (scikit-learn's rule)
        assert np.all(out[:, row, 5] == 0.0)


@pytest.mark.parametrize("scaler, oracle", [("per_pixel", StandardScaler), ("minmax", MinMaxScaler),
                                            ("robust", RobustScaler)])
def test_pixelwise_scalers_equal_scikit_learn_on_flattened_data(spectro, split, scaler, oracle):
    train, test = split
    n, H, W = spectro.shape
    flat = spectro.reshape(n, -1).astype(np.float64)
    ref = oracle().fit(flat[train]).transform(flat[test]).reshape(-1, H, W)
    ours = Normalizer(scaler).fit(spectro, indices=train).transform(spectro[test])
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=2e-6)


def test_per_pixel_with_large_offset_matches_standard_scaler(rng):
    X = (1e6 + rng.normal(0, 1e-2, (50, 4, 5))).astype(np.float64)
    ref = StandardScaler().fit(X.reshape(50, -1)).transform(X.reshape(50, -1)).reshape(X.shape)
    ours = Normalizer("per_pixel").fit(X).transform(X)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_global_and_per_row_equal_numpy(spectro, split):
    train, _ = split
    T = spectro[train].astype(np.float64)
    g = Normalizer("global").fit(spectro, indices=train)
    np.testing.assert_allclose(g.transform(spectro), (spectro - T.mean()) / T.std(), rtol=1e-5, atol=1e-5)
    r = Normalizer("per_row").fit(spectro, indices=train)
    m = T.mean(axis=(0, 2), keepdims=True)[0]
    s = T.std(axis=(0, 2), keepdims=True)[0]
    np.testing.assert_allclose(r.transform(spectro), (spectro - m) / s, rtol=1e-5, atol=1e-5)


def test_db_follows_librosa_power_to_db_per_example(spectro, rng):
    X = spectro.copy()
    X[0] *= 1e-12  # a quiet clip: the floor is relative to its own maximum
    X[1, 0, 0] = 0.0  # zero power: floored by amin, never log(0)
    ref = np.stack([librosa.power_to_db(x.astype(np.float64), ref=1.0, amin=1e-10, top_db=80.0)
                    for x in X])
    np.testing.assert_allclose(compress(X, "db"), ref, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(compress(X[5:9], "db"), ref[5:9])  # independent of chunking


def test_log1p_is_log1p_for_power_and_finite_for_negatives():
    x = np.array([[[0.0, 1.0, 99.0], [-5.0, -0.5, 1e30]]])
    out = compress(x, "log1p")
    np.testing.assert_allclose(out[0, 0], np.log1p(x[0, 0]))
    assert np.isfinite(out).all() and out[0, 1, 0] == -np.log1p(5.0)


def test_mask_drops_exactly_the_low_snr_rows_of_the_training_split(spectro, split, rng):
    train, test = split
    X = spectro.copy()
    X[:, :3] = rng.exponential(1.0, X[:, :3].shape)  # row SNR ~1 (linear), ~0.45 (dB)
    X[:, 3:] += 10.0  # row SNR above 2 either way
    X[test, 1] += 1e4  # the test part must not matter
    for name, method in (("per_pixel@mask", None), ("db+per_pixel@mask", "db")):
        stats = compute_stats(compress(X[train], method))
        want = ~(stats.row_snr >= 2.0)
        assert np.flatnonzero(want).tolist() == [0, 1, 2]
        nz = Normalizer(name, mask_snr=2.0).fit(X, indices=train)
        np.testing.assert_array_equal(nz.keep_rows_, ~want)
        full = Normalizer(name.replace("@mask", "")).fit(X, indices=train)
        np.testing.assert_allclose(nz.transform(X[test]), full.transform(X[test])[:, 3:], rtol=1e-6)


def test_mask_on_the_demo_drops_the_noise_only_rows():
    from diagnostics.data.ingest import load_dataset
    from diagnostics.data.dataset import split_indices

    ds = load_dataset("demo")
    nz = Normalizer("per_pixel@mask").fit(ds.X, indices=split_indices(ds.n, ds.y).train)
    assert np.flatnonzero(~nz.keep_rows_).tolist() == list(range(48, 60))


def test_global_with_mask_pools_over_the_kept_rows_only(spectro, split):
    train, _ = split
    X = spectro.copy()
    X[:, :3] = 0.01 * spectro[:, :3]
    X[:, 3:] += 10.0
    nz = Normalizer("global@mask", mask_snr=2.0).fit(X, indices=train)
    assert nz.keep_rows_.sum() == 9
    kept = X[train][:, nz.keep_rows_].astype(np.float64)
    np.testing.assert_allclose(nz.center_.ravel(), [kept.mean()], rtol=1e-10)
    np.testing.assert_allclose(nz.scale_.ravel(), [kept.std()], rtol=1e-10)


def test_mask_removing_every_row_is_refused(spectro):
    with pytest.raises(NormScopeError, match="removes all 12 rows.*lower the threshold"):
        Normalizer("per_pixel@mask", mask_snr=1e9).fit(spectro)


def test_std_floor_bounds_every_scale(spectro):
    nz = Normalizer("per_pixel", std_floor=1.0).fit(spectro)
    assert nz.scale_.min() >= 1.0
    with pytest.raises(NormScopeError, match="std_floor"):
        Normalizer("per_pixel", std_floor=-1.0).fit(spectro)


@pytest.mark.parametrize("name, want", [
    ("none", Config("none")), (" Per_Pixel ", Config("per_pixel")),
    ("db+per_row", Config("per_row", "db")), ("log1p+robust@mask", Config("robust", "log1p", True)),
])
def test_parse_config(name, want):
    got = parse_config(name)
    assert got == want and parse_config(got.name) == got


@pytest.mark.parametrize("bad, what", [
    ("per-pixel", "unknown scaler 'per-pixel'"), ("db+", "unknown scaler ''"),
    ("sqrt+none", "unknown compression 'sqrt'"), ("none@masked", "unknown suffix @masked"),
    ("", "unknown scaler ''"),
])
def test_bad_config_names_list_the_valid_parts(bad, what):
    with pytest.raises(NormScopeError, match=f"{what}.*valid parts: scalers none, global, "
                                              "per_pixel, per_row, minmax, robust"):
        parse_config(bad)


def test_parse_configs_refuses_duplicates_and_empty_lists():
    assert [c.name for c in parse_configs("none, per_pixel,db+per_row")] == ["none", "per_pixel", "db+per_row"]
    with pytest.raises(NormScopeError, match="listed twice"):
        parse_configs("none,NONE")
    with pytest.raises(NormScopeError, match="no configuration"):
        parse_configs(" , ")


def test_transform_checks_fit_and_shape(spectro):
    with pytest.raises(NormScopeError, match="not fitted"):
        Normalizer("per_pixel").transform(spectro)
    nz = Normalizer("per_pixel").fit(spectro)
    with pytest.raises(NormScopeError, match="shape"):
        nz.transform(spectro[:, :5])


@pytest.mark.parametrize("compression", ["db+", "log1p+"])
def test_mask_reads_the_uncompressed_row_snr(compression):
    """The mask drops the rows the Statistics page calls low-SNR, whatever the compression."""
    from diagnostics.data.builtin import demo_dataset
    from diagnostics.data.dataset import split_indices

    ds = demo_dataset()
    train = split_indices(ds.n, ds.y).train
    plain = Normalizer("per_pixel@mask", mask_snr=0.2).fit(ds.X, indices=train)
    squashed = Normalizer(f"{compression}per_pixel@mask", mask_snr=0.2).fit(ds.X, indices=train)
    assert np.array_equal(plain.keep_rows_, squashed.keep_rows_)
    assert np.array_equal(np.flatnonzero(~plain.keep_rows_), np.arange(48, 60))
