"""Tiny labelled spectrogram-like data for training tests (fast on one CPU thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_arrays(seed: int = 0, *, n: int = 90, h: int = 12, w: int = 16,
                classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(n, h, w) float32 power: exponential noise plus a class-specific loud band; top rows
    carry only a faint floor (like the demo's noise-only rows)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    X = rng.exponential(1.0, (n, h, w))
    X[:, h - 3 :] *= 0.002
    for i, c in enumerate(y):
        band = 1 + 3 * int(c)
        X[i, band : band + 2] += 8.0 * rng.exponential(1.0, (2, w))
    return X.astype(np.float32), y.astype(np.int64)


def write_tiny_npz(path: Path, seed: int = 0, **kw) -> Path:
    X, y = tiny_arrays(seed, **kw)
    np.savez(path, X=X, y=y)
    return path


def wait_for(pred, timeout: float = 60.0) -> bool:
    """Poll ``pred`` every 50 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def run_until(at, done, timeout: float = 180.0, what: str = "the comparison"):
    """Run the AppTest ``at`` until ``done(at)``: each ``at.run()`` is one tick of the page's
    monitor fragment (AppTest does not tick by itself); never an exception on the way."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.5)
    raise AssertionError(f"{what} did not finish in time")

