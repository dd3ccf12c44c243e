"""Benchmark: error rates of decide mode's verdicts, by simulation at the statistics level.

    python bench/bench_verdict.py            # 2,000 null comparisons, 1,000 per effect
    python bench/bench_verdict.py --quick    # 300 each (a check that it runs, not a figure)

Two configs cross-validated (5 folds, up to 5 repetitions) on simulated datasets of 800
examples (tests/unit/verdict_sim.py says what is simulated and why).  Decide mode looks after
every fold from the third (diagnostics.verdicts.decide.look_schedule) until the pair is
decided or the budget of 5 repetitions is spent.  Printed, all measured in this run:

* the false better/worse rate under the null (target <= 5%), next to an uncorrected paired
  t-test at 5% after every repetition on the same comparisons (what the design prevents);
* the same for the spending mechanism alone, on exact t-tests of independent runs;
* coverage of the 95% config intervals (target >= 93%), for the population accuracy and for
  the accuracy of the models trained on the dataset, and in harsher worlds (with the false
  better/worse rate there);
* for true differences of 2, 5 and 10 points: how often decide mode finds them and the mean
  number of repetitions' worth of folds it used (folds / 5);
* several configs (the multiplicity adjustment, Shaffer's step-down over every pair): four
  equal configs and three equal beside a clear winner, the share of comparisons in which a
  pair of equal configs is called better or worse at any look up to the stop (target <= 5%);
  and a world like the demo's (one config 5 points behind, one 8 ahead), how often and how
  soon the best is decided, next to Holm's adjustment on the same comparisons.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]

from diagnostics.verdicts.sequential import sequential_p  # noqa: E402
from verdict_sim import World, run_decide, run_decide_many, simulate, simulate_many  # noqa: E402


def coverage(runs, sim, c: int) -> tuple[float, float]:
    ci = np.array([d.configs[c].ci95 for _, _, d in runs])
    inside = lambda t: float(np.mean((ci[:, 0] <= t) & (t <= ci[:, 1])))  # noqa: E731
    return inside(sim.truth[c]), inside(sim.truth_given_data[:, c])


def naive_rate(sim, w: World) -> float:
    """Uncorrected paired t at 5% after every repetition, stopping at the first hit."""
    diffs = (sim.counts[:, 1] - sim.counts[:, 0]) / (w.n // w.k)
    hit = np.zeros(len(diffs), bool)
    for look in range(1, w.reps + 1):
        hit |= sps.ttest_1samp(diffs[:, :look].reshape(len(diffs), -1), 0, axis=1).pvalue < 0.05
    return float(hit.mean())


def mechanism(sims: int) -> tuple[float, float]:
    """Spending alone: exact t-tests on 5 iid runs per look, 5 looks."""
    x = np.random.default_rng(5).standard_normal((sims, 25))
    seq, naive = np.zeros(sims, bool), np.zeros(sims, bool)
    for look in range(1, 6):
        p = sps.ttest_1samp(x[:, :5 * look], 0, axis=1).pvalue
        seq |= sequential_p(p, look, 5) <= 0.05
        naive |= p <= 0.05
    return float(seq.mean()), float(naive.mean())


def several(counts: np.ndarray, w: World, equal: str) -> tuple[float, float, float]:
    """Decide mode on comparisons of several configs, looking after every fold until it stops:
    (share with a pair of the ``equal`` configs called better/worse at any look, share that
    stopped decided, mean repetitions' worth of folds used)."""
    runs = run_decide_many(counts, w, equal)
    return (float(np.mean([r.false_any_look for r in runs])),
            float(np.mean([r.decision.stopped_because == "decided" for r in runs])),
            float(np.mean([r.repetitions for r in runs])))


def several_configs(n: int) -> None:
    import diagnostics.verdicts.decide as decide_mod
    from diagnostics.verdicts.sequential import holm

    w = World()
    print(f"several configs, {n} comparisons each (a pair of equal configs called better/worse "
          "at any look up to the stop; target <= 5%):")
    for label, effects, equal in [("4 equal configs (6 true nulls)", (0, 0, 0, 0), "abcd"),
                                  ("3 equal + one 8 points ahead", (0, 0, 0, 0.08), "abc")]:
        false, _, used = several(simulate_many(w, effects, n, seed=404), w, equal)
        print(f"  {label:34s} false {100 * false:5.2f}%   repetitions used {used:.2f}")
    demo_like = simulate_many(w, (0, -0.05, 0, 0.08), n, seed=505)
    shaffer_fn = decide_mod.shaffer
    for label in ("Shaffer (used)", "Holm"):
        if label == "Holm":
            decide_mod.shaffer = lambda p, k: holm(p)
        try:
            false, settled, used = several(demo_like, w, "ac")
        finally:
            decide_mod.shaffer = shaffer_fn
        print(f"  none, -5, +0, +8 points, {label:14s}: best decided {100 * settled:5.1f}%, "
              f"repetitions used {used:.2f}, false {100 * false:.2f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 comparisons each")
    args = ap.parse_args()
    n_null, n_eff = (300, 300) if args.quick else (2000, 1000)
    t0 = time.perf_counter()

    w = World()
    sim = simulate(w, n_null, seed=101)
    runs = run_decide(sim.counts, w)
    words = np.array([v for v, _, _ in runs])
    false = float(np.mean((words == "better") | (words == "worse")))
    print(f"null, {n_null} comparisons (n={w.n}, 5-fold CV, decide mode up to {w.reps} reps):")
    print(f"  false better/worse rate      {100 * false:5.2f}%   (target <= 5%)")
    print(f"  'equivalent' (true diff 0)   {100 * np.mean(words == 'equivalent'):5.2f}%")
    print(f"  naive t at every look        {100 * naive_rate(sim, w):5.2f}%   (same comparisons)")
    seq, naive = mechanism(20_000)
    print(f"  spending alone, exact t      {100 * seq:5.2f}%   (each look at 5%: {100 * naive:.2f}%)")
    for c, name in enumerate("ab"):
        pop, given = coverage(runs, sim, c)
        print(f"  coverage of config {name}         {100 * pop:5.1f}%   population; "
              f"{100 * given:5.1f}% given the dataset (target >= 93%)")

    print("coverage of config a at the stop in other worlds (population; given the data), and "
          "the false better/worse rate there:")
    for label, kw in [("training-set spread x2 (split_sd 0.3)", dict(split_sd=0.3)),
                      ("n=200", dict(n=200)), ("n=3000", dict(n=3000)),
                      ("configs disagree more (interaction 1.0)", dict(interaction_sd=1.0))]:
        wo = World(**kw)
        so = simulate(wo, min(n_eff, 500), seed=202)
        ro = run_decide(so.counts, wo)
        pop, given = coverage(ro, so, 0)
        wrong = np.mean([v in ("better", "worse") for v, _, _ in ro])
        print(f"  {label:42s} {100 * pop:5.1f}%  {100 * given:5.1f}%   false {100 * wrong:4.2f}%")

    print(f"true differences, {n_eff} comparisons each:")
    for eff in (0.02, 0.05, 0.10):
        we = World(effect=eff)
        re = run_decide(simulate(we, n_eff, seed=303).counts, we)
        found = np.array([v == "better" for v, _, _ in re])
        looks = np.array([lk for _, lk, _ in re])
        wrong = np.mean([v == "worse" for v, _, _ in re])
        print(f"  +{100 * eff:4.1f} points: found {100 * found.mean():5.1f}%, wrong sign "
              f"{100 * wrong:.1f}%, repetitions used {looks.mean():.2f} (when found "
              f"{looks[found].mean() if found.any() else float('nan'):.2f})")
    several_configs(min(n_eff, 300 if args.quick else 600))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
