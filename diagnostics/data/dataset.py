"""Datasets: one validated shape for every source, and a deterministic split.

Every source (built-in, ``.npy``/``.npz`` file, audio folder, upload) ends as a
:class:`Dataset`.  Validation happens at the boundary, once; everything downstream may assume
``X`` is (N, H, W) real numbers and ``y`` is (N,) class indices or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import NormScopeError

@dataclass(frozen=True, eq=False)
class Dataset:
    """N examples of H x W, optional labels, and where they came from.

    Attributes
    ----------
    X : np.ndarray, shape (N, H, W)
        Real values: float32 in memory (float64 where float32 would round them, see
        :func:`storage_dtype`) or a read-only memmap of the file in its own dtype.
    y : np.ndarray of int64, shape (N,), or None
        Class index of each example into ``class_names``.
    class_names : tuple of str
        Name of each class (empty without labels).
    name : str
        What the user calls it (file name or built-in name).
    id : str
        Stable identifier: the built-in's name, or a hash for files.
    row_origin : {"lower", "upper"}
        Where row 0 is drawn: spectrograms put band 0 at the bottom, images at the top.
    notes : tuple of str
        Warnings found while loading (small classes, imbalance, ...).
    """

    X: np.ndarray
    y: np.ndarray | None
    class_names: tuple[str, ...]
    name: str
    id: str
    row_origin: str = "lower"
    row_label: str = "frequency band"
    col_label: str = "frame"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.X.shape[1]), int(self.X.shape[2])

    @property
    def row_noun(self) -> str:
        """What a row is called in sentences: "band" for a frequency band, else the row label
        ("12 of 60 bands masked", "3 MFCC coefficients")."""
        return "band" if self.row_label == "frequency band" else self.row_label


@dataclass(frozen=True, eq=False)
class Split:
    """Sorted example indices of the train, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise NormScopeError(f"split part {name!r} is unknown; use train, val or test")
        return getattr(self, name)


def split_indices(
    n: int,
    y: np.ndarray | None = None,
    *,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """Deterministic, stratified train/val/test split.

    Each class is shuffled with ``seed`` and cut by ``fractions``, so every part holds every
    class in proportion (classes with fewer than 3 examples go to train first).  Without labels
    the whole range is shuffled and cut.

    Returns
    -------
    Split
        Three sorted int64 index arrays that partition ``range(n)``.
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for idx in groups:
        idx = rng.permutation(idx)
        m = len(idx)
        n_val = int(round(m * fractions[1]))
        n_test = int(round(m * fractions[2]))
        if m - n_val - n_test < 1:  # a tiny class keeps at least one training example
            n_val, n_test = (m - 1) // 2, (m - 1) - (m - 1) // 2
        parts[0].append(idx[: m - n_val - n_test])
        parts[1].append(idx[m - n_val - n_test : m - n_test])
        parts[2].append(idx[m - n_test :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return Split(train, val, test)


def storage_dtype(dtype) -> np.dtype:
    """The dtype values of ``dtype`` are kept in: float32 where that is exact, else float64.

    bool, (u)int8/16 and float16/32 convert to float32 without changing a single value, so
    no statistic and no constant-pixel decision can change.  float64 (and (u)int32/64, which
    float32 would round) stay float64: a float64 source whose values differ in the 9th digit
    keeps its variance, and values beyond float32's range (3.4e38) never become inf.
    """
    dtype = np.dtype(dtype)
    exact = (dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2)
             or (dtype.kind == "f" and dtype.itemsize <= 4))
    return np.dtype("<f4") if exact else np.dtype("<f8")


def as_nhw(X: np.ndarray, where: str) -> np.ndarray:
    """Return X as (N, H, W), accepting (N, H, W, 1) and (N, 1, H, W); views, never copies."""
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    elif X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 3:
        raise NormScopeError(
            f"{where} holds an array of shape {tuple(X.shape)}; NormScope needs examples of "
            "H x W: (N, H, W), (N, H, W, 1) or (N, 1, H, W); reshape it and save it again"
        )
    if X.shape[0] < 1 or X.shape[1] < 1 or X.shape[2] < 1:
        raise NormScopeError(f"{where} holds an empty array of shape {tuple(X.shape)}")
    if X.dtype.kind not in "fiub":
        raise NormScopeError(
            f"{where} holds values of type {X.dtype}; NormScope needs real numbers "
            "(float or integer); convert the array with X.astype('float32')"
        )
    if not isinstance(X, np.memmap):
        keep = storage_dtype(X.dtype)
        if X.dtype != keep:
            X = X.astype(keep.newbyteorder("="))
    return X


def encode_labels(labels: np.ndarray, n: int, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map integer or string labels to class indices 0..C-1 and class names."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise NormScopeError(
            f"{where}: labels have shape {labels.shape}; they must be one label per example, "
            "shape (N,)"
        )
    if len(labels) != n:
        raise NormScopeError(
            f"{where}: {len(labels)} labels for {n} examples; give exactly one label per example"
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise NormScopeError(
                f"{where}: labels are non-integer floats; labels must be integers or strings"
            )
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iubUS":
        raise NormScopeError(
            f"{where}: labels of type {labels.dtype} are not supported; use integers or strings"
        )
    values, y = np.unique(labels, return_inverse=True)
    names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)
    return y.astype(np.int64).reshape(-1), names


def label_notes(y: np.ndarray | None, class_names: tuple[str, ...]) -> tuple[str, ...]:
    """Warnings about labels: classes too small to split, strong imbalance."""
    if y is None:
        return ()
    counts = np.bincount(y, minlength=len(class_names))
    notes = []
    small = [class_names[c] for c in np.flatnonzero(counts < 2)]
    if small:
        notes.append(
            f"{len(small)} class(es) have fewer than 2 examples ({', '.join(small[:5])}): "
            "no stratified split is possible for them"
        )
    if len(counts) > 1 and counts.min() > 0 and counts.max() / counts.min() >= 10:
        notes.append(
            f"classes are strongly imbalanced: the largest has {counts.max()} examples, the "
            f"smallest {counts.min()} ({counts.max() / counts.min():.0f}x)"
        )
    return tuple(notes)


