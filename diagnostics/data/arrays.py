"""Array files: ``.npy`` and ``.npz`` read with ``allow_pickle=False``, memory-mapped.

Headers are parsed here, before any data is touched: a negative or overflowing dimension, an
unknown type or a header that is not a Python literal is "damaged", an object dtype is refused
as a pickle, and a file or ``.npz`` member shorter than its header says is "damaged" (with the
member's name) instead of being mapped into whatever follows it.

``.npy`` files and uncompressed (``np.savez``) members are mapped in place.  A compressed
(``np.savez_compressed``) member is inflated chunk by chunk into an anonymous temporary file
under ``NORMSCOPE_HOME/tmp`` (gone when the last map of it closes) and mapped from there, so it
never has to fit in memory.  Its declared size (the zip entry's size and the header's shape x
itemsize) is checked before anything is inflated: an upload may unpack to at most
:data:`NPZ_MAX_BYTES`, any file to at most half the free space of that folder.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import subdir
from ..errors import NormScopeError
from .dataset import Dataset, as_nhw, encode_labels, label_notes
from .files import NotRegularFile, format_bytes, free_bytes, open_regular

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
X_KEYS = ("X", "x", "data", "features")
Y_KEYS = ("y", "labels", "Y", "targets")
#: Most bytes a compressed ``.npz`` member of an upload may unpack to: twice the app's upload
#: limit (``server.maxUploadSize = 1024`` MB in ``.streamlit/config.toml``), the same bound as
#: zips of audio clips.  Files on the server are bounded by free disk space instead.
NPZ_MAX_BYTES = 2 * 2**30
#: Longest ``.npy`` header accepted (numpy's own default limit in ``np.load``).
MAX_HEADER_BYTES = 10_000
#: Inflation works in pieces of this many bytes (bounds the memory it needs).
INFLATE_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares, checked: ``offset`` bytes precede ``nbytes`` of data."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _damaged(where: str, what: str) -> NormScopeError:
    return NormScopeError(f"{where} is damaged or truncated: {what}; save it again with np.save "
                          "or np.savez")


def _objects(where: str) -> NormScopeError:
    return NormScopeError(f"{where} holds Python objects; NormScope refuses to unpickle them: "
                          "save a numeric array instead")


def read_npy_header(fh, where: str) -> NpyHeader:
    """Read and check a ``.npy`` header from a binary stream positioned at its start.

    Raises
    ------
    NormScopeError
        "damaged" for a header that is not numpy's, has negative, non-integer or overflowing
        dimensions, or an unknown type.  Object dtypes are *not* refused here (the caller says
        "holds Python objects").
    """
    magic = fh.read(8)
    if len(magic) < 8 or not magic.startswith(NPY_MAGIC):
        raise _damaged(where, "it does not start like a .npy array (NUMPY)")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise _damaged(where, f"unknown .npy format version {version[0]}.{version[1]}")
    width = 2 if version == (1, 0) else 4
    raw = fh.read(width)
    if len(raw) < width:
        raise _damaged(where, "its header is cut short")
    length = int.from_bytes(raw, "little")
    if length > MAX_HEADER_BYTES:
        raise _damaged(where, f"its header claims {length:,} bytes (at most {MAX_HEADER_BYTES:,})")
    text = fh.read(length)
    if len(text) < length:
        raise _damaged(where, "its header is cut short")
    try:
        d = ast.literal_eval(text.decode("utf-8" if version == (3, 0) else "latin1"))
    except Exception:  # noqa: BLE001 -- SyntaxError, ValueError, RecursionError, ...: all damage
        raise _damaged(where, "its header is not readable") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise _damaged(where, "its header lacks descr, fortran_order or shape")
    shape = d["shape"]
    if (not isinstance(shape, tuple)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)):
        raise _damaged(where, f"its header's shape {str(shape)[:60]} is not a tuple of integers")
    if any(s < 0 for s in shape):
        raise _damaged(where, f"its header has a negative dimension (shape {shape})")
    if not isinstance(d["fortran_order"], bool):
        raise _damaged(where, "its header's fortran_order is not True or False")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        raise _damaged(where, f"its header names an unknown type {str(d['descr'])[:60]}") from None
    hdr = NpyHeader(shape=shape, fortran=d["fortran_order"], dtype=dtype,
                    offset=8 + width + length)
    if hdr.nbytes >= 2**62 or (shape and math.prod(shape) >= 2**62):
        raise _damaged(where, f"its header's shape {shape} overflows (more bytes than any disk "
                       "holds)")
    return hdr


def _map(source, hdr: NpyHeader, offset: int) -> np.ndarray:
    """Read-only map of ``hdr.nbytes`` at ``offset`` of ``source`` (a path or an open file)."""
    if hdr.nbytes == 0:
        out = np.zeros(hdr.shape, hdr.dtype)
        out.setflags(write=False)
        return out
    return np.memmap(source, dtype=hdr.dtype, mode="r", offset=offset, shape=hdr.shape,
                     order="F" if hdr.fortran else "C")


def _open(path: Path):
    """Open an array file for reading; FIFOs, devices and folders are refused, never read."""
    try:
        return open_regular(path)
    except NotRegularFile as exc:
        raise NormScopeError(f"{path} {exc.strerror}; give a .npy or .npz file") from None
    except OSError as exc:
        raise NormScopeError(f"cannot read {path}: {exc.strerror}") from None


def _check_pickle(head: bytes, path: Path) -> None:
    if head.startswith(b"\x80") or head.startswith(b"("):
        raise NormScopeError(
            f"{path} is a Python pickle; NormScope never unpickles files: save the array "
            "with np.save or np.savez instead"
        )


def _load_npy(path: Path) -> np.ndarray:
    with _open(path) as fh:
        head = fh.read(8)
        _check_pickle(head, path)
        if not head.startswith(NPY_MAGIC):
            raise NormScopeError(f"{path} is not a .npy array file (its first bytes are not "
                                 "NUMPY's)")
        fh.seek(0)
        hdr = read_npy_header(fh, str(path))
        if hdr.dtype.hasobject:
            raise _objects(str(path))
        size = os.fstat(fh.fileno()).st_size
        if hdr.offset + hdr.nbytes > size:
            raise _damaged(str(path), f"it holds {max(size - hdr.offset, 0):,} bytes of data but "
                           f"its header (shape {hdr.shape}, {hdr.dtype}) says {hdr.nbytes:,}")
        try:
            return _map(fh, hdr, hdr.offset)
        except (OSError, ValueError) as exc:
            raise NormScopeError(f"{path} cannot be mapped ({exc}); save it again") from None


def _spool_dir() -> Path:
    try:
        return subdir("tmp")
    except NormScopeError:
        return Path(tempfile.gettempdir())


def _inflate(src, hdr: NpyHeader, where: str, spool: Path) -> np.ndarray:
    """Copy ``hdr.nbytes`` from the member stream into an anonymous file and map it."""
    try:
        tmp = tempfile.TemporaryFile(dir=spool)
    except OSError as exc:
        raise NormScopeError(f"cannot unpack {where}: {exc.strerror} in {spool}; free some disk "
                             "space or set NORMSCOPE_HOME to a writable folder") from None
    with tmp:
        try:
            left = hdr.nbytes
            while left:
                chunk = src.read(min(INFLATE_CHUNK, left))
                if not chunk:
                    raise _damaged(where, f"it holds {hdr.nbytes - left:,} bytes of data but its "
                                   f"header (shape {hdr.shape}, {hdr.dtype}) says {hdr.nbytes:,}")
                tmp.write(chunk)
                left -= len(chunk)
            src.read(1 << 16)  # reach the end of the member, where zipfile checks its CRC
            tmp.flush()
        except OSError as exc:
            raise NormScopeError(f"cannot unpack {where}: {exc.strerror} in {spool}; free some "
                                 "disk space, or save the file with np.savez (uncompressed, "
                                 "read in place)") from None
        try:
            return _map(tmp, hdr, 0)
        except (OSError, ValueError) as exc:
            raise NormScopeError(f"cannot map the unpacked {where} ({exc})") from None


def _npz_member(path: Path, fh, zf: zipfile.ZipFile, name: str,
                max_unpacked: int | None) -> np.ndarray:
    """One member of an open ``.npz``: checked, then mapped in place or inflated to disk."""
    where = f"{path} (member {name})"
    info = zf.getinfo(name)
    archive_size = os.fstat(fh.fileno()).st_size
    compressed = info.compress_type != zipfile.ZIP_STORED
    spool = _spool_dir() if compressed else None
    limit = None
    if compressed:
        free = free_bytes(spool)
        limits = [v for v in (max_unpacked, None if free is None else free // 2) if v is not None]
        limit = min(limits) if limits else None

    def too_big(n: int) -> NormScopeError:
        if max_unpacked is not None and n > max_unpacked:
            return NormScopeError(
                f"{path}: member {name} unpacks to {format_bytes(n)}, more than the "
                f"{format_bytes(max_unpacked)} allowed for uploads; put the file on the server "
                "under the data root, or save it with np.savez (uncompressed)")
        return NormScopeError(
            f"{path}: member {name} unpacks to {format_bytes(n)} and only "
            f"{format_bytes(2 * limit)} are free in {spool} (half may be used); free some disk "
            "space, or save the file with np.savez (uncompressed, read in place)")

    # The zip entry's declared size first: a bomb is refused before one byte is inflated.
    if limit is not None and info.file_size > limit + MAX_HEADER_BYTES + 16:
        raise too_big(info.file_size)
    try:
        with zf.open(info) as src:
            hdr = read_npy_header(src, where)
            if hdr.dtype.hasobject:
                raise _objects(where)
            if hdr.offset + hdr.nbytes > info.file_size:
                raise _damaged(where, f"it holds {max(info.file_size - hdr.offset, 0):,} bytes "
                               f"of data but its header (shape {hdr.shape}, {hdr.dtype}) says "
                               f"{hdr.nbytes:,}")
            if compressed:
                if limit is not None and hdr.nbytes > limit:
                    raise too_big(hdr.nbytes)
                return _inflate(src, hdr, where, spool)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise _damaged(where, str(exc)) from None
    except RuntimeError as exc:  # encrypted members
        raise NormScopeError(f"{where} cannot be read ({exc}); save it with np.savez") from None
    except NotImplementedError as exc:
        raise NormScopeError(f"{where} uses an unsupported compression ({exc}); save it with "
                             "np.savez or np.savez_compressed") from None
    # Stored (np.savez): map in place, after checking that the data lies inside the entry.
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) < 30 or not local.startswith(ZIP_MAGIC):
        raise _damaged(where, "its zip entry header is missing")
    start = (info.header_offset + 30 + int.from_bytes(local[26:28], "little")
             + int.from_bytes(local[28:30], "little"))
    end = start + hdr.offset + hdr.nbytes
    if hdr.offset + hdr.nbytes > info.compress_size or end > archive_size:
        raise _damaged(where, f"its data runs past the end of the entry (header shape "
                       f"{hdr.shape}, {hdr.dtype})")
    try:
        return _map(fh, hdr, start + hdr.offset)
    except (OSError, ValueError) as exc:
        raise NormScopeError(f"{where} cannot be mapped ({exc}); save it again") from None


def _load_npz(path: Path, *, max_unpacked: int | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
    with _open(path) as fh:
        head = fh.read(8)
        _check_pickle(head, path)
        if not head.startswith(b"PK"):
            # Checked here, not left to a zip reader, so a pickle never reaches a pickle reader.
            raise NormScopeError(f"{path} is not a .npz archive (not a zip file); save it with "
                                 "np.savez(path, X=X, y=y)")
        fh.seek(0)
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise NormScopeError(
                f"{path} is not a readable .npz archive ({exc}): it is damaged or truncated; "
                "save it again with np.savez"
            ) from None
        with zf:
            # The names np.load gives the members: "X.npy" is "X".
            members = {(n[:-4] if n.endswith(".npy") else n): n for n in zf.namelist()}
            xkey = next((k for k in X_KEYS if k in members), None)
            if xkey is None:
                raise NormScopeError(
                    f"{path} has no array named X (it has: {', '.join(members) or 'nothing'}); "
                    "save it with np.savez(path, X=X, y=y)"
                )
            ykey = next((k for k in Y_KEYS if k in members), None)
            X = _npz_member(path, fh, zf, members[xkey], max_unpacked)
            y = (np.array(_npz_member(path, fh, zf, members[ykey], max_unpacked))
                 if ykey else None)
    return X, y


def file_id(path: Path) -> str:
    """A stable id for a file: its resolved path, size and modification time, hashed."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return "f" + hashlib.sha256(key).hexdigest()[:11]


def load_array_file(path: str | os.PathLike, labels: str | os.PathLike | None = None, *,
                    max_unpacked: int | None = None) -> Dataset:
    """Load a ``.npy`` (X) or ``.npz`` (X and y) file, memory-mapped.

    Parameters
    ----------
    path : path-like
        ``.npy`` holding X, or ``.npz`` holding ``X`` (or ``x``) and optionally ``y``
        (or ``labels``).
    labels : path-like, optional
        ``.npy`` of labels, one per example; overrides labels inside an ``.npz``.
    max_unpacked : int, optional
        Most bytes a compressed ``.npz`` member may unpack to (uploads: :data:`NPZ_MAX_BYTES`);
        half the free space of the temporary folder bounds it in any case.

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
        X, y = _load_npz(path, max_unpacked=max_unpacked)
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


