"""Benchmark of training comparisons: wall time, loop overhead, scaling with workers.

Prints three figures, each against a baseline measured in the same run:

1. the default comparison on ``demo`` (``none`` vs ``per_pixel``, 3 seeds, default epochs,
   workers = cores): wall time (target <= 60 s on 2 cores) and whether it reproduces the
   finding (``none`` clearly better than ``per_pixel``);
2. loop overhead: the same runs (model, data, epochs, evaluation) through our Comparison (local process executor) with one
   worker vs a bare minimal torch loop in this process (target ratio <= 1.15);
3. two workers vs one on 6 runs (target >= 1.6x);
4. cancel latency: Cancel pressed mid-epoch until every worker has stopped (target <= 2 s),
   against the time of one training epoch measured in the same comparison;
5. decide mode (``--only decide``): the app's default comparison on the built-in demo (none,
   per_pixel, per_pixel@mask, db+per_row; auto evaluation = 5-fold CV, decide mode; 2
   workers) against today's default (the same 4 configs x 3 seeds on the fixed holdout, every
   seed run), alternating A B A B in one sitting: wall times, the ratio (target <= 1.5), the
   folds decide mode took and its answer.  ``--baseline-tree DIR`` runs today's default with
   the code of another checkout (e.g. the tree before decide mode, 15 full epochs, no early
   stopping), in a subprocess timed the same way (start to finish of the comparison);
   without it, this tree runs it (holdout, every seed, early stopping on).

``--quick`` runs tiny sizes (1-2 epochs) to check that the script works; its figures are
dominated by fixed costs and are not the targets.  The run store goes to a temporary
``NORMSCOPE_HOME`` so benchmarks never mix with real runs.

    python bench/bench_compare.py [--quick] [--epochs E]
        [--only default|overhead|scaling|cancel|decide] [--folds K] [--budget S]
        [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_loop(configs, seeds, epochs, batch_size=32, lr=1e-3) -> float:
    """The same runs as a minimal torch loop in this process; returns seconds."""
    import numpy as np
    import torch

    from diagnostics.data.ingest import load_dataset
    from diagnostics.data.dataset import split_indices
    from diagnostics.normalize import Normalizer
    from models.nets import build_model

    t0 = time.perf_counter()
    ds = load_dataset("demo")
    sp = split_indices(ds.n, ds.y)
    y = torch.from_numpy(ds.y)
    data = {}
    for cfg in configs:
        nz = Normalizer(cfg).fit(ds.X, indices=sp.train)
        data[cfg] = torch.from_numpy(nz.transform(ds.X))
    tr, va, te = (torch.from_numpy(i) for i in (sp.train, sp.val, sp.test))
    for seed in seeds:
        for cfg in configs:
            X = data[cfg]
            torch.manual_seed(seed)
            model = build_model("cnn", tuple(X.shape[1:]), len(ds.class_names))
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            rng = np.random.default_rng(seed)
            for _ in range(epochs):
                model.train()
                perm = tr[torch.from_numpy(rng.permutation(len(tr)))]
                for i in range(0, len(perm), batch_size):
                    b = perm[i : i + batch_size]
                    loss = torch.nn.functional.cross_entropy(model(X[b]), y[b])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                model.eval()
                with torch.inference_mode():
                    (model(X[va]).argmax(1) == y[va]).float().mean().item()
            with torch.inference_mode():
                (model(X[te]).argmax(1) == y[te]).float().mean().item()
    return time.perf_counter() - t0


def ours(configs, seeds, epochs, workers):
    """The same runs through models.comparison.Comparison; returns (seconds, record)."""
    from models.comparison import Comparison
    from models.train import TrainConfig

    t0 = time.perf_counter()
    comp = Comparison("demo", configs, seeds=seeds, train=TrainConfig(epochs=epochs),
                      workers=workers).start()
    comp.wait()
    return time.perf_counter() - t0, comp.record()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    ap.add_argument("--epochs", type=int, help="override the epochs of every part")
    ap.add_argument("--only", choices=("default", "overhead", "scaling", "cancel", "decide"),
                    help="run one part only (decide runs only when named)")
    ap.add_argument("--folds", type=int, default=5, help="k of decide mode's CV (default 5)")
    ap.add_argument("--budget", type=float, help="decide mode's time budget in seconds")
    ap.add_argument("--decide-epochs", type=int,
                    help="most epochs of decide mode's runs (default: as today's default)")
    ap.add_argument("--decide-patience", type=int,
                    help="early-stopping patience of decide mode's runs (default 5)")
    ap.add_argument("--baseline-tree", metavar="DIR",
                    help="run today's default with the checkout in DIR (decide only)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="normscope-bench-")
    os.environ["NORMSCOPE_HOME"] = tmp
    try:
        run(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args) -> None:
    import torch

    from models.train import TrainConfig

    torch.set_num_threads(1)  # the bare loop gets what each worker gets
    cores = os.cpu_count() or 1
    epochs = args.epochs or (1 if args.quick else TrainConfig().epochs)
    seeds = [0, 1] if args.quick else [0, 1, 2]
    print(f"bench_compare: {'quick' if args.quick else 'full'}, {cores} cores, epochs {epochs}, "
          f"torch {torch.__version__}")

    # 1. the default comparison
    if args.only in (None, "default"):
        default_comparison(args, seeds, epochs, cores)
    cfgs = ["none", "per_pixel"]
    if args.only in (None, "overhead"):
        # 2. loop overhead, one worker vs the bare loop, the same runs
        oseeds = [0] if args.quick else [0, 1, 2]
        t_bare = bare_loop(cfgs, oseeds, epochs)
        t_ours, _ = ours(cfgs, oseeds, epochs, 1)
        print(f"loop overhead ({len(cfgs) * len(oseeds)} runs, 1 worker): ours {t_ours:.1f} s vs "
              f"bare torch loop {t_bare:.1f} s: ratio {t_ours / t_bare:.2f} (target <= 1.15)")
    if args.only in (None, "scaling"):
        # 3. two workers vs one on 6 runs
        t1, _ = ours(cfgs, [0, 1, 2], epochs, 1)
        t2, _ = ours(cfgs, [0, 1, 2], epochs, 2)
        print(f"6 runs: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s: speed-up {t1 / t2:.2f}x "
              f"(target >= 1.6x)")
    if args.only in (None, "cancel"):
        # 4. cancel latency (the tests only check that cancel stops runs, not how fast)
        cancel_latency(2 if args.quick else 5)
    if args.only == "decide":
        decide_vs_default(epochs, folds=args.folds, budget=args.budget,
                          decide_epochs=args.decide_epochs, patience=args.decide_patience,
                          baseline_tree=args.baseline_tree)


DEMO_CONFIGS = ["none", "per_pixel", "per_pixel@mask", "db+per_row"]


def decide_vs_default(epochs: int, *, folds: int = 5, budget: float | None = None,
                      rounds: int = 2, workers: int = 2, decide_epochs: int | None = None,
                      patience: int | None = None, baseline_tree: str | None = None) -> None:
    """Decide mode (auto = 5-fold CV) vs today's default (holdout, 3 seeds, every one run)."""
    import statistics

    from diagnostics.results import comparison_json
    from models.comparison import Comparison
    from models.store import RunStore
    from models.train import TrainConfig

    tc = TrainConfig(epochs=epochs)
    tc_decide = TrainConfig(epochs=decide_epochs or epochs,
                            patience=TrainConfig().patience if patience is None else patience)

    def timed(train=tc, **kw):
        t0 = time.perf_counter()
        comp = Comparison("demo", DEMO_CONFIGS, train=train, workers=workers, **kw).start()
        comp.wait()
        t = time.perf_counter() - t0
        rec = comp.record()
        doc = comparison_json(rec, RunStore().predictions(rec.id), elapsed_s=t)
        runs = [r for r in rec.runs if r.status == "done"]
        epochs_run = statistics.mean(len(r.history.get("epoch", [])) for r in runs) if runs else 0
        return t, doc, len(rec.runs), epochs_run

    fixed, dec = [], []
    for k in range(rounds):
        if baseline_tree:
            t, n, ep = old_default(baseline_tree, epochs, workers)
            where = f"the code in {baseline_tree}"
        else:
            t, _, n, ep = timed(seeds=3, evaluation="holdout", decide=False)
            where = "this tree"
        fixed.append(t)
        print(f"  round {k + 1}: today's default ({where}: holdout, 3 seeds, {n} runs, "
              f"{ep:.1f} epochs a run): {t:.1f} s; load {_load()}", flush=True)
        t, doc, n, ep = timed(train=tc_decide, folds=folds, budget_s=budget)
        dec.append(t)
        ev = doc["evaluation"]
        print(f"  round {k + 1}: decide mode ({ev['kind']}, {ev['folds']} folds, "
              f"{ev.get('cells')} folds a config used, stopped: {ev['stopped_because']}, "
              f"{n} runs, {ep:.1f} epochs a run): {t:.1f} s; load {_load()}", flush=True)
    tf, td = sum(fixed) / rounds, sum(dec) / rounds
    # Each round's own ratio too: on a shared machine one slow round can move the means.
    print("  ratio per round: " + ", ".join(f"{d / f:.2f}" for d, f in zip(dec, fixed)))
    print(f"decide mode on demo ({len(DEMO_CONFIGS)} configs, {workers} workers, at most "
          f"{tc_decide.epochs} epochs, patience {tc_decide.patience}; today's default "
          f"{epochs} epochs): {td:.1f} s vs today's default {tf:.1f} s: ratio {td / tf:.2f} "
          f"(target <= 1.5); folds a config {ev.get('cells')} ({ev['repetitions']} repetition(s) "
          f"begun), stopped: {ev['stopped_because']}")
    for line in doc["answer"]["text"]:
        print(f"  answer: {line}")


OLD_DEFAULT = """
import json, sys, time
sys.path.insert(0, ".")
from models.runner import Comparison
from models.train import TrainConfig
t0 = time.perf_counter()
comp = Comparison("demo", {configs!r}, seeds=3, train=TrainConfig(epochs={epochs}),
                  workers={workers}).start()
comp.wait()
t = time.perf_counter() - t0
rec = comp.record()
print(json.dumps({{"t": t, "runs": len(rec.runs),
                  "epochs": sum(len(r.history.get("epoch", [])) for r in rec.runs) / len(rec.runs)}}))
"""


def old_default(tree: str, epochs: int, workers: int) -> tuple[float, int, float]:
    """Today's default run by the code of ``tree`` (models.runner.Comparison, as before
    decide mode), timed inside a subprocess from start to finish; (seconds, runs, epochs)."""
    import json
    import subprocess

    home = os.path.join(os.environ["NORMSCOPE_HOME"], "baseline")
    code = OLD_DEFAULT.format(configs=DEMO_CONFIGS, epochs=epochs, workers=workers)
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                         env={**os.environ, "NORMSCOPE_HOME": home}, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["t"], r["runs"], r["epochs"]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cancel_latency(trials: int) -> None:
    import statistics

    from models.comparison import Comparison
    from models.train import TrainConfig

    def wait_epoch(comp, n):
        deadline = time.monotonic() + 120
        while not any(r.epoch >= n for r in comp.snapshot().runs):
            if comp.finished or time.monotonic() > deadline:
                raise SystemExit(f"cancel benchmark: no run reached epoch {n} "
                                 f"({comp.snapshot().status})")
            time.sleep(0.01)
        return time.perf_counter()

    lat, epoch_s = [], []
    for k in range(trials):
        comp = Comparison("demo", "none,per_pixel", seeds=2,
                          train=TrainConfig(epochs=10_000)).start()
        t1 = wait_epoch(comp, 1)
        epoch_s.append(wait_epoch(comp, 2) - t1)
        time.sleep(0.15 * k)  # land at different points inside an epoch
        t0 = time.perf_counter()
        comp.cancel()
        comp.wait()
        lat.append(time.perf_counter() - t0)
    lat_m, ep_m = statistics.median(lat), statistics.median(epoch_s)
    print(f"cancel: median {lat_m:.2f} s from Cancel to all workers stopped over {trials} trials "
          f"(max {max(lat):.2f} s), one epoch {ep_m:.2f} s: ratio {lat_m / ep_m:.2f} "
          f"(target <= 2 s)")


def default_comparison(args, seeds, epochs, cores) -> None:
    from diagnostics.results import compare

    t, rec = ours(["none", "per_pixel"], seeds, epochs, None)
    res = compare(rec.configs, rec.accuracies(), rec.statuses())
    means = {c.name: c.mean for c in res.configs}
    p = res.paired[0]
    reproduced = p.mean_diff is not None and p.mean_diff < 0 and (p.p_value or 1) < 0.05
    print(f"default comparison (none vs per_pixel, {len(seeds)} seeds, {cores} workers): "
          f"{t:.1f} s (target <= 60 s{'; quick sizes' if args.quick else ''})")
    print(f"  test acc: none {means['none']:.3f}, per_pixel {means['per_pixel']:.3f}; "
          f"{res.verdicts[0]}  finding reproduced: {'yes' if reproduced else 'NO'}")
    print(f"  summary: {res.summary}")


if __name__ == "__main__":
    main()
