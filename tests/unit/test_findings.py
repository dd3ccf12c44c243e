"""Findings: each code fires on data built to trigger it, and stays silent on clean data."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.stats.findings import AMPLIFICATION_LIMIT, find, ranges
from diagnostics.stats.moments import compute_stats

SHAPE = (300, 6, 8)


def codes(stats, **kw) -> dict[str, str]:
    return {f.code: f.severity for f in find(stats, **kw)}


@pytest.fixture
def clean(rng) -> np.ndarray:
    """Symmetric values, SNR about 10 everywhere, one scale for every pixel: nothing to say."""
    return (10.0 + rng.standard_normal(SHAPE)).astype(np.float32)


def test_clean_data_has_no_problems(clean):
    (f,) = find(compute_stats(clean))
    assert (f.code, f.severity) == ("no_problems", "info")


def test_skewed_values(rng, clean):
    X = rng.lognormal(0.0, 1.5, SHAPE).astype(np.float32)
    found = find(compute_stats(X))
    assert {f.code for f in found} == {"skewed_values"}
    assert "power_to_db" in found[0].message and "skewness" in found[0].message
    # A heavy tail with negative values is not linear power: no advice to take the log.
    assert "skewed_values" not in codes(compute_stats(X - 5.0))
    assert "skewed_values" not in codes(compute_stats(clean))


def test_amplified_noise_names_the_rows(rng, clean):
    X = clean.copy()
    X[:, 4:] = 10.0 + 0.01 * rng.standard_normal((SHAPE[0], 2, SHAPE[2]))
    st = compute_stats(X)
    assert np.nanmax(st.amplification) > AMPLIFICATION_LIMIT
    assert codes(st) == {"amplified_noise": "warning"}
    (f,) = find(st, row_label="band")
    assert "bands 4-5" in f.message and "16 pixels" in f.message
    assert f"{np.nanmax(st.amplification):,.0f}x" in f.message
    assert "amplified_noise" not in codes(compute_stats(clean))


def test_low_snr_rows(rng, clean):
    X = clean.copy()
    X[:, 4:] = rng.standard_normal((SHAPE[0], 2, SHAPE[2]))  # zero-mean noise: SNR near 0
    st = compute_stats(X)
    assert codes(st) == {"low_snr_rows": "warning"}
    (f,) = find(st, row_label="band")
    assert "2 of 6 bands" in f.message and "bands 4-5" in f.message
    assert codes(st, mask_snr=0.0) == {"no_problems": "info"}  # 0 switches the rule off
    (f,) = find(st, mask_snr=1e6)  # every row under the threshold: say so, differently
    assert f.code == "low_snr_rows" and "too high" in f.message
    assert "low_snr_rows" not in codes(compute_stats(clean))


def test_constant_pixels(clean):
    X = clean.copy()
    X[:, 1, 2] = 3.0
    X[:, 5, 7] = 0.0
    assert codes(compute_stats(X)) == {"constant_pixels": "warning"}
    (f,) = find(compute_stats(X))
    assert "2 pixels" in f.message and "bands 1, 5" in f.message
    every = codes(compute_stats(np.full(SHAPE, 7.0, np.float32)))
    assert every["constant_pixels"] == "error"
    assert "constant_pixels" not in codes(compute_stats(clean))


def test_nonfinite_values(clean):
    X = clean.copy()
    X[3, 2, 2] = np.nan
    X[4, 2, 3] = np.inf
    X[9, 0, 0] = -np.inf
    found = find(compute_stats(X))
    assert [(f.code, f.severity) for f in found] == [("nonfinite_values", "error")]
    assert "3 values" in found[0].message and "bands 0, 2" in found[0].message
    assert "nonfinite_values" not in codes(compute_stats(clean))


def test_worst_first_and_dicts(rng, clean):
    X = rng.lognormal(0.0, 1.5, SHAPE).astype(np.float32)
    X[0, 0, 0] = np.nan
    X[:, 2, 2] = 1.0
    found = find(compute_stats(X))
    sev = [f.severity for f in found]
    assert sev == sorted(sev, key=["error", "warning", "info"].index)
    assert found[0].as_dict() == {"code": found[0].code, "severity": found[0].severity,
                                  "message": found[0].message}


@pytest.mark.parametrize("idx, text", [([], "none"), ([3], "3"), ([0, 1, 2, 5], "0-2, 5"),
                                       ([1, 3, 4, 5, 9, 10], "1, 3-5, 9-10")])
def test_ranges(idx, text):
    assert ranges(np.array(idx, int)) == text


def test_suggested_configs_follow_the_statistics(rng, clean):
    from diagnostics.data.ingest import load_dataset
    from diagnostics.stats.findings import suggested_configs
    from diagnostics.stats.summary import dataset_stats

    # Nothing to cure: the question only.
    assert suggested_configs(compute_stats(clean), 0.2) == ["none", "per_pixel"]
    # Linear power (non-negative, heavy tail): dB compression is worth a try.
    power = rng.lognormal(0.0, 1.5, SHAPE).astype(np.float32)
    assert suggested_configs(compute_stats(power), 0.0) == ["none", "per_pixel", "db+per_row"]
    # The demo: low-SNR rows that carry no class information, so masking them is worth a try.
    demo = load_dataset("demo")
    train = dataset_stats(demo, on="train")
    assert suggested_configs(train, 0.2) == ["none", "per_pixel", "per_pixel@mask", "db+per_row"]
    assert "per_pixel@mask" not in suggested_configs(train, 0.0)  # no mask, nothing to drop
    assert "per_pixel@mask" not in suggested_configs(train, 5.0)  # every row masked


# -- advice that fits the data ------------------------------------------------------------

#: Words that belong to audio (and dB advice) and must not reach the user about images.
AUDIO_WORDS = ("band", "frequency", "dB", "db+", "spectrogram", "power_to_db", "CMVN")
#: Advice to compress, which signed and image data must never get.
DB_ADVICE = ("dB", "db+", "power_to_db", "compress with")


def _texts(stats, **kw) -> list[str]:
    from diagnostics.stats.findings import data_kind, suggested_configs

    return ([f.message for f in find(stats, **kw)] + [data_kind(stats).text]
            + suggested_configs(stats, kw.get("mask_snr", 0.2)))


@pytest.fixture
def mfcc(rng) -> np.ndarray:
    """(40, 20, 44) MFCCs of white noise (librosa), as a spoken-word set's features are."""
    import librosa

    y = 0.1 * rng.standard_normal((40, 22050)).astype(np.float32)
    return librosa.feature.mfcc(y=y, sr=22050, n_mfcc=20).astype(np.float32)


def test_data_kind_reads_what_the_data_is(rng, clean, mfcc):
    from sklearn.datasets import load_digits

    from diagnostics.stats.findings import data_kind

    power = rng.lognormal(0.0, 1.5, SHAPE).astype(np.float32)
    digits = load_digits().images.astype(np.float32)
    mnist_like = ((rng.random((200, 28, 28)) < 0.13) * rng.integers(1, 256, (200, 28, 28)) / 255)
    assert data_kind(compute_stats(power)).kind == "power"
    assert data_kind(compute_stats(mfcc)).kind == "log"
    assert data_kind(compute_stats(power - 5.0)).kind == "log"  # heavy tail, but signed
    assert data_kind(compute_stats(digits)).kind == "image"  # 0..16, whole numbers
    assert data_kind(compute_stats(digits / 16)).kind == "image"  # 17 levels in 0..1
    # Skewed as power is (skewness over 3), but on 256 levels: an image, not power.
    st = compute_stats(mnist_like.astype(np.float32))
    assert st.skewness > 2 and data_kind(st).kind == "image"
    assert data_kind(compute_stats(clean)).kind == "other"
    text = data_kind(compute_stats(mfcc)).text
    assert "negative" in text and "MFCC" in text and "per_row" in text


@pytest.mark.parametrize("make", ["mfcc", "synthetic"])
def test_signed_log_domain_data_gets_no_db_advice(rng, mfcc, make):
    from diagnostics.stats.findings import suggested_configs

    if make == "mfcc":
        X = mfcc
    else:  # signed, heavy-tailed, with near-constant and low-SNR rows: every rule fires
        X = rng.lognormal(0.0, 1.5, SHAPE) - 3.0
        X[:, 4:] = -3.0 + 0.001 * rng.standard_normal((SHAPE[0], 2, SHAPE[2]))
        X[:, 0] = rng.standard_normal((SHAPE[0], SHAPE[2]))
        X = X.astype(np.float32)
    st = compute_stats(X)
    found = find(st, mask_snr=0.2)
    if make == "synthetic":
        assert {f.code for f in found} >= {"amplified_noise", "low_snr_rows"}
        amp = next(f.message for f in found if f.code == "amplified_noise")
        assert "per_row" in amp and "no scaling" in amp
    for text in _texts(st, mask_snr=0.2):
        assert not any(w in text for w in ("db+", "power_to_db", "dB compression")), text
    assert "skewed_values" not in {f.code for f in found}
    configs = suggested_configs(st, 0.2)
    assert configs[:2] == ["none", "per_pixel"] and "per_row" in configs
    assert not any("+" in c for c in configs)


def test_digits_get_neither_audio_words_nor_db_advice():
    from diagnostics.data.ingest import load_dataset
    from diagnostics.stats.summary import dataset_stats, summary

    ds = load_dataset("digits")
    st = dataset_stats(ds, on="train")
    assert {f.code for f in find(st)} >= {"amplified_noise", "constant_pixels"}
    # Whatever row name the caller passes by default, images have rows, not bands.
    for kw in ({}, {"row_label": "band"}, {"row_label": "row"}):
        for text in _texts(st, **kw):
            assert not any(w in text for w in AUDIO_WORDS), text
    info = summary(ds, st)
    assert info["data_kind"]["kind"] == "image" and "image" in info["data_kind"]["text"]
    for f in info["findings"]:
        assert not any(w in f["message"] for w in AUDIO_WORDS), f["message"]
    # An image stored as a plain file reads "frequency band" by default: still rows.
    import dataclasses

    as_file = dataclasses.replace(ds, row_label="frequency band")
    for f in summary(as_file, st)["findings"]:
        assert not any(w in f["message"] for w in AUDIO_WORDS), f["message"]


def test_power_still_gets_db_advice(rng):
    from diagnostics.stats.findings import data_kind, suggested_configs

    X = rng.lognormal(0.0, 1.5, SHAPE)
    X[:, 4:] *= 1e-4  # faint rows: per-pixel z-scoring blows them up
    st = compute_stats(X.astype(np.float32))
    found = {f.code: f.message for f in find(st)}
    assert data_kind(st).kind == "power"
    assert "power_to_db" in found["skewed_values"]
    assert "dB compression (usually the cure)" in found["amplified_noise"]
    assert "per-band scaling" in found["amplified_noise"]
    assert "db+per_row" in suggested_configs(st, 0.0)
