"""The model list and the shape of a user's model name, without importing torch (the command
line's ``--help`` and the app's pickers read them; :mod:`models.nets` builds the models)."""

from __future__ import annotations

import os

#: Every built-in model with the sentence the app and ``--help`` show (the one model list).
MODELS = {
    "cnn": "small plain CNN, no batch norm (default: it shows the effect users see)",
    "cnn_bn": "the same CNN with batch norm after each convolution",
    "cnn_bn0": "the CNN behind a batch norm over the bands at the input, as in PANNs (bn0)",
    "resnet": "a small residual network with batch norm (3 stages, 16-64 channels)",
    "mlp": "one hidden layer of 128 on the flattened input",
    "linear": "multinomial logistic regression on the flattened input",
}


def is_import_path(name: str) -> bool:
    """True for ``package.module:factory`` (a user's model), False for a built-in name."""
    mod, sep, attr = str(name).partition(":")
    return bool(sep and mod and attr and all(p.isidentifier() for p in mod.split("."))
                and attr.isidentifier())


def operator_models() -> tuple[str, ...]:
    """User models the server's operator allows in the app: ``NORMSCOPE_MODELS``, a
    comma-separated list of ``package.module:factory`` (read at call time).  Code named in a
    browser is never run: the app offers only :data:`MODELS` and these."""
    raw = os.environ.get("NORMSCOPE_MODELS", "")
    return tuple(s.strip() for s in raw.split(",") if is_import_path(s.strip()))


def model_list(model) -> list[str]:
    """``"cnn"``, ``"cnn,cnn_bn0"`` or ``["cnn", "cnn_bn0"]`` as a list of names (stripped;
    an import path holds no comma)."""
    items = str(model).split(",") if isinstance(model, str) else [str(m) for m in model]
    return [m.strip() for m in items if m.strip()]
