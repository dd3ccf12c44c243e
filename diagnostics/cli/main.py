"""Command line: ``python -m diagnostics stats DATA ...``.

Never a traceback: bad input, and a system error such as a full disk, end with one line
``error: ...`` on stderr and exit status 2; a true bug ends with one line ``error: internal error
(<type>); details in <log>`` and exit status 1, the traceback in that log file
(``NORMSCOPE_HOME/logs``, or the system's temporary folder).  Names from files are printed with
control characters escaped; NumPy's RuntimeWarnings are not printed (what they warn about is
counted and reported).  Outputs (``--out``) appear only when completely written.  Only the
``compare``, ``runs`` and ``export`` verbs import torch, lazily.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import warnings

import numpy as np

from diagnostics.cli.output import error_line, plain, write_crash_log
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.data.files import atomic_output
from diagnostics.errors import NormScopeError


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return v


def _add_feature_args(s: argparse.ArgumentParser) -> None:
    """Feature options for audio folders and manifests (validated by FeatureParams)."""
    g = s.add_argument_group("audio features (folders and .csv manifests only)")
    g.add_argument("--feature", help="mel (linear power, default), logmel (dB) or mfcc")
    g.add_argument("--sr", help="sample rate clips are resampled to (default 22050)")
    g.add_argument("--n-mels", help="mel bands (default 60)")
    g.add_argument("--n-fft", help="FFT window in samples (default 2048)")
    g.add_argument("--hop", help="hop between frames in samples (default 512)")
    g.add_argument("--duration", help="seconds per clip, padded or trimmed (default 3.0)")
    g.add_argument("--n-mfcc", help="MFCC coefficients for --feature mfcc (default 20)")
    g.add_argument("--workers", help="processes for feature extraction (default: every core "
                   "from 256 clips on, one below)")


FEATURE_OPTIONS = ("feature", "sr", "n_mels", "n_fft", "hop", "duration", "n_mfcc")


def _number(option: str, text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise NormScopeError(f"--{option.replace('_', '-')} {text!r} is not a number") from None


def _feature_params(args: argparse.Namespace):
    """FeatureParams from the options given (None when none was given)."""
    given = {k: getattr(args, k) for k in FEATURE_OPTIONS if getattr(args, k, None) is not None}
    if not given:
        return None
    from diagnostics.data.audio.features import FeatureParams

    return FeatureParams(**{k: v if k == "feature" else _number(k, v) for k, v in given.items()})


def _progress_line():
    """Progress on stderr as one rewritten line; silent when stderr is not a terminal, so a
    failed run in a script still ends with exactly one line ``error: ...``."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\rextracting features: {done:,}/{total:,} clips ({done / max(total, 1):.0%})",
              end=end, file=sys.stderr, flush=True)

    return show


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line ``error: ...`` and exit status 2, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {plain(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m diagnostics",
        description="NormScope: why does normalizing my inputs make training worse?",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", help="per-pixel statistics, low-SNR rows and findings")
    s.add_argument("data", help="demo, digits, a dataset id, an audio folder (one sub-folder per "
                   "class), a .csv manifest (path,label), or a .npy/.npz file")
    s.add_argument("--labels", help=".npy of labels (one per example) for a .npy DATA")
    s.add_argument("--on", choices=("train", "all"), default="train",
                   help="examples to summarise (default: the training split)")
    s.add_argument("--mask-snr", type=_nonneg_float, default=DEFAULT_MASK_SNR,
                   help=f"row-SNR threshold for low-SNR rows (default {DEFAULT_MASK_SNR})")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--out", help="write mean, std, snr, row_snr, amplification to this .npz")
    s.add_argument("--cluster", metavar="tcp://HOST:PORT",
                   help="compute on this Dask scheduler's workers (default: "
                        "$NORMSCOPE_DASK_SCHEDULER, else in this process)")
    _add_feature_args(s)
    d = sub.add_parser("datasets", help="list the registered datasets (ids for links and stats)")
    d.add_argument("--json", action="store_true", help="print one JSON list")
    d.add_argument("--delete", nargs="+", metavar="ID",
                   help="remove these datasets from the data directory (their stored "
                   "comparisons are kept)")
    from diagnostics.cli.compare import add_parsers as _add_compare_parsers

    _add_compare_parsers(sub)  # compare, runs (torch is imported only when they run)
    from diagnostics.cli.export import add_parser as _add_export_parser

    _add_export_parser(sub, nonneg_float=_nonneg_float, add_feature_args=_add_feature_args)
    from diagnostics.cli.advise import add_parser as _add_advise_parser

    _add_advise_parser(sub, feature_args=_add_feature_args)  # advise (torch only once its candidates are printed)
    from diagnostics.cli.shift import add_parser as _add_shift_parser

    _add_shift_parser(sub)
    r = sub.add_parser("report", help="one self-contained HTML report (opens offline)")
    r.add_argument("data", help="as for stats: demo, digits, a dataset id, a folder, a .csv, "
                   "a .npy/.npz")
    r.add_argument("--labels", help=".npy of labels for a .npy DATA")
    r.add_argument("--runs", help="comparison ids to include, comma-separated (default: the "
                   "newest stored comparisons of the dataset, up to 3)")
    r.add_argument("--on", choices=("train", "all"), default="train")
    r.add_argument("--mask-snr", type=_nonneg_float, default=DEFAULT_MASK_SNR)
    r.add_argument("--linear-color", action="store_true", help="colour heatmaps linearly, not by log10")
    r.add_argument("--out", default="report.html", help="output file (default report.html)")
    _add_feature_args(r)
    return p


def _g(v, spec: str = ".4g") -> str:
    """A number for the summary; "n/a" for a statistic that is undefined (None)."""
    return "n/a" if v is None else format(v, spec)


def _print_summary(info: dict) -> None:
    fmt = lambda r: "n/a" if r[0] is None else f"{_g(r[0])} .. {_g(r[1])}"  # noqa: E731
    H, W = info["shape"]
    print(f"{plain(info['dataset'])} (id {info['id']}): {info['n']:,} {info['on']} examples of "
          f"{info['n_total']:,}, {H} x {W}, {len(info['classes'])} classes")
    print(f"  values      {_g(info['min'])} .. {_g(info['max'])}   (mean "
          f"{_g(info['global_mean'])}, std {_g(info['global_std'])}, skewness "
          f"{_g(info['skewness'], '.3g')})")
    print(f"  data kind   {info['data_kind']['kind']}: {plain(info['data_kind']['text'])}")
    print(f"  pixel mean  {fmt(info['mean_range'])}")
    print(f"  pixel std   {fmt(info['std_range'])}")
    print(f"  pixel SNR   {fmt(info['snr_range'])}")
    amp = info["amplification_max"]
    print(f"  per-pixel z-scoring inflates noise up to {amp:,.0f}x" if amp else "")
    print(f"  constant pixels {info['constant_pixels']:,}, non-finite values {info['nonfinite_values']:,}")
    from diagnostics.stats.findings import ranges
    from diagnostics.stats.moments import format_share

    low = info["low_snr_rows"]
    print(f"  low-SNR rows (SNR < {info['mask_snr']:g}): {len(low)} [{ranges(np.array(low, int))}], "
          f"{format_share(info['masked_energy_share'])} of the summed |mean|")
    for note in info["notes"]:
        print(f"  note: {plain(note)}")
    print("findings:")
    for f in info["findings"]:
        print(f"  [{f['severity']}] {f['code']}: {plain(f['message'])}")


def _load(args: argparse.Namespace):
    """Open DATA of ``stats``/``report`` with the feature options, printing progress."""
    from diagnostics.data.ingest import load_dataset
    from diagnostics.data.ingest import source_kind

    params = _feature_params(args)
    kind = source_kind(args.data)
    if params is not None and kind not in ("folder", "manifest"):
        raise NormScopeError(f"the feature options apply to audio folders and .csv manifests; "
                             f"{args.data} is a {'registered dataset' if kind == 'id' else kind} "
                             "whose features are fixed")
    workers = None if args.workers is None else _number("workers", args.workers)
    if workers is not None and (workers != int(workers) or workers < 1):
        raise NormScopeError(f"--workers {args.workers} must be a whole number >= 1")
    ds = load_dataset(args.data, labels=args.labels, params=params,
                      workers=None if workers is None else int(workers), progress=_progress_line())
    return ds


def cmd_stats(args: argparse.Namespace) -> int:
    from diagnostics.data.store import dataset_meta, is_registered
    from diagnostics.stats.summary import dataset_stats, summary

    from diagnostics.cluster import connect, scheduler_address

    address = scheduler_address(args.cluster)
    client = connect(address) if address else None  # before the data: a dead one fails fast
    ds = _load(args)
    meta = dataset_meta(ds.id) if is_registered(ds.id) else {}
    try:
        stats = dataset_stats(ds, on=args.on, client=client)
    finally:
        if client is not None:
            client.close()
    info = summary(ds, stats, on=args.on, mask_snr=args.mask_snr)
    if args.out:
        out = args.out if args.out.endswith(".npz") else args.out + ".npz"  # as np.savez names it
        try:
            with atomic_output(out, "wb") as fh:
                np.savez(fh, mean=stats.mean, std=stats.std, snr=stats.snr,
                         row_snr=stats.row_snr, amplification=stats.amplification)
        except OSError as exc:
            raise NormScopeError(f"cannot write {out}: {exc.strerror}") from None
    info["feature_params"] = meta.get("feature_params")
    info["source"] = meta.get("source")
    info["skipped"] = [{"file": f, "reason": r} for f, r in meta.get("skipped", [])]
    if args.json:
        print(json.dumps(info, allow_nan=False))
    else:
        _print_summary(info)
        if info["skipped"]:
            print(f"skipped clips ({len(info['skipped'])}):")
            for s in info["skipped"]:
                print(f"  {plain(s['file'])}: {plain(s['reason'])}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from diagnostics.data.store import dataset_dir, list_datasets
    from diagnostics.data.ingest import delete_dataset
    from diagnostics.config import home

    if args.delete:
        for ident in args.delete:
            dataset_dir(ident)  # every id checked before anything is removed
        for ident in dict.fromkeys(i.strip() for i in args.delete):
            freed = delete_dataset(ident)
            print(f"deleted {ident} ({freed / 1e6:,.1f} MB)")
        return 0
    rows = list_datasets()
    if args.json:
        print(json.dumps(rows, allow_nan=False))
        return 0
    if not rows:
        print(f"no registered datasets in {home()}")
        return 0
    print(f"{'id':12}  {'name':24} {'examples':>9}  {'shape':>9}  {'classes':>7}  {'feature':8} "
          "created")
    for r in rows:
        shape = "x".join(str(v) for v in r["shape"] or [])
        print(f"{r['id']:12}  {plain(r['name'])[:24]:24} {r['n'] or 0:>9,}  {shape:>9}  "
              f"{r['classes']:>7}  {r['feature'] or '-':8} {r['created'] or ''}")
    return 0


COMMANDS = {"stats": cmd_stats}
COMMANDS["datasets"] = cmd_datasets


def cmd_compare(args: argparse.Namespace) -> int:
    from diagnostics.cli.compare import cmd_compare as run

    return run(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from diagnostics.cli.compare import cmd_runs as run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report: statistics, findings and stored comparisons of the dataset."""
    from diagnostics.plots.report import NEWEST_COMPARISONS, build_report
    from diagnostics.stats.summary import dataset_stats
    from models.store import RunStore  # sqlite only: no torch

    ds = _load(args)
    stats = dataset_stats(ds, on=args.on)
    store = RunStore()
    if args.runs is not None:
        ids = [r.strip() for r in args.runs.split(",") if r.strip()]
        if not ids:
            raise NormScopeError("--runs names no comparison id; give ids separated by commas "
                                 "(python -m diagnostics runs lists them) or leave it out")
    else:
        ids = [rec.id for rec in store.list_comparisons(ds.id, limit=NEWEST_COMPARISONS)]
    records = []
    for cid in ids:
        rec = store.load_comparison(cid)
        if rec is None:
            raise NormScopeError(f"comparison {cid} is not in the run store {store.path}; list "
                                 "them with python -m diagnostics runs")
        records.append(rec)
    page = build_report(ds, stats, mask_snr=args.mask_snr, on=args.on,
                        log_color=not args.linear_color, comparisons=records,
                        predictions={rec.id: store.predictions(rec.id) for rec in records})
    try:
        with atomic_output(args.out, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        raise NormScopeError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"wrote {args.out} ({len(page.encode()) / 1e6:.1f} MB, {len(ids)} comparison(s))")
    return 0


COMMANDS["report"] = cmd_report


def cmd_export(args: argparse.Namespace) -> int:
    from diagnostics.cli.export import cmd_export as run

    return run(args, _load)


COMMANDS["export"] = cmd_export
COMMANDS["compare"] = cmd_compare
COMMANDS["runs"] = cmd_runs


def cmd_advise(args: argparse.Namespace) -> int:
    from diagnostics.cli.advise import cmd_advise as run

    return run(args, load=_load)


COMMANDS["advise"] = cmd_advise


def cmd_shift(args: argparse.Namespace) -> int:
    from diagnostics.cli.shift import cmd_shift as run
    from diagnostics.data.ingest import load_dataset

    return run(args, lambda spec, labels: load_dataset(spec, labels=labels))


COMMANDS["shift"] = cmd_shift


def _os_error(exc: OSError) -> str:
    """One sentence for a system error (a full disk, a vanished file, a closed pipe)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    hint = {errno.ENOSPC: "; free some disk space and run it again",
            errno.EDQUOT: "; free some disk space and run it again",
            errno.EACCES: "; check the permissions", errno.EROFS: "; use a writable folder"}
    return f"{what}{where}{hint.get(exc.errno, '')}"


def _store_notices(before: list[str] | None = None) -> list[str]:
    """The notices of run stores found damaged (and moved aside) so far in this process; with
    ``before``, print on stderr those that are new since then (once, for this command)."""
    store = sys.modules.get("models.store")  # loaded only by the verbs that use the store
    now = store.moved_aside() if store is not None else []
    for notice in now if before is None else [n for n in now if n not in before]:
        print(f"warning: {plain(notice)}", file=sys.stderr)
    return now


def _known_notices() -> list[str]:
    store = sys.modules.get("models.store")
    return store.moved_aside() if store is not None else []


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0, 1 for a bug, 2 for everything else)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Overflow, NaN and division warnings describe values the summary counts and reports.
        warnings.simplefilter("ignore", RuntimeWarning)
        args = build_parser().parse_args(argv)
        seen = _known_notices()
        try:
            return COMMANDS[args.command](args)
        except NormScopeError as exc:
            error_line(str(exc))
            return 2
        except KeyboardInterrupt:
            error_line("interrupted")
            return 2
        except MemoryError as exc:
            error_line(f"not enough memory ({exc or 'the allocation failed'}); use a smaller "
                       "dataset or fewer workers")
            return 2
        except OSError as exc:
            error_line(_os_error(exc))
            return 2
        except Exception as exc:  # noqa: BLE001 -- a bug: one line here, the traceback in a log
            log = write_crash_log(argv)
            where = f"details in {log}" if log else "no log file could be written"
            error_line(f"internal error ({type(exc).__name__}); {where}")
            return 1
        finally:
            _store_notices(seen)
