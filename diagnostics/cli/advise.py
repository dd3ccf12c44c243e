"""The ``advise`` verb: ``python -m diagnostics advise DATA [--budget S] [--also CONFIGS] ...``.

Reads the training split's statistics, proposes candidate normalizations with one sentence
each (:func:`diagnostics.advise.propose`), runs them in decide mode within the time budget
through the same comparison machinery as ``compare`` (:class:`models.comparison.Comparison`),
and prints the recommendation (:func:`diagnostics.advise.recommend`): the comparison's best
config with its gains over ``none`` and ``per_pixel`` (intervals and adjusted tests of that
one comparison) and what remains undecided.  The recommendation is stored with the comparison
id in the run store (``advice`` table), so the app reopens it from ``?advice=<id>``.
torch is imported only once the statistics are read (through :mod:`models`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from diagnostics.cli.output import plain
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.data.files import atomic_output
from diagnostics.errors import NormScopeError


def add_parser(sub, *, feature_args) -> None:
    """Add ``advise`` to the command line's sub-parsers (``feature_args``: the audio feature
    options of :mod:`diagnostics.cli.main`, passed in so this module does not import it)."""
    from diagnostics.advise import DEFAULT_BUDGET_S, DEFAULT_MAX_REPETITIONS
    from diagnostics.cli.compare import (budget_seconds, float_at_least, int_at_least,
                                         margin_points, model_name)

    a = sub.add_parser("advise", help="propose normalizations from the statistics, test them "
                       "in decide mode within a time budget, and recommend one")
    a.add_argument("data", help="demo, digits, a dataset id, an audio folder, a .csv manifest or "
                   "a .npy/.npz file (with labels)")
    a.add_argument("--labels", help=".npy of labels (one per example) for a .npy DATA")
    a.add_argument("--budget", type=budget_seconds, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                   help=f"time budget of decide mode: no repetition starts that would not end "
                        f"within it, and a budget too small for one repetition of every "
                        f"candidate is refused (default {DEFAULT_BUDGET_S:g})")
    a.add_argument("--mask-snr", type=float_at_least(0.0), default=DEFAULT_MASK_SNR,
                   help=f"row-SNR threshold of the masking candidate (default {DEFAULT_MASK_SNR})")
    a.add_argument("--model", default="cnn", type=model_name, help="classifier (default cnn)")
    a.add_argument("--epochs", type=int_at_least(1), default=None, help="training epochs (default 15)")
    a.add_argument("--folds", type=int_at_least(2), default=5, help="k of cross-validation (default 5)")
    a.add_argument("--max-repetitions", type=int_at_least(1), default=DEFAULT_MAX_REPETITIONS,
                   help=f"most repetitions of cross-validation (default "
                        f"{DEFAULT_MAX_REPETITIONS})")
    a.add_argument("--margin", type=margin_points, default=0.01, metavar="POINTS",
                   help="equivalence margin in accuracy points (default 1)")
    a.add_argument("--also", metavar="CONFIGS", default=None,
                   help="comma-separated configs to test beside the candidates (your own "
                        "choice, e.g. log1p+per_pixel); each is checked against the data")
    a.add_argument("--json", metavar="OUT", help="write {recommendation, candidates, "
                   "comparison_id, answer} to this JSON file")
    feature_args(a)  # --workers there also sets the training workers


def _workers(args) -> int | None:
    if args.workers is None:
        return None
    try:
        w = float(args.workers)
    except ValueError:
        w = 0.0
    if w != int(w) or w < 1:
        raise NormScopeError(f"--workers {args.workers} must be a whole number >= 1")
    return int(w)


def with_also(proposal, names: list[str]):
    """``proposal`` with the configs of ``--also`` added (those not already in), each with the
    sentence that says it was asked for."""
    from dataclasses import replace

    from diagnostics.advise import Candidate

    extra = tuple(Candidate(n, "Asked for with --also.", "asked") for n in names
                  if n not in proposal.configs)
    return replace(proposal, candidates=proposal.candidates + extra,
                   left_out=tuple(c for c in proposal.left_out if c.config not in names))


def print_candidates(proposal, file=None) -> None:
    file = file or sys.stdout
    print(f"data: {plain(proposal.kind.text)}", file=file)
    print("candidates:", file=file)
    width = max(len(c.config) for c in proposal.candidates)
    for c in proposal.candidates:
        print(f"  {c.config:{width}}  {plain(c.reason)}", file=file)
    for c in proposal.left_out:
        print(f"  (not run) {c.config}: {plain(c.reason)}", file=file)


def cmd_advise(args: argparse.Namespace, *, load) -> int:
    """Run ``advise``; ``load(args)`` opens DATA with the feature options (from
    :mod:`diagnostics.cli.main`)."""
    from diagnostics.advise import propose, recommend, recommendation_lines
    from diagnostics.data.ingest import source_kind
    from diagnostics.stats.summary import dataset_stats

    from diagnostics.normalize import check_configs_for, parse_configs

    workers = _workers(args)
    if args.also is not None:
        parse_configs(args.also)  # a bad name before any data is read
    ds = load(args)
    if ds.y is None or len(ds.class_names) < 2:
        raise NormScopeError(f"advise trains classifiers, so {args.data} needs labels of at least "
                             "two classes (a labels file, an .npz with y, or class folders)")
    stats = dataset_stats(ds, on="train")
    proposal = propose(stats, mask_snr=args.mask_snr)
    if args.also is not None:
        proposal = with_also(proposal, [c.name for c in check_configs_for(stats, args.also)])
    from models.advisor import finish_advice, start_advice
    from models.store import RunStore

    store = RunStore()
    store.mark_interrupted()
    t0 = time.perf_counter()
    comp = start_advice(ds, proposal, data=args.data if source_kind(args.data) == "file" else ds,
                        labels=args.labels, budget_s=args.budget, epochs=args.epochs,
                        model=args.model, workers=workers, folds=args.folds,
                        max_repetitions=args.max_repetitions, margin=args.margin,
                        mask_snr=args.mask_snr, store=store)
    d = comp.plan.design
    design = f"{d.folds}-fold CV" if d.kind == "cv" else "the holdout"
    # Printed once the budget is accepted: bad input ends with one error line and nothing else.
    print(f"{plain(ds.name)} ({ds.id}): {ds.n:,} examples of {stats.shape[0]} x "
          f"{stats.shape[1]}, {len(ds.class_names)} classes")
    print_candidates(proposal)
    print(f"running {len(proposal.configs)} candidates in decide mode within {args.budget:g} s, "
          f"at most {comp.plan.max_repetitions} repetition(s) of {design} (what the budget "
          f"fits by the estimate; comparison {comp.id}) ...", flush=True)
    from diagnostics.cli.compare import print_table, show_progress

    tty = sys.stderr.isatty()
    state: dict = {}
    try:
        while not comp.wait(0.5):
            show_progress(comp, tty, state)
    except KeyboardInterrupt:
        comp.cancel()
        comp.wait(10)
        raise
    show_progress(comp, tty, state)
    if tty:
        print(file=sys.stderr)
    elapsed = time.perf_counter() - t0
    from diagnostics.results import comparison_json

    out = finish_advice(store, comp.id, elapsed_s=elapsed)  # no verdict: exit 2, one line
    doc = comparison_json(comp.record(), store.predictions(comp.id), elapsed_s=elapsed)
    rec = recommend(doc)
    if args.json:
        try:
            with atomic_output(args.json, "w") as fh:
                json.dump(out, fh, indent=1, allow_nan=False)
        except OSError as exc:
            raise NormScopeError(f"cannot write {args.json}: {exc.strerror}") from None
    print()
    for line in recommendation_lines(rec):
        print(plain(line))
    print()
    for line in doc["answer"]["text"]:
        print(plain(line))
    print()
    from diagnostics.cli.compare import design_words

    print(f"{plain(doc['dataset'])} ({doc['dataset_id']}), model {doc['model']}, at most "
          f"{doc['epochs']} epochs, {design_words(doc)}, {elapsed:.1f} s; comparison "
          f"{comp.id} in {store.path}")
    print_table(doc)
    return 0
