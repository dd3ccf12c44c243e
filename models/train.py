"""The training loop: deterministic per seed, reports through a callback, stops on a flag.

It knows nothing about the UI, the run store or processes.  For one seed every normalization
gets the same initial weights (the model is built right after seeding a forked copy of
torch's generator) and the same batch order (a numpy generator seeded from the seed alone),
so in a comparison only the input normalization changes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .nets import build_model

#: Salt of the batch-order generator, so that it never shares a stream with weight init.
BATCH_ORDER_SALT = 0x5EED_BA7C


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the same for every compared normalization)."""

    epochs: int = 15  # passes over the training split; the demo's curves flatten by ~10
    batch_size: int = 32  # small batches: more updates per epoch on small datasets
    lr: float = 1e-3  # Adam step size, the usual default
    weight_decay: float = 0.0  # L2 penalty of Adam; 0 keeps the comparison plain
    eval_batch_size: int = 512  # examples per forward pass when evaluating (memory bound)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class History:
    """What one training run produced.

    Attributes
    ----------
    status : {"done", "cancelled", "diverged"}
    epoch, train_loss, train_acc, val_acc, epoch_time : tuples, one value per finished epoch
        ``train_*`` average the epoch's minibatches; ``epoch_time`` is seconds since start.
    batch_acc, batch_loss : tuples, one value per minibatch
        Training accuracy and loss of every minibatch (None where the loss was not finite).
    test_acc : float or None
        Accuracy on the test split after the last epoch (None unless ``status == "done"``).
    elapsed_s : float
    n_params : int
    init_digest : str
        Hash of the initial weights: equal across normalizations for one seed.
    message : str
        Why a run stopped early.
    """

    status: str
    epoch: tuple[int, ...] = ()
    train_loss: tuple[float, ...] = ()
    train_acc: tuple[float, ...] = ()
    val_acc: tuple[float, ...] = ()
    epoch_time: tuple[float, ...] = ()
    batch_acc: tuple[float, ...] = ()
    batch_loss: tuple[float | None, ...] = ()
    test_acc: float | None = None
    elapsed_s: float = 0.0
    n_params: int = 0
    init_digest: str = ""
    message: str = ""


def weights_digest(model: nn.Module) -> str:
    """Short hash of a model's parameters (to check that two runs start alike)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def init_model(model: str, in_shape: tuple[int, int], n_classes: int, *, seed: int,
               **options) -> nn.Module:
    """Build a model whose initial weights depend on ``seed`` only (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model, in_shape, n_classes, **options)


def batch_order(n: int, *, seed: int, epochs: int) -> list[np.ndarray]:
    """Training-example order of every epoch: a function of ``seed`` and ``n`` alone."""
    rng = np.random.default_rng([seed, BATCH_ORDER_SALT])
    return [rng.permutation(n) for _ in range(epochs)]


@torch.inference_mode()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of correct predictions of ``model`` on ``(X, y)``."""
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(X[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def _stopper(stop: Any) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if hasattr(stop, "is_set"):
        return stop.is_set
    if callable(stop):
        return stop
    raise TypeError("stop must be an Event-like object with is_set(), a callable, or None")


def fit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_classes: int,
    model: str | nn.Module = "cnn",
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    callback: Callable[[str, dict], None] | None = None,
    stop: Any = None,
) -> History:
    """Train a classifier on already-normalized arrays and evaluate it.

    Parameters
    ----------
    X_train, X_val, X_test : float32 arrays, shape (n, H, W)
    y_train, y_val, y_test : int arrays, shape (n,)
    n_classes : int
    model : {"cnn", "mlp", "linear"} or nn.Module
        A name is built with :func:`init_model` from ``seed``; a module is used as given.
    config : TrainConfig
    seed : int
        Sets the initial weights and the batch order (nothing else is random).
    callback : callable(kind, data), optional
        ``("start", {...})`` once, ``("batch", {step, epoch, loss, acc})`` after every
        minibatch, ``("epoch", {epoch, train_loss, train_acc, val_acc, elapsed_s,
        batch_acc, batch_loss})`` after every epoch.  Called in this thread.
    stop : threading.Event-like or callable, optional
        Checked before every minibatch; when set the run returns ``status="cancelled"``.

    Returns
    -------
    History
        ``status`` is ``"done"``, ``"cancelled"`` or ``"diverged"`` (a non-finite loss);
        a diverged run returns instead of raising.
    """
    t0 = time.perf_counter()
    should_stop = _stopper(stop)
    emit = callback or (lambda kind, data: None)
    Xtr = torch.from_numpy(np.ascontiguousarray(X_train, dtype=np.float32))
    ytr = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    Xva = torch.from_numpy(np.ascontiguousarray(X_val, dtype=np.float32))
    yva = torch.from_numpy(np.asarray(y_val, dtype=np.int64))
    if isinstance(model, str):
        net = init_model(model, tuple(Xtr.shape[1:]), n_classes, seed=seed)
    else:
        net = model
    digest = weights_digest(net)
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    bs = config.batch_size
    n = len(ytr)
    steps = -(-n // bs)
    emit("start", {"n_params": n_params, "init_digest": digest, "epochs": config.epochs,
                   "steps_per_epoch": steps})

    rec: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_acc", "val_acc",
                                            "epoch_time", "batch_acc", "batch_loss")}

    def result(status: str, test_acc: float | None = None, message: str = "") -> History:
        return History(status=status, **{k: tuple(v) for k, v in rec.items()}, test_acc=test_acc,
                       elapsed_s=time.perf_counter() - t0, n_params=n_params,
                       init_digest=digest, message=message)

    net.train()
    step = 0
    for epoch, order in enumerate(batch_order(n, seed=seed, epochs=config.epochs), start=1):
        order_t = torch.from_numpy(order)
        loss_sum, correct, seen = 0.0, 0, 0
        b_acc: list[float] = []
        b_loss: list[float | None] = []
        for i in range(0, n, bs):
            if should_stop():
                return result("cancelled", message=f"cancelled in epoch {epoch}")
            idx = order_t[i : i + bs]
            xb, yb = Xtr[idx], ytr[idx]
            out = net(xb)
            loss = loss_fn(out, yb)
            lv = loss.item()
            ok = int((out.argmax(1) == yb).sum())
            step += 1
            acc = ok / len(yb)
            if not np.isfinite(lv):
                b_acc.append(acc)
                b_loss.append(None)
                rec["batch_acc"] += b_acc
                rec["batch_loss"] += b_loss
                return result("diverged", message=f"the loss became {lv} at epoch {epoch}, "
                                                  f"minibatch {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += lv * len(yb)
            correct += ok
            seen += len(yb)
            b_acc.append(acc)
            b_loss.append(lv)
            emit("batch", {"step": step, "epoch": epoch, "loss": lv, "acc": acc})
        val = accuracy(net, Xva, yva, config.eval_batch_size)
        rec["epoch"].append(epoch)
        rec["train_loss"].append(loss_sum / seen)
        rec["train_acc"].append(correct / seen)
        rec["val_acc"].append(val)
        rec["epoch_time"].append(time.perf_counter() - t0)
        rec["batch_acc"] += b_acc
        rec["batch_loss"] += b_loss
        emit("epoch", {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                       "val_acc": val, "elapsed_s": rec["epoch_time"][-1],
                       "batch_acc": b_acc, "batch_loss": b_loss})
    Xte = torch.from_numpy(np.ascontiguousarray(X_test, dtype=np.float32))
    yte = torch.from_numpy(np.asarray(y_test, dtype=np.int64))
    return result("done", test_acc=accuracy(net, Xte, yte, config.eval_batch_size))
