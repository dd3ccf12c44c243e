"""Benchmark: Dask against the local executor, and statistics over a zarr store.

Not a test.  Every ratio compares figures measured in this run, alternating the two sides
(median of ``--rounds`` rounds); the load average is printed at the start and the end.

1. **Executor overhead** (target <= 1.15): the same 6 runs (``none``, ``per_pixel`` x seeds
   0, 1, 2, holdout, ``--epochs``) on the built-in ``demo`` through
   :class:`models.comparison.Comparison`, on a local Dask cluster of 2 single-threaded worker
   processes (started and warmed once, as a user's cluster is; the client, the scatter of the
   data and every job are timed) against the local process executor with 2 workers.
2. **Statistics** on an N x 60 x 130 float32 array (default N = 100,000: 3.1 GB) written under
   ``--dir`` (default /tmp) as ``.npy`` and as a zarr v3 array in chunks of 2,000 examples
   (zarr's default codec, zstd; ``--codec none``: uncompressed), deleted at the end.  Offset data (1e4 + 0.01 x noise):

   * in process: our engine on the zarr against the same engine (numpy) on the ``.npy``
     (target <= 1.5), and the floor: the zarr chunks read (uncompressed) or read and decoded
     (zstd) alone, into reused buffers on as many threads, with no statistics; beside each
     wall time the process's CPU seconds (all threads), which a loaded machine inflates less;
   * on the cluster: ours (per-chunk moments, tree merge) against ``dask.array``'s
     ``da.from_zarr(p).std(axis=0, dtype="f8")`` (target < 1);
   * accuracy: max relative error of the std against a float64 two-pass reference, for ours
     (in process and on the cluster), ``X.std(axis=0)`` in float32 and with ``dtype="f8"``.

Usage::

    python bench/bench_dask.py --quick        # N = 10,000, 1 epoch: a check, ~1 minute
    python bench/bench_dask.py                # N = 100,000, 2 epochs, 2 rounds
    python bench/bench_dask.py --only stats   # or --only executor
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
H, W = 60, 130
CHUNK = 2000


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _warm():
    import torch

    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    import models.jobs  # noqa: F401
    return os.getpid()


def bench_executor(cluster, epochs: int, rounds: int) -> None:
    from models.comparison import Comparison
    from models.train import TrainConfig

    tc = TrainConfig(epochs=epochs)
    kw = dict(seeds=[0, 1, 2], train=tc, evaluation="holdout", decide=False)

    def once(on_cluster: bool):
        t0 = time.perf_counter()
        if on_cluster:
            comp = Comparison("demo", "none,per_pixel", cluster=cluster.scheduler_address, **kw)
        else:
            comp = Comparison("demo", "none,per_pixel", cluster="", workers=2, **kw)
        comp.start()
        comp.wait()
        dt = time.perf_counter() - t0
        rec = comp.record()
        assert all(r.status == "done" for r in rec.runs), [(r.status, r.message) for r in rec.runs]
        return dt, [r.test_acc for r in rec.runs]

    ratios, td, tl = [], [], []
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {side: once(side) for side in order}
        (a, acc_d), (b, acc_l) = got[True], got[False]
        td.append(a)
        tl.append(b)
        ratios.append(a / b)
        same = "same" if acc_d == acc_l else "DIFFERENT"
        print(f"  round {r + 1}: dask {a:.1f} s, local {b:.1f} s, ratio {a / b:.2f}; "
              f"accuracies {same}", flush=True)
    print(f"executor: 6 runs x {epochs} epochs on demo: dask (2 workers) "
          f"{statistics.median(td):.1f} s vs local process executor (2 workers) "
          f"{statistics.median(tl):.1f} s: ratio {statistics.median(ratios):.2f} (target <= 1.15)",
          flush=True)


def write_data(folder: Path, n: int, codec: str = "zstd") -> tuple[Path, Path]:
    import zarr

    npy, zp = folder / "x.npy", folder / "x.zarr"
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, H, W))
    extra = {} if codec == "zstd" else {"compressors": None}  # zstd: zarr's default
    z = zarr.create_array(str(zp), shape=(n, H, W), chunks=(CHUNK, H, W), dtype="f4",
                          overwrite=True, **extra)
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        # Offset data: a float32 E[x^2] - E[x]^2, or float32 sums, lose the small spread.
        x = (1e4 + 0.01 * rng.standard_normal((b - a, H, W))).astype(np.float32)
        x[:, :10] += 5 * rng.exponential(1.0, (b - a, 10, W)).astype(np.float32)
        mm[a:b] = x
        z[a:b] = x
    mm.flush()
    del mm
    return npy, zp


def reference_std(npy: Path) -> np.ndarray:
    """Float64 two-pass std over the .npy (the exact answer to compare with)."""
    X = np.load(npy, mmap_mode="r")
    n = X.shape[0]
    s = np.zeros((H, W))
    for a in range(0, n, CHUNK):
        s += X[a:a + CHUNK].sum(0, dtype=np.float64)
    mean = s / n
    q = np.zeros((H, W))
    for a in range(0, n, CHUNK):
        d = X[a:a + CHUNK].astype(np.float64) - mean
        q += (d * d).sum(0)
    return np.sqrt(q / n)


#: What reading a chunk alone does, by the kind of chunk (see diagnostics.data.chunkio).
READ_WHAT = {"raw": "read", "codec": "read and decoded", "library": "read through zarr"}


def read_all_chunks(X) -> None:
    """Every chunk of ``X`` read (and decoded) into reused buffers, on the engine's threads,
    as the in-process engine reads them, with no statistics."""
    from diagnostics.stats.stream import n_threads, on_threads

    k_all = range(-(-X.shape[0] // X.chunk_rows))

    def work(bufs, todo):
        for k in todo:
            X.read_chunk(k, bufs)

    on_threads(work, [X.buffers() for _ in range(n_threads())], list(k_all))


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) / b - 1)))


def bench_stats(cluster, n: int, rounds: int, folder: Path, codec: str = "zstd") -> None:
    import dask.array as da
    from distributed import Client

    from diagnostics.data.arrays import load_array_file
    from diagnostics.data.chunked import open_chunked
    from diagnostics.stats.moments import compute_stats
    from diagnostics.stats.stream import n_threads

    work = Path(tempfile.mkdtemp(prefix="normscope-bench-dask-", dir=folder))
    try:
        t0 = time.perf_counter()
        npy, zp = write_data(work, n, codec)
        zbytes = sum(f.stat().st_size for f in zp.rglob("*") if f.is_file())
        print(f"stats: {n:,} x {H} x {W} float32 ({npy.stat().st_size / 2**30:.2f} GiB .npy, "
              f"zarr ({codec}) {zbytes / 2**30:.2f} GiB in chunks of {CHUNK}) written in "
              f"{time.perf_counter() - t0:.0f} s to {work}", flush=True)
        Xn = load_array_file(npy).X
        Xz = open_chunked(str(zp)).X
        ref = reference_std(npy)

        cpu = {}  # side: CPU seconds of this process (all threads) per round

        def timed(fn, side=None):
            t, c = time.perf_counter(), time.process_time()
            out = fn()
            if side:
                cpu.setdefault(side, []).append(time.process_time() - c)
            return time.perf_counter() - t, out

        # In process, the same (numpy) engine on both, alternating which goes first; and the
        # zarr chunks read (and decoded) alone, on as many threads: the floor of the zarr pass.
        kind = Xz.layout().kind
        tn, tz, tr, ratios = [], [], [], []
        for r in range(rounds):
            order = ("npy", "zarr", "read") if r % 2 == 0 else ("read", "zarr", "npy")
            got = {}
            for side in order:
                got[side] = timed(lambda: compute_stats(Xn, engine="numpy"), side) \
                    if side == "npy" else \
                    timed(lambda: compute_stats(Xz, engine="numpy"), side) if side == "zarr" \
                    else timed(lambda: read_all_chunks(Xz), side)
            (a, sn), (b, sz), (c, _) = got["npy"], got["zarr"], got["read"]
            tn.append(a)
            tz.append(b)
            tr.append(c)
            ratios.append(b / a)
            print(f"  in process round {r + 1}: .npy {a:.2f} s, zarr {b:.2f} s, ratio {b / a:.2f}; "
                  f"zarr chunks {READ_WHAT[kind]} alone {c:.2f} s ({c / a:.2f} x .npy); CPU s "
                  f"(all threads) .npy {cpu['npy'][-1]:.2f}, zarr {cpu['zarr'][-1]:.2f}, "
                  f"chunks alone {cpu['read'][-1]:.2f}", flush=True)
        print(f"in process: zarr {statistics.median(tz):.2f} s vs .npy {statistics.median(tn):.2f} s "
              f"(same numpy engine): ratio {statistics.median(ratios):.2f} (target <= 1.5); "
              f"zarr vs .npy mean/std rel. diff {rel(sz.mean, sn.mean):.1e} / "
              f"{rel(sz.std, sn.std):.1e}", flush=True)
        print(f"floor: the zarr ({codec}) chunks {READ_WHAT[kind]} alone, into reused buffers on "
              f"{n_threads()} threads, take {statistics.median(tr):.2f} s, "
              f"{statistics.median(tr) / statistics.median(tn):.2f} x the .npy pass; CPU s "
              f"(medians; the load-proof figure) .npy {statistics.median(cpu['npy']):.2f}, zarr "
              f"{statistics.median(cpu['zarr']):.2f} (ratio "
              f"{statistics.median(cpu['zarr']) / statistics.median(cpu['npy']):.2f}), chunks "
              f"alone {statistics.median(cpu['read']):.2f}", flush=True)

        with Client(cluster.scheduler_address, set_as_default=False) as client:
            def theirs(dtype):
                return da.from_zarr(str(zp)).std(axis=0, dtype=dtype).compute(scheduler=client)

            to, tt, ratios = [], [], []
            for r in range(rounds):
                order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
                got = {}
                for side in order:
                    got[side] = timed(lambda: compute_stats(Xz, client=client)) if side == "ours" \
                        else timed(lambda: theirs("f8"))
                (a, sc), (b, sd64) = got["ours"], got["theirs"]
                to.append(a)
                tt.append(b)
                ratios.append(a / b)
                print(f"  cluster round {r + 1}: ours {a:.2f} s, da.std(f8) {b:.2f} s, "
                      f"ratio {a / b:.2f}", flush=True)
            print(f"cluster (2 workers): ours {statistics.median(to):.2f} s vs "
                  f"da.from_zarr(p).std(axis=0, dtype='f8') {statistics.median(tt):.2f} s: ratio "
                  f"{statistics.median(ratios):.2f} (target < 1)", flush=True)
            sd32 = theirs(None)
        print(f"accuracy (max rel. error of the std vs a float64 two-pass reference; offset data "
              f"1e4 + 0.01 noise): ours in process {rel(sz.std, ref):.1e}, ours on the cluster "
              f"{rel(sc.std, ref):.1e}, da.std float32 {rel(sd32, ref):.1e}, da.std dtype=f8 "
              f"{rel(sd64, ref):.1e}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 10,000, 1 epoch, 1 round")
    ap.add_argument("--only", choices=("executor", "stats"))
    ap.add_argument("--n", type=int, help="examples of the statistics array (default 100,000)")
    ap.add_argument("--epochs", type=int, help="epochs per run (default 2)")
    ap.add_argument("--rounds", type=int, help="alternating rounds (default 2)")
    ap.add_argument("--codec", choices=("zstd", "none"), default="zstd",
                    help="the zarr store's compressor (default zstd, zarr's default)")
    ap.add_argument("--dir", default="/tmp", help="where the arrays are written (then deleted)")
    args = ap.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    epochs = args.epochs or (1 if args.quick else 2)
    rounds = args.rounds or (1 if args.quick else 2)
    os.environ.setdefault("NORMSCOPE_HOME", tempfile.mkdtemp(prefix="normscope-bench-home-"))
    import dask
    from distributed import Client, LocalCluster

    print(f"bench_dask: {os.cpu_count()} cores; {uptime()}", flush=True)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    try:
        with Client(cluster, set_as_default=False) as c:
            c.wait_for_workers(2)
            c.run(_warm)
        if args.only in (None, "executor"):
            bench_executor(cluster, epochs, rounds)
        if args.only in (None, "stats"):
            bench_stats(cluster, n, rounds, Path(args.dir), args.codec)
    finally:
        cluster.close()
        print(f"end: {uptime()}", flush=True)


if __name__ == "__main__":
    main()
