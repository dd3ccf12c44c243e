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


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64, target int) of scikit-learn's digits: its own file, read
    as ``load_digits`` reads it, without importing scikit-learn (about a second in every fresh
    process, e.g. each training worker); ``load_digits`` itself where the file is not found."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def digits_dataset() -> Dataset:
    """scikit-learn's 8 x 8 handwritten digits (1,797 real images shipped with the package)."""
    images, target = _digits_arrays()
    X = images.astype(np.float32)
    X.setflags(write=False)
    return Dataset(
        X=X, y=target.astype(np.int64), class_names=tuple(str(c) for c in range(10)),
        name="digits", id="digits", row_origin="upper", row_label="row", col_label="column",
    )


