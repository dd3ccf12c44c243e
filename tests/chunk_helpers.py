"""Offset data for the chunked-statistics tests (in process and on a Dask cluster): one
definition of the array, its copies on disk, and the float64 reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The copies :func:`write_offset_copies` writes (specs for load_dataset, under its folder).
BASIC = ("x.npy", "z.zarr", "f.h5:/X")
#: With ``more=True``: zarr uncompressed and HDF5 gzip as well.
ALL = ("x.npy", "z.zarr", "raw.zarr", "f.h5:/X", "f.h5:/gz")


def offset_data(rng: np.random.Generator) -> np.ndarray:
    """(600, 60, 130) float32 as mel spectrograms: 1e4 + 0.01 x noise, where a one-pass or
    absolute-mean merge loses the std."""
    return (1e4 + 0.01 * rng.standard_normal((600, 60, 130))).astype(np.float32)


def write_offset_copies(folder: Path, X: np.ndarray, *, more: bool = False) -> Path:
    """``X`` as .npy, zarr (zstd) and HDF5 (unfiltered) in chunks of 50 examples; ``more``
    adds zarr uncompressed and HDF5 gzip (see :data:`ALL`).  Returns ``folder``."""
    import h5py
    import zarr

    np.save(folder / "x.npy", X)
    zarr.create_array(str(folder / "z.zarr"), data=X, chunks=(50, 60, 130))
    if more:
        zarr.create_array(str(folder / "raw.zarr"), data=X, chunks=(50, 60, 130),
                          compressors=None)
    with h5py.File(folder / "f.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(50, 60, 130))
        if more:
            f.create_dataset("gz", data=X, chunks=(50, 60, 130), compression="gzip")
    return folder


def two_pass(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and std (ddof 0) by a float64 two-pass: the reference."""
    x = np.asarray(X, np.float64)
    mu = x.mean(0)
    return mu, np.sqrt(((x - mu) ** 2).mean(0))
