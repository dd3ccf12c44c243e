"""The training loop and the models: determinism, shared initial weights, cancel, divergence."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from diagnostics.normalize import Normalizer
from models.catalog import MODELS
from models.nets import build_model
from models.train import History, TrainConfig, batch_order, fit, init_model, weights_digest

from compare_helpers import tiny_arrays

torch.set_num_threads(1)
CFG = TrainConfig(epochs=2, batch_size=16)


def _data(config: str = "none", seed: int = 0):
    X, y = tiny_arrays(seed)
    tr, va, te = np.arange(0, 60), np.arange(60, 75), np.arange(75, 90)
    nz = Normalizer(config).fit(X, indices=tr)
    Xn = nz.transform(X)
    return Xn[tr], y[tr], Xn[va], y[va], Xn[te], y[te]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("shape", [(60, 130), (8, 8), (3, 5), (48, 130)])
def test_models_build_for_any_shape(model, shape):
    net = build_model(model, shape, 6)
    out = net(torch.zeros(4, *shape))
    assert out.shape == (4, 6)


def test_cnn_has_no_batch_norm_by_default_and_offers_it():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("cnn", (60, 130), 6).modules())
    bn = build_model("cnn", (60, 130), 6, batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())


def test_same_seed_same_result():
    a = fit(*_data(), n_classes=3, config=CFG, seed=3)
    b = fit(*_data(), n_classes=3, config=CFG, seed=3)
    assert isinstance(a, History) and a.status == "done"
    assert a.train_loss == b.train_loss and a.batch_acc == b.batch_acc and a.test_acc == b.test_acc
    c = fit(*_data(), n_classes=3, config=CFG, seed=4)
    assert c.train_loss != a.train_loss


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_initial_weights_across_normalizations(model):
    digests = {cfg: fit(*_data(cfg), n_classes=3, model=model, config=CFG, seed=7).init_digest
               for cfg in ("none", "per_pixel", "db+per_row")}
    assert len(set(digests.values())) == 1
    other = fit(*_data(), n_classes=3, model=model, config=CFG, seed=8).init_digest
    assert other not in digests.values()


def test_masked_inputs_start_the_cnn_from_the_same_weights():
    full = init_model("cnn", (12, 16), 3, seed=5)
    masked = init_model("cnn", (9, 16), 3, seed=5)
    assert weights_digest(full) == weights_digest(masked)


def test_init_and_batch_order_leave_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    init_model("cnn", (12, 16), 3, seed=0)
    assert torch.equal(torch.rand(1), before)
    a = batch_order(60, seed=2, epochs=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, batch_order(60, seed=2, epochs=3)))
    assert not np.array_equal(a[0], batch_order(60, seed=3, epochs=1)[0])


def test_history_has_every_curve():
    events = []
    h = fit(*_data(), n_classes=3, config=CFG, seed=0, callback=lambda k, d: events.append(k))
    assert h.epoch == (1, 2) and len(h.train_loss) == len(h.val_acc) == len(h.epoch_time) == 2
    assert len(h.batch_acc) == 2 * 4 and all(0 <= a <= 1 for a in h.batch_acc)
    assert 0 <= h.test_acc <= 1 and h.n_params > 0
    assert events[0] == "start" and events.count("epoch") == 2 and events.count("batch") == 8


def test_cancel_is_checked_every_minibatch():
    stop = threading.Event()
    seen = []

    def cb(kind, data):
        if kind == "batch":
            seen.append(data["step"])
            if data["step"] == 3:
                stop.set()

    h = fit(*_data(), n_classes=3, config=TrainConfig(epochs=50, batch_size=16), seed=0,
            callback=cb, stop=stop)
    assert h.status == "cancelled" and seen == [1, 2, 3] and h.test_acc is None
    assert fit(*_data(), n_classes=3, config=CFG, seed=0, stop=lambda: True).status == "cancelled"


def test_nan_loss_is_reported_as_diverged_not_raised():
    Xtr, ytr, *rest = _data()
    Xtr = Xtr.copy()
    Xtr[:] = np.nan
    h = fit(Xtr, ytr, *rest, n_classes=3, config=CFG, seed=0)
    assert h.status == "diverged" and h.test_acc is None and "loss became nan" in h.message
    assert h.batch_loss[-1] is None


def test_the_tested_weights_are_those_of_the_best_validation_epoch():
    Xtr, ytr, Xva, yva, _, _ = _data()
    # Test on the validation split itself: the test accuracy must then equal the validation
    # accuracy of the best epoch, not of the last one.
    cfg = TrainConfig(epochs=12, batch_size=16, lr=3e-2, patience=0)
    h = fit(Xtr, ytr, Xva, yva, Xva, yva, n_classes=3, config=cfg, seed=1)
    assert h.status == "done" and len(h.epoch) == 12
    best = int(np.argmax(h.val_acc)) + 1  # first epoch with the highest accuracy
    assert h.best_epoch == best
    assert h.test_acc == pytest.approx(h.val_acc[best - 1])
    assert len(h.test_pred) == len(yva)
    assert np.mean(np.array(h.test_pred) == yva) == pytest.approx(h.test_acc)


def test_patience_stops_after_epochs_without_improvement():
    Xtr, ytr, Xva, yva, Xte, yte = _data()
    h = fit(Xtr, ytr, Xva, yva, Xte, yte, n_classes=3, seed=0,
            config=TrainConfig(epochs=40, batch_size=16, lr=3e-2, patience=2))
    assert h.status == "done"
    assert len(h.epoch) < 40  # stopped early ...
    assert len(h.epoch) == h.best_epoch + 2  # ... exactly `patience` epochs after the best
    assert max(h.val_acc[h.best_epoch:]) <= h.val_acc[h.best_epoch - 1]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_trains_deterministically(optimizer):
    data = _data()
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer=optimizer, lr=1e-2, weight_decay=1e-4)
    a = fit(*data, n_classes=3, config=cfg, seed=3)
    b = fit(*data, n_classes=3, config=cfg, seed=3)
    assert a.status == "done" and a.train_loss == b.train_loss and a.test_pred == b.test_pred


@pytest.mark.parametrize("bad, match", [
    ({"lr": 0.0}, "learning rate"), ({"lr": -1e-3}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"weight_decay": -1.0}, "weight decay"), ({"patience": -1}, "patience"),
])
def test_bad_training_settings_are_refused_with_one_sentence(bad, match):
    from diagnostics.errors import NormScopeError

    with pytest.raises(NormScopeError, match=match):
        TrainConfig(**bad)


def test_cuda_without_a_gpu_is_refused_and_auto_records_the_cpu():
    from diagnostics.errors import NormScopeError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal cannot happen here")
    with pytest.raises(NormScopeError, match="torch sees no GPU"):
        TrainConfig(device="cuda")
    h = fit(*_data(), n_classes=3, config=TrainConfig(epochs=1, batch_size=16), seed=0)
    assert h.device == "cpu"
