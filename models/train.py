"""The training loop: deterministic per seed, reports through a callback, stops on a flag.

It knows nothing about the UI, the run store or processes.  For one seed every normalization
gets the same initial weights (the model is built right after seeding a forked copy of
torch's generator) and the same batch order (a numpy generator seeded from the seed alone),
so in a comparison only the input normalization changes.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .nets import build_model

#: Salt of the batch-order generator, so that it never shares a stream with weight init.
BATCH_ORDER_SALT = 0x5EED_BA7C


#: Optimisers a comparison can train with (every config of one comparison shares one).
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the same for every compared normalization)."""

    epochs: int = 15  # the most passes over the training split; the demo flattens by ~10
    batch_size: int = 32  # small batches: more updates per epoch on small datasets
    lr: float = 1e-3  # step size; Adam's usual default
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw); 0 keeps the comparison plain
    eval_batch_size: int = 512  # examples per forward pass when evaluating (memory bound)
    patience: int = 5  # stop after this many epochs without a better validation accuracy; 0: never
    optimizer: str = "adam"  # adam | adamw | sgd (with momentum 0.9, the common audio choice)
    device: str = "auto"  # auto (a GPU when torch sees one) | cpu | cuda

    def __post_init__(self) -> None:
        from diagnostics.errors import NormScopeError

        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise NormScopeError(f"learning rate {self.lr!r} must be a positive number, such as "
                                 "1e-3")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise NormScopeError(f"weight decay {self.weight_decay!r} must be 0 or more")
        if self.optimizer not in OPTIMIZERS:
            raise NormScopeError(f"optimizer {self.optimizer!r} is unknown; use "
                                 f"{', '.join(OPTIMIZERS)}")
        if self.device not in DEVICES:
            raise NormScopeError(f"device {self.device!r} is unknown; use {', '.join(DEVICES)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise NormScopeError("device cuda was asked for, but torch sees no GPU on this "
                                 "machine; use --device cpu (or auto)")
        if int(self.epochs) < 1 or int(self.batch_size) < 1 or int(self.patience) < 0:
            raise NormScopeError(f"epochs ({self.epochs}) and batch size ({self.batch_size}) "
                                 f"must be at least 1 and patience ({self.patience}) at least 0")

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
        Accuracy on the test split of the weights of the best validation epoch (None unless
        ``status == "done"``).
    best_epoch : int
        The epoch whose weights were tested (the first with the highest validation accuracy).
    test_pred : tuple of int
        Predicted class of every test example, in the order given (empty unless done).
    elapsed_s : float
    n_params : int
    init_digest : str
        Hash of the initial weights: equal across normalizations for one seed.
    device : str
        Where it trained (``cpu`` or ``cuda``).  On CUDA, cuDNN's kernel choice can make two
        runs of one seed differ in the last digits; on the CPU they are identical.
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
    best_epoch: int = 0
    test_pred: tuple[int, ...] = ()
    elapsed_s: float = 0.0
    n_params: int = 0
    init_digest: str = ""
    message: str = ""
    device: str = "cpu"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when torch sees a GPU, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


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
def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of every row of ``X`` (int64), in evaluation mode."""
    was_training = model.training
    model.eval()
    out = [model(X[i : i + batch_size]).argmax(1) for i in range(0, len(X), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of correct predictions of ``model`` on ``(X, y)``."""
    if len(y) == 0:
        return float("nan")
    return int((predict(model, X, batch_size) == y).sum()) / len(y)


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config`` (every config of a comparison gets the same)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


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
        ``("start", {...})`` once, ``("batch", {step, epoch})`` after every minibatch (its
        loss and accuracy reach the ``epoch`` event: reading them per minibatch would stall a
        GPU), ``("epoch", {epoch, train_loss, train_acc, val_acc, elapsed_s,
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
    dev = resolve_device(config.device)

    def tensor(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(dev)

    Xtr, ytr = tensor(X_train, np.float32), tensor(y_train, np.int64)
    Xva, yva = tensor(X_val, np.float32), tensor(y_val, np.int64)
    if isinstance(model, str):
        net = init_model(model, tuple(Xtr.shape[1:]), n_classes, seed=seed)
    else:
        net = model
    digest = weights_digest(net)  # on the CPU, before moving: equal on every device
    net.to(dev)
    n_params = sum(p.numel() for p in net.parameters())
    opt = make_optimizer(net.parameters(), config)
    loss_fn = nn.CrossEntropyLoss()
    bs = config.batch_size
    n = len(ytr)
    steps = -(-n // bs)
    emit("start", {"n_params": n_params, "init_digest": digest, "epochs": config.epochs,
                   "steps_per_epoch": steps})

    rec: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_acc", "val_acc",
                                            "epoch_time", "batch_acc", "batch_loss")}

    def result(status: str, test_acc: float | None = None, message: str = "",
               pred: tuple[int, ...] = ()) -> History:
        return History(status=status, **{k: tuple(v) for k, v in rec.items()}, test_acc=test_acc,
                       best_epoch=best["epoch"], test_pred=pred, device=dev.type,
                       elapsed_s=time.perf_counter() - t0, n_params=n_params,
                       init_digest=digest, message=message)

    # The weights of the best validation epoch are kept (a copy on the CPU) and tested, so no
    # config is judged at an arbitrary last epoch; training stops after ``patience`` epochs
    # without improvement.  Ties keep the earlier epoch.
    best: dict[str, Any] = {"epoch": 0, "val": -1.0, "state": None}

    net.train()
    step = 0
    sizes = [min(bs, n - i) for i in range(0, n, bs)]
    batch_of = torch.arange(n, device=dev) // bs  # the minibatch of each position of an epoch
    for epoch, order in enumerate(batch_order(n, seed=seed, epochs=config.epochs), start=1):
        order_t = torch.from_numpy(order).to(dev)
        # The per-minibatch loss and logits are kept as tensors (no .item() or argmax per
        # minibatch: a device sync on a GPU, and a few small ops on the CPU) and read once
        # when the epoch ends.
        losses: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        for j in range(steps):
            if should_stop():
                return result("cancelled", message=f"cancelled in epoch {epoch}")
            idx = order_t[j * bs : j * bs + bs]
            out = net(Xtr[idx])
            loss = loss_fn(out, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            logits.append(out.detach())
            step += 1
            emit("batch", {"step": step, "epoch": epoch})
        b_loss = torch.stack(losses).tolist()  # exactly the floats .item() gave
        right = (torch.cat(logits).argmax(1) == ytr[order_t]).to(torch.float64)
        del logits
        b_ok = [int(c) for c in torch.zeros(steps, dtype=torch.float64, device=dev).index_add_(
            0, batch_of, right).tolist()]
        b_acc = [ok / size for ok, size in zip(b_ok, sizes)]
        bad = next((j for j, lv in enumerate(b_loss) if not math.isfinite(lv)), None)
        if bad is not None:  # a non-finite loss: the run ends at that minibatch
            first = step - steps + 1
            rec["batch_acc"] += b_acc[: bad + 1]
            rec["batch_loss"] += b_loss[:bad] + [None]
            return result("diverged", message=f"the loss became {b_loss[bad]} at epoch "
                                              f"{epoch}, minibatch {first + bad}")
        loss_sum = sum(lv * size for lv, size in zip(b_loss, sizes))
        correct, seen = sum(b_ok), n
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
        score = val if math.isfinite(val) else -1.0  # no validation examples: keep the last
        if score > best["val"] or not math.isfinite(val):
            best.update(epoch=epoch, val=score,
                        state={k: v.detach().clone() for k, v in net.state_dict().items()})
        elif config.patience and epoch - best["epoch"] >= config.patience:
            break
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    Xte, yte = tensor(X_test, np.float32), tensor(y_test, np.int64)
    pred = predict(net, Xte, config.eval_batch_size)
    test_acc = int((pred == yte).sum()) / len(yte) if len(yte) else float("nan")
    return result("done", test_acc=test_acc, pred=tuple(pred.cpu().tolist()))
