"""Statistics on a Dask cluster: per-chunk float64 moments over ``dask.array`` blocks, merged
pairwise in a tree with Chan's update -- the numbers of the in-process engine, never
E[x^2] - E[x]^2.

Each block (a source chunk of a zarr/HDF5 source, or about 32 MB of rows of a ``.npy``) is
read on a worker and streamed through the in-process engine's :class:`~diagnostics.stats.stream._Stream`
(shifted float64 sums folded into a :class:`~diagnostics.stats.accumulate.StatsAccumulator`);
accumulators are merged two by two (a binary tree of ``log2(blocks)`` levels, each merge on a
worker), and only the final (H, W) moments come back.  The value sample is taken on the way,
at the same examples as in process.

Workers open the data themselves: zarr/HDF5 sources and ``.npy`` files by path (they must
see the same files), in-memory arrays travel with the graph.
"""

from __future__ import annotations

import numpy as np

from .accumulate import (SAMPLE_VALUES, PixelStats, magnitude, sample_values,
                         scale_exponents, scale_fits)
from .stream import _Stream, block_rows, first_shift, stats_of

#: Rows per dask block of a plain array: about this many bytes.
BLOCK_BYTES = 32 * 2**20


class _NpyRows:
    """A ``.npy`` memmap reopened by path on the worker (a memmap would pickle its data)."""

    def __init__(self, X: np.memmap):
        self.filename, self.offset = X.filename, X.offset
        self.shape, self.dtype, self.ndim = X.shape, X.dtype, X.ndim

    def __getitem__(self, key):
        m = np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset,
                      shape=self.shape)
        return np.array(m[key])


def _source(X):
    """What the graph carries: the source itself, or a path-based reader of a memmap."""
    if isinstance(X, np.memmap) and X.filename and X.flags.c_contiguous:
        return _NpyRows(X)
    return X


def _block(x, sel, lab, n_classes: int, K, E, first: int, step: int):
    """Moments of the selected rows ``sel`` (local indices) of one block: (accumulator, sample)."""
    x = np.asarray(x)
    xs = x if len(sel) == x.shape[0] else np.take(x, sel, axis=0)
    m, H, W = xs.shape
    P = H * W
    br = block_rows(P)
    w = _Stream((H, W), xs.dtype, K, n_classes, br, E)
    with np.errstate(over="ignore", invalid="ignore"):  # a misfit scale is passed again
        for a in range(0, m, br):
            b = min(a + br, m)
            w.add(np.ascontiguousarray(xs[a:b]).reshape(b - a, P), None if lab is None else lab[a:b])
        acc = w.finish()
    return acc, [np.asarray(xs[first::step]).ravel()]


def _merge(a, b):
    """Chan's merge of two (accumulator, samples) pairs; samples keep their order."""
    return a[0].merge(b[0]), a[1] + b[1]


def tree_stats(X, idx: np.ndarray, labels: np.ndarray | None, n_classes: int, client,
               E: np.ndarray | None = None) -> PixelStats:
    """Per-pixel statistics of ``X[idx]`` (``idx`` sorted, unique) on the cluster of
    ``client``; the same numbers as :func:`diagnostics.stats.stream.stream_stats`."""
    import dask
    import dask.array as da

    N, H, W = X.shape
    P = H * W
    n = idx.size
    rows = getattr(X, "chunk_rows", None) or max(1, BLOCK_BYTES // max(P * X.dtype.itemsize, 1))
    K, E = first_shift(np.asarray(X[idx[: min(8, n)]]).reshape(-1, P), E)  # as in process
    x = da.from_array(_source(X), chunks=(rows, H, W), asarray=False, lock=False,
                      meta=np.empty((0, 0, 0), X.dtype), name=False)
    step = max(1, n * P // SAMPLE_VALUES)
    starts = np.arange(0, N + rows, rows)
    cuts = np.searchsorted(idx, starts)
    parts = []
    for k, blk in enumerate(x.to_delayed().ravel()):
        lo, hi = int(cuts[k]), int(cuts[k + 1])
        if hi <= lo:
            continue
        sel = idx[lo:hi] - starts[k]
        lab = None if labels is None else labels[idx[lo:hi]]
        parts.append(dask.delayed(_block, pure=True)(blk, sel, lab, n_classes, K, E,
                                                     (-lo) % step, step))
    while len(parts) > 1:  # a binary tree of merges
        parts = [dask.delayed(_merge, pure=True)(parts[i], parts[i + 1]) if i + 1 < len(parts)
                 else parts[i] for i in range(0, len(parts), 2)]
    acc, samples = client.compute(parts[0]).result()
    if not scale_fits(E, acc.min, acc.max):  # the first rows were unlike the rest
        return tree_stats(X, idx, labels, n_classes, client,
                          scale_exponents(magnitude(acc.min, acc.max)))
    rows_s = sample_values(np.concatenate(samples) if samples else np.zeros(0, np.float32))
    return stats_of(acc, (H, W), n_classes, rows_s)
