"""Contract of the newer normalizations: pcen (against librosa), instance, instance_row, shrink,
and the parameter grammar (``part:key=value``).  The contract every config shares (fit on the
training split only, chunked fit == one shot, finite output, refusal on signed data) runs over
them too in test_normalize.py, whose ALL list is built from COMPRESSIONS x SCALERS."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

import librosa
import numpy as np
import pytest

from diagnostics import transforms
from diagnostics.errors import NormScopeError
from diagnostics.normalize import (Config, Normalizer, all_config_names, compress, parse_config,
                                   parse_configs, valid_config_names)
from diagnostics.stats.moments import compute_stats


@pytest.fixture
def split(rng):
    idx = rng.permutation(240)
    return np.sort(idx[:160]), np.sort(idx[160:])


def librosa_pcen(X, **kw):
    """What the product promises: librosa.pcen of sqrt(x) * 2**31 along time, at 22050 / 512."""
    p = {"gain": 0.98, "bias": 2.0, "power": 0.5, "t": 0.4, "eps": 1e-6, **kw}
    S = np.sqrt(np.asarray(X, np.float64)) * 2.0**31
    with np.errstate(divide="ignore"):  # bias=0: log(0) of silence, 0 out
        return librosa.pcen(S, sr=22050, hop_length=512, gain=p["gain"], bias=p["bias"],
                            power=p["power"], time_constant=p["t"], eps=p["eps"], axis=-1)


@pytest.mark.parametrize("name, kw", [
    ("pcen", {}),
    ("pcen:gain=0.8:bias=10:power=0.25:t=0.06", {"gain": 0.8, "bias": 10.0, "power": 0.25, "t": 0.06}),
    ("pcen:power=0", {"power": 0.0}),  # log1p branch
    ("pcen:bias=0:eps=1e-9", {"bias": 0.0, "eps": 1e-9}),  # no-bias branch
])
def test_pcen_matches_librosa(spectro, name, kw):
    X = spectro[:40].copy()
    X[0] *= 1e-9  # a quiet clip
    X[1, 2, :5] = 0.0  # silence at the start of a band
    ref = librosa_pcen(X, **kw)
    cfg = parse_config(name)
    np.testing.assert_allclose(compress(X, "pcen", cfg.compress_kwargs()), ref, rtol=1e-12,
                               atol=1e-12)
    # Through the Normalizer (float32 out): within 1e-5.
    out = Normalizer(name).fit(X).transform(X)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_pcen_is_per_example_and_independent_of_blocks(spectro, monkeypatch):
    whole = compress(spectro, "pcen")
    np.testing.assert_array_equal(compress(spectro[5:9], "pcen"), whole[5:9])
    monkeypatch.setattr(transforms, "PCEN_BLOCK_BYTES", 1)  # one example per librosa call
    np.testing.assert_array_equal(compress(spectro, "pcen"), whole)


def test_pcen_keeps_a_non_finite_value_from_spoiling_its_band(spectro):
    X = spectro[:4].astype(np.float64)
    X[2, 3, 6] = np.nan
    out = compress(X, "pcen")
    assert np.isnan(out[2, 3, 6]) and np.isfinite(np.delete(out.ravel(), 2 * 12 * 17 + 3 * 17 + 6)).all()
    zero = X.copy()
    zero[2, 3, 6] = 0.0  # the filter saw it as silence
    ref = librosa_pcen(zero)
    ref[2, 3, 6] = np.nan
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert np.isfinite(Normalizer("pcen+per_row").fit(X).transform(X)).all()


def test_pcen_refused_on_signed_data_with_one_sentence(rng):
    X = rng.standard_normal((20, 4, 9)).astype(np.float32)
    with pytest.raises(NormScopeError, match=r"^pcen\+per_row refused: .* are negative .*PCEN "
                                             r"divides by a smoothed energy.*; use per_row"):
        Normalizer("pcen+per_row").fit(X)
    names = valid_config_names(compute_stats(X))
    assert "instance_row" in names and "shrink" in names and not any("pcen" in n for n in names)


@pytest.mark.parametrize("bad, what", [
    ("pcen:gain=1.5", r"pcen parameter gain=1.5 is out of range: .* must lie in \[0, 1\] \(default 0.98\)"),
    ("pcen:t=0+per_row", r"pcen parameter t=0 is out of range: .* must lie in \(0, 60\]"),
    ("pcen:eps=-1", r"eps=-1 is out of range"),
    ("pcen:power=nan", r"power=nan is out of range"),
    ("shrink:w=2", r"shrink parameter w=2 is out of range"),
    ("pcen:alpha=1", r"pcen has no parameter 'alpha'; its parameters are gain, bias, power, t, eps"),
    ("per_row:w=1", r"'per_row' takes no parameters \(only pcen and shrink do"),
    ("pcen:gain", r"give pcen's gain as gain=NUMBER"),
    ("pcen:gain=x", r"pcen's gain='x' is not a number"),
    ("pcen:t=1:t=2", r"pcen's t is given twice"),
    ("pcen+nope", r"unknown scaler 'nope'; valid parts: scalers none, .*instance, instance_row, shrink"),
    ("sqrt+none", r"unknown compression 'sqrt'; valid parts: .*pcen\+"),
])
def test_bad_parameters_get_one_sentence(bad, what):
    with pytest.raises(NormScopeError, match=what) as info:
        parse_config(bad)
    assert "\n" not in str(info.value)


def test_parameter_names_are_canonical_and_travel(spectro):
    c = parse_config("PCEN:t=0.06:gain=0.8+Per_Row@mask")
    assert c.name == "pcen:gain=0.8:t=0.06+per_row@mask"  # canonical key order
    assert c == parse_config(c.name) and c.compress_kwargs()["t"] == 0.06
    assert parse_config("pcen:gain=0.98").name == "pcen+none"  # defaults left out; alone: +none
    assert parse_config("pcen") == Config("none", "pcen") and parse_config("db").name == "db+none"
    assert parse_config("shrink:w=0.123456789").name == "shrink:w=0.123457"  # 6 digits, as stored
    assert parse_config("pcen:bias=1000000").name == "pcen:bias=1e06+none"  # no "+" in numbers
    # A list splits on commas; a share link and a shell word keep a name whole.
    names = [c.name for c in parse_configs("pcen:t=0.06+per_row, db+instance_row,shrink:w=0.25")]
    assert names == ["pcen:t=0.06+per_row", "db+instance_row", "shrink:w=0.25"]
    q = parse_qs(urlencode({"configs": names}, doseq=True, safe="@"))
    assert q["configs"] == names
    assert all(ch not in n for n in names for ch in " ,()[];'\"")


def test_all_names_include_the_new_parts():
    names = all_config_names()
    for n in ("pcen+none", "pcen+per_row@mask", "instance", "instance_row", "shrink",
              "db+instance_row", "log1p+shrink@mask"):
        assert n in names
    assert all(parse_config(n).name == n for n in names)


def test_instance_is_each_examples_own_z_score(spectro, split):
    train, test = split
    nz = Normalizer("instance").fit(spectro, indices=train)
    x = spectro[test].astype(np.float64)
    m = x.mean(axis=(1, 2), keepdims=True)
    s = x.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(nz.transform(spectro[test]), (x - m) / s, rtol=1e-5, atol=1e-5)
    # Nothing fitted: any training split gives the same transform, and chunks don't matter.
    other = Normalizer("instance").fit(spectro, indices=test)
    np.testing.assert_array_equal(other.transform(spectro[test]), nz.transform(spectro[test]))
    np.testing.assert_array_equal(nz.transform(spectro[test[:7]]), nz.transform(spectro[test])[:7])


def test_instance_row_is_frequency_wise_and_composes(spectro, split):
    train, test = split
    nz = Normalizer("db+instance_row").fit(spectro, indices=train)
    x = compress(spectro[test], "db")
    want = (x - x.mean(axis=2, keepdims=True)) / x.std(axis=2, keepdims=True)
    np.testing.assert_allclose(nz.transform(spectro[test]), want, rtol=1e-5, atol=1e-5)
    X = spectro.copy()
    X[:, :3] = 0.01 * spectro[:, :3]
    X[:, 3:] += 10.0
    masked = Normalizer("instance_row@mask", mask_snr=2.0).fit(X, indices=train)
    assert masked.keep_rows_.sum() == 9
    full = Normalizer("instance_row").fit(X, indices=train)
    np.testing.assert_allclose(masked.transform(X[test]), full.transform(X[test])[:, 3:],
                               rtol=1e-6)


@pytest.mark.parametrize("name", ["instance", "instance_row", "db+instance", "pcen+instance_row"])
def test_instance_scalers_floor_constant_examples_and_count_them(spectro, name):
    X = spectro[:40].astype(np.float64)
    X[3] = 7.0  # a constant example: every row constant too
    X[5, 2] = 1e-3  # one constant band
    X[6, 4] = 2.0 + 4.5e-16 * (np.arange(17) % 2)  # zero up to round-off
    nz = Normalizer(name).fit(X)
    out = nz.transform(X)
    assert np.isfinite(out).all() and np.abs(out).max() < 1e3
    if name.startswith("pcen"):  # PCEN's filter starts from its own state: nothing is constant
        assert nz.n_floored_ == 0
        return
    assert np.abs(out[3]).max() < 1e-6
    if name.endswith("instance_row"):
        assert nz.n_floored_ == 12 + 2 and np.abs(out[5, 2]).max() < 1e-6 and np.abs(out[6, 4]).max() < 1e-6
    else:
        assert nz.n_floored_ == 1
    assert Normalizer("per_row").fit(X).n_floored_ is None


def test_std_floor_bounds_the_instance_scales(spectro):
    X = spectro[:30].astype(np.float64)
    X[:, 9:] *= 1e-6  # quiet bands
    free = Normalizer("instance_row").fit(X)
    floored = Normalizer("instance_row", std_floor=0.5).fit(X)
    assert free.n_floored_ == 0 and floored.n_floored_ >= 3 * 30
    # A quiet band is blown up to unit variance without the floor and damped with it.
    assert np.abs(free.transform(X)[:, 9:]).max() > 1.0
    assert np.abs(floored.transform(X)[:, 9:]).max() < 1e-3


def test_shrink_shrinks_each_pixel_variance_toward_its_band(spectro, split):
    train, test = split
    T = spectro[train].astype(np.float64)
    var = T.var(axis=0)
    band = var.mean(axis=1, keepdims=True)
    for w in (0.0, 0.25, 0.5, 1.0):
        nz = Normalizer(f"shrink:w={w}").fit(spectro, indices=train)
        want = np.sqrt((1 - w) * var + w * band)
        np.testing.assert_allclose(nz.center_, T.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(nz.scale_, want, rtol=1e-10)
        # Amplification over the band's scale is bounded by 1 / sqrt(w).
        if w > 0:
            assert np.all(nz.scale_ >= np.sqrt(w * band) * (1 - 1e-12))
    per_pixel = Normalizer("per_pixel").fit(spectro, indices=train)
    np.testing.assert_allclose(Normalizer("shrink:w=0").fit(spectro, indices=train).transform(
        spectro[test]), per_pixel.transform(spectro[test]), rtol=1e-5, atol=1e-5)


def test_shrink_never_divides_by_zero(spectro):
    X = spectro.astype(np.float64)
    X[:, 0, :] = 3.0  # a constant band: scale 1
    X[:, 4, 5] = 0.5  # a constant pixel in a live band: the band's share of scale
    nz = Normalizer("shrink").fit(X)
    assert np.all(nz.scale_[0] == 1.0)
    band = X[:, 4].var(axis=0).mean()
    np.testing.assert_allclose(nz.scale_[4, 5], np.sqrt(0.5 * band), rtol=1e-10)
    Y = X.copy()
    Y[:3, 4, 5] = 100.0  # a test value off the training constant: finite, not blown up
    out = Normalizer("shrink").fit(X).transform(Y)
    assert np.isfinite(out).all() and np.abs(out[:3, 4, 5]).max() < 1e3
