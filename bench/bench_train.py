"""Per-batch overhead of models.train.fit with a user's model, against a bare torch loop.

Both train the same user model (a ``package.module:factory`` built by models.nets.build_model)
on the same data and batch order, one torch thread.  A round runs the bare loop and ours back
to back (which goes first alternates), each for ``--epochs``; the ratio ours / bare of the
median time per minibatch is taken per round and its median over rounds is printed.  Time is
measured twice: the thread's CPU time (what the loop itself costs, not what other processes
on a shared machine take from it; one torch thread runs every kernel in this thread) and
wall time.  Target (issue 12): 1.1 or less.

    python bench/bench_train.py [--rounds 9] [--epochs 1] [--model cnn|linear]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from models.nets import build_model  # noqa: E402
from models.train import TrainConfig, batch_order, fit  # noqa: E402

MODEL = "bench_train:user_cnn"
MODELS = {"cnn": "bench_train:user_cnn", "linear": "bench_train:user_linear"}


def user_cnn(in_shape, n_classes):
    """A user's model: (B, 1, H, W) -> (B, n_classes), two convolutions."""
    return nn.Sequential(nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                         nn.Flatten(), nn.Linear(32, n_classes))


def _median_step(stamps: list[tuple[float, float]]) -> tuple[float, float]:
    """(CPU, wall) median seconds between consecutive stamps."""
    a = np.asarray(stamps, dtype=np.float64)
    d = np.diff(a, axis=0)
    return float(np.median(d[:, 0])), float(np.median(d[:, 1]))


def _stamp() -> tuple[float, float]:
    return (time.thread_time(), time.perf_counter())


def user_linear(in_shape, n_classes):
    """A user's smallest model (--model linear): the loop's own cost is most of a minibatch."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1], n_classes))


def bare(X, y, *, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    """The plainest loop: forward, loss, backward, step.  (CPU, wall) median seconds per
    minibatch."""
    torch.manual_seed(seed)
    net = build_model(MODEL, X.shape[1:], int(y.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    stamps = [_stamp()]
    for order in batch_order(len(y), seed=seed, epochs=epochs):
        o = torch.from_numpy(order)
        for i in range(0, len(y), batch):
            idx = o[i : i + batch]
            loss = loss_fn(net(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stamps.append(_stamp())
    return _median_step(stamps)


def ours(X, y, *, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    """models.train.fit, with a callback doing what a worker's does (a progress message at most
    every 0.25 s).  Median seconds between consecutive minibatches: the per-epoch validation
    pass falls between epochs and the median leaves it out, as the bare loop has none."""
    torch.manual_seed(seed)
    net = build_model(MODEL, X.shape[1:], int(y.max()) + 1)
    stamps: list[tuple[float, float]] = []
    last = [0.0]

    def callback(kind, data):
        if kind == "batch":
            now = _stamp()
            stamps.append(now)
            if now[1] - last[0] >= 0.25:
                last[0] = now[1]
        elif kind == "start":
            stamps.append(_stamp())

    n_val = 64
    h = fit(X, y, X[:n_val], y[:n_val], X[:n_val], y[:n_val], n_classes=int(y.max()) + 1,
            model=net, config=TrainConfig(epochs=epochs, batch_size=batch, patience=0),
            seed=seed, callback=callback)
    assert h.status == "done", h.message
    return _median_step(stamps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", choices=tuple(MODELS), default="cnn",
                    help="cnn: two convolutions (default); linear: one layer, where the "
                         "loop's own per-minibatch cost shows most")
    a = ap.parse_args()
    global MODEL
    MODEL = MODELS[a.model]
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    X = rng.exponential(1.0, (a.n, 60, 130)).astype(np.float32)
    y = (np.arange(a.n) % 6).astype(np.int64)
    bare(X[:64], y[:64], epochs=1, batch=a.batch, seed=0)  # warm up both paths
    ours(X[:64], y[:64], epochs=1, batch=a.batch, seed=0)
    b, o = [], []
    for r in range(a.rounds):  # alternate which goes first: neither always gets a warm cache
        pair = [(b, bare), (o, ours)] if r % 2 == 0 else [(o, ours), (b, bare)]
        for out, run in pair:
            out.append(run(X, y, epochs=a.epochs, batch=a.batch, seed=r))
    print(f"load {os.getloadavg()[0]:.2f} (before {load0:.2f}); {a.n} examples of 60 x 130, "
          f"batch {a.batch}, {a.epochs} epoch(s) x {a.rounds} rounds alternating, one torch "
          f"thread, user model {MODEL}")
    for i, what in enumerate(("CPU time", "wall time")):
        ratios = [x[i] / z[i] for x, z in zip(o, b)]
        print(f"  {what:9}: bare torch loop {1e3 * statistics.median(v[i] for v in b):6.2f} ms, "
              f"models.train.fit {1e3 * statistics.median(v[i] for v in o):6.2f} ms per "
              f"minibatch; ratio fit / bare {statistics.median(ratios):.3f} (median of rounds, "
              f"range {min(ratios):.3f}-{max(ratios):.3f}; target <= 1.1)")

if __name__ == "__main__":
    main()
