"""The numba engine (numba ships with librosa): the same sums as the numpy engine in one
compiled pass, about four times faster per value; importing numba and loading the compiled
kernels costs about 0.4 s, so :func:`diagnostics.stats.moments.compute_stats` takes it only
where that is paid already or repaid (arrays of several GB).
"""

from __future__ import annotations

import numpy as np

from .accumulate import (SAMPLE_VALUES, PixelStats, finalize, magnitude, sample_values,
                         scale_exponents, scale_fits)
from .stream import first_shift, n_threads, on_threads


_KERNELS = None
#: Rows handed to a worker at a time: small enough to balance load between threads on a busy
#: machine, large enough that the call overhead (microseconds) does not count.
BLOCK_BYTES = 4 * 2**20


def _get_kernels():
    """Compile (once per machine: numba caches the machine code on disk) the two kernels.

    Each adds rows ``idx[lo:hi]`` of ``X2`` into one worker's accumulators, in place.  ``fast``
    assumes every value is finite and works on four rows at a time, so the per-pixel
    accumulators are loaded and stored once per four values (that, not the float64
    arithmetic, is what bounds a naive loop).  A non-finite value turns its pixel's sums
    non-finite, which the caller sees afterwards and then reruns ``careful``, which checks
    every value.  Serial and ``nogil``: threads are managed in Python, handing out blocks of
    rows on demand, so a core busy with another process slows the pass down but never stalls
    it (a static split across threads waits for the slowest one).
    """
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import numba

    @numba.njit(cache=True, nogil=True)
    def fast(X2, idx, lo, hi, labels, K, R, n_classes, a1, a2, amn, amx, az, csum):
        P = X2.shape[1]
        j = lo
        while j < hi:
            if j + 4 <= hi:
                r0 = X2[idx[j]]
                r1 = X2[idx[j + 1]]
                r2 = X2[idx[j + 2]]
                r3 = X2[idx[j + 3]]
                for p in range(P):
                    k = K[p]
                    r = R[p]
                    x0 = r0[p]
                    x1 = r1[p]
                    x2 = r2[p]
                    x3 = r3[p]
                    d0 = np.float64(x0) * r - k
                    d1 = np.float64(x1) * r - k
                    d2 = np.float64(x2) * r - k
                    d3 = np.float64(x3) * r - k
                    a1[p] += (d0 + d1) + (d2 + d3)
                    a2[p] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                    l01 = x0 if x0 < x1 else x1
                    l23 = x2 if x2 < x3 else x3
                    l4 = l01 if l01 < l23 else l23
                    amn[p] = l4 if l4 < amn[p] else amn[p]
                    h01 = x0 if x0 > x1 else x1
                    h23 = x2 if x2 > x3 else x3
                    h4 = h01 if h01 > h23 else h23
                    amx[p] = h4 if h4 > amx[p] else amx[p]
                    az[p] += (np.int32(x0 == 0) + np.int32(x1 == 0)
                              + np.int32(x2 == 0) + np.int32(x3 == 0))
                step = 4
            else:
                r0 = X2[idx[j]]
                for p in range(P):
                    x0 = r0[p]
                    d0 = np.float64(x0) * R[p] - K[p]
                    a1[p] += d0
                    a2[p] += d0 * d0
                    amn[p] = x0 if x0 < amn[p] else amn[p]
                    amx[p] = x0 if x0 > amx[p] else amx[p]
                    az[p] += np.int32(x0 == 0)
                step = 1
            if n_classes > 0:
                # Separate loop: rows of one block may share a class (aliasing sums).
                for q in range(j, j + step):
                    row = X2[idx[q]]
                    cs = csum[labels[q]]
                    for p in range(P):
                        cs[p] += np.float64(row[p]) * R[p] - K[p]
            j += step

    @numba.njit(cache=True, nogil=True)
    def careful(X2, idx, lo, hi, labels, K, R, n_classes, a1, a2, amn, amx, az, csum, cnt,
                ccnt):
        P = X2.shape[1]
        for j in range(lo, hi):
            row = X2[idx[j]]
            c = labels[j] if n_classes > 0 else 0
            for p in range(P):
                x = row[p]
                v = np.float64(x)
                if np.isfinite(v):
                    d = v * R[p] - K[p]
                    a1[p] += d
                    a2[p] += d * d
                    amn[p] = min(amn[p], x)
                    amx[p] = max(amx[p], x)
                    az[p] += np.int32(x == 0)
                    cnt[p] += 1
                    if n_classes > 0:
                        csum[c, p] += d
                        ccnt[c, p] += 1

    _KERNELS = (fast, careful)
    return _KERNELS


def _run_blocks(kernel, X2, idx, lab, K, R, n_classes, n_acc: int) -> list[list[np.ndarray]]:
    """Run ``kernel`` over all rows in blocks on worker threads; per-worker accumulators."""
    P = X2.shape[1]
    C = max(n_classes, 1)
    n = idx.size
    rows = max(4, (BLOCK_BYTES // max(P * X2.dtype.itemsize, 1)) // 4 * 4)
    blocks = [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
    n_workers = min(n_threads(), len(blocks))

    def new_acc():
        # int32 zero counts: a worker sees fewer than 2**31 rows.
        acc = [np.zeros(P), np.zeros(P), np.full(P, np.inf, X2.dtype),
               np.full(P, -np.inf, X2.dtype), np.zeros(P, np.int32), np.zeros((C, P))]
        if n_acc > len(acc):
            acc += [np.zeros(P, np.int64), np.zeros((C, P), np.int64)]
        return acc

    accs = [new_acc() for _ in range(n_workers)]

    def work(acc, todo):
        for lo, hi in todo:
            kernel(X2, idx, lo, hi, lab, K, R, n_classes, *acc)

    if n_workers == 1:
        work(accs[0], blocks)
    else:
        on_threads(work, accs, blocks)
    return accs


def numba_stats(X: np.ndarray, idx: np.ndarray, labels, n_classes: int,
                E: np.ndarray | None = None) -> PixelStats:
    """The numba engine.  Sums in units of ``2**E`` per pixel (see
    :func:`diagnostics.stats.stream.first_shift`); passes again with ``E`` from the values'
    range when the first rows were unlike the rest."""
    N, H, W = X.shape
    # A plain, read-only ndarray view: one compiled signature per dtype whatever X is
    # (memmap or not, writeable or not), so the disk cache is hit.
    X2 = np.asarray(X).reshape(N, H * W).view()
    X2.flags.writeable = False
    # Shift by an estimate of the mean (a few rows suffice) so that large offsets cancel
    # before squaring.
    K, E = first_shift(X2[idx[: min(8, idx.size)]], E)
    R = np.ldexp(1.0, -E)  # exact powers of two (all 1 unless values lie beyond 2**±256)
    lab = np.zeros(idx.size, np.int64) if not n_classes else np.asarray(labels)[idx].astype(np.int64)
    fast, careful = _get_kernels()
    accs = _run_blocks(fast, X2, idx, lab, K, R, n_classes, 6)
    s1, s2 = sum(a[0] for a in accs), sum(a[1] for a in accs)
    class_n = np.bincount(lab, minlength=n_classes).astype(np.int64) if n_classes else None
    all_finite = bool(np.isfinite(s1).all() and np.isfinite(s2).all())
    if all_finite:
        cnt = np.full(H * W, idx.size, np.int64)
        class_count = None if not n_classes else np.repeat(class_n[:, None], H * W, axis=1)
    else:  # some value is NaN or inf: count them per pixel and leave them out
        accs = _run_blocks(careful, X2, idx, lab, K, R, n_classes, 8)
        s1, s2 = sum(a[0] for a in accs), sum(a[1] for a in accs)
        cnt = sum(a[6] for a in accs)
        class_count = sum(a[7] for a in accs) if n_classes else None
    mn = np.min([a[2] for a in accs], axis=0).astype(np.float64)
    mx = np.max([a[3] for a in accs], axis=0).astype(np.float64)
    if not scale_fits(E, mn, mx):  # the first rows were unlike the rest
        return numba_stats(X, idx, labels, n_classes, scale_exponents(magnitude(mn, mx)))
    zer = sum(a[4].astype(np.int64) for a in accs)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        mean = K + d
        m2 = s2 - s1 * d
    class_sum = None
    if n_classes:
        class_sum = sum(a[5] for a in accs) + K[None, :] * class_count
    # Sample for the value distribution: evenly spaced examples.
    step = max(1, idx.size * H * W // SAMPLE_VALUES)
    rows = sample_values(np.asarray(X2[idx[::step]]).ravel())
    sample = (rows if all_finite else rows[np.isfinite(rows)])[:SAMPLE_VALUES]
    return finalize(
        shape=(H, W), n=idx.size, count=cnt, mean=mean, m2=m2, vmin=mn, vmax=mx,
        nonfinite=idx.size - cnt, zeros=zer, class_sum=class_sum,
        class_count=class_count, class_n=class_n, sample=sample, exp=E,
    )




def kernels_loaded() -> bool:
    """Whether this process has compiled or loaded the kernels already (nothing left to pay)."""
    return _KERNELS is not None
