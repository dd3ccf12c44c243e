"""The ``export`` verb: ``python -m diagnostics export DATA --config NAME --out DIR``.

Fits the normalization (on all examples of DATA by default; ``--fit-on train`` for the holdout's
training part, ``--fit-on fold --fold K`` for a cross-validation fold's, as a comparison fits
them) and writes ``DIR/normalizer.npz`` (fitted parameters, no pickle), ``DIR/normalizer.pt2``
(``torch.export``; ``normalizer.pt``, TorchScript, where that fails or with ``--torchscript``)
and ``DIR/USAGE.md``.
torch is imported only when it runs (through :mod:`models.export`).
"""

from __future__ import annotations

import argparse

from diagnostics.cli.output import plain
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.errors import NormScopeError


def add_parser(sub, *, nonneg_float, add_feature_args) -> None:
    """Add ``export`` to the command line's sub-parsers."""
    from diagnostics.normalize import valid_parts

    e = sub.add_parser("export", help="fit one normalization and write it as normalizer.npz, a "
                       "torch module (normalizer.pt2) and USAGE.md")
    e.add_argument("data", help="as for stats: demo, digits, a dataset id, a folder, a .csv, "
                   "a .npy/.npz")
    e.add_argument("--labels", help=".npy of labels for a .npy DATA")
    e.add_argument("--config", required=True, help=f"the normalization to export; {valid_parts()}")
    e.add_argument("--out", required=True, metavar="DIR",
                   help="folder for normalizer.npz, normalizer.pt2 (or .pt) and USAGE.md "
                        "(created if missing; files of those names are replaced)")
    e.add_argument("--fit-on", choices=("all", "train", "fold"), default="all",
                   help="examples to fit on: all of DATA (default, as a final model trained on "
                        "all of it sees them), the training part of the 70/15/15 holdout split "
                        "(seed 0), or the training part of one cross-validation fold (--fold)")
    e.add_argument("--fold", type=int, default=None, help="with --fit-on fold: the fold, 0..k-1")
    e.add_argument("--folds", type=int, default=5, help="with --fit-on fold: k (default 5)")
    e.add_argument("--repetition", type=int, default=0,
                   help="with --fit-on fold: the repetition whose folds to use (default 0)")
    e.add_argument("--mask-snr", type=nonneg_float, default=DEFAULT_MASK_SNR,
                   help=f"row-SNR threshold of @mask (default {DEFAULT_MASK_SNR})")
    e.add_argument("--std-floor", type=nonneg_float, default=0.0,
                   help="lower bound on every learned scale (default 0: none)")
    e.add_argument("--torchscript", action="store_true",
                   help="write normalizer.pt (TorchScript, for libtorch or a torch without "
                        "torch.export) instead of normalizer.pt2")
    add_feature_args(e)


def cmd_export(args: argparse.Namespace, load) -> int:
    """Fit and write the three files; ``load(args)`` opens DATA as ``stats`` does."""
    from diagnostics import export as spec
    from diagnostics.normalize import parse_config

    parse_config(args.config)  # a bad name before any data is read
    if args.fit_on != "fold" and args.fold is not None:
        raise NormScopeError(f"--fold {args.fold} needs --fit-on fold")
    if args.fit_on == "fold" and args.fold is None:
        raise NormScopeError("--fit-on fold needs --fold K (0 to --folds minus 1)")
    if args.folds < 2 or args.repetition < 0:
        raise NormScopeError(f"--folds {args.folds} must be 2 or more and --repetition "
                             f"{args.repetition} 0 or more")
    ds = load(args)
    plan = spec.FitPlan(args.fit_on, args.fold, args.folds, args.repetition)
    norm, meta = spec.fit_for_export(ds, args.config, plan=plan, mask_snr=args.mask_snr,
                                     std_floor=args.std_floor)
    arrays = spec.normalizer_arrays(norm, meta)
    from models.export import write_export  # torch: only now

    paths = write_export(args.out, arrays, torchscript=args.torchscript)
    H, W = norm.shape_in_
    h, _ = norm.shape_out_
    print(f"{norm.config_.name} on {plain(ds.name)} ({ds.id}), fitted on "
          f"{plain(meta['fitted_on'])}; (B, 1, {H}, {W}) -> (B, 1, {h}, {W})"
          + (f", {H - h} masked rows dropped" if h < H else ""))
    for p in paths:
        print(f"wrote {plain(str(p))}")
    return 0
