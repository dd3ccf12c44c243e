"""Datasets: one validated shape for every source, a stable id, and a deterministic split.

Every source (built-in, ``.npy``/``.npz`` file, later audio folders and uploads) ends as a
:class:`Dataset`.  Validation happens here, once, at the boundary; everything downstream may
assume ``X`` is (N, H, W) real numbers and ``y`` is (N,) class indices or None.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NormScopeError

BUILTINS = ("demo", "digits")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
X_KEYS = ("X", "x", "data", "features")
Y_KEYS = ("y", "labels", "Y", "targets")


@dataclass(frozen=True, eq=False)
class Dataset:
    """N examples of H x W, optional labels, and where they came from.

    Attributes
    ----------
    X : np.ndarray, shape (N, H, W)
        Real values; float32 in memory or a read-only memmap of the file.
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


def _as_nhw(X: np.ndarray, where: str) -> np.ndarray:
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
    if X.dtype != np.float32 and not isinstance(X, np.memmap):
        X = X.astype(np.float32)
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


def _check_magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except IsADirectoryError:
        raise NormScopeError(f"{path} is a folder, not an array file (.npy or .npz)") from None
    except OSError as exc:
        raise NormScopeError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(b"\x80") or head.startswith(b"("):
        raise NormScopeError(
            f"{path} is a Python pickle; NormScope never unpickles files: save the array "
            "with np.save or np.savez instead"
        )
    return head


def _memmap_npz_member(path: Path, member: str) -> np.ndarray | None:
    """Memmap an uncompressed (np.savez) member of an .npz, or None when it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        fh.seek(start)
        version = np.lib.format.read_magic(fh)
        # Public header readers only (numpy 2 has no _read_array_header in np.lib.format);
        # a version 3 header falls back to a normal, non-mapped load.
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            return None
        shape, fortran, dtype = readers[version](fh)
        offset = fh.tell()
    if dtype.hasobject or fortran:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _load_npy(path: Path) -> np.ndarray:
    head = _check_magic(path)
    if not head.startswith(NPY_MAGIC):
        raise NormScopeError(f"{path} is not a .npy array file (its first bytes are not NUMPY's)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise NormScopeError(
                f"{path} holds Python objects; NormScope refuses to unpickle them: save a "
                "numeric array instead"
            ) from None
        raise NormScopeError(f"{path} is damaged or truncated ({exc}); save it again") from None
    except OSError as exc:
        raise NormScopeError(f"{path} cannot be read ({exc}); save it again") from None
    return arr


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not _check_magic(path).startswith(b"PK"):
        # Checked here, not left to np.load, so a pickle never even reaches a pickle reader.
        raise NormScopeError(
            f"{path} is not a .npz archive (not a zip file); save it with np.savez(path, X=X, y=y)"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise NormScopeError(
            f"{path} is not a readable .npz archive ({exc}): it is damaged or truncated; "
            "save it again with np.savez"
        ) from None
    with npz:
        keys = list(npz.files)
        xkey = next((k for k in X_KEYS if k in keys), None)
        if xkey is None:
            raise NormScopeError(
                f"{path} has no array named X (it has: {', '.join(keys) or 'nothing'}); "
                "save it with np.savez(path, X=X, y=y)"
            )
        ykey = next((k for k in Y_KEYS if k in keys), None)
        try:
            X = _memmap_npz_member(path, xkey + ".npy")
            if X is None:
                X = npz[xkey]
            y = npz[ykey] if ykey else None
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "object" in str(exc).lower():
                raise NormScopeError(
                    f"{path} holds Python objects; NormScope refuses to unpickle them: save "
                    "numeric arrays instead"
                ) from None
            raise NormScopeError(f"{path} is damaged or truncated ({exc}); save it again") from None
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise NormScopeError(f"{path} is damaged or truncated ({exc}); save it again") from None
    return X, y


def file_id(path: Path) -> str:
    """A stable id for a file: its resolved path, size and modification time, hashed."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return "f" + hashlib.sha256(key).hexdigest()[:11]


def load_array_file(path: str | os.PathLike, labels: str | os.PathLike | None = None) -> Dataset:
    """Load a ``.npy`` (X) or ``.npz`` (X and y) file, memory-mapped where possible.

    Parameters
    ----------
    path : path-like
        ``.npy`` holding X, or ``.npz`` holding ``X`` (or ``x``) and optionally ``y``
        (or ``labels``).
    labels : path-like, optional
        ``.npy`` of labels, one per example; overrides labels inside an ``.npz``.

    Raises
    ------
    NormScopeError
        For every problem, with a sentence that says what to do.
    """
    path = Path(path)
    if not path.exists():
        raise NormScopeError(f"{path} does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        X, y = _load_npy(path), None
    elif suffix == ".npz":
        X, y = _load_npz(path)
    else:
        raise NormScopeError(f"{path} is not an array file; give a .npy or .npz file")
    X = _as_nhw(X, str(path))
    if labels is not None:
        lpath = Path(labels)
        if not lpath.exists():
            raise NormScopeError(f"labels file {lpath} does not exist; check the path")
        if lpath.suffix.lower() != ".npy":
            raise NormScopeError(f"labels file {lpath} is not a .npy file")
        y = np.asarray(_load_npy(lpath))
    class_names: tuple[str, ...] = ()
    if y is not None:
        y, class_names = encode_labels(y, X.shape[0], str(labels or path))
    ident = file_id(path)
    if labels is not None:
        ident = "f" + hashlib.sha256((ident + file_id(Path(labels))).encode()).hexdigest()[:11]
    return Dataset(
        X=X, y=y, class_names=class_names, name=path.name, id=ident,
        notes=label_notes(y, class_names),
    )


def demo_dataset() -> Dataset:
    """The built-in spectrogram demo (see :mod:`diagnostics.demo`)."""
    from .demo import CLASS_NAMES, make_demo

    X, y = make_demo()
    X.setflags(write=False)
    return Dataset(X=X, y=y, class_names=CLASS_NAMES, name="demo", id="demo")


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


def load_dataset(spec: str, *, labels: str | None = None, params=None, workers: int | None = None,
                 progress=None, root: str | os.PathLike | None = None) -> Dataset:
    """Open a dataset: a built-in (``demo``, ``digits``), a registered id, an audio folder, a
    ``.csv`` manifest (``path,label``) or a ``.npy``/``.npz`` file.

    Audio sources take ``params`` (:class:`diagnostics.audio.FeatureParams`), ``workers`` and
    ``progress(done, total)`` and are registered (their id is the content id).  With ``root``
    (the app: :func:`diagnostics.registry.data_root`) every path must lie under it.  See
    :func:`diagnostics.registry.open_source`.
    """
    if spec == "demo":
        return demo_dataset()
    if spec == "digits":
        return digits_dataset()
    from .registry import open_source

    return open_source(spec, labels=labels, params=params, workers=workers, progress=progress,
                       root=root)
