"""Result statistics: intervals, paired t-tests against SciPy, honest answers for n < 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from diagnostics.results import compare, paired, summarize, verdict


def test_summary_matches_t_interval(rng):
    v = rng.uniform(0.6, 0.9, 5)
    s = summarize("x", list(v))
    lo, hi = sps.t.interval(0.95, 4, loc=v.mean(), scale=sps.sem(v))
    assert s.n == 5 and math.isclose(s.mean, v.mean()) and math.isclose(s.std, v.std(ddof=1))
    assert np.allclose(s.ci95, (lo, hi))


def test_summary_counts_unfinished_runs_and_refuses_intervals_for_one_value():
    s = summarize("x", [0.8, None], ["done", "diverged"])
    assert s.n == 1 and s.mean == 0.8 and s.std is None and s.ci95 is None
    assert s.n_failed == 1 and s.statuses == {"done": 1, "diverged": 1}
    assert summarize("y", [None]).mean is None


def test_paired_matches_scipy_ttest_rel(rng):
    a = {s: float(v) for s, v in enumerate(rng.uniform(0.8, 0.9, 5))}
    b = {s: a[s] - 0.1 + float(rng.normal(0, 0.02)) for s in a}
    d = paired("none", a, "per_pixel", b)
    ref = sps.ttest_rel(list(b.values()), list(a.values()))
    assert d.n == 5 and math.isclose(d.p_value, ref.pvalue, rel_tol=1e-12)
    assert math.isclose(d.mean_diff, np.mean([b[s] - a[s] for s in a]))
    assert d.ci95[0] < d.mean_diff < d.ci95[1] < 0


def test_paired_uses_only_seeds_both_finished():
    d = paired("a", {0: 0.9, 1: 0.8, 2: None}, "b", {0: 0.7, 1: 0.6, 2: 0.5, 3: 0.1})
    assert d.n == 2 and math.isclose(d.mean_diff, -0.2)


def test_one_seed_has_no_p_value_and_says_so():
    d = paired("none", {0: 0.9}, "per_pixel", {0: 0.8})
    assert d.n == 1 and d.p_value is None and d.ci95 is None
    assert verdict(d) == ("per_pixel is 10.0 points lower than none on 1 seed; run 2 or more "
                          "seeds for a p-value.")


def test_identical_differences_have_no_p_value_and_say_so():
    d = paired("none", {0: 0.5, 1: 0.6}, "per_pixel", {0: 0.4, 1: 0.5})
    assert d.p_value is None and d.std_diff == 0 and math.isclose(d.mean_diff, -0.1)
    assert verdict(d).startswith("per_pixel is 10.0 points lower than none on each of 2 seeds "
                                 "(identical differences, so no p-value")
    same = paired("none", {0: 1.0, 1: 1.0}, "db+per_row", {0: 1.0, 1: 1.0})
    assert same.p_value is None and verdict(same) == "db+per_row and none scored the same on each of 2 seeds."


@pytest.mark.parametrize("diffs, want", [
    ([-0.11, -0.12, -0.10, -0.11, -0.105], r"per_pixel is worse than none by 10\.\d points, "
                                           r"p<0\.001 over 5 seeds\."),
    ([0.05, 0.06, 0.04], r"per_pixel is better than none by 5\.0 points, p=0\.0\d+ over 3 seeds\."),
    ([0.01, -0.02, 0.005], r"per_pixel and none do not differ clearly \(-0\.2 points, "
                           r"95% CI -4\.2 to \+3\.8, p=0\.\d\d over 3 seeds\)\."),
    ([-0.02, -0.12, 0.01], r"per_pixel and none do not differ clearly \(-4\.3 points, "
                           r"95% CI -21\.\d to \+12\.\d, p=0\.\d\d over 3 seeds\); to tell a "
                           r"4\.3-point difference from this seed-to-seed spread, run about "
                           r"\d+ seeds\."),
])
def test_verdict_sentences(diffs, want):
    import re

    a = {s: 0.8 for s in range(len(diffs))}
    b = {s: 0.8 + d for s, d in enumerate(diffs)}
    assert re.fullmatch(want, verdict(paired("none", a, "per_pixel", b)))


def test_compare_orders_configs_and_pairs_against_the_first():
    acc = {"none": {0: 0.9, 1: 0.92}, "per_pixel": {0: 0.8, 1: 0.81}, "db+per_row": {0: 0.95, 1: None}}
    res = compare(["none", "per_pixel", "db+per_row"], acc)
    assert [c.name for c in res.configs] == ["none", "per_pixel", "db+per_row"]
    assert [(p.a, p.b) for p in res.paired] == [("none", "per_pixel"), ("none", "db+per_row")]
    assert res.paired[1].n == 1 and res.paired[1].p_value is None
    d = res.as_dict()
    assert d["configs"][0]["ci95"] is not None and len(d["verdicts"]) == 2


def test_seed_band_handles_ragged_live_curves():
    from diagnostics.results import seed_band

    b = seed_band([[0.5, 0.6, 0.7], [0.3, 0.4], [0.4, None]])
    assert b.x.tolist() == [1, 2, 3] and b.n.tolist() == [3, 2, 1]
    np.testing.assert_allclose(b.mean, [0.4, 0.5, 0.7])
    np.testing.assert_allclose(b.lo, [0.3, 0.4, 0.7]) and np.testing.assert_allclose(b.hi, [0.5, 0.6, 0.7])
    assert np.isclose(b.std[0], 0.1) and np.isnan(b.std[2])
    assert seed_band([]).x.size == 0


def test_accuracy_intervals_stay_within_0_and_1():
    res = compare(["a"], {"a": {0: 1.0, 1: 0.98, 2: 1.0}})
    lo, hi = res.configs[0].ci95
    assert hi == 1.0 and 0.9 < lo < 0.98


def test_seeds_needed_matches_a_simulation(rng):
    from diagnostics.results import seeds_needed

    n = seeds_needed(0.05, 0.06)
    assert n is not None and 10 <= n <= 16
    # A simulated paired t-test with that many seeds detects the effect about 80% of the time,
    # and with one seed fewer, less often.
    from scipy import stats as sps

    def hit_rate(k):
        d = rng.normal(0.05, 0.06, size=(4000, k))
        return float(np.mean(sps.ttest_1samp(d, 0, axis=1).pvalue < 0.05))

    assert 0.77 <= hit_rate(n) <= 0.86
    assert hit_rate(n - 1) < 0.8 + 0.01
    assert seeds_needed(0.001, 0.2) is None  # would need far more than 100
    assert seeds_needed(0.0, 0.1) is None and seeds_needed(0.05, 0.0) is None


@pytest.mark.parametrize("acc, want", [
    ({"none": [.86, .85, .88], "per_pixel": [.60, .55, .64], "db+per_row": [.89, .89, .90]},
     "db+per_row scored highest, 89.3% over 3 seeds, 3.0 points above none (p=0.0351)."),
    ({"none": [.86, .85, .88], "per_pixel": [.60, .55, .64], "db+per_row": [.89, .83, .90]},
     "db+per_row scored highest, 87.3% over 3 seeds, but not clearly above none (+1.0 points, "
     "p=0.58); run more seeds before switching."),
    ({"none": [.86, .85, .88], "per_pixel": [.60, .55, .64]},
     "none scored highest, 86.3% over 3 seeds: no normalization tried here beat the reference."),
    ({"none": [.86, .85, .88], "global": [.85, .87, .86]},
     "none scored highest, 86.3% over 3 seeds: no normalization tried here beat the reference; "
     "global (86.0%) is not clearly behind it, so either will do."),
    ({"none": [.86, .85, .88], "a": [.95, .96, .955], "b": [.955, .95, .96]},
     "a scored highest, 95.5% over 3 seeds, 9.2 points above none (p=0.012); b (95.5%) is not "
     "clearly behind it, so either will do."),
    ({"none": [.86], "db": [.90]},
     "db scored highest, 90.0% over 1 seed, but not clearly above none (not yet tested on 2 or "
     "more common seeds); run more seeds before switching."),
    ({"none": [None], "db": [None]}, ""),
    ({"none": [.9, .8]}, ""),
])
def test_best_summary_says_what_to_use_and_how_sure(acc, want):
    acc = {k: dict(enumerate(v)) for k, v in acc.items()}
    res = compare(list(acc), acc)
    assert res.summary == want and res.as_dict()["summary"] == want
