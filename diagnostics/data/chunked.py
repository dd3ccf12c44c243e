"""Chunked sources: zarr (v3) arrays and HDF5 datasets, read chunk by chunk, never whole.

Specs (CLI, app, registered references):

* ``store.zarr`` -- a zarr array, or a zarr group holding ``X`` (or ``x``, ``data``,
  ``features``) and optionally ``y`` (or ``labels``, ``Y``, ``targets``);
* ``store.zarr/X`` -- an array inside a group; labels are a sibling array of the group;
* ``file.h5:/path/to/X`` (also ``.hdf5``, ``.hdf``) -- an HDF5 dataset; labels are a sibling
  dataset of the same group; ``file.h5`` alone looks for ``X`` at the root.

Labels can instead come from a ``.npy`` (``--labels``).  :class:`ChunkedArray` is a read-only
(N, H, W) view in the source's own dtype (like a memmap of a ``.npy``): it supports the row
indexing the rest of NormScope uses (``X[a:b]``, ``X[int array]``, ``X[i]``) and keeps the last
chunk it decoded (per thread), so reading rows in order decodes each chunk once.  Chunks whose
bytes are the rows themselves, or one self-describing codec's frame, are read without the
library (see :mod:`~diagnostics.data.chunkio`).  It pickles by path and reopens read-only in the
other process (Dask workers, training workers).

zarr and h5py are imported only when such a source is opened.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NormScopeError
from .chunkio import (ChunkBuffers, ChunkLayout, _fingerprint, layout_of, read_packed,
                      read_raw)
from .dataset import Dataset, encode_labels, label_notes

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
X_KEYS = ("X", "x", "data", "features")
Y_KEYS = ("y", "labels", "Y", "targets")


@dataclass(frozen=True)
class ChunkedSpec:
    """Where a chunked array lives: ``kind`` (zarr | hdf5), the file or store ``path``
    (absolute), the array's ``key`` inside it ('' for a bare zarr array)."""

    kind: str
    path: str
    key: str

    def text(self) -> str:
        """The spec as a user writes it (and as a worker reopens it)."""
        if self.kind == "hdf5":
            return f"{self.path}:{self.key}"
        return self.path if not self.key else f"{self.path}/{self.key}"


def parse_spec(text: str) -> ChunkedSpec | None:
    """The :class:`ChunkedSpec` that ``text`` names, or None if it names no chunked source."""
    text = os.fspath(text).strip()
    low = text.lower()
    for suf in H5_SUFFIXES:
        if low.endswith(suf):
            return ChunkedSpec("hdf5", str(Path(text).expanduser().absolute()), "")
        cut = low.find(suf + ":")
        if cut > 0:
            path, key = text[: cut + len(suf)], text[cut + len(suf) + 1:]
            return ChunkedSpec("hdf5", str(Path(path).expanduser().absolute()), key or "/")
    p = Path(text).expanduser().absolute()
    # A zarr store: folders with zarr.json (v3) or .zarray/.zgroup (v2); its root is the
    # outermost such folder above the named node.
    root = _zarr_root_of(p)
    if root is None and p.suffix.lower() == ".zarr":
        root = p  # named like a store but not one: opening it says so
    if root is None:
        return None
    key = p.relative_to(root).as_posix()
    return ChunkedSpec("zarr", str(root), "" if key == "." else key)


def _zarr_root_of(p: Path) -> Path | None:
    """The outermost folder of ``p`` and its parents that is a zarr node (the store root)."""
    root = None
    for cand in (p, *p.parents):
        if cand.is_dir() and any((cand / m).is_file() for m in ("zarr.json", ".zgroup", ".zarray")):
            root = cand
        elif root is not None:
            break
    return root


def _import(kind: str):
    try:
        if kind == "zarr":
            import zarr
            return zarr
        import h5py
        return h5py
    except ImportError:  # pragma: no cover - both are in requirements.txt
        raise NormScopeError(f"reading {kind} needs the {kind if kind == 'zarr' else 'h5py'} "
                             "package; pip install -r requirements.txt") from None


class ChunkedArray:
    """Read-only (N, H, W) rows of a zarr array or HDF5 dataset (see the module docstring).

    Attributes: ``shape``, ``dtype``, ``ndim``, ``chunk_rows`` (rows per source chunk),
    ``spec`` (:class:`ChunkedSpec`).  A trailing or leading singleton axis of a 4-D source
    ((N, H, W, 1) or (N, 1, H, W)) is dropped, as for ``.npy`` files.
    """

    def __init__(self, spec: ChunkedSpec, shape4: tuple[int, ...], dtype: np.dtype,
                 chunk_rows: int):
        self.spec = spec
        self._shape4 = tuple(int(s) for s in shape4)
        s4 = self._shape4
        if len(s4) == 4:  # (N, 1, H, W) or (N, H, W, 1)
            self.shape = (s4[0], s4[2], s4[3]) if s4[1] == 1 else (s4[0], s4[1], s4[2])
        else:
            self.shape = s4
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.chunk_rows = max(1, int(chunk_rows))
        self._local = threading.local()
        self._handle = None
        self._layout: ChunkLayout | None = None
        self._lock = threading.Lock()

    # -- pickling: by path, reopened lazily ----------------------------------------------------
    def __getstate__(self):
        return {"spec": self.spec, "shape4": self._shape4, "dtype": self.dtype.str,
                "chunk_rows": self.chunk_rows}

    def __setstate__(self, st):
        self.__init__(st["spec"], st["shape4"], np.dtype(st["dtype"]), st["chunk_rows"])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"ChunkedArray({self.spec.text()!r}, shape={self.shape}, dtype={self.dtype})"

    def _array(self):
        with self._lock:
            if self._handle is None:
                self._handle = _open_node(self.spec)[0]
            return self._handle

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def layout(self) -> ChunkLayout:
        """How each chunk is read (see :mod:`~diagnostics.data.chunkio`), found once."""
        node = self._array()
        with self._lock:
            if self._layout is None:
                self._layout = layout_of(self.spec.kind, node, self._shape4, self.dtype,
                                         self.chunk_rows)
            return self._layout

    def buffers(self) -> ChunkBuffers:
        """Reused buffers for :meth:`read_chunk`: one set per worker thread."""
        return ChunkBuffers(self.chunk_rows, self.shape[1:], self.dtype)

    def read_chunk(self, k: int, bufs: ChunkBuffers | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
        """The rows of chunk ``k`` (rows ``k * chunk_rows`` on), in ``out`` (``chunk_rows``
        rows) or ``bufs.chunk`` (valid until its next use) when given, else a new array."""
        a, cr = k * self.chunk_rows, self.chunk_rows
        m = min(cr, self.shape[0] - a)
        lay = self.layout()
        if out is None:
            out = bufs.chunk if bufs is not None else np.empty((cr, *self.shape[1:]), self.dtype)
        if lay.raw(k) is not None:
            return read_raw(lay, k, np.arange(m), self.row_bytes, out)
        if lay.compressed(k) is not None:  # every stored chunk decodes to chunk_rows rows
            scratch = bufs if bufs is not None else ChunkBuffers(0, self.shape[1:], self.dtype)
            lay.decoder.decode(read_packed(lay.files[k], scratch), out=out.reshape(-1))
            return out[:m]
        node = self._array()
        if self.spec.kind == "hdf5":  # h5py decodes straight into the buffer
            node.read_direct(out[:m].reshape(m, *self._shape4[1:]), np.s_[a : a + m])
        else:
            np.copyto(out[:m], np.asarray(node[a : a + m]).reshape(m, *self.shape[1:]))
        return out[:m]

    def read_rows(self, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` as (b - a, H, W) in the source's dtype, chunk by chunk: raw rows read
        straight into the result, whole chunks decoded into it."""
        out = np.empty((b - a, *self.shape[1:]), self.dtype)
        cr, lay = self.chunk_rows, self.layout()
        for k in range(a // cr, -(-b // cr)):
            lo, hi = max(a, k * cr), min(b, (k + 1) * cr)
            if lay.raw(k) is not None:
                read_raw(lay, k, np.arange(lo - k * cr, hi - k * cr), self.row_bytes, out[lo - a:])
            elif hi - lo == cr:
                self.read_chunk(k, out=out[lo - a : hi - a])
            else:
                out[lo - a : hi - a] = self.chunk(k)[lo - k * cr : hi - k * cr]
        return out

    def chunk(self, k: int) -> np.ndarray:
        """Source chunk ``k`` (rows ``k * chunk_rows`` on), the last one kept per thread."""
        hit = getattr(self._local, "chunk", None)
        if hit is not None and hit[0] == k:
            return hit[1]
        x = self.read_chunk(k)
        x.setflags(write=False)
        self._local.chunk = (k, x)
        return x

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted or not, repeats allowed) as a new array, each chunk decoded
        once (of a raw chunk, only the rows asked for are read)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        n = self.shape[0]
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        out = np.empty((rows.size, *self.shape[1:]), self.dtype)
        if rows.size == 0:
            return out
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        ks = srt // self.chunk_rows
        cuts = np.flatnonzero(np.diff(ks)) + 1
        lay = self.layout()
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), srt.size]):
            k = int(ks[lo])
            local = srt[lo:hi] - k * self.chunk_rows
            if lay.raw(k) is not None:
                want = local[np.concatenate(([True], local[1:] != local[:-1]))]
                got = read_raw(lay, k, want, self.row_bytes,
                               np.empty((want.size, *self.shape[1:]), self.dtype))
                out[order[lo:hi]] = got[np.searchsorted(want, local)]
            else:
                out[order[lo:hi]] = self.chunk(k)[local]
        return out

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = (key[0] if key else slice(None)), key[1:]
        if isinstance(key, (int, np.integer)):
            out = self.take(np.array([int(key)]))[0]
        elif isinstance(key, slice):
            a, b, step = key.indices(self.shape[0])
            if step == 1 and (b - a >= self.chunk_rows or self.layout().kind == "raw"):
                out = self.read_rows(a, b) if b > a else np.empty((0, *self.shape[1:]), self.dtype)
            else:
                out = self.take(np.arange(a, b, step))
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            out = self.take(arr)
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype=None, copy=None):
        x = self[:]
        return x if dtype is None else x.astype(dtype)


def _open_node(spec: ChunkedSpec):
    """The array node of ``spec`` (read-only) and its container (group or file) or None."""
    lib = _import(spec.kind)
    where = spec.text()
    if spec.kind == "zarr":
        if not Path(spec.path).is_dir():
            raise NormScopeError(f"{spec.path} does not exist or is not a zarr store (a folder); "
                                 "check the path")
        try:
            node = lib.open(spec.path, mode="r", path=spec.key or None) if spec.key else \
                lib.open(spec.path, mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises many kinds for a bad store
            raise NormScopeError(f"{where} is not a readable zarr array or group ({type(exc).__name__}: "
                                 f"{str(exc)[:120]}); write it with zarr.create_array") from None
        if isinstance(node, lib.Group):
            key = next((k for k in X_KEYS if k in node), None)
            if key is None:
                raise NormScopeError(f"zarr group {where} has no array named X (it has: "
                                     f"{', '.join(sorted(node.keys())) or 'nothing'}); name the "
                                     "array, e.g. store.zarr/X")
            return node[key], node
        parent = None
        if spec.key:
            try:
                parent_key = str(Path(spec.key).parent)
                parent = lib.open_group(spec.path, mode="r",
                                        path=None if parent_key in ("", ".") else parent_key)
            except Exception:  # noqa: BLE001 - no group above: labels from --labels only
                parent = None
        return node, parent
    if not Path(spec.path).is_file():
        raise NormScopeError(f"{spec.path} does not exist; check the path")
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # readers share the file
    try:
        f = lib.File(spec.path, "r")
    except OSError as exc:
        raise NormScopeError(f"{spec.path} is not a readable HDF5 file ({str(exc)[:100]}); "
                             "check the path") from None
    key = spec.key or ""
    if key in ("", "/"):
        key = next((k for k in X_KEYS if k in f), None)
        if key is None:
            raise NormScopeError(f"HDF5 file {spec.path} has no dataset named X at its root (it "
                                 f"has: {', '.join(sorted(f.keys())) or 'nothing'}); name one "
                                 "as file.h5:/path/to/X")
    if key not in f or not isinstance(f[key], lib.Dataset):
        raise NormScopeError(f"{spec.path} has no dataset {key!r}; name one as "
                             "file.h5:/path/to/X")
    node = f[key]
    return node, node.parent


def open_chunked(text: str, labels: str | os.PathLike | None = None, *,
                 ident: str | None = None) -> Dataset:
    """Open the chunked source ``text`` (see the module docstring) as a :class:`Dataset` whose
    ``X`` is a :class:`ChunkedArray`; labels from ``labels`` (a ``.npy``) or a sibling array.

    ``ident`` replaces the fingerprint id (a registered reference keeps its content id).

    Raises
    ------
    NormScopeError
        Not a zarr/HDF5 source, the wrong rank or dtype, labels missing or of the wrong length.
    """
    from .arrays import _load_npy  # the checked .npy reader (no pickles)

    spec = parse_spec(text)
    if spec is None:
        raise NormScopeError(f"{text} is not a zarr store or an HDF5 file; give store.zarr, "
                             "store.zarr/X or file.h5:/path/to/X")
    node, parent = _open_node(spec)
    where = spec.text()
    shape, dtype = tuple(int(s) for s in node.shape), np.dtype(node.dtype)
    if not (len(shape) == 3 or (len(shape) == 4 and 1 in (shape[1], shape[3]))):
        raise NormScopeError(f"{where} holds an array of shape {shape}; NormScope needs examples "
                             "of H x W: (N, H, W), (N, H, W, 1) or (N, 1, H, W)")
    if dtype.kind not in "fiub":
        raise NormScopeError(f"{where} holds values of type {dtype}; NormScope needs real numbers "
                             "(float or integer): write the array as float32")
    if min(shape) < 1:
        raise NormScopeError(f"{where} holds an empty array of shape {shape}")
    chunks = getattr(node, "chunks", None) or (min(shape[0], 1024),)
    key = node.name if spec.kind == "hdf5" else spec.key
    if spec.kind == "zarr" and parent is not None and not spec.key:
        key = node.path
    spec = ChunkedSpec(spec.kind, spec.path, key or "")
    X = ChunkedArray(spec, shape, dtype, int(chunks[0]))
    if spec.kind == "hdf5":
        node.file.close()
    y = None
    lwhere = where
    if labels is not None and str(labels).strip():
        lpath = Path(labels).expanduser()
        if not lpath.exists() or lpath.suffix.lower() != ".npy":
            raise NormScopeError(f"labels file {lpath} does not exist or is not a .npy file; give "
                                 "the labels as a .npy, or as an array y beside X")
        y, lwhere = np.asarray(_load_npy(lpath)), str(lpath)
    elif parent is not None:
        y = _sibling_labels(spec, node_key=key)
    class_names: tuple[str, ...] = ()
    if y is not None:
        y, class_names = encode_labels(y, shape[0], lwhere)
    name = Path(spec.path).name + (f":{spec.key}" if spec.kind == "hdf5" else
                                   (f"/{spec.key}" if spec.key else ""))
    fid = ident or _fingerprint(spec)
    if labels is not None and ident is None and str(labels).strip():
        st = Path(labels).stat()
        fid = "f" + hashlib.sha256(f"{fid}|{Path(labels).resolve()}|{st.st_size}|"
                                   f"{st.st_mtime_ns}".encode()).hexdigest()[:11]
    return Dataset(X=X, y=y, class_names=class_names, name=name, id=fid,
                   notes=label_notes(y, class_names))


def _sibling_labels(spec: ChunkedSpec, *, node_key: str) -> np.ndarray | None:
    """The labels array beside X (``y``, ``labels``, ``Y`` or ``targets``), or None."""
    lib = _import(spec.kind)
    if spec.kind == "hdf5":
        with lib.File(spec.path, "r") as f:
            grp = f[node_key].parent
            k = next((k for k in Y_KEYS if k in grp and isinstance(grp[k], lib.Dataset)), None)
            return None if k is None else np.asarray(grp[k][()])
    parent_key = str(Path(node_key).parent) if node_key else ""
    try:
        grp = lib.open_group(spec.path, mode="r",
                             path=None if parent_key in ("", ".") else parent_key)
    except Exception:  # noqa: BLE001 - a bare array: no sibling
        return None
    k = next((k for k in Y_KEYS if k in grp), None)
    return None if k is None else np.asarray(grp[k][...])


def reference_of(ds: Dataset) -> dict | None:
    """How a registered reference reopens ``ds`` (None unless its X is a ChunkedArray)."""
    X = ds.X
    if not isinstance(X, ChunkedArray):
        return None
    return {"kind": X.spec.kind, "path": X.spec.path, "key": X.spec.key,
            "fingerprint": _fingerprint(X.spec), "shape": list(X._shape4), "dtype": X.dtype.str,
            "chunk_rows": X.chunk_rows}


def open_reference(ref: dict, ident: str) -> ChunkedArray:
    """The X of a registered reference; refuses a source that changed since registration."""
    spec = ChunkedSpec(ref["kind"], ref["path"], ref.get("key", ""))
    if not Path(spec.path).exists():
        raise NormScopeError(f"dataset {ident} refers to {spec.text()}, which is gone; open the "
                             "source again to register it anew")
    if _fingerprint(spec) != ref.get("fingerprint"):
        raise NormScopeError(f"dataset {ident} refers to {spec.text()}, which changed since it was "
                             "registered; open the source again to register it anew")
    return ChunkedArray(spec, tuple(ref["shape"]), np.dtype(ref["dtype"]), int(ref["chunk_rows"]))
