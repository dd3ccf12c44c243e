"""Benchmark: the advisor with its default budget against a careful hand-written CV.

    python bench/bench_advise.py                       # the spoken-word set as mel, then mfcc
    python bench/bench_advise.py --feature mfcc        # one kind only
    python bench/bench_advise.py --data demo           # a built-in (its one kind)
    python bench/bench_advise.py --quick               # 2 epochs, small budget: that it runs

For each dataset it measures, in this one run:

1. **The advisor** as ``python -m diagnostics advise DATA`` runs it with its defaults
   (:func:`models.advisor.start_advice`: the candidates from the training split's statistics,
   decide mode within ``DEFAULT_BUDGET_S`` on 2 workers): wall time from the start to the
   recommendation (statistics and feature extraction excluded, timed on their own line), the
   repetitions it used, the printed recommendation.
2. **The hand-written CV** of the same candidates: ``bench_speech.hand_cv`` (plain torch, one
   thread, scikit-learn's ``StratifiedKFold``, every normalization written from its definition,
   best-validation weights), ``--hand-repetitions`` repetitions.  Printed: each config's
   pooled accuracy and, for its top config against every other, the mean per-fold difference
   with a 95% interval from the corrected repeated k-fold t (Nadeau & Bengio), computed here.
3. **Agreement**: the advisor's config (recommended, or leading when undecided) against the
   hand-written top: "agrees" when they are the same; otherwise whether the hand-written
   interval of their difference excludes zero (then they disagree) or not (the hand-written
   CV cannot separate them either).

The load average is printed with every figure: on a shared machine the times are not the
budget's figure for an idle one.  The run store and features go to a temporary
``NORMSCOPE_HOME``.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speech import DEFAULT_DATA, KINDS, hand_cv, load_avg  # noqa: E402 (the shared loop)


def load(data: str, kind: str | None):
    from diagnostics.data.audio.features import FeatureParams
    from diagnostics.data.ingest import load_dataset

    t0 = time.perf_counter()
    params = FeatureParams(feature=kind) if kind else None
    ds = load_dataset(data, params=params, workers=2) if params else load_dataset(data)
    return ds, time.perf_counter() - t0


def run_advisor(ds, proposal, *, budget_s: float, epochs: int | None, workers: int | None):
    """The advisor as the CLI runs it; (seconds, repetitions used, stopped_because, advice doc,
    comparison doc)."""
    from diagnostics.config import DEFAULT_MASK_SNR
    from diagnostics.results import comparison_json
    from models.advisor import finish_advice, start_advice
    from models.store import RunStore

    store = RunStore()
    t0 = time.perf_counter()
    comp = start_advice(ds, proposal, budget_s=budget_s, epochs=epochs, workers=workers,
                        mask_snr=DEFAULT_MASK_SNR, store=store)
    comp.wait()
    t = time.perf_counter() - t0
    advice = finish_advice(store, comp.id, elapsed_s=t)
    doc = comparison_json(comp.record(), store.predictions(comp.id), elapsed_s=t)
    ev = doc["evaluation"]
    reps = ev.get("cells", ev["repetitions"] * ev["folds"]) / ev["folds"]
    return t, reps, ev["stopped_because"], advice, doc


def corrected_interval(diffs: np.ndarray, *, folds: int) -> tuple[float, float, float]:
    """Mean of per-fold accuracy differences and its 95% interval by the corrected repeated
    k-fold t (Nadeau & Bengio 2003; Bouckaert & Frank 2004) over the J = k r folds: variance
    factor 1/J + n_test/n_train = 1/J + 1/(k - 1)."""
    from scipy import stats

    d = np.asarray(diffs, np.float64)
    J = d.size
    se = np.sqrt((1.0 / J + 1.0 / (folds - 1)) * d.var(ddof=1))
    h = stats.t.ppf(0.975, J - 1) * se
    return float(d.mean()), float(d.mean() - h), float(d.mean() + h)


def bench_one(label: str, data: str, kind: str | None, args) -> None:
    from diagnostics.advise import DEFAULT_BUDGET_S, propose, recommendation_lines, Recommendation
    from diagnostics.config import DEFAULT_MASK_SNR
    from diagnostics.stats.summary import dataset_stats

    ds, t_load = load(data, kind)
    t0 = time.perf_counter()
    proposal = propose(dataset_stats(ds, on="train"), mask_snr=DEFAULT_MASK_SNR)
    t_stats = time.perf_counter() - t0
    configs = proposal.configs
    budget = args.budget or DEFAULT_BUDGET_S
    print(f"{label}: {ds.n} examples of {ds.X.shape[1]} x {ds.X.shape[2]}, "
          f"{len(ds.class_names)} classes; candidates {', '.join(configs)}; load/features "
          f"{t_load:.1f} s, statistics {t_stats:.1f} s (in no figure below)", flush=True)
    print(f"  advisor (budget {budget:g} s, {args.workers or 'default'} workers): load before "
          f"{load_avg()}", flush=True)
    t, reps, why, advice, doc = run_advisor(ds, proposal, budget_s=budget, epochs=args.epochs,
                                            workers=args.workers)
    print(f"  advisor: {t:.1f} s wall, {reps:g} repetition(s) of 5-fold CV, stopped: {why}; "
          f"load after {load_avg()}", flush=True)
    rec = Recommendation.from_json(advice["recommendation"])
    for line in recommendation_lines(rec):
        print(f"    {line}")
    print("    advisor's accuracies: " + ", ".join(
        f"{c['name']} {100 * c['accuracy']:.1f}%" for c in doc["configs"]))
    X, y = np.asarray(ds.X), np.asarray(ds.y)
    t0 = time.perf_counter()
    per_fold: dict[str, list[float]] = {c: [] for c in configs}
    correct = {c: 0.0 for c in configs}
    for r in range(args.hand_repetitions):
        _, acc, folds = hand_cv(X, y, configs, epochs=args.epochs or _default_epochs(),
                                n_classes=len(ds.class_names), repetition=r)
        for c in configs:
            per_fold[c] += folds[c]
            correct[c] += acc[c] / args.hand_repetitions
    t_hand = time.perf_counter() - t0
    print(f"  hand-written CV: {args.hand_repetitions} repetition(s) of 5-fold CV, 1 thread, "
          f"{t_hand:.1f} s; load {load_avg()}", flush=True)
    print("    hand-written accuracies: " + ", ".join(f"{c} {100 * a:.1f}%"
                                                      for c, a in correct.items()))
    top = max(correct, key=correct.get)
    for c in configs:
        if c != top:
            m, lo, hi = corrected_interval(np.array(per_fold[top]) - np.array(per_fold[c]), folds=5)
            print(f"    {top} - {c}: {100 * m:+.1f} points (95% CI {100 * lo:+.1f} to "
                  f"{100 * hi:+.1f})")
    ours = rec.config
    if ours == top:
        verdict = "agrees"
    else:
        m, lo, hi = corrected_interval(np.array(per_fold[top]) - np.array(per_fold[ours]), folds=5)
        verdict = ("DISAGREES: the hand-written CV puts it behind" if lo > 0 else
                   "differs, but the hand-written CV cannot separate them either")
        verdict += (f" ({top} - {ours} {100 * m:+.1f} points, 95% CI {100 * lo:+.1f} to "
                    f"{100 * hi:+.1f})")
    state = "recommended" if rec.settled else "leading, undecided"
    print(f"  agreement: advisor {ours} ({state}); hand-written top {top}: {verdict}", flush=True)


def _default_epochs() -> int:
    from models.train import TrainConfig

    return TrainConfig().epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"audio folder or built-in (default "
                    f"{DEFAULT_DATA})")
    ap.add_argument("--feature", choices=KINDS + ("both",), default="both",
                    help="for an audio folder: mel (linear power), mfcc, or both (default)")
    ap.add_argument("--budget", type=float, default=None, help="advisor budget (default: its own)")
    ap.add_argument("--epochs", type=int, default=None, help="most epochs (default: the app's)")
    ap.add_argument("--workers", type=int, default=None, help="advisor workers (default: cores)")
    ap.add_argument("--hand-repetitions", type=int, default=1,
                    help="repetitions of the hand-written 5-fold CV (default 1)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, budget 120 s: that it runs")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.budget = args.epochs or 2, args.budget or 120.0
    tmp = tempfile.mkdtemp(prefix="normscope-bench-advise-")
    os.environ["NORMSCOPE_HOME"] = tmp
    t0 = time.perf_counter()
    print(f"bench_advise: {os.cpu_count()} cores; load {load_avg()}", flush=True)
    try:
        if Path(args.data).is_dir():
            for kind in (KINDS if args.feature == "both" else (args.feature,)):
                bench_one(f"{Path(args.data).name} {kind}", args.data, kind, args)
        else:
            bench_one(args.data, args.data, None, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
