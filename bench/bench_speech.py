"""Benchmark: decide mode on a real spoken-word set against a plain hand-written 5-fold CV loop.

    python bench/bench_speech.py                      # mel (linear power), then mfcc
    python bench/bench_speech.py --feature mfcc       # one kind only
    python bench/bench_speech.py --quick              # 2 epochs: a check that it runs

The data is a folder of spoken digits (one sub-folder per class; default /work/data/speech,
or ``--data``; ``bench/make_speech.py`` makes one).  For each feature kind it measures, in
this one run:

1. **The hand-written loop**: one repetition of stratified 5-fold cross-validation
   (scikit-learn's ``StratifiedKFold``), written here with plain torch on one thread, of
   the same model (``models.nets.build_model``, the app's default ``cnn``), the same most
   epochs, Adam and minibatch size, on every config the app proposes for this dataset.
   Every normalization is fitted on each fold's training part by code written here (and by
   scikit-learn's scalers for ``per_pixel``, ``minmax`` and ``robust``), not by
   ``diagnostics.normalize``.  Each run trains every epoch; its test accuracy is that of the
   weights of its best validation epoch (a 15% stratified validation split out of the
   training folds), so the loop is also the careful cross-validation that the answer must
   agree with.  Printed: its wall time and each config's accuracy over the 5 folds.
2. **Decide mode**, as the app runs it (default configs, 5-fold CV, decide mode, early
   stopping, ``--workers`` processes): wall time from Start to the answer, the repetitions it
   used (folds run per config / 5), its answer text.
3. **The ratio**: decide mode's wall time per repetition used over the hand-written loop's one
   repetition (target <= 0.6), and whether the answer agrees with the hand-written accuracies
   (each pair it calls better or worse has the same sign there; its named best is the
   hand-written top, or within the hand-written loop's noise of it).

Feature extraction is timed on its own line and is in neither figure.  The run store and the
registered features go to a temporary ``NORMSCOPE_HOME``.  The load average is printed with the
figures: on a shared machine the ratio is not the target's figure.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = "/work/data/speech"
KINDS = ("mel", "mfcc")
# The hand-written normalizations, from their definitions (see diagnostics/normalize.py's
# docstring for what each name means); only the names the app proposes need to exist here.
DB_AMIN, DB_TOP = 1e-10, 80.0
MASK_SNR = 0.2


def load(kind: str, data: str):
    """Features of the folder as our loader makes them (the same arrays both sides train on)."""
    from diagnostics.data.audio.features import FeatureParams
    from diagnostics.data.ingest import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(data, params=FeatureParams(feature=kind), workers=2)
    return ds, time.perf_counter() - t0


def default_configs(ds) -> list[str]:
    """What the app proposes for this dataset (training-split statistics, default threshold)."""
    from diagnostics.config import DEFAULT_MASK_SNR
    from diagnostics.stats.findings import suggested_configs
    from diagnostics.stats.summary import dataset_stats

    return suggested_configs(dataset_stats(ds, on="train"), DEFAULT_MASK_SNR)


# ---------------------------------------------------------------- the hand-written side


def hand_normalize(name: str, X: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``[db+|log1p+]scaler[@mask]`` fitted on ``X[train]``, applied to all of X (float32).

    Written from the definitions, independently of diagnostics.normalize: the mask drops
    rows whose median-over-columns of |mean|/std (per pixel, training part, raw input) is
    under 0.2; db is 10 log10(max(x, 1e-10)) floored 80 dB under each example's maximum;
    pcen is ``librosa.pcen`` with its defaults on ``sqrt(x) * 2**31``; per_pixel, minmax and
    robust are scikit-learn's scalers on flattened examples; global and per_row use population
    moments of the training part, a zero std counting as 1; instance and instance_row each
    example's (each band's) own moments; shrink the per-pixel std with its variance averaged
    half and half with its band's mean per-pixel variance.
    """
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    body, _, suffix = name.partition("@")
    comp, _, scaler = body.rpartition("+")
    X = np.asarray(X, dtype=np.float64)
    keep = np.ones(X.shape[1], bool)
    if suffix:
        if suffix != "mask":
            raise SystemExit(f"bench_speech: no hand-written version of @{suffix}")
        m, s = X[train].mean(0), X[train].std(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.where(s > 0, np.abs(m) / s, np.nan)
        row = np.array([np.median(r[~np.isnan(r)]) if (~np.isnan(r)).any() else np.nan
                        for r in snr])
        keep = row >= MASK_SNR  # NaN (a constant row) is dropped too
    if comp == "db":
        X = 10.0 * np.log10(np.maximum(X, DB_AMIN))
        X = np.maximum(X, X.max(axis=(1, 2), keepdims=True) - DB_TOP)
    elif comp == "pcen":
        import librosa

        # librosa's defaults, fed the magnitude-like int32-range input the product documents.
        X = librosa.pcen(np.sqrt(np.maximum(X, 0.0)) * 2.0**31, sr=22050, hop_length=512,
                         axis=-1)
    elif comp == "log1p":
        X = np.sign(X) * np.log1p(np.abs(X))
    elif comp:
        raise SystemExit(f"bench_speech: no hand-written version of {comp}+")
    X = X[:, keep]
    n, h, w = X.shape
    flat = X.reshape(n, -1)
    if scaler == "none":
        out = X
    elif scaler in ("per_pixel", "minmax", "robust"):
        sk = {"per_pixel": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[scaler]()
        out = sk.fit(flat[train]).transform(flat).reshape(n, h, w)
    elif scaler == "global":
        m, s = X[train].mean(), X[train].std()
        out = (X - m) / (s if s > 0 else 1.0)
    elif scaler == "per_row":
        m = X[train].mean(axis=(0, 2))[None, :, None]
        s = X[train].std(axis=(0, 2))[None, :, None]
        out = (X - m) / np.where(s > 0, s, 1.0)
    elif scaler in ("instance", "instance_row"):
        axes = (2,) if scaler == "instance_row" else (1, 2)
        m, s = X.mean(axis=axes, keepdims=True), X.std(axis=axes, keepdims=True)
        out = (X - m) / np.where(s > 1e-12 * np.maximum(np.abs(m), 1.0), s, 1.0)
    elif scaler == "shrink":
        # Each pixel's variance shrunk halfway toward its band's mean per-pixel variance.
        m, v = X[train].mean(0), X[train].var(0)
        s = np.sqrt(0.5 * v + 0.5 * v.mean(axis=1, keepdims=True))
        out = (X - m) / np.where(s > 0, s, 1.0)
    else:
        raise SystemExit(f"bench_speech: no hand-written version of scaler {scaler}")
    return np.ascontiguousarray(out, dtype=np.float32)


def hand_cv(X: np.ndarray, y: np.ndarray, configs: list[str], *, epochs: int,
            n_classes: int, repetition: int = 0, batch_size: int = 32, lr: float = 1e-3):
    """One repetition of a plain single-thread 5-fold CV loop; (seconds, {config: acc},
    {config: per-fold accuracies})."""
    import torch
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from models.nets import build_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    correct = {c: 0 for c in configs}
    per_fold = {c: [] for c in configs}
    yt = torch.from_numpy(y.astype(np.int64))
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=repetition)
    for f, (rest, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        train, val = train_test_split(rest, test_size=0.15, stratify=y[rest],
                                      random_state=100 * repetition + f)
        for cfg in configs:
            Xn = torch.from_numpy(hand_normalize(cfg, X, train))
            torch.manual_seed(1000 * repetition + f)  # every config of a fold starts alike
            model = build_model("cnn", tuple(Xn.shape[1:]), n_classes)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            rng = np.random.default_rng(1000 * repetition + f)
            tr = torch.from_numpy(train)
            best, best_state = -1.0, None
            for _ in range(epochs):
                model.train()
                order = tr[torch.from_numpy(rng.permutation(len(tr)))]
                for i in range(0, len(order), batch_size):
                    b = order[i:i + batch_size]
                    loss = torch.nn.functional.cross_entropy(model(Xn[b]), yt[b])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                model.eval()
                with torch.inference_mode():
                    acc = (model(Xn[val]).argmax(1) == yt[val]).float().mean().item()
                if acc > best:
                    best, best_state = acc, copy.deepcopy(model.state_dict())
            model.load_state_dict(best_state)
            model.eval()
            with torch.inference_mode():
                ok = int((model(Xn[test]).argmax(1) == yt[test]).sum())
            correct[cfg] += ok
            per_fold[cfg].append(ok / len(test))
    return time.perf_counter() - t0, {c: correct[c] / len(y) for c in configs}, per_fold


# ---------------------------------------------------------------- our side


def decide_mode(ds, configs: list[str], *, epochs: int, workers: int):
    """The app's default comparison in decide mode; (seconds, comparison JSON)."""
    from diagnostics.results import comparison_json
    from models.comparison import Comparison
    from models.store import RunStore
    from models.train import TrainConfig

    t0 = time.perf_counter()
    comp = Comparison(ds, configs, train=TrainConfig(epochs=epochs), workers=workers).start()
    comp.wait()
    t = time.perf_counter() - t0
    rec = comp.record()
    return t, comparison_json(rec, RunStore().predictions(rec.id), elapsed_s=t)


def agreement(doc: dict, hand: dict, per_fold: dict) -> str:
    """Does the answer agree with the hand-written accuracies?  One line."""
    bad = []
    for p in doc["pairs"]:
        if p["verdict"] in ("better", "worse"):
            d = hand[p["b"]] - hand[p["a"]]
            if (d > 0) != (p["verdict"] == "better"):
                bad.append(f"{p['b']} {p['verdict']} than {p['a']} (hand-written {100 * d:+.1f})")
    top = max(hand, key=hand.get)
    best = doc["answer"]["best"]
    # The hand-written loop's own noise: the standard error of a paired difference over its
    # 5 folds (no correction: a generous yardstick for "within noise").
    if best is not None and best != top:
        d = np.array(per_fold[top]) - np.array(per_fold[best])
        se = d.std(ddof=1) / np.sqrt(d.size)
        if hand[top] - hand[best] > 2 * se:
            bad.append(f"named best {best} is {100 * (hand[top] - hand[best]):.1f} points behind "
                       f"the hand-written top {top} (2 se = {200 * se:.1f})")
    head = f"hand-written top {top}; our best {best or '(none named)'}"
    return f"{head}: agrees" if not bad else f"{head}: DISAGREES: " + "; ".join(bad)


def bench_kind(kind: str, args) -> None:
    ds, t_feat = load(kind, args.data)
    configs = default_configs(ds)
    print(f"{kind}: {ds.n} clips of {ds.X.shape[1]} x {ds.X.shape[2]}, "
          f"{len(ds.class_names)} classes; configs {', '.join(configs)}; at most {args.epochs} "
          f"epochs; features {t_feat:.1f} s (in neither figure)", flush=True)
    X = np.asarray(ds.X)
    t_hand, hand, per_fold = hand_cv(X, np.asarray(ds.y), configs, epochs=args.epochs,
                                     n_classes=len(ds.class_names))
    print(f"  hand-written 5-fold CV (1 thread, every epoch, best-validation weights): "
          f"{t_hand:.1f} s for one repetition; load {load_avg()}", flush=True)
    print("    accuracies: " + ", ".join(f"{c} {100 * a:.1f}%" for c, a in hand.items()))
    t_ours, doc = decide_mode(ds, configs, epochs=args.epochs, workers=args.workers)
    ev = doc["evaluation"]
    reps = ev.get("cells", ev["repetitions"] * ev["folds"]) / ev["folds"]
    print(f"  decide mode ({args.workers} workers): {t_ours:.1f} s, {reps:g} repetitions "
          f"({ev.get('cells', '?')} folds a config), stopped: {ev['stopped_because']}; "
          f"load {load_avg()}", flush=True)
    for line in doc["answer"]["text"]:
        print(f"    answer: {line}")
    print("    ours:   " + ", ".join(f"{c['name']} {100 * c['accuracy']:.1f}%"
                                      for c in doc["configs"]))
    ratio = t_ours / reps / t_hand
    print(f"  ratio per repetition used: ({t_ours:.1f} s / {reps:g}) / {t_hand:.1f} s = "
          f"{ratio:.2f} (target <= 0.6); repetitions needed {reps:g}")
    print(f"  agreement: {agreement(doc, hand, per_fold)}", flush=True)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feature", choices=KINDS + ("both",), default="both",
                    help="feature kind: mel (linear power), mfcc, or both (default)")
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"audio folder (default {DEFAULT_DATA})")
    ap.add_argument("--epochs", type=int, default=None, help="most epochs (default 15)")
    ap.add_argument("--workers", type=int, default=2, help="decide mode's workers (default 2)")
    ap.add_argument("--quick", action="store_true", help="2 epochs: check that it runs")
    args = ap.parse_args()
    if args.epochs is None:
        from models.train import TrainConfig

        args.epochs = 2 if args.quick else TrainConfig().epochs
    if not Path(args.data).is_dir():
        raise SystemExit(f"bench_speech: {args.data} is not a folder (see bench/make_speech.py)")
    tmp = tempfile.mkdtemp(prefix="normscope-bench-")
    os.environ["NORMSCOPE_HOME"] = tmp
    t0 = time.perf_counter()
    print(f"bench_speech: {os.cpu_count()} cores; load {load_avg()}", flush=True)
    try:
        for kind in (KINDS if args.feature == "both" else (args.feature,)):
            bench_kind(kind, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
