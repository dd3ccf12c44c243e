"""What the network sees: examples as a classifier receives them under each normalization.

Each config is fitted on the training split only (as in a comparison); the examples shown are
taken from the test split (one per class, or a chosen index), so the picture is what a trained
network meets at evaluation.  Beside them, the per-band mean and standard deviation after
normalization over a bounded sample of the test split (float64): per-pixel z-scoring of linear
power gives the quiet, noisy bands the same spread as the bands that carry the signal.

Rows that ``@mask`` drops are NaN in the returned arrays (drawn washed out), so every panel
keeps the input's H rows and lines up with the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer

#: Test examples the per-band profile is computed over, at most (evenly spread).
PROFILE_EXAMPLES = 256
#: Examples shown at most (one per class: datasets with many classes show the first ones).
MAX_EXAMPLES = 12


@dataclass(frozen=True, eq=False)
class Fitted:
    """One config fitted on the training split, with its per-band profile on the test split.

    Attributes
    ----------
    config : str
    normalizer : Normalizer
    band_mean, band_std : float64 arrays, shape (H,)
        Mean and standard deviation of each band after normalization, over the profile
        examples and their frames; NaN in dropped rows.
    n_profile : int
        Examples the profile is computed over.
    """

    config: str
    normalizer: Normalizer
    band_mean: np.ndarray
    band_std: np.ndarray
    n_profile: int

    @property
    def kept(self) -> np.ndarray:
        return self.normalizer.keep_rows_


@dataclass(frozen=True, eq=False)
class ConfigView:
    """The chosen examples under one config: ``examples`` (n, H, W) float64, NaN in dropped rows."""

    config: str
    examples: np.ndarray
    kept: np.ndarray
    band_mean: np.ndarray
    band_std: np.ndarray
    n_profile: int


def parts(ds: Dataset):
    """The dataset's deterministic train/val/test split (the one the Statistics page uses)."""
    return split_indices(ds.n, ds.y)


def pick_examples(ds: Dataset, *, index: int | None = None,
                  max_examples: int = MAX_EXAMPLES) -> list[tuple[int, str]]:
    """Example indices with a label each: one per class from the test split (the first of each
    class), or the chosen ``index``.

    Raises
    ------
    NormScopeError
        For an index outside 0..N-1.
    """
    if index is not None:
        if not 0 <= int(index) < ds.n:
            raise NormScopeError(f"example {index} does not exist; {ds.name} has examples "
                                 f"0-{ds.n - 1}")
        i = int(index)
        cls = f" · {ds.class_names[ds.y[i]]}" if ds.y is not None else ""
        return [(i, f"#{i}{cls}")]
    test = parts(ds).test
    if test.size == 0:
        test = np.arange(ds.n)
    if ds.y is None:
        return [(int(i), f"#{int(i)}") for i in test[:min(max_examples, 3)]]
    out = []
    for c, name in enumerate(ds.class_names):
        hit = test[ds.y[test] == c]
        if hit.size:
            out.append((int(hit[0]), f"{name} · #{int(hit[0])}"))
        if len(out) == max_examples:
            break
    return out


def _with_rows(out: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Transformed examples (n, H', W) back on all H rows, NaN where rows were dropped."""
    if kept.all():
        return out.astype(np.float64)
    full = np.full((out.shape[0], kept.size, out.shape[2]), np.nan)
    full[:, kept] = out
    return full


def fit_config(ds: Dataset, config: str, *, mask_snr: float,
               max_profile: int = PROFILE_EXAMPLES) -> Fitted:
    """Fit ``config`` on the training split and profile it on (a sample of) the test split.

    Raises
    ------
    NormScopeError
        From :meth:`Normalizer.fit` (a config the data cannot take, a mask removing every row).
    """
    split = parts(ds)
    norm = Normalizer(config, mask_snr=mask_snr).fit(ds.X, indices=split.train)
    test = split.test if split.test.size else split.train
    if test.size > max_profile:
        test = test[np.linspace(0, test.size - 1, max_profile).round().astype(np.int64)]
    out = norm.transform(ds.X[test]).astype(np.float64)
    kept = norm.keep_rows_
    mean, std = np.full(kept.size, np.nan), np.full(kept.size, np.nan)
    mean[kept] = out.mean(axis=(0, 2))
    std[kept] = out.std(axis=(0, 2))
    return Fitted(str(config), norm, mean, std, int(test.size))


def network_view(ds: Dataset, fitted: Fitted, indices: list[int]) -> ConfigView:
    """The examples ``indices`` as the network receives them under ``fitted``."""
    idx = np.asarray(indices, np.int64)
    order = np.argsort(idx, kind="stable")  # a memmap reads sorted indices fastest
    x = np.empty((idx.size,) + ds.shape, ds.X.dtype)
    x[order] = ds.X[idx[order]]
    ex = _with_rows(fitted.normalizer.transform(x), fitted.kept)
    return ConfigView(fitted.config, ex, fitted.kept.copy(), fitted.band_mean, fitted.band_std,
                      fitted.n_profile)
