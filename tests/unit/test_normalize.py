"""Contract of every normalization: fit on train only, shapes, oracles, degenerate inputs, mask."""

from __future__ import annotations

import itertools
import re

import librosa
import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.errors import NormScopeError
from diagnostics.normalize import (COMPRESSIONS, SCALERS, Config, Normalizer, check_config_for,
                                   check_configs_for, compress, all_config_names, negative_values,
                                   parse_config, parse_configs, valid_config_names)
from diagnostics.stats.moments import compute_stats, row_mask

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
    # @mask keeps the rows whose SNR on the training split (as given) reaches the threshold.
    want = ~row_mask(compute_stats(spectro[train]).row_snr, threshold=DEFAULT_MASK_SNR)
    np.testing.assert_array_equal(nz.keep_rows_, want if "@mask" in name else np.ones(12, bool))
    assert kept >= 1


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


def test_config_names_are_the_whole_grammar():
    assert sorted(all_config_names()) == sorted(ALL) and len(set(all_config_names())) == 72
    assert all(parse_config(n).name == n for n in all_config_names())


@pytest.fixture
def signed(rng) -> np.ndarray:
    """MFCC-like values: signed, one scale per row."""
    scale = np.geomspace(50.0, 1.0, 12)[:, None]
    return (rng.standard_normal((240, 12, 17)) * scale - 5.0).astype(np.float32)


@pytest.mark.parametrize("name", [n for n in ALL if "+" in n])
def test_compression_on_signed_data_is_refused_when_fitting(signed, split, name):
    train, _ = split
    n_neg = int((signed[train] < 0).sum())
    with pytest.raises(NormScopeError, match=(
            rf"^{re.escape(name)} refused: {n_neg:,} of {len(train) * 12 * 17:,} training values \(\d+%\) "
            r"are negative \(down to -[\d.]+\), and compression is for non-negative power "
            r"\(.*\); use per_row \(CMVN\), global or none instead, as for MFCC or logmel "
            r"features$")):
        Normalizer(name).fit(signed, indices=train)


def test_compression_refused_by_the_data_aware_parser_and_left_out_of_the_valid_list(
        signed, spectro):
    n_neg = int((signed < 0).sum())
    with pytest.raises(NormScopeError, match=rf"^db\+per_row, log1p\+global@mask refused: "
                                             rf"{n_neg:,} of {signed.size:,} values"):
        check_configs_for(signed, "none, db+per_row, per_row, log1p+global@mask")
    with pytest.raises(NormScopeError, match=r"db\+per_row refused: about \d+% of the "
                                             r".* values are negative.*use per_row \(CMVN\)"):
        check_config_for(compute_stats(signed), "db+per_row")  # from statistics: no data pass
    # A bad name is still a bad name; configs without compression pass.
    with pytest.raises(NormScopeError, match="unknown scaler"):
        check_configs_for(signed, "none,per-pixel")
    assert [c.name for c in check_configs_for(signed, ["none", "per_row@mask"])] == [
        "none", "per_row@mask"]
    for name in ("per_row", "global@mask", "none"):
        Normalizer(name).fit(signed)  # the alternatives the sentence names all fit
    # The valid list: no compression for signed data, everything for non-negative data.
    assert valid_config_names(compute_stats(signed)) == [n for n in all_config_names() if "+" not in n]
    assert valid_config_names(compute_stats(spectro)) == all_config_names()
    assert check_config_for(spectro, "db+per_row") == Config("per_row", "db")


def test_one_negative_value_is_counted_exactly(spectro, split):
    train, test = split
    X = spectro.copy()
    X[test[0], 3, 3] = -2.5  # in the test part: the training split is clean
    Normalizer("db+per_row").fit(X, indices=train)
    neg = negative_values(X)
    assert (neg.count, neg.total, neg.min, neg.exact) == (1, X.size, -2.5, True)
    est = negative_values(compute_stats(X))
    assert est.count >= 1 and est.min == -2.5 and not est.exact
    with pytest.raises(NormScopeError, match=r"1 of [\d,]+ values \(under 1%\) is negative "
                                             r"\(down to -2.5\)"):
        check_configs_for(X, "db+per_row")
    assert negative_values(X, indices=train).count == 0


@pytest.mark.parametrize("name", ["per_pixel", "minmax", "robust", "global", "per_row",
                                  "db+per_pixel@mask"])
@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_repeated_indices_fit_as_the_rows_they_select(spectro, rng, name, chunk_rows):
    # A bootstrap sample: as many indices as examples, some repeated, some left out.
    idx = rng.integers(0, spectro.shape[0], spectro.shape[0])
    assert np.unique(idx).size < idx.size
    a = Normalizer(name, chunk_rows=chunk_rows).fit(spectro, indices=idx)
    b = Normalizer(name).fit(spectro[idx])
    np.testing.assert_array_equal(a.keep_rows_, b.keep_rows_)
    np.testing.assert_allclose(a.center_, b.center_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.scale_, b.scale_, rtol=1e-10, atol=1e-12)
    assert a.n_samples_seen_ == idx.size
    # Unsorted indices with repeats give the state of the rows as listed.
    sel = np.array([5, 3, 5, 0])
    np.testing.assert_allclose(Normalizer(name).fit(spectro, indices=sel).scale_,
                               Normalizer(name).fit(spectro[sel]).scale_, rtol=1e-12)


def test_training_mask_and_bad_indices(spectro, split):
    train, _ = split
    mask = np.zeros(spectro.shape[0], bool)
    mask[train] = True
    a = Normalizer("per_pixel").fit(spectro, indices=mask)
    b = Normalizer("per_pixel").fit(spectro, indices=train)
    np.testing.assert_array_equal(a.scale_, b.scale_)
    with pytest.raises(NormScopeError, match="must be integers"):
        Normalizer("per_pixel").fit(spectro, indices=train.astype(float))
    with pytest.raises(NormScopeError, match="must lie in 0..239"):
        Normalizer("per_pixel").fit(spectro, indices=[0, 240])


def _near_constant(dtype, rng, eps: float, base: float) -> np.ndarray:
    """(40, 2, 3) values whose pixels sit just under and just over a zero-scale threshold of
    ten ``eps`` (absolute, as scikit-learn's is) for both the range and the IQR."""
    n = 40
    X = np.empty((n, 2, 3), np.float64)
    halves = np.repeat([0.0, 1.0], n // 2)
    X[:, 0, 0] = 1.0  # constant
    X[:, 0, 1] = base + 2 * eps * halves  # range and IQR 2 eps: zero
    X[:, 0, 2] = base + 8 * eps * halves  # 8 eps: still zero
    X[:, 1, 0] = base + 64 * eps * halves  # 64 eps: a real scale
    X[:, 1, 1] = rng.normal(3.0, 1.0, n)
    X[:, 1, 2] = 1e-3 * rng.exponential(1.0, n)
    return X.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaler, oracle", [("minmax", MinMaxScaler), ("robust", RobustScaler)])
def test_zero_scale_rule_matches_scikit_learn(rng, dtype, scaler, oracle):
    # MinMaxScaler holds its range in the input's dtype; RobustScaler its IQR in float64
    # (float32 holds steps of float64's eps only near 0).
    eps = np.finfo(dtype if scaler == "minmax" else np.float64).eps
    X = _near_constant(dtype, rng, eps, base=1.0 if np.finfo(dtype).eps == eps else 0.0)
    flat = X.reshape(len(X), -1)
    ref = oracle().fit(flat)
    nz = Normalizer(scaler).fit(X)
    # The same pixels get scale 1 (sklearn's minmax scale_ is 1 / range, so 1 there too).
    ones = ref.scale_ == 1.0
    assert ones.tolist() == [True, True, True, False, False, False]
    np.testing.assert_array_equal(nz.scale_.ravel() == 1.0, ones)
    np.testing.assert_allclose(nz.transform(X), ref.transform(flat).reshape(X.shape),
                               rtol=1e-5, atol=1e-6)
