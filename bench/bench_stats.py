"""Benchmark: per-pixel statistics of N x 60 x 130 float32 .npy files, ours vs the usual ways.

Not a test.  Prints times, throughput, peak extra memory and ratios against baselines measured
in the same run:

* ``sum``     one float32 ``np.sum`` over the memmap (how fast memory can be read, warm),
* ``cat``     ``cat FILE > /dev/null`` (how fast the disk can be read, cold),
* ``seed``    the question's code: ``X = np.load(f); np.mean(X, 0); np.std(X, 0)``,
* ``sklearn`` ``StandardScaler().fit`` on the flattened memmap,
* ``ours``    ``compute_stats(load_array_file(f).X)`` in a process whose numba kernels are
  loaded already (not timed), so engine auto takes numba above 64 MB, as a long-running
  process that used it before would; plus ``ours-1t`` (one thread) and ``ours-numpy`` (the
  numpy engine, which a one-off ``stats`` command takes: see ``--process``).

Each approach runs in its own subprocess, so its peak memory is its own: ``anon`` is the peak
anonymous memory (RssAnon, sampled every 2 ms) above the process's level before the work,
which is what a memmap approach really costs; ``rss`` is the peak resident set (VmHWM, reset
before the work) above the start, which also counts file pages of a memmap.

Accuracy: 1e4 + 0.1 * noise at N = 100,000 (6 x 13 pixels: the error is per pixel and grows
with N), relative error of ours and of float32 numpy against a float64 two-pass reference.

Whole process (``--process``): what a user waits for.  ``python -m diagnostics stats FILE
--json`` (start-up, imports, the training split's statistics, findings) against the seed's
``python -c "X = np.load(f); X.mean(0); X.std(0)"``, both as fresh processes on the warm
20,000 x 60 x 130 file, alternated ``--rounds`` times (the order flips every round), first on
a quiet machine, then with one busy process (``python -c "while True: pass"``, started and
stopped by the bench).  Prints the median times, the median of the per-round ratios
(ours / seed; target <= 0.6) and the load average.

Usage::

    python bench/bench_stats.py --quick     # 2,400 x 60 x 130 (75 MB): a check, ~1 minute
    python bench/bench_stats.py             # 20,000 and 100,000 x 60 x 130 (624 MB, 3.1 GB)
    python bench/bench_stats.py --process   # whole processes, quiet and loaded, ~1 minute

Data files are built once and cached under bench/data/ (git-ignored).  Cold runs evict the
file from the page cache with ``echo 3 > /proc/sys/vm/drop_caches`` when permitted, otherwise
with ``posix_fadvise(DONTNEED)``, and check with mincore(2) that the file really left memory.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
H, W = 60, 130
ACC_N, ACC_SHAPE = 100_000, (6, 13)
TARGETS = {"warm": 2.5, "cold": 1.3, "seed": 3.0, "anon_mb": 100.0, "rel_err": 1e-10,
           "process": 0.6}
PROCESS_N = 20_000
SEED_CODE = "import sys, numpy as np; X = np.load(sys.argv[1]); X.mean(0); X.std(0)"


# --- data -----------------------------------------------------------------------------------

def build_file(path: Path, n: int, shape: tuple[int, int], kind: str, *, seed: int = 0) -> Path:
    """Write (once) an (n, *shape) float32 .npy in chunks; fsync so it can be evicted later."""
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (n, *shape) and arr.dtype == np.float32:
                return path
        except ValueError:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *shape))
    rng = np.random.default_rng(seed)
    level = np.geomspace(40.0, 0.002, shape[0]).astype(np.float32)[:, None]
    step = max(1, (64 << 20) // (4 * shape[0] * shape[1]))
    print(f"building {path.name} ({n:,} x {shape[0]} x {shape[1]}, "
          f"{n * shape[0] * shape[1] * 4 / 1e9:.2f} GB) ...", flush=True)
    for lo in range(0, n, step):
        m = min(step, n - lo)
        if kind == "spectro":  # linear power: exponential values under a falling band profile
            out[lo:lo + m] = rng.standard_exponential((m, *shape), dtype=np.float32) * level
        else:  # "offset": a large offset and small noise, to break float32 accumulation
            out[lo:lo + m] = 1e4 + 0.1 * rng.standard_normal((m, *shape), dtype=np.float32)
    out.flush()
    del out
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


# --- page cache -----------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_fraction(path: Path) -> float:
    """Share of the file's pages in the page cache (mincore(2) on a fresh mapping)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fh.fileno(), 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return float("nan")
        try:
            pages = -(-size // mmap.PAGESIZE)
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                return float("nan")
            return float((np.frombuffer(vec, np.uint8) & 1).mean())
        finally:
            _libc.munmap(addr, size)


def evict(path: Path, method: str) -> str:
    """Take the file out of the page cache; return the method that worked."""
    if method in ("auto", "system"):
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as fh:
                fh.write("3\n")
            if resident_fraction(path) < 0.01:
                return "drop_caches"
        except OSError:
            pass
        if method == "system":
            return "none"
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return "fadvise" if resident_fraction(path) < 0.01 else "none"


def warm(path: Path) -> None:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


# --- one approach in this process (worker mode) -----------------------------------------------

def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon"):
                out[k] = int(v.split()[0]) * 1024
    return out


class AnonPeak:
    """Sample RssAnon every 2 ms in a thread; ``peak`` is the largest value seen."""

    def __init__(self):
        self.peak = _status()["RssAnon"]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _status()["RssAnon"])

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _status()["RssAnon"])


def worker(approach: str, path: str, repeat: int) -> dict:
    sys.path.insert(0, str(ROOT))
    extra: dict = {}
    if approach.startswith("ours"):
        from diagnostics.data.arrays import load_array_file
        from diagnostics.stats.moments import compute_stats

        engine = "numpy" if approach == "ours-numpy" else "auto"
        t = time.perf_counter()  # load the compiled kernel (from numba's disk cache)
        compute_stats(np.ones((8, 4, 4), np.float32), engine="numba")
        extra["jit_load_s"] = time.perf_counter() - t

        def run():
            st = compute_stats(load_array_file(path).X, engine=engine)
            return float(st.mean.mean())
    elif approach == "seed":
        def run():
            t0 = time.perf_counter()
            X = np.load(path)
            extra["load_s"] = time.perf_counter() - t0
            m, s = np.mean(X, 0), np.std(X, 0)
            return float(m.mean() + s.mean())
    elif approach == "sklearn":
        from sklearn.preprocessing import StandardScaler

        def run():
            X = np.load(path, mmap_mode="r")
            return float(StandardScaler().fit(X.reshape(len(X), -1)).mean_.mean())
    elif approach == "sum":
        def run():
            return float(np.sum(np.load(path, mmap_mode="r")))
    else:
        raise SystemExit(f"unknown approach {approach}")
    times, anon, rss = [], 0, 0
    for _ in range(repeat):
        try:  # reset VmHWM to the current RSS (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
        before = _status()
        with AnonPeak() as peak:
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        after = _status()
        anon = max(anon, peak.peak - before["RssAnon"])
        rss = max(rss, after["VmHWM"] - before["VmRSS"])
    return {"seconds": min(times), "times": times, "anon_mb": anon / 2**20,
            "rss_mb": rss / 2**20, **extra}


def run_worker(approach: str, path: Path, repeat: int, env: dict | None = None) -> dict:
    if approach == "cat":
        # Load cat itself first (drop_caches also evicts binaries): only the file read counts.
        subprocess.run(["cat", "/dev/null"], check=True)
        t = time.perf_counter()
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        return {"seconds": time.perf_counter() - t, "anon_mb": 0.0, "rss_mb": 0.0}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", approach, str(path), "--repeat", str(repeat)],
        capture_output=True, text=True, env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- accuracy ---------------------------------------------------------------------------------

def accuracy(path: Path) -> dict:
    """Relative errors of mean and std against a float64 two-pass reference (chunked)."""
    sys.path.insert(0, str(ROOT))
    from diagnostics.stats.moments import compute_stats

    X = np.load(path, mmap_mode="r")
    n = len(X)
    x2 = X.reshape(n, -1)
    chunk = 8192
    s = np.zeros(x2.shape[1])
    for lo in range(0, n, chunk):  # pairwise sums within each chunk, chunk sums added up
        s += np.ascontiguousarray(x2[lo:lo + chunk].T, dtype=np.float64).sum(1)
    mean = s / n
    ss = np.zeros_like(s)
    for lo in range(0, n, chunk):
        d = np.ascontiguousarray(x2[lo:lo + chunk].T, dtype=np.float64) - mean[:, None]
        ss += (d * d).sum(1)
    std = np.sqrt(ss / n)

    def errs(m, sd):
        m, sd = np.asarray(m, np.float64).ravel(), np.asarray(sd, np.float64).ravel()
        return {"mean_rel": float(np.max(np.abs(m - mean) / np.abs(mean))),
                "std_rel": float(np.max(np.abs(sd - std) / std)),
                "mean_in_sd": float(np.max(np.abs(m - mean) / std))}

    out = {}
    for engine in ("numba", "numpy"):
        st = compute_stats(X, engine=engine)
        out[f"ours ({engine})"] = errs(st.mean, st.std)
    out["float32 np.mean/np.std"] = errs(np.mean(X, 0), np.std(X, 0))
    return out


# --- whole processes ---------------------------------------------------------------------------

def _load_text() -> str:
    """The 1-minute load average and the tasks runnable right now (/proc/loadavg's 4th field,
    which sees a busy process at once, unlike the average)."""
    try:
        fields = Path("/proc/loadavg").read_text().split()
        return f"load {fields[0]} (runnable now {fields[3].split('/')[0]})"
    except OSError:
        return f"load {os.getloadavg()[0]:.2f}"


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, from wait4) of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # As installed code runs: from cached bytecode (numpy's is in site-packages already), not
    # recompiled from source on every start because this shell happens to forbid writing it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.strip()[-500:]}")
    return took, usage.ru_utime + usage.ru_stime


def bench_process(args) -> dict:
    """Fresh processes, alternated: the seed's np.load + mean + std against ``stats --json``."""
    path = build_file(DATA / f"spectro_{PROCESS_N}x{H}x{W}.npy", PROCESS_N, (H, W), "spectro")
    warm(path)
    cmds = {"seed": [sys.executable, "-c", SEED_CODE, str(path)],
            "ours": [sys.executable, "-m", "diagnostics", "stats", str(path), "--json"]}
    for cmd in cmds.values():  # bytecode caches written, file and binaries in memory
        _timed(cmd)
    print(f"\n== whole process on {path.name} (warm): seed = python -c \"{SEED_CODE}\", "
          f"ours = python -m diagnostics stats FILE --json; {args.rounds} rounds, alternating; "
          f"wall seconds (cpu = user + system seconds) ==")
    res: dict = {}
    for cond in ("quiet", "loaded"):
        burner = None
        if cond == "loaded":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            print(f"{cond}: {_load_text()} at the start", flush=True)
            wall: dict[str, list[float]] = {"seed": [], "ours": []}
            cpu: dict[str, list[float]] = {"seed": [], "ours": []}
            for i in range(args.rounds):
                for name in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                    w, c = _timed(cmds[name])
                    wall[name].append(w)
                    cpu[name].append(c)
                print(f"  round {i + 1}: seed {wall['seed'][-1]:6.3f} s (cpu {cpu['seed'][-1]:.3f})"
                      f"   ours {wall['ours'][-1]:6.3f} s (cpu {cpu['ours'][-1]:.3f})   ratio "
                      f"{wall['ours'][-1] / wall['seed'][-1]:5.2f}   {_load_text()}", flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
        med = lambda v: float(np.median(v))  # noqa: E731
        r = res[cond] = {
            "seed_s": med(wall["seed"]), "ours_s": med(wall["ours"]),
            "ratio": med([o / s for o, s in zip(wall["ours"], wall["seed"])]),
            "seed_cpu_s": med(cpu["seed"]), "ours_cpu_s": med(cpu["ours"]),
            "cpu_ratio": med([o / s for o, s in zip(cpu["ours"], cpu["seed"])]),
            "wall": wall, "cpu": cpu}
        print(f"  median: seed {r['seed_s']:.3f} s (cpu {r['seed_cpu_s']:.3f}), ours "
              f"{r['ours_s']:.3f} s (cpu {r['ours_cpu_s']:.3f}); cpu ratio {r['cpu_ratio']:.2f}")
        print(ratio_line(f"ours / seed, median of rounds ({cond})", r["ratio"],
                         TARGETS["process"], False) + f"   [{_load_text()}]", flush=True)
    return res


# --- report -----------------------------------------------------------------------------------

def fmt_row(name: str, r: dict, nbytes: int) -> str:
    if "error" in r:
        return f"  {name:<12} failed: {r['error']}"
    extra = ""
    if "load_s" in r:
        extra += f"  (np.load {r['load_s']:.2f} s)"
    if "jit_load_s" in r:
        extra += f"  (kernel load {r['jit_load_s']:.2f} s, not timed)"
    return (f"  {name:<12} {r['seconds']:8.3f} s {nbytes / r['seconds'] / 1e9:7.2f} GB/s"
            f"   anon {r['anon_mb']:8.1f} MB   rss {r['rss_mb']:8.1f} MB{extra}")


def ratio_line(label: str, value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"  {label:<44} {value:7.2f}   (target {sign} {target:g}: {'ok' if ok else 'MISSED'})"


def bench_size(path: Path, args) -> dict:
    nbytes = path.stat().st_size
    n = np.load(path, mmap_mode="r").shape[0]
    print(f"\n== {path.name}: {n:,} x {H} x {W} float32, {nbytes / 1e9:.2f} GB; {_load_text()} ==",
          flush=True)
    res: dict = {"warm": {}, "cold": {}}
    warm(path)
    approaches = ["sum", "ours", "ours-1t", "ours-numpy", "seed"]
    if not args.skip_sklearn:
        approaches.append("sklearn")
    print(f"warm (page cache holds the file; best of {args.repeat}):")
    for a in approaches:
        env = {"NORMSCOPE_THREADS": "1"} if a == "ours-1t" else None
        name = "ours" if a == "ours-1t" else a
        rep = 1 if a in ("sklearn", "seed", "ours-numpy") and n > 20_000 else args.repeat
        res["warm"][a] = r = run_worker(name, path, rep, env)
        print(fmt_row(a, r, nbytes), flush=True)
    if not args.skip_cold:
        print("cold (file evicted from the page cache before each run):")
        for a in ("cat", "sum", "ours", "seed"):
            how = evict(path, args.drop)
            res["cold"]["evicted_with"] = how
            if how == "none":
                print("  could not evict the file: cold figures skipped")
                break
            res["cold"][a] = r = run_worker(a, path, 1)
            print(fmt_row(a, r, nbytes) + f"   [{how}]", flush=True)
        warm(path)
    w, c = res["warm"], res["cold"]
    print(f"ratios: [{_load_text()}]")
    if "error" not in w["ours"]:
        print(ratio_line("ours / np.sum pass (warm)", w["ours"]["seconds"] / w["sum"]["seconds"],
                         TARGETS["warm"], False))
        if "ours" in c and "cat" in c:
            print(ratio_line("ours / cat (cold)", c["ours"]["seconds"] / c["cat"]["seconds"],
                             TARGETS["cold"], False))
        if "error" not in w["seed"]:
            print(ratio_line("seed (np.load + mean + std) / ours (warm)",
                             w["seed"]["seconds"] / w["ours"]["seconds"], TARGETS["seed"], True))
        if "seed" in c and "error" not in c["seed"] and "ours" in c:  # both disk-bound
            print(f"  {'seed / ours (cold, for information)':<44} "
                  f"{c['seed']['seconds'] / c['ours']['seconds']:7.2f}")
        if "sklearn" in w and "error" not in w["sklearn"]:
            print(f"  {'StandardScaler().fit / ours (warm)':<44} "
                  f"{w['sklearn']['seconds'] / w['ours']['seconds']:7.2f}")
        print(f"  {'ours 1 thread / 2 threads (warm)':<44} "
              f"{w['ours-1t']['seconds'] / w['ours']['seconds']:7.2f}")
        print(ratio_line("ours extra anonymous memory, MB (warm, cold)",
                         max(w["ours"]["anon_mb"], c.get("ours", {}).get("anon_mb", 0.0)),
                         TARGETS["anon_mb"], False))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one small file (2,400 x 60 x 130)")
    p.add_argument("--sizes", default=None, help="comma-separated N (default 20000,100000)")
    p.add_argument("--repeat", type=int, default=3, help="warm repetitions (best is kept)")
    p.add_argument("--drop", choices=("auto", "system", "fadvise"), default="auto",
                   help="how to empty the page cache for cold runs (auto: drop_caches, "
                        "else fadvise)")
    p.add_argument("--skip-cold", action="store_true")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--json", help="also write all figures to this file")
    p.add_argument("--process", action="store_true",
                   help="only the whole-process comparison (quiet, then with a busy process)")
    p.add_argument("--rounds", type=int, default=5, help="alternations in --process")
    p.add_argument("--worker", nargs=2, metavar=("APPROACH", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeat)))
        return
    # 2,400 rows (75 MB) is above NUMBA_MIN_BYTES, so the quick run takes the same engine as
    # the big files.
    sizes = [2_400] if args.quick else [int(s) for s in (args.sizes or "20000,100000").split(",")]
    print(f"bench_stats: numpy {np.__version__}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}, data under {DATA}")
    report: dict = {"sizes": {}}
    if args.process:
        report["process"] = bench_process(args)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        return
    for n in sizes:
        path = build_file(DATA / f"spectro_{n}x{H}x{W}.npy", n, (H, W), "spectro")
        report["sizes"][n] = bench_size(path, args)
    acc_path = build_file(DATA / f"offset1e4_{ACC_N}x{ACC_SHAPE[0]}x{ACC_SHAPE[1]}.npy", ACC_N,
                          ACC_SHAPE, "offset", seed=1)
    print(f"\n== accuracy: 1e4 + 0.1 * noise, N = {ACC_N:,}, {ACC_SHAPE[0]} x {ACC_SHAPE[1]} "
          "pixels, vs float64 two-pass ==")
    report["accuracy"] = acc = accuracy(acc_path)
    for name, e in acc.items():
        print(f"  {name:<24} mean rel err {e['mean_rel']:9.2e}   std rel err {e['std_rel']:9.2e}"
              f"   mean off by {e['mean_in_sd']:9.3g} sd")
    worst = max(max(acc[k]["mean_rel"], acc[k]["std_rel"]) for k in acc if k.startswith("ours"))
    print(ratio_line("ours worst relative error (x 1e-10)", worst / 1e-10, 1.0, False))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
