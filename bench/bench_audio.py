"""Benchmark: audio feature extraction with one and two workers, and the cached second open.

    python bench/bench_audio.py            # 1,000 three-second clips at 22,050 Hz
    python bench/bench_audio.py --quick    # 100 clips (a check that it runs, not a figure)

Clips (tones in noise, ten class folders) are generated once into bench/data/ (git-ignored)
and reused.  Every figure is measured in this run; the speed-up is relative to one worker.
Targets (issue 3): two workers >= 1.7x one worker; the cached second open < 1 s.  Also
timed: the open after one clip changed (only that clip is decoded again).
Process-level one-time costs (librosa's first call in this process, starting the forkserver)
are paid before the timed runs and reported on their own line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diagnostics.data.audio.features import FeatureParams, extract_features  # noqa: E402
from diagnostics.data.audio.loader import load_audio  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SR = 22050
SECONDS = 3.0
CLASSES = 10


def make_clips(n: int) -> Path:
    """n clips of SECONDS at SR in CLASSES sub-folders; reused when already there."""
    folder = DATA / f"audio-{n}"
    if folder.is_dir() and len(list(folder.rglob("*.wav"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * SR)) / SR
    for i in range(n):
        c = i % CLASSES
        f0 = 200.0 * (1 + c) * (1 + 0.01 * rng.standard_normal())
        x = 0.2 * np.sin(2 * np.pi * f0 * t) * np.exp(-t * rng.uniform(0.2, 2.0))
        x += 0.02 * rng.standard_normal(t.size)
        out = folder / f"class{c}" / f"{i:05d}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, x.astype(np.float32), SR, subtype="PCM_16")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 clips instead of 1,000")
    ap.add_argument("--clips", type=int, help="number of clips (overrides --quick)")
    args = ap.parse_args()
    n = args.clips or (100 if args.quick else 1000)
    folder = make_clips(n)
    paths = sorted(folder.rglob("*.wav"))
    params = FeatureParams()
    home = Path(tempfile.mkdtemp(prefix="home-", dir=DATA))
    os.environ["NORMSCOPE_HOME"] = str(home)
    try:
        print(f"{n} clips of {SECONDS:g} s at {SR} Hz -> {params.feature} {params.shape}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        t0 = time.perf_counter()
        extract_features(paths[:4], params, workers=1)
        t1 = time.perf_counter()
        extract_features(paths[:16], params, workers=2)
        t2 = time.perf_counter()
        print(f"one-time costs: first librosa call {t1 - t0:.2f} s, "
              f"first pool (forkserver start + 16 clips) {t2 - t1:.2f} s")

        one = extract_features(paths, params, workers=1)
        two = extract_features(paths, params, workers=2)
        assert np.array_equal(one.X, two.X) and not one.skipped
        r1, r2 = n / one.seconds, n / two.seconds
        print(f"1 worker : {one.seconds:7.2f} s  {r1:7.1f} clips/s  (baseline)")
        print(f"2 workers: {two.seconds:7.2f} s  {r2:7.1f} clips/s  {r2 / r1:.2f}x  "
              f"(target >= 1.7x: {'met' if r2 / r1 >= 1.7 else 'NOT met'})")

        t0 = time.perf_counter()
        ds = load_audio(folder, params=params, workers=2)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = load_audio(folder, params=params, workers=2)
        second = time.perf_counter() - t0
        assert again.id == ds.id
        print(f"first open (hash + extract + register): {first:6.2f} s   id {ds.id}")
        print(f"second open (cached)                  : {second:6.3f} s  {first / second:,.0f}x "
              f"faster  (target < 1 s: {'met' if second < 1 else 'NOT met'})")

        # One clip changed: only it is decoded again, the rest is copied from the stored rows.
        victim = paths[n // 2]
        original = victim.read_bytes()
        try:
            x, sr = sf.read(victim, dtype="float32")
            sf.write(victim, (0.5 * x).astype(np.float32), sr, subtype="PCM_16")
            t0 = time.perf_counter()
            changed = load_audio(folder, params=params, workers=2)
            edit = time.perf_counter() - t0
        finally:
            victim.write_bytes(original)
        assert changed.id != ds.id
        print(f"open after 1 of {n} clips changed     : {edit:6.3f} s  {first / edit:,.0f}x "
              "faster than the first open (one clip decoded, the rest reused)")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
