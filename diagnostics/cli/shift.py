"""``python -m diagnostics shift DATA [--against DATA2]``: which bands shift between two sets."""

from __future__ import annotations

import argparse
import json

from diagnostics.cli.output import plain
from diagnostics.errors import NormScopeError


def add_parser(sub) -> None:
    s = sub.add_parser("shift", help="per-band shift between the train and test splits, or "
                       "between two datasets (KS per band, Holm over bands)")
    s.add_argument("data", help="as for stats: demo, digits, a dataset id, a folder, a .csv, "
                   "a .npy/.npz")
    s.add_argument("--against", help="a second dataset with the same number of bands (e.g. "
                   "recorded on another device); default: DATA's own test split against its "
                   "training split")
    s.add_argument("--labels", help=".npy of labels for a .npy DATA")
    s.add_argument("--alpha", type=float, default=None,
                   help="family-wise error rate over the bands (default 0.05)")
    s.add_argument("--json", action="store_true", help="print one JSON object")


def _shape(ds) -> str:
    return f"{ds.shape[0]} x {ds.shape[1]}"


def cmd_shift(args: argparse.Namespace, load) -> int:
    """``load(spec, labels)`` opens a dataset as ``stats`` does."""
    from diagnostics.data.dataset import split_indices
    from diagnostics.stats import shift

    alpha = shift.ALPHA if args.alpha is None else args.alpha
    if not 0 < alpha < 1:
        raise NormScopeError(f"--alpha {args.alpha} must lie between 0 and 1 (e.g. 0.05)")
    a = load(args.data, args.labels)
    if args.against is None:
        split = split_indices(a.n, a.y)
        if split.test.size < 2 or split.train.size < 2:
            raise NormScopeError(f"{a.name} has {a.n} examples: too few for a train/test "
                                 "comparison; give a second dataset with --against")
        b, ia, ib, names = a, split.train, split.test, ("train", "test")
    else:
        b = load(args.against, None)
        if a.shape[0] != b.shape[0]:
            raise NormScopeError(
                f"{a.name} has {_shape(a)} examples and {b.name} has {_shape(b)}: the shift "
                f"per band needs the same number of bands ({a.shape[0]} vs {b.shape[0]}); "
                "compute both with the same feature settings")
        ia = ib = None
        names = (a.name, b.name) if a.name != b.name else (f"{a.name} ({a.id})", f"{b.name} ({b.id})")
    res = shift.band_shift(a.X, b.X, indices_a=ia, indices_b=ib, names=names, alpha=alpha)
    finding = shift.shift_finding(res, row_noun=a.row_noun)
    if args.json:
        out = shift.as_dict(res)
        out["datasets"] = [a.id, b.id]
        out["finding"] = finding.as_dict()
        print(json.dumps(out, allow_nan=False))
        return 0
    print(f"shift per {a.row_noun}: {plain(names[0])} ({res.n_a:,} examples) vs "
          f"{plain(names[1])} ({res.n_b:,} examples), {a.shape[0]} {a.row_noun}s")
    print(f"  [{finding.severity}] {finding.code}: {plain(finding.message)}")
    for h in res.bands:
        print(f"  {a.row_noun} {h:3d}  KS D {res.ks[h]:.3f}  p (Holm) {res.p_holm[h]:.2g}  "
              f"{res.kind[h]}")
    return 0
