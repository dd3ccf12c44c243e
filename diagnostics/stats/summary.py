"""One place that turns a dataset and its statistics into the numbers people read."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.stats.findings import data_kind, find, mask_information
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.bands import band_information
from diagnostics.stats.moments import compute_stats, energy_share, row_mask


def dataset_stats(ds: Dataset, *, on: str = "train", seed: int = 0, client=None) -> PixelStats:
    """Statistics of a dataset over its training split (``on="train"``) or all examples
    (on the Dask cluster of ``client`` when given)."""
    if on == "all":
        idx = None
    elif on == "train":
        idx = split_indices(ds.n, ds.y, seed=seed).train
    else:
        raise NormScopeError(f"--on {on!r} is unknown; use train or all")
    stats = compute_stats(ds.X, indices=idx, labels=ds.y, n_classes=len(ds.class_names),
                          client=client)
    if ds.y is not None and len(ds.class_names) > 1:
        info = band_information(ds.X, ds.y, indices=idx, n_classes=len(ds.class_names))
        stats = dataclasses.replace(stats, band_info=info)
    return stats


def _finite(x: float) -> float | None:
    """JSON holds finite numbers only: NaN/inf become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _range(a: np.ndarray) -> list[float | None]:
    fin = a[np.isfinite(a)]
    if fin.size == 0:
        return [None, None]
    return [_finite(fin.min()), _finite(fin.max())]


def summary(ds: Dataset, stats: PixelStats, *, on: str = "train",
            mask_snr: float = DEFAULT_MASK_SNR) -> dict:
    """JSON-ready summary: sizes, ranges, what the data looks like (``data_kind``: ``{kind,
    text}``, see :func:`diagnostics.stats.findings.data_kind`), degenerate counts, low-SNR rows
    and findings."""
    mask = row_mask(stats.row_snr, threshold=mask_snr)
    kind = data_kind(stats)
    return {
        "dataset": ds.name,
        "id": ds.id,
        "n": stats.n,
        "n_total": ds.n,
        "on": on,
        "shape": list(stats.shape),
        "classes": list(ds.class_names),
        "min": _finite(np.nanmin(stats.min)) if np.isfinite(stats.min).any() else None,
        "max": _finite(np.nanmax(stats.max)) if np.isfinite(stats.max).any() else None,
        "global_mean": _finite(stats.global_mean),
        "global_std": _finite(stats.global_std),
        "mean_range": _range(stats.mean),
        "std_range": _range(stats.std),
        "snr_range": _range(stats.snr),
        "amplification_max": _range(stats.amplification)[1],
        "skewness": _finite(stats.skewness),
        "data_kind": kind.as_dict(),
        "constant_pixels": stats.n_constant,
        "nonfinite_values": stats.n_nonfinite,
        "mask_snr": mask_snr,
        "low_snr_rows": np.flatnonzero(mask).tolist(),
        "masked_energy_share": _finite(energy_share(stats, mask)),
        "band_information": None if stats.band_info is None else {
            "eta2": [_finite(v) for v in stats.band_info.eta2],
            "chance": _finite(stats.band_info.chance),
            "log_energy": stats.band_info.log,
            "masked_rows_informative": (lambda mi: None if mi is None else mi.informative)(
                mask_information(stats, mask)),
        },
        "notes": list(ds.notes),
        "findings": [f.as_dict() for f in find(stats, mask_snr=mask_snr, row_label=ds.row_noun,
                                               kind=kind)],
    }
