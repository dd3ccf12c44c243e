"""Command line: ``python -m diagnostics stats DATA ...``.

Bad input ends with one line ``error: ...`` on stderr and exit status 2, never a traceback.
Only the ``compare`` and ``runs`` verbs import torch, lazily.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .errors import NormScopeError
from .findings import DEFAULT_MASK_SNR


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m diagnostics",
        description="NormScope: why does normalizing my inputs make training worse?",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", help="per-pixel statistics, low-SNR rows and findings")
    s.add_argument("data", help="demo, digits, a .npy or a .npz file")
    s.add_argument("--labels", help=".npy of labels (one per example) for a .npy DATA")
    s.add_argument("--on", choices=("train", "all"), default="train",
                   help="examples to summarise (default: the training split)")
    s.add_argument("--mask-snr", type=_nonneg_float, default=DEFAULT_MASK_SNR,
                   help=f"row-SNR threshold for low-SNR rows (default {DEFAULT_MASK_SNR})")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--out", help="write mean, std, snr, row_snr, amplification to this .npz")
    return p


def _print_summary(info: dict) -> None:
    fmt = lambda r: "n/a" if r[0] is None else f"{r[0]:.4g} .. {r[1]:.4g}"  # noqa: E731
    H, W = info["shape"]
    print(f"{info['dataset']} (id {info['id']}): {info['n']:,} {info['on']} examples of "
          f"{info['n_total']:,}, {H} x {W}, {len(info['classes'])} classes")
    print(f"  values      {info['min']:.4g} .. {info['max']:.4g}   (mean {info['global_mean']:.4g}, "
          f"std {info['global_std']:.4g}, skewness {info['skewness']:.3g})")
    print(f"  pixel mean  {fmt(info['mean_range'])}")
    print(f"  pixel std   {fmt(info['std_range'])}")
    print(f"  pixel SNR   {fmt(info['snr_range'])}")
    amp = info["amplification_max"]
    print(f"  per-pixel z-scoring inflates noise up to {amp:,.0f}x" if amp else "")
    print(f"  constant pixels {info['constant_pixels']:,}, non-finite values {info['nonfinite_values']:,}")
    from .findings import ranges
    low = info["low_snr_rows"]
    print(f"  low-SNR rows (SNR < {info['mask_snr']:g}): {len(low)} [{ranges(np.array(low, int))}], "
          f"{info['masked_energy_share']:.1%} of the signal energy")
    for note in info["notes"]:
        print(f"  note: {note}")
    print("findings:")
    for f in info["findings"]:
        print(f"  [{f['severity']}] {f['code']}: {f['message']}")


def cmd_stats(args: argparse.Namespace) -> int:
    from .datasets import load_dataset
    from .summary import dataset_stats, summary

    ds = load_dataset(args.data, labels=args.labels)
    stats = dataset_stats(ds, on=args.on)
    info = summary(ds, stats, on=args.on, mask_snr=args.mask_snr)
    if args.out:
        try:
            np.savez(args.out, mean=stats.mean, std=stats.std,
                     snr=stats.snr, row_snr=stats.row_snr, amplification=stats.amplification)
        except OSError as exc:
            raise NormScopeError(f"cannot write {args.out}: {exc.strerror}") from None
    if args.json:
        print(json.dumps(info, allow_nan=False))
    else:
        _print_summary(info)
    return 0


COMMANDS = {"stats": cmd_stats}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NormScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
