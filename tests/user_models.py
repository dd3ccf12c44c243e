"""Models a user might plug in with ``--model user_models:<factory>`` (and broken ones)."""

from __future__ import annotations

import torch
from torch import nn


def tiny(in_shape, n_classes, **options):
    """A valid factory: (B, 1, H, W) -> (B, n_classes)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1], n_classes))


def not_a_module(in_shape, n_classes):
    return "a string"


def wrong_output(in_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1], n_classes + 1))


def fails_forward(in_shape, n_classes):
    return nn.Linear(3, n_classes)  # cannot take (B, 1, H, W)


def raises(in_shape, n_classes):
    raise RuntimeError("no GPU here")


class Explodes(nn.Module):
    """Fine on the dry run; raises once training starts."""

    def __init__(self, in_shape, n_classes):
        super().__init__()
        self.fc = nn.Linear(in_shape[0] * in_shape[1], n_classes)

    def forward(self, x):
        if self.training:
            raise RuntimeError("exploded mid-training")
        return self.fc(torch.flatten(x, 1))


def explodes(in_shape, n_classes):
    return Explodes(in_shape, n_classes)
