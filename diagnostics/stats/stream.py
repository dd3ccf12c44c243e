"""The numpy engine: blocks of rows (read with ``preadv`` from a memmapped file or a raw zarr or
HDF5 chunk, a view or a gather otherwise; a compressed chunk is decoded once into a reused
buffer) handed to worker threads on demand.  Each worker keeps float64 sums of
``x - K`` and of its square, ``K`` its running mean (so large offsets cancel before squaring),
and folds them into a :class:`~diagnostics.stats.accumulate.StatsAccumulator` with the
Chan-Golub-LeVeque update every 16 MB; blocks holding NaN or inf go through
``StatsAccumulator.partial_fit``.  Worker threads: one per free core (:func:`n_threads`); a core
that becomes busy during a pass slows it down but never stalls it.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
import time

import numpy as np

from diagnostics.data.chunkio import pread_rows
from diagnostics.errors import NormScopeError

from .accumulate import (SAMPLE_VALUES, PixelStats, StatsAccumulator, finalize, magnitude,
                         sample_values, scale_exponents, scale_fits)

# --- the numpy engine: blocks of rows on worker threads, shifted float64 sums, Chan merges ------

#: Rows per block of the numpy engine: about this many bytes as float64, so the float64 copy of
#: a block stays in a core's L2 cache between the few ufuncs that read it (bigger blocks run at
#: half the speed; smaller ones pay the Python call overhead).
BLOCK_F64_BYTES = 2 * 2**20
#: A worker folds its shifted sums into its running moments (Chan's update) and moves the shift
#: to its running mean after about this many bytes of float64 values: sums stay short and
#: centred, so neither round-off nor a drifting mean builds up.
FOLD_BYTES = 16 * 2**20
#: Most worker threads of either engine (memory bandwidth is saturated well before more).
MAX_THREADS = 4
#: Environment variable that fixes the number of worker threads (default: see n_threads).
THREADS_ENV = "NORMSCOPE_THREADS"


def block_rows(P: int) -> int:
    return max(1, BLOCK_F64_BYTES // max(8 * P, 1))


class _Stream:
    """One worker of the numpy engine: a running :class:`StatsAccumulator` plus shifted sums.

    A block whose values are all finite (its per-pixel min and max are, which are needed
    anyway) takes the fast way: ``d = x - K`` once in float64 (``K`` the worker's running mean,
    so large offsets cancel before squaring), then the sums of ``d`` and ``d * d``; exact zeros
    are counted only at pixels whose block range holds 0.  A block with a NaN or inf goes
    through :meth:`StatsAccumulator.partial_fit`, which counts them and leaves them out.
    """

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, K: np.ndarray, n_classes: int,
                 block_rows: int, E: np.ndarray):
        P = int(np.prod(shape))
        self.acc = StatsAccumulator(shape, n_classes=n_classes, sample_every=2**62)
        # Sums in units of 2**E per pixel (E = 0 but for values beyond 2**±256): R = 2**-E.
        self.E = E
        self.acc.exp = E.copy()
        self.R = np.ldexp(1.0, -E) if E.any() else None
        self.K = K.copy()
        self.s1, self.s2, self.tmp = np.zeros(P), np.zeros(P), np.empty(P)
        self.csum = np.zeros((n_classes, P))
        self.crows = np.zeros(n_classes, np.int64)
        self.rows = 0
        self.fold_rows = max(1, FOLD_BYTES // (8 * P))
        self.lo: np.ndarray | None = None  # running min and max in X's dtype
        self.hi: np.ndarray | None = None
        self.d = np.empty((block_rows, P))
        self.grouped = np.empty((block_rows if n_classes else 0, P))
        self.gather = np.empty((block_rows, *shape), dtype)

    def add(self, x: np.ndarray, labels: np.ndarray | None) -> None:
        """Add a block ``x`` of shape (m, P)."""
        m = x.shape[0]
        lo, hi = np.minimum.reduce(x, axis=0), np.maximum.reduce(x, axis=0)
        # min and max propagate NaN and carry inf: the block is finite iff these two are.
        bottom, top = float(lo.min()), float(hi.max())
        if not (math.isfinite(bottom) and math.isfinite(top)):
            self.acc.partial_fit(x.reshape(m, *self.acc.shape), labels)
            return
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            np.minimum(self.lo, lo, out=self.lo)
            np.maximum(self.hi, hi, out=self.hi)
        if bottom <= 0 <= top:  # exact zeros are possible only where a pixel's range holds 0
            cross = (lo <= 0) & (hi >= 0)
            if cross.all():
                self.acc.zeros += np.count_nonzero(x == 0, axis=0)
            elif cross.any():
                self.acc.zeros[cross] += np.count_nonzero(x[:, cross] == 0, axis=0)
        d = self.d[:m]
        np.copyto(d, x)  # a plain cast, then a float64 subtraction: twice as fast as mixed types
        if self.R is not None:
            d *= self.R  # exact: a power of two
        d -= self.K
        if labels is None:
            self.s1 += np.add.reduce(d, axis=0, out=self.tmp)
        else:  # rows grouped by class, one sum per class; their total is the block's sum
            order = np.argsort(labels, kind="stable")
            grouped = np.take(d, order, axis=0, out=self.grouped[:m])
            ordered = labels[order]
            starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
            ends = np.append(starts[1:], m)
            for a, b in zip(starts.tolist(), ends.tolist()):  # reduceat is 5x slower on axis 0
                part = np.add.reduce(grouped[a:b], axis=0, out=self.tmp)
                self.csum[ordered[a]] += part
                self.s1 += part
            self.crows[ordered[starts]] += ends - starts
        np.multiply(d, d, out=d)
        self.s2 += np.add.reduce(d, axis=0, out=self.tmp)
        self.rows += m
        if self.rows >= self.fold_rows:
            self.fold()

    def fold(self) -> None:
        """Merge the shifted sums into the accumulator; the shift moves to the running mean."""
        m, acc = self.rows, self.acc
        if m == 0:
            return
        shift = self.s1 / m
        # The block's mean as K + shift, never summed: the accumulator keeps it relative to
        # its origin, and K + shift would round it to the absolute precision of K.
        acc.add_moments(np.full(self.K.size, m, np.int64), shift, self.s2 - self.s1 * shift,
                        exp=self.E, origin=self.K)
        rescaled = self.R is not None and bool((acc.exp != self.E).any())
        if self.crows.size:
            part = self.csum + self.K * self.crows[:, None]
            acc.class_sum += np.ldexp(part, self.E - acc.exp) if rescaled else part
            acc.class_count += self.crows[:, None]
            acc.class_n += self.crows
            self.csum[:] = 0
            self.crows[:] = 0
        acc.n += m
        mean = np.ldexp(acc.full_mean, acc.exp - self.E) if rescaled else acc.full_mean
        self.K = np.where(acc.count > 0, mean, self.K)
        self.s1[:] = 0
        self.s2[:] = 0
        self.rows = 0

    def finish(self) -> StatsAccumulator:
        self.fold()
        if self.lo is not None:
            self.acc.min = np.fmin(self.acc.min, self.lo.astype(np.float64))
            self.acc.max = np.fmax(self.acc.max, self.hi.astype(np.float64))
        return self.acc


class _Files:
    """A worker's open chunk file (chunks follow each other) and chunk buffers (lazily)."""

    def __init__(self):
        self.path, self.fdesc, self.bufs = None, -1, None

    def fd(self, path: str) -> int:
        if path != self.path:
            self.close()
            self.fdesc, self.path = os.open(path, os.O_RDONLY), path
        return self.fdesc

    def buffers(self, X):
        if self.bufs is None:
            self.bufs = X.buffers()
        return self.bufs

    def close(self) -> None:
        if self.fdesc >= 0:
            os.close(self.fdesc)
        self.path, self.fdesc = None, -1


def first_shift(head: np.ndarray, E: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(K, E)`` from the first rows ``head`` (m, P) of a pass: per-pixel exponents ``E``
    (:func:`~diagnostics.stats.accumulate.scale_exponents` of their largest |value|, unless
    given) and the shift ``K``, their mean in units of ``2**E`` (0 where none is finite)."""
    head = np.asarray(head, dtype=np.float64)
    fin = np.isfinite(head)
    if E is None:
        E = scale_exponents(magnitude(np.min(np.where(fin, head, np.inf), 0),
                                      np.max(np.where(fin, head, -np.inf), 0)))
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        K = np.where(fin, np.ldexp(head, -E) if E.any() else head, 0.0).sum(0) / fin.sum(0)
    return np.where(np.isfinite(K), K, 0.0), E


def stream_stats(X: np.ndarray, idx: np.ndarray, labels: np.ndarray | None, n_classes: int,
                  block_rows: int, E: np.ndarray | None = None) -> PixelStats:
    """The numpy engine: blocks of ``block_rows`` examples handed out to worker threads on
    demand (numpy's ufuncs release the GIL), each worker a :class:`_Stream`, merged at the end
    with Chan's update.  Rows of a memmapped file, or of a zarr/HDF5 chunk stored raw, are
    read with ``preadv`` into the worker's block buffer; rows of other arrays are a slice (a
    view) or a gather into it.  A compressed chunk is one block, decoded once by one worker.

    Sums are kept in units of ``2**E`` per pixel, ``E`` from the first rows (0 unless values
    lie beyond ``2**±256``); when the pass finds a pixel's values far from its unit (first rows
    unlike the rest), it passes again with ``E`` from the values' range."""
    N, H, W = X.shape
    P = H * W
    n = idx.size
    K, E = first_shift(np.asarray(X[idx[: min(8, n)]]).reshape(-1, P), E)
    step = max(1, n * P // SAMPLE_VALUES)  # every step-th selected example is sampled
    chunked = getattr(X, "chunk_rows", None)
    if chunked:
        # A zarr/HDF5 source.  A chunk stored as raw rows is read like a .npy file: blocks of
        # block_rows rows, preadv'd from its file into the worker's buffer.  Any other chunk
        # is one block, decoded once by one worker into its reused chunk buffer.
        lay = X.layout()
        cuts = np.searchsorted(idx, np.arange(0, N + chunked, chunked))
        blocks = []
        for k, (a, b) in enumerate(zip(cuts[:-1].tolist(), cuts[1:].tolist())):
            if lay.raw(k) is not None:
                blocks += [(k, lo, min(lo + block_rows, b)) for lo in range(a, b, block_rows)]
            elif b > a:
                blocks.append((k, a, b))
    else:
        blocks = [(-1, lo, min(lo + block_rows, n)) for lo in range(0, n, block_rows)]
    workers = [_Stream((H, W), X.dtype, K, n_classes, block_rows, E)
               for _ in range(min(n_threads(), len(blocks)))]
    source = None if chunked else _backing_file(X)
    row_bytes = P * X.dtype.itemsize
    picked: list[tuple[int, np.ndarray]] = []  # chunked: (position, sampled rows)
    files = [_Files() for _ in workers]

    def work(w: _Stream, todo) -> None:
        # A pass whose first rows were unlike the rest may overflow; it is detected from the
        # values' range below and passed again, so it must not warn (errstate is per thread).
        with np.errstate(over="ignore", invalid="ignore"):
            _work(w, todo)

    def add(w: _Stream, lo: int, x: np.ndarray) -> None:
        """Rows ``x`` at positions ``lo...`` of ``idx`` into ``w``; chunked: sample them."""
        m = x.shape[0]
        w.add(x.reshape(m, P), None if labels is None else labels[idx[lo : lo + m]])
        if chunked:
            picked.append((lo, np.array(x[(-lo) % step :: step])))  # x is a reused buffer

    def _work(w: _Stream, todo) -> None:
        io = files[workers.index(w)]
        for k, lo, hi in todo:
            sel = idx[lo:hi]
            if chunked:
                loc = sel - k * chunked
                raw = lay.raw(k)
                if raw is not None:
                    add(w, lo, pread_rows(io.fd(raw[0]), raw[1], row_bytes, loc,
                                          w.gather[: hi - lo]))
                    continue
                c = X.read_chunk(k, io.buffers(X))
                for a in range(0, hi - lo, block_rows):
                    b = min(a + block_rows, hi - lo)
                    part = loc[a:b]
                    add(w, lo + a, c[part[0] : part[-1] + 1] if part[-1] - part[0] == b - a - 1
                        else np.take(c, part, axis=0, out=w.gather[: b - a]))
                continue
            if source is not None:
                x = pread_rows(source[0], source[1], row_bytes, sel, w.gather[: hi - lo])
            elif sel[-1] - sel[0] == hi - lo - 1:
                x = X[sel[0] : sel[-1] + 1]
            else:
                x = np.take(X, sel, axis=0, out=w.gather[: hi - lo])
            add(w, lo, x)

    try:
        if len(workers) == 1:
            work(workers[0], blocks)
        else:
            on_threads(work, workers, blocks)
    finally:
        if source is not None:
            os.close(source[0])
        for io in files:
            io.close()
    with np.errstate(over="ignore", invalid="ignore"):
        acc = workers[0].finish()
        for w in workers[1:]:
            acc.merge(w.finish())
    if not scale_fits(E, acc.min, acc.max):  # the first rows were unlike the rest
        return stream_stats(X, idx, labels, n_classes, block_rows,
                            scale_exponents(magnitude(acc.min, acc.max)))
    # Sample for the value distribution: evenly spaced examples (chunked: taken on the way).
    if chunked:
        picked.sort(key=lambda t: t[0])
        rows = sample_values(np.concatenate([r for _, r in picked]).ravel() if picked
                             else np.zeros(0, np.float32))
    else:
        rows = sample_values(np.asarray(X[idx[::step]]).ravel())
    return stats_of(acc, (H, W), n_classes, rows)


def stats_of(acc: StatsAccumulator, shape: tuple[int, int], n_classes: int,
             rows: np.ndarray) -> PixelStats:
    """The :class:`PixelStats` of a merged accumulator and its value sample ``rows`` (the
    finite ones, at most SAMPLE_VALUES): the last step of the in-process and cluster engines."""
    sample = (rows if not acc.nonfinite.any() else rows[np.isfinite(rows)])[:SAMPLE_VALUES]
    return finalize(
        shape=shape, n=acc.n, count=acc.count, mean=acc.full_mean, m2=acc.m2, vmin=acc.min,
        vmax=acc.max, nonfinite=acc.nonfinite, zeros=acc.zeros,
        class_sum=acc.class_sum if n_classes else None,
        class_count=acc.class_count if n_classes else None,
        class_n=acc.class_n if n_classes else None, sample=sample, exp=acc.exp,
    )


def _backing_file(X: np.ndarray) -> tuple[int, int] | None:
    """A descriptor open on the file that ``X`` maps, and the file offset of ``X[0]``.

    Only where reading the file gives ``X``'s values: ``X`` a C-contiguous view of a shared
    memmap (not copy-on-write) whose mapping is of that very file (same device and inode in
    /proc/self/maps, so a file replaced since it was opened is never read).  Reading rows with
    ``preadv`` into a block buffer costs a third less than touching a fresh mapping, which
    page-faults every 64 KB.  None elsewhere: the caller then reads through the mapping.
    """
    mm, name = getattr(X, "_mmap", None), getattr(X, "filename", None)
    if (mm is None or name is None or getattr(X, "mode", "c") not in ("r", "r+", "w+")
            or not X.flags.c_contiguous or X.size == 0):
        return None
    try:
        addr = np.frombuffer(mm, np.uint8).ctypes.data  # where the mapping starts
        with open("/proc/self/maps") as fh:
            for line in fh:
                span, _, _, dev, inode = line.split(maxsplit=5)[:5]
                lo, hi = (int(a, 16) for a in span.split("-"))
                if lo <= addr < hi:
                    break
            else:
                return None
        fd = os.open(name, os.O_RDONLY)
    except (OSError, ValueError, TypeError, BufferError):
        return None
    st = os.fstat(fd)
    major, minor = (int(a, 16) for a in dev.split(":"))
    if (int(inode), major, minor) != (st.st_ino, os.major(st.st_dev), os.minor(st.st_dev)):
        os.close(fd)
        return None
    start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY  # the file offset of the mapping
    return fd, X.ctypes.data - addr + start


def on_threads(work, workers: list, blocks: list) -> None:
    """Run ``work(worker, blocks)`` on one thread per worker, every thread taking the next
    block when it is free: a core that another process keeps busy slows the pass down, it
    never stalls it (a static split across threads waits for the slowest one)."""
    todo = iter(blocks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_blocks():
        while True:
            with lock:
                block = next(todo, None)
            if block is None or errors:
                return
            yield block

    def run(w) -> None:
        try:
            work(w, next_blocks())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers[1:]]
    for t in threads:
        t.start()
    run(workers[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def n_threads() -> int:
    """Worker threads for one pass, between 1 and ``MAX_THREADS``; ``NORMSCOPE_THREADS`` fixes
    it.  One per free core: the cores this process may use (its CPU affinity and its cgroup's
    CPU quota) less those that other processes keep busy right now.  Where no core is free,
    one per core again.

    Measured on 2 cores (the training split of 20,000 x 60 x 130, whole ``stats`` process):
    idle, two threads beat one (0.23 s against 0.28 s); beside one busy process two ran up
    to 10 % slower than one, because the thread that shares its core with the busy process
    is preempted while it holds the GIL (between two ufuncs) and the other waits for it;
    beside two or more, every core is shared anyway and two threads get a larger share than
    one (0.52 s against 0.64 s).
    """
    fixed = os.environ.get(THREADS_ENV, "").strip()
    if fixed:
        try:
            return max(1, int(fixed))
        except ValueError:
            raise NormScopeError(f"{THREADS_ENV}={fixed!r} must be a whole number") from None
    cores = usable_cores()
    free = cores - busy_cores()
    return max(1, min(MAX_THREADS, free if free > 0 else cores))


def busy_cores() -> int:
    """Cores that other processes keep busy now: the tasks runnable at this instant
    (/proc/loadavg's fourth field, which sees a process that started a moment ago, unlike the
    load averages) less this process's own (this thread, and numpy's BLAS threads that spin a
    while after numpy is imported); the least of three looks, so that a task that merely
    passes through does not count (about 2 ms).  Elsewhere the 1-minute load average."""
    try:
        seen = []
        for look in range(3):
            if look:
                time.sleep(0.001)
            with open("/proc/loadavg") as fh:
                total = int(fh.read().split()[3].split("/")[0])
            seen.append(total - runnable_here())
        return max(0, min(seen))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


def runnable_here() -> int:
    """Threads of this process that are running or runnable (state R in /proc/self/task)."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                n += fh.read().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            pass  # a thread that ended meanwhile
    return n


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, bounded by a cgroup v2 CPU quota
    (``cpu.max``, as containers set it) where one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores

