"""Small models sized for CPUs: a plain CNN (default), presets that stand for common audio
practice (batch norm, PANNs-style input batch norm over the bands, a small ResNet), an MLP, a
linear baseline, and the user's own model named by import path (``package.module:factory``).

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

from .catalog import MODELS, is_import_path



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


class BandNormCNN(nn.Module):
    """PANNs' ``bn0``: a BatchNorm over the bands (rows) at the input, then the plain CNN.

    The input's rows are the BatchNorm's channels, so the network learns its own per-band
    scaling (running mean and variance per band over examples and frames).
    """

    def __init__(self, in_shape: tuple[int, int], n_classes: int, **options):
        super().__init__()
        self.bn0 = nn.BatchNorm1d(in_shape[0])
        self.cnn = SmallCNN(in_shape, n_classes, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.bn0(x))  # (B, H, W): H is the channel axis of BatchNorm1d


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int]):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if cin == cout and stride == (1, 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """stem conv -> 3 residual blocks (16, 32, 64 channels, stride 2 where the input is long
    enough) -> global average pooling -> linear."""

    def __init__(self, in_shape: tuple[int, int], n_classes: int, *,
                 channels: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        h, w = in_shape
        layers: list[nn.Module] = [nn.Conv2d(1, channels[0], 3, padding=1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU()]
        cin = channels[0]
        for cout in channels:
            s = _pool(h, w)
            layers.append(_Residual(cin, cout, s))
            h, w, cin = -(-h // s[0]), -(-w // s[1]), cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


class UserModel(nn.Module):
    """A user's module that takes (B, 1, H, W), adapted to the (B, H, W) batches we feed."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.unsqueeze(1))


def _user_model(name: str, in_shape: tuple[int, int], n_classes: int, **options) -> nn.Module:
    """Import ``package.module:factory``, build it and check the contract with a dry forward
    pass: ``factory(in_shape, n_classes, **options)`` returns an ``nn.Module`` mapping
    (B, 1, H, W) to (B, n_classes)."""
    import importlib

    from diagnostics.errors import NormScopeError

    mod_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise NormScopeError(f"model {name!r} cannot be imported ({type(exc).__name__}: {exc}); "
                             "give package.module:factory on the Python path") from None
    try:
        net = factory(tuple(in_shape), int(n_classes), **options)
    except Exception as exc:  # noqa: BLE001 -- the user's code: report it in one sentence
        raise NormScopeError(f"model factory {name} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise NormScopeError(f"model factory {name} returned a {type(net).__name__}, not a "
                             "torch.nn.Module; return the network itself")
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, 1, *in_shape))
    except Exception as exc:  # noqa: BLE001
        raise NormScopeError(f"model {name} fails on a batch of shape (2, 1, {in_shape[0]}, "
                             f"{in_shape[1]}): {type(exc).__name__}: {exc}") from None
    finally:
        net.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, int(n_classes)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NormScopeError(f"model {name} returns {got} for a batch of 2; it must return "
                             f"class scores of shape (2, {n_classes})")
    return UserModel(net)


def build_model(name: str, in_shape: tuple[int, int], n_classes: int, **options) -> nn.Module:
    """Build a model of :data:`MODELS`, or a user's ``package.module:factory``, for inputs of
    ``in_shape`` and ``n_classes``.

    The weights come from torch's global generator: seed it (or fork it) first.
    """
    builders = {"cnn": SmallCNN, "cnn_bn": lambda *a, **o: SmallCNN(*a, batch_norm=True, **o),
                "cnn_bn0": BandNormCNN, "resnet": SmallResNet, "mlp": MLP, "linear": Linear}
    if name in builders:
        return builders[name](in_shape, n_classes, **options)
    if is_import_path(name):
        return _user_model(name, in_shape, n_classes, **options)
    from diagnostics.errors import NormScopeError

    raise NormScopeError(f"model {name!r} is unknown; use {', '.join(MODELS)} or "
                         "package.module:factory")
