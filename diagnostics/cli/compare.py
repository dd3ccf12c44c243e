"""The ``compare`` and ``runs`` verbs of the command line (registered by :mod:`diagnostics.cli`).

``python -m diagnostics compare DATA --configs none,per_pixel ...`` trains every configuration
with every seed on a local process pool, shows a progress line, prints a results table with
intervals and paired differences, and can write the results as JSON.  ``python -m diagnostics
runs`` lists the run store and exports its curves as CSV.  torch is imported only inside these
verbs (through :mod:`models`).
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


def _model_name(text: str) -> str:
    from models.catalog import MODELS, is_import_path  # plain Python: no torch

    text = text.strip()
    if text in MODELS or is_import_path(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither one of {', '.join(MODELS)} nor "
                                     "package.module:factory")


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

    c.add_argument("--model", default="cnn", type=_model_name,
                   help="classifier: " + "; ".join(f"{k}: {v}" for k, v in MODELS.items())
                        + "; or your own package.module:factory (factory(in_shape, n_classes) "
                          "returns an nn.Module taking (B, 1, H, W)) (default cnn)")
    c.add_argument("--epochs", type=_int(1), default=None, help="training epochs (default 15)")
    c.add_argument("--seeds", type=_int(1), default=3,
                   help="seeds 0..S-1; each seed gives every configuration the same initial "
                        "weights and batch order (default 3)")
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
                   help="worker processes, one torch thread each (default: CPU cores)")
    c.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    r = sub.add_parser("runs", help="list the stored training runs; export their curves")
    r.add_argument("--json", action="store_true", help="print the runs with curves as one JSON list")
    r.add_argument("--csv", metavar="OUT", help="write every run's per-epoch curves to this CSV file")
    r.add_argument("--comparison", help="only the runs of this comparison id")
    r.add_argument("--dataset", help="only the runs on this dataset id")


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def print_table(doc: dict, file=None) -> None:
    """The results table of ``compare`` (from :func:`diagnostics.results.comparison_json`)."""
    file = file or sys.stdout
    ref = doc["configs"][0]["name"]
    width = max(12, *(len(c["name"]) for c in doc["configs"]))
    print(f"{'config':{width}}  {'runs':>5}  {'test acc':>8} {'± std':>7}  {'95% CI':>15}  "
          f"vs {ref} (paired)", file=file)
    paired = {p["b"]: p for p in doc["paired"]}
    for c in doc["configs"]:
        done = sum(r["status"] == "done" for r in c["runs"])
        ci = c["test_acc_ci95"]
        ci_s = "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        if c["name"] == ref:
            vs = "reference"
        else:
            p = paired[c["name"]]
            if p["mean_diff"] is None:
                vs = "-"
            else:
                pv = "p n/a" if p["p_value"] is None else f"p={p['p_value']:.3g}"
                vs = f"{p['mean_diff'] * 100:+.1f} points, {pv}"
        print(f"{c['name']:{width}}  {done:>2}/{len(c['runs']):<2}  {_fmt(c['test_acc_mean']):>8} "
              f"{_fmt(c['test_acc_std']):>7}  {ci_s:>15}  {vs}", file=file)
    for v in doc["verdicts"]:
        print(f"verdict: {v}", file=file)
    if doc.get("summary"):
        print(f"summary: {doc['summary']}", file=file)
    bad = [(c["name"], r) for c in doc["configs"] for r in c["runs"] if r["status"] != "done"]
    for name, r in bad:
        print(f"note: {name} seed {r['seed']} ended {r['status']}", file=file)


def _progress(comp, tty: bool, state: dict) -> None:
    from models.store import FINISHED

    p = comp.snapshot()
    done = sum(v for k, v in p.counts.items() if k in FINISHED)
    total = sum(p.counts.values())
    if tty:
        eta = "" if p.eta_s is None else f", about {p.eta_s:.0f} s left"
        print(f"\rtraining: {done}/{total} runs, {p.fraction:.0%}, {p.elapsed_s:.0f} s{eta}   ",
              end="", file=sys.stderr, flush=True)
    else:
        for r in p.runs:
            if r.status in FINISHED and r.run_id not in state:
                state[r.run_id] = True
                acc = "" if r.test_acc is None else f", test acc {r.test_acc:.3f}"
                print(f"run {len(state)}/{total}: {r.config} seed {r.seed} {r.status}{acc}",
                      file=sys.stderr, flush=True)


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


def cmd_compare(args: argparse.Namespace) -> int:
    data = checked_data(args)
    from models.comparison import Comparison
    from models.store import RunStore
    from models.train import TrainConfig

    store = RunStore()
    store.mark_interrupted()
    defaults = TrainConfig()
    tc = TrainConfig(epochs=args.epochs or defaults.epochs,
                     batch_size=args.batch_size or defaults.batch_size,
                     lr=args.lr or defaults.lr, optimizer=args.optimizer,
                     weight_decay=args.weight_decay, device=args.device,
                     patience=defaults.patience if args.patience is None else args.patience)
    comp = Comparison(data, args.configs, labels=args.labels, seeds=args.seeds,
                      model=args.model, train=tc, mask_snr=args.mask_snr,
                      std_floor=args.std_floor, workers=args.workers, store=store)
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

    doc = comparison_json(comp.record(), elapsed_s=elapsed)
    if args.json:
        try:
            with atomic_output(args.json, "w") as fh:
                json.dump(doc, fh, indent=1, allow_nan=False)
        except OSError as exc:
            raise NormScopeError(f"cannot write {args.json}: {exc.strerror}") from None
    print(f"{plain(doc['dataset'])} ({doc['dataset_id']}), model {doc['model']}, "
          f"{doc['epochs']} epochs, "
          f"{doc['seeds']} seeds, {elapsed:.1f} s; comparison {doc['comparison_id']} in "
          f"{store.path}")
    print_table(doc)
    failed = [r for c in doc["configs"] for r in c["runs"] if r["status"] == "failed"]
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
    print(f"{'run':16} {'dataset':12} {'config':20} {'seed':>4} {'model':6} {'status':11} "
          f"{'test acc':>8}")
    for r in runs:
        print(f"{r.id:16} {r.dataset_id[:12]:12} {r.config[:20]:20} {r.seed:>4} {r.model:6} "
              f"{r.status:11} {_fmt(r.test_acc):>8}")
    if args.csv:
        print(f"curves of {len(runs)} run(s) written to {args.csv}")
    return 0
