"""The built-in datasets: the synthetic spectrogram demo and scikit-learn's 8 x 8 digits."""

from __future__ import annotations

import functools

import numpy as np

from .dataset import Dataset

BUILTINS = ("demo", "digits")


@functools.lru_cache(maxsize=1)
def _demo_arrays() -> tuple[np.ndarray, np.ndarray]:
    # Made once a process (its generator loops over the 1,200 examples: about a second), then
    # shared read-only: 37 MB that every page, comparison and test of the demo reads.
    from diagnostics.data.demo import make_demo

    X, y = make_demo()
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def demo_dataset() -> Dataset:
    """The built-in spectrogram demo (see :mod:`diagnostics.data.demo`)."""
    from diagnostics.data.demo import CLASS_NAMES

    X, y = _demo_arrays()
    return Dataset(X=X, y=y.copy(), class_names=CLASS_NAMES, name="demo", id="demo")


def digits_dataset() -> Dataset:
    """scikit-learn's 8 x 8 handwritten digits (1,797 real images shipped with the package)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.images.astype(np.float32)
    X.setflags(write=False)
    return Dataset(
        X=X, y=d.target.astype(np.int64), class_names=tuple(str(c) for c in d.target_names),
        name="digits", id="digits", row_origin="upper", row_label="row", col_label="column",
    )


