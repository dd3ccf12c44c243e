"""Array files: ``.npy`` and ``.npz`` read with ``allow_pickle=False``, memory-mapped where the
format allows (``.npy`` and uncompressed ``.npz`` members)."""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import NormScopeError
from .dataset import Dataset, as_nhw, encode_labels, label_notes

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
X_KEYS = ("X", "x", "data", "features")
Y_KEYS = ("y", "labels", "Y", "targets")


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
    X = as_nhw(X, str(path))
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


