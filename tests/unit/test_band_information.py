"""Class information per band: the label-aware check that keeps the mask from removing signal."""

from __future__ import annotations

import numpy as np
import pytest

from band_helpers import speechlike as _speechlike
from diagnostics.data.dataset import Dataset
from diagnostics.stats.findings import find, mask_information
from diagnostics.stats.bands import band_information
from diagnostics.stats.moments import row_mask
from diagnostics.stats.summary import dataset_stats


def _eta2_oracle(e, y):
    m = e.mean(0)
    total = ((e - m) ** 2).sum(0)
    between = sum((y == c).sum() * (e[y == c].mean(0) - m) ** 2 for c in np.unique(y))
    return between / total


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, None])
def test_matches_a_numpy_oracle_for_any_chunking(spectro, labels, chunk_rows):
    info = band_information(spectro, labels, n_classes=4, chunk_rows=chunk_rows)
    e = np.log10(np.maximum(spectro.astype(np.float64).mean(2), 1e-12))
    np.testing.assert_allclose(info.eta2, _eta2_oracle(e, labels), rtol=1e-9, atol=1e-12)
    assert info.log and info.chance == pytest.approx(3 / 239)


def test_signed_data_use_linear_energy_and_indices_select(rng):
    X = rng.normal(0, 1, (90, 4, 6))
    y = np.arange(90) % 3
    X[y == 1, 2] += 2.0  # row 2 carries the class
    idx = np.arange(0, 90, 2)
    info = band_information(X, y, indices=idx, n_classes=3)
    assert not info.log
    np.testing.assert_allclose(info.eta2, _eta2_oracle(X[idx].mean(2), y[idx]), rtol=1e-9)
    assert np.nanargmax(info.eta2) == 2


def test_low_snr_rows_that_carry_the_class_are_not_called_noise(rng):
    ds = _speechlike(rng)
    stats = dataset_stats(ds)
    mask = row_mask(stats.row_snr, threshold=0.5)
    assert mask[:8].all() and not mask[8:].any()  # SNR alone would mask the signal
    mi = mask_information(stats, mask)
    assert mi.informative and mi.masked > 5 * mi.kept
    text = next(f.message for f in find(stats, mask_snr=0.5) if f.code == "low_snr_rows")
    assert "carry class information" in text and "db+per_row" in text


def test_noise_rows_of_the_demo_carry_no_class_information():
    from diagnostics.data.builtin import demo_dataset

    stats = dataset_stats(demo_dataset())
    mask = row_mask(stats.row_snr, threshold=0.2)
    mi = mask_information(stats, mask)
    assert not mi.informative
    text = next(f.message for f in find(stats, mask_snr=0.2) if f.code == "low_snr_rows")
    assert "little class information" in text


def test_no_labels_no_band_information(spectro):
    ds = Dataset(X=spectro, y=None, class_names=(), name="x", id="x")
    stats = dataset_stats(ds)
    assert stats.band_info is None
    assert mask_information(stats, row_mask(stats.row_snr, threshold=0.9)) is None



def test_large_offsets_nan_examples_and_silence_do_not_distort(rng):
    y = np.arange(300) % 3
    X = rng.normal(1e6, 1.0, (300, 5, 8))
    X[y == 1, 2] += 0.8  # signed data, huge offset: only row 2 carries the class
    info = band_information(X, y, n_classes=3)
    e = X.mean(2)
    np.testing.assert_allclose(info.eta2, _eta2_oracle(e - 1e6, y), rtol=1e-6, atol=1e-9)
    P = rng.exponential(1.0, (300, 5, 8))
    clean = band_information(P, y, n_classes=3).eta2
    P[:5] = np.nan  # examples without finite values are left out, not counted as silence
    P[5:8] = 0.0  # silent clips are floored 80 dB down, not at log10(0)
    dirty = band_information(P, y, n_classes=3).eta2
    assert np.all(dirty < 0.05) and np.all(np.abs(dirty - clean) < 0.03)


def test_reads_a_bounded_sample(spectro, labels):
    a = band_information(spectro, labels, n_classes=4, max_examples=60)
    pick = np.linspace(0, len(spectro) - 1, 60).round().astype(int)  # evenly spread
    b = band_information(spectro[pick], labels[pick], n_classes=4)
    np.testing.assert_allclose(a.eta2, b.eta2, rtol=1e-12)
    assert a.chance == pytest.approx(3 / 59)
