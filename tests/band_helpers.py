"""A speech-like dataset whose low-SNR rows carry the class (shared by unit and AppTest tests)."""

from __future__ import annotations

import numpy as np

from diagnostics.data.dataset import Dataset


def speechlike(rng, n=300):
    """Rows 0-7 carry a class-specific burst at a random time (low pixel SNR, informative);
    rows 8-11 steady noise (high SNR, no class information)."""
    H, W = 12, 40
    y = np.arange(n) % 3
    X = np.empty((n, H, W))
    X[:, 8:] = 1.0 + 0.3 * rng.random((n, 4, W))
    X[:, :8] = 1e-3 * rng.exponential(1.0, (n, 8, W))
    for i in range(n):
        t = rng.integers(0, W - 6)
        band = slice(0, 4) if y[i] == 0 else slice(2, 6) if y[i] == 1 else slice(4, 8)
        X[i, band, t : t + 6] += 50.0 * rng.exponential(1.0, (4, 6))
    return Dataset(X=X.astype(np.float32), y=y, class_names=("a", "b", "c"), name="s", id="s")
