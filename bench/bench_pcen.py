"""Benchmark: the ``pcen`` compression over N x 60 x 130 float32 against librosa.pcen itself.

Not a test.  On one array (default 10,000 x 60 x 130 float32, 312 MB, seeded exponential noise
times a band profile, as linear-power mel is) it times, alternating the order every round:

* ``ours``    ``diagnostics.normalize.compress(X, "pcen")``: what ``Normalizer`` runs for the
  ``pcen`` part (``sqrt(x) * 2**31``, non-finite handling, librosa.pcen in blocks of examples);
* ``direct``  ``librosa.pcen(X, sr=22050, hop_length=512, axis=-1)``: librosa called once on
  the same array, with nothing else (the issue's baseline);
* ``same``    ``librosa.pcen(np.sqrt(X) * 2**31, ...)``: the call a user would write to get
  the same numbers as ours (printed for reference).

Prints the median time of each and the median of the per-round ratios ours / direct (target
<= 1.5), the largest difference between ours and ``same`` and the load average.

Usage::

    python bench/bench_pcen.py               # 10,000 x 60 x 130, 3 rounds
    python bench/bench_pcen.py --n 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H, W = 60, 130


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="examples (default 10,000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = ap.parse_args()

    import librosa

    from diagnostics.normalize import compress

    rng = np.random.default_rng(0)
    level = np.geomspace(1000.0, 1e-3, H)[:, None]
    X = (rng.exponential(1.0, (args.n, H, W)) * level).astype(np.float32)
    print(f"PCEN over {args.n:,} x {H} x {W} float32 ({X.nbytes / 1e6:,.0f} MB), "
          f"{args.rounds} alternating rounds")

    def ours():
        return compress(X, "pcen")

    def direct():
        return librosa.pcen(X, sr=22050, hop_length=512, axis=-1)

    def same():
        return librosa.pcen(np.sqrt(X.astype(np.float64)) * 2.0**31, sr=22050,
                            hop_length=512, axis=-1)

    # Warm up (librosa's lazy imports, page faults of the first big allocations).
    compress(X[:64], "pcen")
    librosa.pcen(X[:64], axis=-1)
    times: dict[str, list[float]] = {"ours": [], "direct": [], "same": []}
    ratios = []
    fns = {"ours": ours, "direct": direct, "same": same}
    for r in range(args.rounds):
        order = ["ours", "direct", "same"] if r % 2 == 0 else ["same", "direct", "ours"]
        got = {}
        for name in order:
            t0 = time.perf_counter()
            out = fns[name]()
            times[name].append(time.perf_counter() - t0)
            if name != "direct":
                got[name] = out
            del out
        ratios.append(times["ours"][-1] / times["direct"][-1])
        diff = float(np.max(np.abs(got["ours"] - got["same"])))
        del got
        print(f"round {r + 1}: ours {times['ours'][-1]:.2f} s, direct {times['direct'][-1]:.2f} s, "
              f"same {times['same'][-1]:.2f} s; ours / direct {ratios[-1]:.2f}; "
              f"max |ours - same| {diff:.1e}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median: ours {med['ours']:.2f} s, direct {med['direct']:.2f} s, same {med['same']:.2f} s")
    print(f"ratio ours / direct (median of rounds): {statistics.median(ratios):.2f} "
          f"(target <= 1.5); ours / same: {med['ours'] / med['same']:.2f}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
