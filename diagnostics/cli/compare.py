# Over 450 lines: the compare and runs verbs share their arguments, their checks and the printing of one stored record.
"""The ``compare`` and ``runs`` verbs of the command line (registered by :mod:`diagnostics.cli`).

``python -m diagnostics compare DATA --configs none,per_pixel ...`` trains every configuration
on every (repetition, fold) of the evaluation design (5-fold cross-validation by default, or
the fixed holdout with seeds) on a local process pool; in decide mode (the default) it adds
repetitions until the pairs of the best config are decided, the maximum is reached or the time
budget would be overrun, looking after every fold.  It shows progress (the repetition under way
of at most how many, and which pairs are decided after each look),
prints the answer first, then the results in accuracy points with 95% intervals and the
adjusted pair verdicts, and can write the results as JSON.  ``python -m diagnostics runs``
lists the run store and exports its curves (CSV) and per-example predictions (CSV or JSON).
torch is imported only inside these verbs (through :mod:`models`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

from diagnostics.cli.output import plain
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.data.files import atomic_output
from diagnostics.errors import NormScopeError
from diagnostics.verdicts.design import DEFAULT_FOLDS, DEFAULT_MAX_REPETITIONS


def _int(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {lo}")
        return v
    return parse


def _float(lo: float, *, strict: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v < lo or (strict and v == lo):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number "
                                             f"{'>' if strict else '>='} {lo:g}")
        return v
    return parse


def _margin_points(text: str) -> float:
    """``--margin`` in accuracy points (1 = 0.01), returned as a fraction."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of accuracy points") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative number of accuracy "
                                         "points, such as 1")
    if v >= 50:
        raise argparse.ArgumentTypeError(f"{text!r} points is too wide a margin; give accuracy "
                                         "points below 50, such as 1")
    return v / 100.0


def _budget(text: str) -> float:
    from models.decide_loop import check_budget  # plain Python: no torch

    try:
        return check_budget(text)
    except NormScopeError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("budget ", "", 1)) from None


def _model_name(text: str) -> str:
    from models.catalog import MODELS, is_import_path  # plain Python: no torch

    text = text.strip()
    if text in MODELS or is_import_path(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither one of {', '.join(MODELS)} nor "
                                     "package.module:factory")


def _model_names(text: str) -> list[str]:
    """``--models a,b``: two or more models, each checked as ``--model`` is."""
    names = [_model_name(t) for t in text.split(",") if t.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"{text!r} names fewer than two models; give two or "
                                         "more separated by commas (or use --model for one)")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} lists a model twice; list each once")
    return names


def add_parsers(sub) -> None:
    """Add ``compare`` and ``runs`` to the command line's sub-parsers."""
    from diagnostics.normalize import valid_parts

    c = sub.add_parser("compare", help="train a model with each normalization and seed; "
                       "compare test accuracy with intervals and paired tests")
    c.add_argument("data", help="demo, digits, a dataset id, an audio folder, a .csv manifest or "
                   "a .npy/.npz file (with labels)")
    c.add_argument("--labels", help=".npy of labels (one per example) for a .npy DATA")
    c.add_argument("--configs", default="none,per_pixel",
                   help=f"comma-separated normalizations, the reference first (default "
                        f"none,per_pixel); {valid_parts()}")
    c.add_argument("--mask-snr", type=_float(0.0), default=DEFAULT_MASK_SNR,
                   help=f"row-SNR threshold of @mask (default {DEFAULT_MASK_SNR})")
    c.add_argument("--std-floor", type=_float(0.0), default=0.0,
                   help="lower bound on every learned scale (default 0: none)")
    from models.catalog import MODELS

    c.add_argument("--model", default=None, type=_model_name,
                   help="classifier: " + "; ".join(f"{k}: {v}" for k, v in MODELS.items())
                        + "; or your own package.module:factory (factory(in_shape, n_classes) "
                          "returns an nn.Module taking (B, 1, H, W)) (default cnn)")
    c.add_argument("--models", type=_model_names, default=None, metavar="M1,M2,...",
                   help="run the same configs under two or more models (comma-separated, each "
                        "as for --model): each model is its own block of paired runs with its "
                        "own decide loop and adjusted tests, and the answer says per model "
                        "whether normalizing hurts and what is best, and whether they agree")
    c.add_argument("--epochs", type=_int(1), default=None, help="training epochs (default 15)")
    c.add_argument("--eval", dest="evaluation", choices=("auto", "cv", "holdout"),
                   default="auto", help="evaluation design: stratified k-fold cross-validation "
                   "(every example tested once per repetition), the fixed 70/15/15 holdout, "
                   "or auto: CV up to 20,000 examples, holdout above (default auto)")
    c.add_argument("--folds", type=_int(2), default=None,
                   help="k of cross-validation (default 5; fewer, with a note, when a class "
                        "has fewer examples)")
    c.add_argument("--max-repetitions", type=_int(1), default=None,
                   help="most repetitions of cross-validation, each with re-shuffled folds "
                        "(default 5)")
    c.add_argument("--budget", type=_budget, default=None, metavar="SECONDS",
                   help="time budget of decide mode: no repetition starts that would not end "
                        "within it (default: none)")
    c.add_argument("--margin", type=_margin_points, default=0.01, metavar="POINTS",
                   help="equivalence margin in accuracy points (default 1): two configs within "
                        "it are equivalent")
    c.add_argument("--no-decide", dest="decide", action="store_false",
                   help="run every repetition (--max-repetitions, or every seed of a holdout) "
                        "instead of stopping once the pairs of the best config are decided")
    c.add_argument("--seeds", type=_int(1), default=None,
                   help="holdout only: seeds 0..S-1, its repetitions; each gives every "
                        "configuration the same initial weights and batch order (default 3)")
    c.add_argument("--batch-size", type=_int(1), default=None, help="minibatch size (default 32)")
    c.add_argument("--lr", type=_float(0.0, strict=True), default=None,
                   help="learning rate (default 0.001)")
    c.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam",
                   help="optimiser of every run (default adam; sgd uses momentum 0.9)")
    c.add_argument("--weight-decay", type=_float(0.0), default=0.0,
                   help="L2 penalty, decoupled for adamw (default 0)")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default auto: a GPU when torch sees one)")
    c.add_argument("--patience", type=_int(0), default=None,
                   help="stop a run after this many epochs without a better validation "
                        "accuracy and test the best epoch's weights (default 5; 0: train all "
                        "--epochs, still testing the best epoch)")
    c.add_argument("--workers", type=_int(1), default=None,
                   help="worker processes, one torch thread each (default: CPU cores, at most "
                        "this server's limit)")
    c.add_argument("--cluster", metavar="tcp://HOST:PORT",
                   help="run the jobs on this Dask scheduler (default: $NORMSCOPE_DASK_SCHEDULER, "
                        "else the local process pool)")
    c.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    r = sub.add_parser("runs", help="list the stored training runs (epochs, test accuracy in "
                                    "points, date); export their curves")
    r.add_argument("--json", action="store_true", help="print the runs with curves as one JSON list")
    r.add_argument("--csv", metavar="OUT", help="write every run's per-epoch curves to this CSV file")
    r.add_argument("--predictions", metavar="OUT",
                   help="write the per-example test predictions of --comparison to OUT.csv "
                        "(run_id, config, repetition, fold, test_index, pred, label) or OUT.json "
                        "(one object per run with those lists)")
    r.add_argument("--comparison", help="only the runs of this comparison id")
    r.add_argument("--dataset", help="only the runs on this dataset id")


def _points(acc: float | None) -> str:
    """An accuracy fraction in points, as every table and verdict gives it: 0.497 -> "49.7"."""
    return "-" if acc is None else f"{100 * acc:.1f}"


def _epochs(done: int, hyper: dict) -> str:
    """Epochs trained of the most allowed: "7/20" (early stopping ended it at 7)."""
    most = hyper.get("epochs") if isinstance(hyper, dict) else None
    return f"{done}/{most}" if isinstance(most, int) else str(done)


def _date(t: float | None) -> str:
    """Local date and minute of a run: "2025-12-03 10:24"."""
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def design_words(doc: dict) -> str:
    """``"5-fold CV, 2 repetitions (decided)"`` or ``"holdout, 1 seed"``."""
    from diagnostics.verdicts.answer import used_words

    ev = doc["evaluation"]
    kind = f"{ev['folds']}-fold CV" if ev["kind"] == "cv" else "holdout"
    text = f"{kind}, {used_words(ev)}"
    why = ev.get("stopped_because")
    return text + (f" (stopped: {why.replace('_', ' ')})" if why else "")


def print_table(doc: dict, file=None) -> None:
    """The results of ``compare`` in accuracy points (from
    :func:`diagnostics.results.comparison_json`): configs with their 95% intervals, then the
    pairs with their adjusted verdicts."""
    from diagnostics.results import pair_rows

    file = file or sys.stdout
    width = max(12, *(len(c["name"]) for c in doc["configs"]))
    print(f"{'config':{width}}  {'runs':>5}  {'accuracy %':>10}  {'95% CI (points)':>17}",
          file=file)
    for c in doc["configs"]:
        done = sum(r["status"] == "done" for r in c["runs"])
        acc = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}"
        ci = "-" if c["ci95"] is None else f"{100 * c['ci95'][0]:.1f} to {100 * c['ci95'][1]:.1f}"
        print(f"{c['name']:{width}}  {done:>2}/{len(c['runs']):<2}  {acc:>10}  {ci:>17}",
              file=file)
    rows = pair_rows(doc["pairs"])
    if rows:
        pw = max(len(f"{r['b']} vs {r['a']}") for r in rows)
        print(f"{'pair (b vs a)':{pw}}  {'b − a':>7}  {'95% CI (points)':>16}  {'p_adj':>7}  "
              "verdict", file=file)
        for r in rows:
            print(f"{r['b'] + ' vs ' + r['a']:{pw}}  {r['b − a (points)']:>7}  "
                  f"{r['95% CI']:>16}  {r['p_adjusted']:>7}  {r['verdict']}", file=file)
    bad = [(c["name"], r) for c in doc["configs"] for r in c["runs"] if r["status"] != "done"]
    why = (doc.get("evaluation") or {}).get("stopped_because")
    if why not in (None, "cancelled"):  # decide mode stopped with runs under way
        spare = [b for b in bad if b[1]["status"] == "cancelled"]
        bad = [b for b in bad if b[1]["status"] != "cancelled"]
        if spare:
            print(f"note: {_plural(len(spare), 'run')} under way when the comparison stopped "
                  f"({why.replace('_', ' ')}) {'was' if len(spare) == 1 else 'were'} cancelled: "
                  "not needed", file=file)
    for name, r in bad:
        where = (f"seed {r['seed']}" if r.get("repetition") is None else
                 f"repetition {r['repetition']} fold {r['fold']}")
        print(f"note: {name} {where} ended {r['status']}", file=file)


def _progress(comp, tty: bool, state: dict) -> None:
    from diagnostics.verdicts.answer import design_words as design_words_of
    from diagnostics.verdicts.stored import pair_words
    from models.store import FINISHED

    p = comp.snapshot()
    done = sum(v for k, v in p.counts.items() if k in FINISHED)
    total = sum(p.counts.values())
    if tty:
        print(f"\r{p.progress_line()} · {done}/{total} runs done   ",
              end="", file=sys.stderr, flush=True)
    else:
        seen = state.setdefault("runs", set())
        for r in p.runs:
            if r.status in FINISHED and r.run_id not in seen:
                seen.add(r.run_id)
                acc = "" if r.test_acc is None else f", test acc {r.test_acc:.3f}"
                print(f"run {len(seen)}/{total}: {r.model + ' ' if p.decisions else ''}"
                      f"{r.config} repetition {r.repetition} fold "
                      f"{r.fold} seed {r.seed} {r.status}{acc}", file=sys.stderr, flush=True)
    ev = p.evaluation or {}
    each = ev.get("models") or {}
    for model, d in (p.decisions or {"": p.decision}).items():
        mev = each.get(model, ev)
        if d is None or state.get(("look", model)) == (d.cells, mev.get("stopped_because")):
            continue
        state[("look", model)] = (d.cells, mev.get("stopped_because"))
        decided, undecided = pair_words(d)
        line = (f"{model + ': ' if model else ''}after {design_words_of(d.design, d.cells)} "
                f"(at most {ev.get('max_repetitions')} repetitions): decided: "
                f"{'; '.join(decided) or 'none yet'}"
                + (f"; undecided: {'; '.join(undecided)}" if undecided else ""))
        if not tty:
            line = f"{p.progress_line()}\n{line}"
        print(("\n" if tty else "") + line, file=sys.stderr, flush=True)


def checked_data(args: argparse.Namespace):
    """Open DATA and refuse configurations it cannot take, before torch or the run store.

    Returns what :class:`models.comparison.Comparison` should open: the loaded dataset when its
    workers can reopen it by id (built-ins, registered ids, audio folders, manifests), else the
    file path (reopening a memmap costs nothing; a Dataset of a plain file has no id to reopen).

    Raises
    ------
    NormScopeError
        A name that does not parse, or compression (``db+``, ``log1p+``) on data with negative
        values (counted over every example: the test split is compressed too).
    """
    from diagnostics.data.ingest import load_dataset, source_kind
    from diagnostics.normalize import check_configs_for, parse_configs

    parse_configs(args.configs)  # a bad name is reported before any data is read
    ds = load_dataset(args.data, labels=args.labels)
    check_configs_for(ds.X, args.configs)
    return args.data if source_kind(args.data) == "file" else ds


#: Defaults of the options a server limits (each taken down to the limit where it is lower);
#: epochs as models.train.TrainConfig (not imported here: torch).
DEFAULTS = {"epochs": 15, "seeds": 3, "max_repetitions": DEFAULT_MAX_REPETITIONS,
            "folds": DEFAULT_FOLDS}


def checked_limits(args: argparse.Namespace) -> None:
    """Fill in the limited options' defaults (never above this server's limits) and refuse a
    request over a limit (:mod:`diagnostics.limits`), before any data is read."""
    import os

    from diagnostics import limits
    from diagnostics.normalize import parse_configs

    lim = limits.load()
    given = {k: getattr(args, k) for k in DEFAULTS}
    lowest = {"epochs": lim.max_epochs, "seeds": lim.max_seeds,
              "max_repetitions": lim.max_repetitions, "folds": max(2, lim.max_folds)}
    for key, default in DEFAULTS.items():
        if given[key] is None:
            setattr(args, key, min(default, lowest[key]))
    # Each model of --models is a block of runs of every config: the limit counts both.
    n_models = len(getattr(args, "models", None) or ()) or 1
    lim.check(epochs=given["epochs"], configs=len(parse_configs(args.configs)) * n_models,
              seeds=given["seeds"], repetitions=given["max_repetitions"],
              folds=given["folds"], workers=args.workers)
    if args.workers is None and lim.max_workers < (os.cpu_count() or 1):
        args.workers = lim.max_workers


def cmd_compare(args: argparse.Namespace) -> int:
    if args.models and args.model:
        raise NormScopeError("give --model (one model) or --models (two or more), not both")
    checked_limits(args)
    data = checked_data(args)
    from models.comparison import Comparison
    from models.store import RunStore
    from models.train import TrainConfig

    store = RunStore()
    store.mark_interrupted()
    defaults = TrainConfig()
    tc = TrainConfig(epochs=args.epochs,
                     batch_size=args.batch_size or defaults.batch_size,
                     lr=args.lr or defaults.lr, optimizer=args.optimizer,
                     weight_decay=args.weight_decay, device=args.device,
                     patience=defaults.patience if args.patience is None else args.patience)
    comp = Comparison(data, args.configs, labels=args.labels, seeds=args.seeds,
                      model=args.models or args.model or "cnn", train=tc, mask_snr=args.mask_snr,
                      std_floor=args.std_floor, workers=args.workers, store=store,
                      evaluation=args.evaluation, folds=args.folds,
                      max_repetitions=args.max_repetitions, decide=args.decide,
                      budget_s=args.budget, margin=args.margin, cluster=args.cluster)
    t0 = time.perf_counter()
    comp.start()  # validates first: a NormScopeError here has stored nothing
    tty = sys.stderr.isatty()
    state: dict = {}
    try:
        while not comp.wait(0.5):
            _progress(comp, tty, state)
    except KeyboardInterrupt:
        comp.cancel()
        comp.wait(10)
        raise
    _progress(comp, tty, state)
    if tty:
        print(file=sys.stderr)
    elapsed = time.perf_counter() - t0
    from diagnostics.results import comparison_json  # scipy: only when results are shown

    doc = comparison_json(comp.record(), store.predictions(comp.id), elapsed_s=elapsed)
    if args.json:
        try:
            with atomic_output(args.json, "w") as fh:
                json.dump(doc, fh, indent=1, allow_nan=False)
        except OSError as exc:
            raise NormScopeError(f"cannot write {args.json}: {exc.strerror}") from None
    for line in doc["answer"]["text"]:
        print(plain(line))
    print()
    blocks = doc.get("models") or [doc]
    print(f"{plain(doc['dataset'])} ({doc['dataset_id']}), "
          f"{'models' if 'models' in doc else 'model'} {doc['model']}, at most "
          f"{_plural(doc['epochs'], 'epoch')}, {design_words(doc)}, {elapsed:.1f} s; "
          f"comparison {doc['comparison_id']} in {store.path}")
    for block in blocks:
        if "models" in doc:
            print(f"\nmodel {block['model']}: {design_words(block)}")
        print_table(block)
    broke = comp.snapshot().error
    if broke:  # e.g. the disk filled: the runs it left are in the store, marked failed
        print(f"error: {plain(broke)}", file=sys.stderr)
        return 2
    failed = [r for b in blocks for c in b["configs"] for r in c["runs"]
              if r["status"] == "failed"]
    if failed:
        msg = next((r.message for r in comp.record().runs if r.status == "failed"), "")
        print(f"error: {len(failed)} run(s) failed: {plain(msg)}", file=sys.stderr)
        return 1
    return 0


RUN_FIELDS = ("id", "comparison_id", "dataset_id", "config", "seed", "model", "status",
              "test_acc", "elapsed_s", "created", "message")


def cmd_runs(args: argparse.Namespace) -> int:
    from models.store import RunStore

    store = RunStore()
    store.mark_interrupted()
    if args.predictions:
        return export_predictions(store, args.comparison, args.predictions)
    want_curves = bool(args.json or args.csv)
    runs = store.list_runs(comparison_id=args.comparison, dataset_id=args.dataset,
                           curves=want_curves)
    if args.csv:
        try:
            with atomic_output(args.csv, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["run_id", "comparison_id", "dataset_id", "config", "seed", "model",
                            "status", "test_acc", "epoch", "train_loss", "train_acc", "val_acc"])
                for r in runs:
                    h = r.history
                    for i, ep in enumerate(h.get("epoch", [])):
                        w.writerow([r.id, r.comparison_id, r.dataset_id, r.config, r.seed, r.model,
                                    r.status, r.test_acc, ep, h["train_loss"][i],
                                    h["train_acc"][i], h["val_acc"][i]])
        except OSError as exc:
            raise NormScopeError(f"cannot write {args.csv}: {exc.strerror}") from None
    if args.json:
        out = [{**{k: getattr(r, k) for k in RUN_FIELDS}, "hyper": r.hyper,
                "history": r.history} for r in runs]
        print(json.dumps(out, allow_nan=False))
        return 0
    if not runs:
        print(f"no stored runs in {store.path}")
        return 0
    epochs = store.epochs_trained([r.id for r in runs])
    print(f"{'run':16} {'dataset':12} {'config':20} {'seed':>4} {'model':6} {'status':11} "
          f"{'epochs':>7} {'test acc %':>10}  date")
    for r in runs:
        print(f"{r.id:16} {r.dataset_id[:12]:12} {r.config[:20]:20} {r.seed:>4} {r.model:6} "
              f"{r.status:11} {_epochs(epochs.get(r.id, 0), r.hyper):>7} "
              f"{_points(r.test_acc):>10}  {_date(r.started or r.created)}")
    if args.csv:
        print(f"curves of {len(runs)} run(s) written to {args.csv}")
    return 0


PREDICTION_FIELDS = ("run_id", "config", "repetition", "fold", "test_index", "pred", "label")


def export_predictions(store, comparison_id: str | None, out: str) -> int:
    """``runs --predictions OUT``: every done run's per-example predictions of one comparison,
    as CSV (one row per example) or JSON (one object per run, the columns as lists)."""
    if not comparison_id:
        raise NormScopeError("--predictions needs --comparison ID (python -m diagnostics runs "
                             "lists the ids)")
    if not out.endswith((".csv", ".json")):
        raise NormScopeError(f"--predictions {out}: name a .csv or a .json file")
    rec = store.load_comparison(comparison_id, batches=False)
    if rec is None:
        raise NormScopeError(f"comparison {comparison_id} is not in the run store {store.path}; "
                             "list them with python -m diagnostics runs")
    preds = store.predictions(comparison_id)
    runs = [r for r in rec.runs if r.id in preds]
    try:
        with atomic_output(out, "w", newline="") as fh:
            if out.endswith(".json"):
                json.dump([{"run_id": r.id, "config": r.config, "repetition": r.repetition,
                            "fold": r.fold, **{k: preds[r.id][k].tolist()
                                               for k in ("test_index", "pred", "label")}}
                           for r in runs], fh)
            else:
                w = csv.writer(fh)
                w.writerow(PREDICTION_FIELDS)
                for r in runs:
                    p = preds[r.id]
                    for i, pr, lb in zip(p["test_index"], p["pred"], p["label"]):
                        w.writerow([r.id, r.config, r.repetition, r.fold, int(i), int(pr), int(lb)])
    except OSError as exc:
        raise NormScopeError(f"cannot write {out}: {exc.strerror}") from None
    n = sum(preds[r.id]["test_index"].size for r in runs)
    print(f"predictions of {len(runs)} run(s), {n:,} test examples, written to {out}")
    return 0



# The option parsers and the progress lines, shared with the advise verb (diagnostics.cli.advise).
int_at_least, float_at_least, budget_seconds = _int, _float, _budget
margin_points, model_name, show_progress = _margin_points, _model_name, _progress
