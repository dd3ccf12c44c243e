"""Shift per band: KS per band with Holm finds exactly the shifted bands, and names the kind."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from diagnostics.stats import shift
from diagnostics.stats.shift import band_energy, band_shift, holm, shift_between, shift_finding


def _power(rng, n, h=40, w=16):
    """Linear-power-like examples: exponential noise times a band profile and a per-example level."""
    level = np.geomspace(50.0, 0.05, h)[:, None]
    loud = rng.lognormal(0.0, 0.3, (n, 1, 1))
    return (rng.exponential(1.0, (n, h, w)) * level * loud).astype(np.float32)


def test_gain_in_bands_10_to_19_is_found_and_only_there(rng):
    a, b = _power(rng, 300), _power(rng, 300)
    b[:, 10:20] *= 2.0
    res = band_shift(a, b, names=("train", "test"))
    assert res.bands.tolist() == list(range(10, 20))
    assert set(res.kind[h] for h in range(10, 20)) == {"gain"}
    np.testing.assert_allclose(res.level_ratio[10:20], 2.0, rtol=0.25)
    f = shift_finding(res)
    assert f.code == "band_shift" and f.severity == "warning"
    assert "bands 10-19" in f.message and "10 by a gain" in f.message and "instance_row" in f.message


def test_offset_in_bands_10_to_19_is_found_and_only_there(rng):
    a, b = _power(rng, 300), _power(rng, 300)
    med = np.median(band_energy(a), axis=0)
    b[:, 10:20] += med[10:20, None]  # the level doubles, the spread stays
    res = band_shift(a, b)
    assert res.bands.tolist() == list(range(10, 20))
    assert set(res.kind[h] for h in range(10, 20)) == {"offset"}
    assert "10 by an offset" in shift_finding(res).message


def test_one_gain_on_every_band_suggests_per_example_normalization(rng):
    a, b = _power(rng, 300), _power(rng, 300) * 3.0
    res = band_shift(a, b)
    assert res.shifted.all()
    assert "`instance`" in shift_finding(res).message


def test_signed_offset_has_no_gain_reading(rng):
    a = rng.normal(0.0, 1.0, (300, 12, 10))
    b = rng.normal(0.0, 1.0, (300, 12, 10))
    b[:, 3:5] += 1.0
    res = band_shift(a, b)
    assert res.bands.tolist() == [3, 4]
    assert [res.kind[h] for h in (3, 4)] == ["offset", "offset"]


def test_no_shift_flags_a_band_at_most_at_the_claimed_rate():
    """Under no shift, Holm over bands keeps P(any band flagged) <= alpha: 300 seeded nulls."""
    rng = np.random.default_rng(7)
    reps, flagged = 300, 0
    for _ in range(reps):
        Ea = rng.lognormal(0.0, 1.0, (80, 20))
        Eb = rng.lognormal(0.0, 1.0, (60, 20))
        flagged += bool(shift_between(Ea, Eb).shifted.any())
    # One-sided binomial test of "rate <= 0.05": failing needs a rate clearly above alpha.
    assert stats.binomtest(flagged, reps, shift.ALPHA, alternative="greater").pvalue > 0.001, flagged


def test_no_shift_finding_never_says_there_is_none(rng):
    a, b = _power(rng, 200), _power(rng, 200)
    f = shift_finding(band_shift(a, b, names=("train", "test")))
    assert f.severity == "info" and "not ruled out" in f.message and "No band shifts" in f.message


def test_ks_and_holm_agree_with_scipy_and_statsmodels_rule(rng):
    Ea, Eb = rng.normal(size=(50, 6)), rng.normal(0.3, 1.0, (40, 6))
    res = shift_between(Ea, Eb)
    for h in range(6):
        r = stats.ks_2samp(Ea[:, h], Eb[:, h])
        assert res.ks[h] == pytest.approx(r.statistic) and res.p[h] == pytest.approx(r.pvalue)
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm by hand: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> running max.
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_monotone_transform_leaves_the_verdict_alone(rng):
    a, b = _power(rng, 200), _power(rng, 200)
    b[:, 5:8] *= 1.8
    lin = shift_between(band_energy(a), band_energy(b))
    log = shift_between(np.log10(band_energy(a)), np.log10(band_energy(b)))
    np.testing.assert_allclose(lin.ks, log.ks)
    assert lin.bands.tolist() == log.bands.tolist()


def test_frames_may_differ_and_nonfinite_values_are_left_out(rng):
    a, b = _power(rng, 100, w=16), _power(rng, 120, w=9)
    a[0, 2, :] = np.nan
    res = band_shift(a, b)
    assert res.ks.shape == (40,) and np.isfinite(res.ks).all()


def test_mismatched_rows_are_refused(rng):
    with pytest.raises(ValueError, match="rows"):
        band_shift(np.zeros((5, 4, 3)), np.zeros((5, 6, 3)))
