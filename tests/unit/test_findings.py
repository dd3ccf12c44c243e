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
