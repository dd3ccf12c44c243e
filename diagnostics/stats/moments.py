"""Per-pixel statistics in one streaming pass, in float64, with a stable merge.

Two engines give the same numbers:

* numpy (:func:`~diagnostics.stats.stream.stream_stats`, the default): blocks of rows (read
  with ``preadv`` from a memmapped file or a raw zarr/HDF5 chunk, a view or a gather
  otherwise; compressed chunks decoded once into reused buffers) handed to worker threads on
  demand.  Each worker keeps float64 sums of ``x - K`` and of its square, ``K`` its running
  mean (so large offsets cancel before squaring), and folds them into a
  :class:`StatsAccumulator` with the Chan-Golub-LeVeque update every 16 MB (means relative to
  one origin per pixel, so the merges lose nothing on offset data); blocks holding NaN or inf
  go through :meth:`StatsAccumulator.partial_fit` (two-pass per chunk in float64, as
  scikit-learn's ``_incremental_mean_and_var``).  Accumulators merge with each other the same
  way.
* numba (:func:`~diagnostics.stats.kernels.numba_stats`, shipped with librosa): the same sums
  in one compiled pass, about four times faster per value, but importing numba and loading the compiled kernels costs
  about 0.4 s, most of a one-off command's run.  ``auto`` takes it only where that is paid
  already (kernels loaded in this process) or repaid (arrays of several GB).

Worker threads: one per free core (:func:`~diagnostics.stats.stream.n_threads`); blocks are
handed out on demand, so a core that becomes busy during a pass slows it down but never
stalls it.

Non-finite values are counted per pixel and left out; constant pixels (std effectively zero,
decided relative to float eps like scikit-learn's ``_is_constant_feature``) are flagged and
get NaN SNR and amplification, never a division by zero.

Modules: :mod:`~diagnostics.stats.accumulate` (PixelStats and the float64 accumulator),
:mod:`~diagnostics.stats.stream` (the numpy engine), :mod:`~diagnostics.stats.kernels` (numba),
:mod:`~diagnostics.stats.bands` (the class information per band); this one chooses the engine
and holds the row mask and the masked share.
"""

from __future__ import annotations

import mmap

import numpy as np

from diagnostics.errors import NormScopeError

from .accumulate import SAMPLE_VALUES, PixelStats, StatsAccumulator

#: Arrays at least this large (bytes) take the numba engine even where numba is not loaded
#: yet: its faster pass then outweighs importing numba and loading the compiled kernels (about
#: 0.4 s, most of a one-off ``stats`` command on a 600 MB file).
NUMBA_MIN_BYTES = 4 * 2**30
#: Arrays at least this large take the numba engine where its kernels are already loaded (a
#: long-running process that used it before): nothing is left to pay for it.
NUMBA_LOADED_MIN_BYTES = 64 * 2**20
#: Target size of one float64 chunk in the numpy engine (bounds extra memory).
CHUNK_BYTES = 8 * 2**20


def chunk_rows_for(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(row_bytes, 1))


def numba_ok(X: np.ndarray) -> bool:
    """Whether the numba engine can read ``X`` as it is (C-contiguous float32 or float64)."""
    if not isinstance(X, np.ndarray):  # a zarr/HDF5 source is read chunk by chunk in numpy
        return False
    return X.dtype in (np.float32, np.float64) and X.reshape(X.shape[0], -1).flags.c_contiguous


def _kernels_loaded() -> bool:
    import sys

    kernels = sys.modules.get("diagnostics.stats.kernels")  # never imported just to ask
    return kernels is not None and kernels.kernels_loaded()


def _advise_sequential(X: np.ndarray) -> None:
    # Tell the kernel we read front to back: bigger read-ahead when the page cache is cold.
    mm = getattr(X, "_mmap", None) or getattr(getattr(X, "base", None), "_mmap", None)
    if mm is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(mmap.MADV_SEQUENTIAL)
        except (OSError, ValueError):
            pass


def compute_stats(
    X: np.ndarray,
    *,
    indices: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    n_classes: int = 0,
    engine: str = "auto",
    chunk_rows: int | None = None,
    client=None,
) -> PixelStats:
    """Per-pixel statistics of ``X[indices]`` in one streaming pass.

    Parameters
    ----------
    X : np.ndarray, shape (N, H, W)
        Any real dtype; may be a memmap (it is read in chunks, never copied whole).
    indices : int array or bool mask of shape (N,), optional
        Examples to summarise (e.g. the training split); default all.  A set: order and
        repeats do not matter.
    labels : int array, shape (N,), optional
        Class of every example in ``X``, for per-class mean maps (needs ``n_classes``).
    n_classes : int
    engine : {"auto", "numpy", "numba"}
        ``auto`` takes numba for arrays of ``NUMBA_MIN_BYTES`` or more, or of
        ``NUMBA_LOADED_MIN_BYTES`` or more once its kernels are loaded; numpy otherwise.
    chunk_rows : int, optional
        Examples per block for the numpy engine (default: about 2 MB of float64).
    client : distributed.Client, optional
        Compute on this Dask cluster instead (:func:`~diagnostics.stats.tree.tree_stats`:
        per-chunk moments merged in a tree; the same numbers).

    Returns
    -------
    PixelStats
    """
    if engine not in ("auto", "numpy", "numba"):
        raise NormScopeError(f"engine={engine!r} is unknown; use auto, numpy or numba")
    if X.ndim != 3:
        raise NormScopeError(f"statistics need an (N, H, W) array, got shape {X.shape}")
    N, H, W = X.shape
    idx = _as_indices(indices, N)
    if labels is None or n_classes <= 0:
        labels, n_classes = None, 0
    else:
        labels = np.asarray(labels)
        if labels.shape != (N,) or labels.dtype.kind not in "iu":
            raise NormScopeError(
                f"labels must be {N} integers (one per example), got shape {labels.shape} "
                f"of type {labels.dtype}"
            )
        lab = labels[idx]
        if lab.min() < 0 or lab.max() >= n_classes:
            raise NormScopeError(
                f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}), found "
                f"{lab.min()}..{lab.max()}; encode them with datasets.encode_labels"
            )
    if client is not None and X.dtype.kind in "fiu":
        from .tree import tree_stats  # dask: only on a cluster

        return tree_stats(X, idx, labels, n_classes, client)
    if engine == "auto":
        nbytes = idx.size * H * W * X.dtype.itemsize
        loaded = nbytes >= NUMBA_LOADED_MIN_BYTES and _kernels_loaded()
        engine = "numba" if (nbytes >= NUMBA_MIN_BYTES or loaded) and numba_ok(X) else "numpy"
    elif engine == "numba" and not numba_ok(X):
        raise NormScopeError(
            f"engine='numba' needs a C-contiguous float32 or float64 array, got {X.dtype}; "
            "use engine='auto'"
        )
    _advise_sequential(X)
    if engine == "numba":
        from .kernels import numba_stats  # numba: imported only when this engine runs

        return numba_stats(X, idx, labels, n_classes)
    if X.dtype.kind in "fiu":
        from .stream import block_rows, stream_stats

        return stream_stats(X, idx, labels, n_classes, chunk_rows or block_rows(H * W))
    rows = chunk_rows or chunk_rows_for(H * W * 8)
    acc = StatsAccumulator((H, W), n_classes=n_classes,
                           sample_every=max(1, idx.size * H * W // SAMPLE_VALUES))
    # Consecutive indices are read as slices: a view of the memmap, no fancy-index copy.
    contiguous = idx.size == 0 or idx[-1] - idx[0] + 1 == idx.size
    for start in range(0, idx.size, rows):
        sel = idx[start : start + rows]
        chunk = X[sel[0] : sel[-1] + 1] if contiguous else X[sel]
        acc.partial_fit(chunk, None if labels is None else labels[sel])
    return acc.finalize()


def _as_indices(indices, n: int) -> np.ndarray:
    """Sorted unique int64 example indices from None (all), integers or a boolean mask."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    ind = np.asarray(indices)
    if ind.dtype == bool:
        if ind.shape != (n,):
            raise NormScopeError(f"a boolean example mask must have {n} entries, got {ind.shape}")
        ind = np.flatnonzero(ind)
    elif ind.size and ind.dtype.kind not in "iu":
        raise NormScopeError(f"example indices must be integers, got {ind.dtype}")
    idx = ind.astype(np.int64).ravel()
    if idx.size > 1 and not (idx[1:] > idx[:-1]).all():  # np.unique would import numpy.ma
        idx = np.sort(idx)
        idx = idx[np.concatenate(([True], idx[1:] != idx[:-1]))]
    if idx.size == 0:
        raise NormScopeError("no examples to summarise; the selection is empty")
    if idx[0] < 0 or idx[-1] >= n:
        raise NormScopeError(f"example indices must lie in 0..{n - 1}, got {idx[0]}..{idx[-1]}")
    return idx


def row_mask(
    row_snr: np.ndarray,
    *,
    threshold: float = 0.0,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rows to hold out: row SNR under ``threshold`` (or undefined), plus a manual range.

    Parameters
    ----------
    row_snr : float array, shape (H,)
    threshold : float
        Rows whose SNR is below it are masked; 0 masks nothing by SNR.  Rows whose SNR is
        undefined (every pixel constant) are masked whenever ``threshold > 0``.
    rows : (first, last), optional
        An inclusive range of rows to mask as well.

    Returns
    -------
    bool array, shape (H,)
        True = masked.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise NormScopeError(f"mask threshold {threshold} must be a finite number >= 0")
    mask = np.zeros(row_snr.shape, bool)
    if threshold > 0:
        with np.errstate(invalid="ignore"):
            mask |= ~(row_snr >= threshold)
    if rows is not None:
        lo, hi = int(rows[0]), int(rows[1])
        if lo > hi or lo < 0 or hi >= row_snr.size:
            raise NormScopeError(
                f"row range {lo}-{hi} is outside 0-{row_snr.size - 1} or reversed"
            )
        mask[lo : hi + 1] = True
    return mask


def energy_share(stats: PixelStats, mask: np.ndarray) -> float:
    """Share of the summed |per-pixel mean| that the masked rows hold.

    For linear power this is their share of the mean energy; for dB, log-mel or MFCC values it
    is only a share of magnitude (a quiet band's -80 dB counts as large), so callers call it
    "the summed |mean|", never "signal energy".
    """
    e = np.nansum(np.abs(stats.mean), axis=1)
    total = e.sum()
    return 0.0 if total == 0 else float(e[mask].sum() / total)


def format_share(share: float) -> str:
    """A share as a percentage that never rounds a real share to "0.0%" (or up to "100.0%")."""
    if not np.isfinite(share):
        return "n/a"
    if share <= 0:
        return "0%"
    if share < 0.0001:
        return "<0.01%"
    if share < 0.01:
        return f"{share:.2%}"
    if share < 1 and share > 0.999:
        return ">99.9%"
    return f"{share:.1%}"
