"""Model presets and the user's own model: shapes, determinism, bn0 per band, the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compare_helpers import tiny_arrays
from diagnostics.errors import NormScopeError
from models.catalog import MODELS, is_import_path, operator_models
from models.nets import build_model
from models.train import TrainConfig, fit

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["cnn", "cnn_bn", "cnn_bn0", "resnet"])
def test_each_preset_trains_deterministically_on_cpu(name):
    X, y = tiny_arrays(0)
    args = (X[:60], y[:60], X[60:75], y[60:75], X[75:], y[75:])
    cfg = TrainConfig(epochs=2, batch_size=16)
    a = fit(*args, n_classes=3, model=name, config=cfg, seed=4)
    b = fit(*args, n_classes=3, model=name, config=cfg, seed=4)
    assert a.status == "done" and a.init_digest == b.init_digest
    assert a.train_loss == b.train_loss and a.test_pred == b.test_pred
    has_bn = any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))
                 for m in build_model(name, X.shape[1:], 3).modules())
    assert has_bn == (name != "cnn")


def test_cnn_bn0_learns_the_per_band_statistics(rng):
    X = (rng.exponential(1.0, (400, 12, 20)) * np.geomspace(100, 0.01, 12)[:, None]).astype(np.float32)
    net = build_model("cnn_bn0", (12, 20), 3)
    net.bn0.momentum = None  # cumulative average: exactly the mean over what it has seen
    net.train()
    with torch.no_grad():
        for i in range(0, 400, 50):
            net(torch.from_numpy(X[i : i + 50]))
    np.testing.assert_allclose(net.bn0.running_mean.numpy(), X.mean(axis=(0, 2)), rtol=1e-4)
    # BatchNorm's running variance is the unbiased per-batch variance, averaged over batches.
    per_batch = np.mean([X[i : i + 50].var(axis=(0, 2), ddof=1) for i in range(0, 400, 50)], 0)
    np.testing.assert_allclose(net.bn0.running_var.numpy(), per_batch, rtol=1e-4)


def test_models_list_has_a_sentence_for_each_and_no_torch_import_needed():
    assert set(MODELS) >= {"cnn", "cnn_bn", "cnn_bn0", "resnet", "mlp", "linear"}
    assert all(isinstance(v, str) and len(v) > 10 for v in MODELS.values())
    assert is_import_path("user_models:tiny") and not is_import_path("cnn")
    assert not is_import_path("os.system('x'):y") and not is_import_path("a:b c")


def test_a_user_model_is_built_and_trained():
    X, y = tiny_arrays(0)
    h = fit(X[:60], y[:60], X[60:75], y[60:75], X[75:], y[75:], n_classes=3,
            model=build_model("user_models:tiny", X.shape[1:], 3),
            config=TrainConfig(epochs=2, batch_size=16), seed=0)
    assert h.status == "done" and len(h.test_pred) == 15


@pytest.mark.parametrize("name, match", [
    ("no_such_module:f", "cannot be imported"),
    ("user_models:missing", "cannot be imported"),
    ("user_models:not_a_module", "not a torch.nn.Module"),
    ("user_models:wrong_output", r"must return class scores of shape \(2, 3\)"),
    ("user_models:fails_forward", r"fails on a batch of shape \(2, 1, 12, 17\)"),
    ("user_models:raises", "raised RuntimeError: no GPU here"),
    ("nonsense", "is unknown"),
])
def test_each_bad_factory_gets_its_sentence(name, match):
    with pytest.raises(NormScopeError, match=match):
        build_model(name, (12, 17), 3)


def test_operator_models_come_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("NORMSCOPE_MODELS", raising=False)
    assert operator_models() == ()
    monkeypatch.setenv("NORMSCOPE_MODELS", "user_models:tiny, not a path ,pkg.mod:make")
    assert operator_models() == ("user_models:tiny", "pkg.mod:make")
