"""Where the chunks of a zarr array or HDF5 dataset lie, and reading them without the library
where it adds nothing but copies.

Reading a 62 MB chunk through zarr costs several times reading its bytes: its event loop, a
fresh buffer per chunk (every page of it faults in), a second copy into the result.  So:

* ``raw``: a chunk's bytes are its rows as they are (zarr v3 with only the ``bytes`` codec,
  little-endian; zarr v2 with no compressor and no filters, C order; HDF5 with no filters,
  chunked or contiguous; never with a user block): rows are read with ``preadv`` straight into
  the caller's buffer, as a memmapped ``.npy`` is;
* ``codec``: zarr chunks whose bytes are compressed by one codec that decodes itself (zstd,
  blosc, gzip, lz4, zlib): the chunk file is read into a reused byte buffer and decoded into a
  reused chunk buffer (numcodecs decodes without holding the GIL);
* ``library``: everything else (sharding, transpose, checksums, chunks that split H or W,
  chunks never written, which hold the fill value; HDF5 filters): zarr or h5py reads it.

Chunks cover whole examples: ``rows`` examples per chunk, the last one possibly fewer.  Also
here: whether a source's files are local and read-only (then it is registered by reference)
and their fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NormScopeError

#: File systems on which a source is not "local": registering it copies the data instead of
#: referring to it (a share may change, or vanish, under a reference).
REMOTE_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs", "9p", "afs",
             "ceph", "glusterfs", "fuse.s3fs", "fuse.gcsfuse", "lustre", "gpfs", "beegfs")
#: zarr v3 codec names (and numcodecs ids) whose frames say how to decode themselves, so a
#: fresh numcodecs codec of that id decodes any of them whatever its parameters.
SELF_DESCRIBING = ("zstd", "blosc", "gzip", "lz4", "zlib")


@dataclass(frozen=True)
class ChunkLayout:
    """How chunk ``k`` is read: ``kind`` (raw | codec | library), ``files[k]`` the file that
    holds it (None: the library reads it), ``offsets[k]`` the byte offset of its first row in
    that file, ``decoder`` the numcodecs codec of kind ``codec``."""

    kind: str
    files: tuple
    offsets: tuple
    decoder: object = None

    def raw(self, k: int) -> tuple[str, int] | None:
        """(file, offset) where chunk ``k``'s rows lie as they are, or None."""
        if self.kind != "raw" or self.files[k] is None:
            return None
        return self.files[k], self.offsets[k]

    def compressed(self, k: int) -> str | None:
        """The file of chunk ``k`` when it is decoded by ``decoder``, else None."""
        return self.files[k] if self.kind == "codec" else None


LIBRARY = ChunkLayout("library", (), ())


class ChunkBuffers:
    """A worker's reused buffers: one decoded chunk, and the compressed bytes of one."""

    def __init__(self, rows: int, shape: tuple[int, ...], dtype: np.dtype):
        self.chunk = np.empty((rows, *shape), dtype)
        self.packed = bytearray(0)


def layout_of(kind: str, node, shape4: tuple[int, ...], dtype: np.dtype, rows: int) -> ChunkLayout:
    """The :class:`ChunkLayout` of an open zarr array or h5py dataset ``node`` whose chunks
    hold ``rows`` examples (LIBRARY wherever reading it ourselves is not certain to be right)."""
    if dtype.byteorder not in ("=", "|", "<" if sys.byteorder == "little" else ">"):
        return LIBRARY
    try:
        if kind == "zarr":
            return _zarr_layout(node, shape4, dtype, rows)
        return _hdf5_layout(node, shape4, dtype, rows)
    except Exception:  # noqa: BLE001 - an unusual store: the library reads it as before
        return LIBRARY


def _n_chunks(shape4, rows: int) -> int:
    return -(-int(shape4[0]) // rows)


def _zarr_layout(z, shape4, dtype, rows) -> ChunkLayout:
    from zarr.storage import LocalStore

    md = z.metadata
    chunks = tuple(int(c) for c in z.chunks)
    store = z.store_path.store
    if (not isinstance(store, LocalStore) or chunks[0] != rows
            or chunks[1:] != tuple(shape4[1:])):
        return LIBRARY
    decoder = None
    if md.zarr_format == 3:
        from zarr.codecs import BytesCodec

        codecs = list(md.codecs)
        if not codecs or not isinstance(codecs[0], BytesCodec):
            return LIBRARY
        endian = getattr(codecs[0].endian, "value", codecs[0].endian)
        if endian not in (None, sys.byteorder):
            return LIBRARY
        if len(codecs) > 2:
            return LIBRARY
        if len(codecs) == 2:
            decoder = _decoder(codecs[1].to_dict().get("name", ""))
            if decoder is None:
                return LIBRARY
    else:
        if md.filters or md.order != "C":
            return LIBRARY
        if md.compressor is not None:
            decoder = _decoder(md.compressor.codec_id)
            if decoder is None:
                return LIBRARY
    root = os.fspath(store.root)
    prefix = z.store_path.path
    row_bytes = int(np.prod(shape4[1:])) * dtype.itemsize
    files = []
    for k in range(_n_chunks(shape4, rows)):
        key = md.encode_chunk_key((k,) + (0,) * (len(shape4) - 1))
        path = os.path.join(root, *(prefix.split("/") if prefix else []), *key.split("/"))
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1  # never written: the fill value, which zarr supplies
        ok = size == rows * row_bytes if decoder is None else size > 0
        files.append(path if ok else None)
    kind = "raw" if decoder is None else "codec"
    return ChunkLayout(kind, tuple(files), (0,) * len(files), decoder)


def _decoder(name: str):
    """A numcodecs codec that decodes frames of the zarr codec ``name`` (None if not one of
    :data:`SELF_DESCRIBING`); numcodecs ids may carry a ``numcodecs.`` prefix in zarr v3."""
    name = name.removeprefix("numcodecs.")
    if name not in SELF_DESCRIBING:
        return None
    import numcodecs

    return numcodecs.get_codec({"id": name})


def _hdf5_layout(d, shape4, dtype, rows) -> ChunkLayout:
    from h5py import h5d

    plist = d.id.get_create_plist()
    if (d.file.userblock_size or plist.get_nfilters() or plist.get_external_count()
            or plist.get_layout() not in (h5d.CONTIGUOUS, h5d.CHUNKED)):
        return LIBRARY  # a user block, filters, external or virtual storage
    path = os.path.abspath(d.file.filename)
    row_bytes = int(np.prod(shape4[1:])) * dtype.itemsize
    n = _n_chunks(shape4, rows)
    if d.chunks is None:  # contiguous: "chunks" of `rows` examples one after another
        base = d.id.get_offset()
        if base is None:
            return LIBRARY
        return ChunkLayout("raw", (path,) * n, tuple(base + k * rows * row_bytes
                                                     for k in range(n)))
    if int(d.chunks[0]) != rows or tuple(d.chunks[1:]) != tuple(shape4[1:]):
        return LIBRARY
    files, offsets = [], []
    for k in range(n):
        info = d.id.get_chunk_info_by_coord((k * rows,) + (0,) * (len(shape4) - 1))
        m = min(rows, shape4[0] - k * rows)
        stored = info.byte_offset is not None and info.size >= m * row_bytes
        files.append(path if stored else None)
        offsets.append(int(info.byte_offset) if stored else 0)
    return ChunkLayout("raw", tuple(files), tuple(offsets))


def pread_rows(fd: int, pos: int, row_bytes: int, sel: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Read rows ``sel`` (sorted) of the array whose row 0 lies at ``pos`` in the file ``fd``
    into ``out``, one ``preadv`` per run of consecutive rows."""
    m = sel.size
    cuts = (np.flatnonzero(sel[1:] - sel[:-1] != 1) + 1).tolist()
    buf = memoryview(out[:m].reshape(-1).view(np.uint8))
    for a, b in zip([0, *cuts], [*cuts, m]):
        want = (b - a) * row_bytes
        got = os.preadv(fd, [buf[a * row_bytes : b * row_bytes]], pos + int(sel[a]) * row_bytes)
        if got != want:
            raise NormScopeError("the array file became shorter while it was read; open it again")
    return out[:m]


def read_raw(lay: ChunkLayout, k: int, rows: np.ndarray, row_bytes: int,
             out: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted; numbered within chunk ``k``, which ``lay`` reads raw) into
    ``out``."""
    path, offset = lay.raw(k)
    fd = os.open(path, os.O_RDONLY)
    try:
        return pread_rows(fd, offset, row_bytes, rows, out)
    finally:
        os.close(fd)


def read_packed(path: str, bufs: ChunkBuffers) -> memoryview:
    """The bytes of the file ``path``, read into ``bufs.packed`` (grown as needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if len(bufs.packed) < size:
            bufs.packed = bytearray(size)
        view = memoryview(bufs.packed)[:size]
        got = 0
        while got < size:
            n = os.preadv(fd, [view[got:]], got)
            if n <= 0:
                raise NormScopeError(f"{path} became shorter while it was read; open it again")
            got += n
        return view
    finally:
        os.close(fd)


def _fingerprint(spec) -> str:
    """Hash of the source's path, sizes and modification times (cheap: no data is read)."""
    h = hashlib.sha256(f"{spec.kind}|{spec.path}|{spec.key}".encode())
    p = Path(spec.path)
    paths = [p] if p.is_file() else sorted(q for q in p.rglob("*"))
    for q in paths:
        try:
            st = q.stat()
        except OSError:
            continue
        h.update(f"{q}|{st.st_size}|{st.st_mtime_ns}".encode())
    return "f" + h.hexdigest()[:11]


def is_read_only_local(spec) -> bool:
    """True when no file of the source has a write bit and it lies on a local file system:
    then a registered reference can never see it change, and nothing is copied."""
    p = Path(spec.path)
    for q in ([p] if p.is_file() else [p, *p.rglob("*")]):
        try:
            if os.lstat(q).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                return False
        except OSError:
            return False
    return _fs_type(p) not in REMOTE_FS


def _fs_type(p: Path) -> str:
    """The file system type of the mount holding ``p`` ('' if unknown)."""
    best, kind = "", ""
    try:
        target = str(p.resolve())
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and (target == parts[1] or target.startswith(
                        parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        return ""
    return kind
