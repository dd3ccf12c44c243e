"""Small models sized for CPUs: a plain CNN (default), an MLP and a linear baseline.

Every model is built from ``(in_shape, n_classes)`` with ``in_shape = (H, W)`` and takes a
batch of shape (B, H, W) (a channel axis is added inside).  The CNN has no batch norm on
purpose: a normalization layer right after the input would partly undo the input scaling
that NormScope compares, and hide the effect users see in their own plain models
(``batch_norm=True`` gives that variant).

The CNN downsamples early (a stride-2 first convolution, then pooling), keeps few channels,
and ends in an adaptive pooling to a fixed grid, so its parameter shapes do not depend on the
number of input rows: for one seed, a masked configuration (fewer rows) starts from the same
weights as an unmasked one.
"""

from __future__ import annotations

import torch
from torch import nn

#: The model names :func:`build_model` knows (the one list: the app, the CLI and comparisons
#: take it from here).
MODEL_NAMES = ("cnn", "mlp", "linear")


def _pool(h: int, w: int) -> tuple[int, int]:
    # Halve an axis only while it is long enough, so tiny inputs (8 x 8 digits) still fit.
    return (2 if h >= 4 else 1, 2 if w >= 4 else 1)


class SmallCNN(nn.Module):
    """conv(5x5, stride 2) -> pool -> conv(3x3) -> pool -> conv(3x3) -> max pool -> linear.

    Parameters
    ----------
    in_shape : (H, W)
    n_classes : int
    channels : tuple of 3 int
        Channels of the three convolutions.
    grid : (int, int)
        Output grid of the adaptive max pooling before the classifier.  The default (1, 1)
        is global max pooling, as many audio CNNs end: the classifier sees which patterns
        occurred, wherever they occurred.
    batch_norm : bool
        Add batch norm after each convolution (off by default, see the module docstring).
    """

    def __init__(self, in_shape: tuple[int, int], n_classes: int, *,
                 channels: tuple[int, int, int] = (8, 16, 32), grid: tuple[int, int] = (1, 1),
                 batch_norm: bool = False):
        super().__init__()
        h, w = in_shape
        c1, c2, c3 = channels
        s1 = _pool(h, w)
        layers: list[nn.Module] = [nn.Conv2d(1, c1, 5, stride=s1, padding=2)]
        h, w = -(-h // s1[0]), -(-w // s1[1])

        def block(cin: int, cout: int, hh: int, ww: int):
            k = _pool(hh, ww)
            mods = [nn.BatchNorm2d(cin)] if batch_norm else []
            mods += [nn.ReLU(), nn.MaxPool2d(k), nn.Conv2d(cin, cout, 3, padding=1)]
            return mods, hh // k[0], ww // k[1]

        mods, h, w = block(c1, c2, h, w)
        layers += mods
        mods, h, w = block(c2, c3, h, w)
        layers += mods
        layers += ([nn.BatchNorm2d(c3)] if batch_norm else []) + [nn.ReLU()]
        layers += [nn.AdaptiveMaxPool2d(grid), nn.Flatten(), nn.Linear(c3 * grid[0] * grid[1], n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


class MLP(nn.Module):
    """Flatten -> linear(hidden) -> ReLU -> linear."""

    def __init__(self, in_shape: tuple[int, int], n_classes: int, *, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1], hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Linear(nn.Module):
    """Multinomial logistic regression on the flattened input."""

    def __init__(self, in_shape: tuple[int, int], n_classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1], n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(name: str, in_shape: tuple[int, int], n_classes: int, **options) -> nn.Module:
    """Build ``cnn``, ``mlp`` or ``linear`` for inputs of ``in_shape`` and ``n_classes``.

    The weights come from torch's global generator: seed it (or fork it) first.
    """
    if name == "cnn":
        return SmallCNN(in_shape, n_classes, **options)
    if name == "mlp":
        return MLP(in_shape, n_classes, **options)
    if name == "linear":
        return Linear(in_shape, n_classes, **options)
    from diagnostics.errors import NormScopeError

    raise NormScopeError(f"model {name!r} is unknown; use {', '.join(MODEL_NAMES)}")
