"""Registered datasets: plain ``.npy`` files under a content id, and the one way in for uploads.

Layout of the data directory (``NORMSCOPE_HOME``, default ``~/.normscope``)::

    datasets/<id>/X.npy       float32 (N, H, W), opened with mmap_mode="r"
    datasets/<id>/y.npy       int64 (N,), only when the dataset has labels
    datasets/<id>/meta.json   name, class names, source, feature parameters, skipped clips
    datasets/<id>/files.json  source file of each row (audio datasets only)
    cache/                    audio caches (see :mod:`diagnostics.audio`)
    tmp/                      uploads while they are checked; removed afterwards

The id is the first 12 hex digits of a SHA-256 over the arrays (as little-endian float32 and
int64), the class names and the feature parameters, so the same data always gets the same id
and a link with the id opens the same numbers on any machine that holds the dataset.  Nothing
here is ever pickled or unpickled.

Paths typed into the app are confined to ``NORMSCOPE_DATA_ROOT`` (default: the current
directory) by :func:`resolve_under_root`; both variables are read at call time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from .datasets import Dataset, encode_labels, label_notes, load_array_file
from .errors import NormScopeError

#: A dataset id: 12 lowercase hex digits.
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
#: Rows hashed or copied at a time are sized to about this many bytes (bounds extra memory).
CHUNK_BYTES = 32 * 2**20
#: Zip uploads: most entries and most uncompressed bytes accepted (zip-bomb guard).
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_BYTES = 2 * 2**30
#: Audio file endings (kept equal to diagnostics.audio.AUDIO_EXTENSIONS; audio imports us).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
#: Bump when the layout or the hashed content changes: old ids stay valid, new ones differ.
FORMAT_VERSION = 1


# --- where things live -------------------------------------------------------------------------

def home() -> Path:
    """The data directory: ``$NORMSCOPE_HOME`` or ``~/.normscope`` (read at call time)."""
    return Path(os.environ.get("NORMSCOPE_HOME") or "~/.normscope").expanduser()


def data_root() -> Path:
    """Folder that server-side paths typed in the app must lie under (``$NORMSCOPE_DATA_ROOT``)."""
    return Path(os.environ.get("NORMSCOPE_DATA_ROOT") or os.getcwd()).resolve()


def resolve_under_root(text: str | os.PathLike, *, root: str | os.PathLike | None = None) -> Path:
    """Resolve a path typed by a user and check that it lies under the data root.

    Relative paths are taken from the root; symbolic links are followed before the check, so a
    link pointing out of the root is refused too.

    Parameters
    ----------
    text : str or path-like
        The path as typed.
    root : path-like, optional
        The allowed folder; default :func:`data_root`.

    Returns
    -------
    Path
        The resolved path (it may not exist).

    Raises
    ------
    NormScopeError
        If the path is empty or lies outside the root.
    """
    root = Path(root).resolve() if root is not None else data_root()
    raw = os.fspath(text).strip()
    if not raw or "\x00" in raw:
        raise NormScopeError("the path is empty or contains a NUL character; type a path to a file "
                             f"or folder under {root}")
    p = (root / raw).resolve()
    if not p.is_relative_to(root):
        raise NormScopeError(
            f"{raw!r} lies outside the data root {root}; put the file under it or start the "
            "server with NORMSCOPE_DATA_ROOT set to its folder"
        )
    return p


def _subdir(*parts: str) -> Path:
    d = home().joinpath(*parts)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NormScopeError(
            f"cannot create {d} ({exc.strerror}); set NORMSCOPE_HOME to a writable folder"
        ) from None
    return d


def is_dataset_id(text: str) -> bool:
    """True if ``text`` has the form of a dataset id (12 lowercase hex digits)."""
    return bool(ID_PATTERN.fullmatch(str(text)))


def _dataset_dir(ident: str) -> Path:
    ident = str(ident).strip()
    if not is_dataset_id(ident):
        raise NormScopeError(
            f"{ident[:40]!r} is not a dataset id (12 hex digits); list the registered ones with "
            "python -m diagnostics datasets"
        )
    d = home() / "datasets" / ident
    if not (d / "meta.json").is_file():
        raise NormScopeError(
            f"no dataset with id {ident} in {home()}; list the registered ones with "
            "python -m diagnostics datasets, or register the data again"
        )
    return d


def is_registered(ident: str) -> bool:
    """True if ``ident`` is the id of a dataset in the data directory."""
    return is_dataset_id(ident) and (home() / "datasets" / ident / "meta.json").is_file()


# --- writing -----------------------------------------------------------------------------------

def _x_view(X: np.ndarray, where: str) -> np.ndarray:
    """X as (N, H, W) without copying; the same rules as :mod:`diagnostics.datasets`."""
    from .datasets import _as_nhw

    _as_nhw(X[:1], where)  # validates shape and dtype on one example (no copy of X)
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    elif X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    return X


def _row_chunks(X: np.ndarray):
    """Slices of X's rows of about CHUNK_BYTES each (as float32)."""
    per_row = max(1, int(np.prod(X.shape[1:])) * 4)
    step = max(1, CHUNK_BYTES // per_row)
    for i in range(0, X.shape[0], step):
        yield slice(i, min(i + step, X.shape[0]))


def content_id(X: np.ndarray, y: np.ndarray | None, class_names: tuple[str, ...],
               feature_params: dict | None = None) -> str:
    """First 12 hex digits of the SHA-256 of the arrays, class names and feature parameters.

    X is hashed as little-endian float32 in row chunks (a memmap is never read whole into
    memory), y as little-endian int64.
    """
    h = hashlib.sha256(b"normscope-dataset\x00")
    head = {"v": FORMAT_VERSION, "shape": list(X.shape), "class_names": list(class_names),
            "labels": y is not None, "feature_params": feature_params}
    h.update(json.dumps(head, sort_keys=True).encode())
    for sl in _row_chunks(X):
        h.update(np.ascontiguousarray(X[sl], dtype="<f4").data)
    if y is not None:
        h.update(np.ascontiguousarray(y, dtype="<i8").data)
    return h.hexdigest()[:12]


def _check_labels(y, class_names, n: int, where: str) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if y is None:
        return None, ()
    y = np.asarray(y)
    if not class_names:
        return encode_labels(y, n, where)
    class_names = tuple(str(c) for c in class_names)
    if y.ndim != 1 or len(y) != n:
        raise NormScopeError(f"{where}: {y.size} labels for {n} examples; give exactly one label "
                             "per example")
    if y.dtype.kind not in "iu" or (n and (y.min() < 0 or y.max() >= len(class_names))):
        raise NormScopeError(f"{where}: labels must be class indices 0..{len(class_names) - 1} "
                             "into class_names")
    return y.astype(np.int64), class_names


def register_arrays(X: np.ndarray, y: np.ndarray | None, class_names=(), name: str = "dataset",
                    meta: dict | None = None) -> str:
    """Store a dataset in the registry and return its content id.

    Already registered content is not written again (the id is returned at once).  X is
    copied to ``X.npy`` in row chunks of about :data:`CHUNK_BYTES`, so a memmap larger than
    memory can be registered.

    Parameters
    ----------
    X : array, shape (N, H, W) (or (N, H, W, 1), (N, 1, H, W))
        Real values; stored as float32.
    y : array of shape (N,), or None
        Class indices into ``class_names``; or raw labels (integers or strings) when
        ``class_names`` is empty.
    class_names : sequence of str
        Name of each class.
    name : str
        What the user calls the dataset.
    meta : dict, optional
        JSON-ready extras: ``source`` (str), ``feature_params`` (dict, part of the id),
        ``skipped`` (list of [file, reason]), ``notes`` (list of str), ``row_label``,
        ``col_label``, ``row_origin``, ``files`` (source of each row; stored apart).

    Returns
    -------
    str
        The dataset id.
    """
    meta = dict(meta or {})
    where = f"dataset {name!r}"
    X = _x_view(np.asarray(X) if not isinstance(X, np.ndarray) else X, where)
    y, class_names = _check_labels(y, tuple(class_names or ()), X.shape[0], where)
    params = meta.get("feature_params")
    ident = content_id(X, y, class_names, params)
    final = home() / "datasets" / ident
    if (final / "meta.json").is_file():
        return ident
    files = meta.pop("files", None)
    record = {
        "format": FORMAT_VERSION, "id": ident, "name": str(name), "n": int(X.shape[0]),
        "shape": [int(X.shape[1]), int(X.shape[2])], "class_names": list(class_names),
        "has_labels": y is not None,
        "class_counts": (None if y is None
                         else np.bincount(y, minlength=len(class_names)).tolist()),
        "source": str(meta.pop("source", "arrays")), "feature_params": params,
        "skipped": [list(s) for s in meta.pop("skipped", [])],
        "notes": [str(s) for s in meta.pop("notes", [])],
        "row_label": meta.pop("row_label", "frequency band"),
        "col_label": meta.pop("col_label", "frame"),
        "row_origin": meta.pop("row_origin", "lower"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta.pop("feature_params", None)
    record["extra"] = meta  # whatever else the caller wanted kept
    parent = _subdir("datasets")
    staging = parent / f".tmp-{ident}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        out = np.lib.format.open_memmap(staging / "X.npy", mode="w+", dtype="<f4",
                                        shape=tuple(int(s) for s in X.shape))
        for sl in _row_chunks(X):
            out[sl] = X[sl]
        out.flush()
        del out
        if y is not None:
            np.save(staging / "y.npy", y.astype("<i8"), allow_pickle=False)
        if files is not None:
            (staging / "files.json").write_text(json.dumps([str(f) for f in files]))
        # meta.json last: its presence marks a complete dataset.
        (staging / "meta.json").write_text(json.dumps(record, indent=1, allow_nan=False))
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a lost race with an equal writer
                raise
    except OSError as exc:
        raise NormScopeError(
            f"cannot write dataset {ident} to {parent} ({exc.strerror}); free some disk space or "
            "set NORMSCOPE_HOME to a writable folder"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ident


def register_dataset(ds: Dataset, *, source: str, meta: dict | None = None) -> str:
    """Register a loaded :class:`Dataset` (e.g. an array file on the server) and return its id."""
    extra = {"source": source, "row_label": ds.row_label, "col_label": ds.col_label,
             "row_origin": ds.row_origin, **(meta or {})}
    return register_arrays(ds.X, ds.y, ds.class_names, ds.name, extra)


# --- reading -----------------------------------------------------------------------------------

def dataset_meta(ident: str) -> dict:
    """The JSON meta of a registered dataset (name, class names, source, skipped clips, ...)."""
    d = _dataset_dir(ident)
    try:
        return json.loads((d / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise NormScopeError(f"dataset {ident} in {home()} is damaged ({exc}); register it "
                             "again") from None


def dataset_files(ident: str) -> list[str] | None:
    """Source file of each row of an audio dataset, or None for other datasets."""
    f = _dataset_dir(ident) / "files.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def open_dataset(ident: str) -> Dataset:
    """Open a registered dataset; X is a read-only memmap of its ``X.npy``.

    Raises
    ------
    NormScopeError
        If ``ident`` is not an id, is unknown, or its files are damaged.
    """
    ident = str(ident).strip()
    meta = dataset_meta(ident)
    d = home() / "datasets" / ident
    try:
        X = np.load(d / "X.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(d / "y.npy", allow_pickle=False) if meta.get("has_labels") else None
    except (OSError, ValueError) as exc:
        raise NormScopeError(f"dataset {ident} in {home()} is damaged ({exc}); register it "
                             "again") from None
    if X.ndim != 3 or X.dtype != np.float32 or (y is not None and y.shape != (X.shape[0],)):
        raise NormScopeError(f"dataset {ident} in {home()} is damaged (unexpected array shapes); "
                             "register it again")
    class_names = tuple(meta.get("class_names", ()))
    return Dataset(
        X=X, y=y, class_names=class_names, name=meta.get("name", ident), id=ident,
        row_origin=meta.get("row_origin", "lower"),
        row_label=meta.get("row_label", "frequency band"), col_label=meta.get("col_label", "frame"),
        notes=tuple(meta.get("notes", ())) + label_notes(y, class_names),
    )


def list_datasets() -> list[dict]:
    """Registered datasets, newest first: id, name, n, shape, classes, source, feature, created."""
    root = home() / "datasets"
    out = []
    if not root.is_dir():
        return out
    for d in root.iterdir():
        if not is_dataset_id(d.name):
            continue
        try:
            m = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue  # incomplete or damaged: not listed
        fp = m.get("feature_params") or {}
        out.append({
            "id": d.name, "name": m.get("name"), "n": m.get("n"), "shape": m.get("shape"),
            "classes": len(m.get("class_names", [])), "source": m.get("source"),
            "feature": fp.get("feature"), "skipped": len(m.get("skipped", [])),
            "created": m.get("created"),
        })
    out.sort(key=lambda r: (r["created"] or "", r["id"]), reverse=True)
    return out


def delete_dataset(ident: str) -> int:
    """Remove a registered dataset from the data directory; return the bytes freed.

    The folder is first renamed out of the way (atomic), so a concurrent reader sees either
    the whole dataset or no dataset; a process that already memory-mapped its ``X.npy`` keeps
    reading it until it closes the map.  Stored comparisons of the dataset are kept (their
    results stay readable); caches pointing at it become misses.
    """
    d = _dataset_dir(ident)
    trash = d.parent / f".trash-{d.name}-{uuid.uuid4().hex[:8]}"
    try:
        size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        os.replace(d, trash)
    except FileNotFoundError:
        raise NormScopeError(f"dataset {d.name} was deleted by someone else just now; list "
                             "the registered ones with python -m diagnostics datasets") from None
    except OSError as exc:
        raise NormScopeError(f"cannot delete dataset {d.name} in {home()} ({exc.strerror}); "
                             "check the folder's permissions") from None
    shutil.rmtree(trash, ignore_errors=True)
    _forget_caches(d.name)
    return size


def _forget_caches(ident: str) -> None:
    """Remove cache entries naming a deleted dataset (they would only be misses)."""
    from . import clip_cache

    clip_cache.forget(ident)
    for f in (home() / "cache" / "audio").glob("*.json"):
        try:
            if json.loads(f.read_text()).get("id") == ident:
                f.unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            continue


# --- sources: ids, folders, manifests, array files -------------------------------------------

def source_kind(spec: str) -> str:
    """What ``spec`` names: ``builtin``, ``id``, ``folder``, ``manifest`` or ``file``."""
    from .datasets import BUILTINS

    text = str(spec).strip()
    if text in BUILTINS:
        return "builtin"
    if is_registered(text):
        return "id"
    p = Path(text).expanduser()
    if p.is_dir():
        return "folder"
    if p.suffix.lower() == ".csv":
        return "manifest"
    if is_dataset_id(text) and not p.exists():
        return "id"
    return "file"


def open_source(spec: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                params=None, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                root: str | os.PathLike | None = None) -> Dataset:
    """Open a registered id, an audio folder, a ``.csv`` manifest or an array file.

    Audio folders and manifests are turned into features (cached) and registered, so the
    returned dataset's id is its content id.  With ``root`` every path (the spec, the labels
    file and each clip of a manifest) must lie under it.
    """
    text = os.fspath(spec).strip()
    if labels is not None and not os.fspath(labels).strip():
        labels = None  # an empty form field means "no labels file"
    if not text:
        raise NormScopeError("no dataset given; name a built-in (demo, digits), a dataset id, a "
                             "folder of audio clips, a .csv manifest or a .npy/.npz file")
    if is_registered(text):
        if labels is not None:
            raise NormScopeError(f"dataset {text} is registered with its labels; --labels applies "
                                 "to .npy files only")
        return open_dataset(text)
    if root is not None:
        path = resolve_under_root(text, root=root)
        if labels is not None:
            labels = resolve_under_root(labels, root=root)
    else:
        path = Path(text).expanduser()
    if path.is_dir() or path.suffix.lower() == ".csv":
        if labels is not None:
            raise NormScopeError(f"{path} holds audio clips with their own labels; --labels "
                                 "applies to .npy files only")
        from .audio import load_audio

        return load_audio(path, params=params, workers=workers, progress=progress, root=root)
    if is_dataset_id(text) and not path.exists():
        _dataset_dir(text)  # raises: unknown id
    return load_array_file(path, labels)


# --- uploads (pure functions for the app; no streamlit here) ----------------------------------

def _upload_name(filename: str) -> str:
    """The last part of an uploaded file's name, without control characters."""
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "upload"


class _TempDir:
    """A private temporary folder under ``NORMSCOPE_HOME/tmp``, removed on exit."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="upload-", dir=_subdir("tmp")))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def register_upload_npy_npz(filename: str, data_bytes: bytes,
                            labels_bytes: bytes | None = None) -> str:
    """Check and register an uploaded ``.npy`` or ``.npz`` (and optional labels ``.npy``).

    The bytes are written to a private temporary file and read with ``allow_pickle=False`` by
    :func:`diagnostics.datasets.load_array_file`: the same rules as a file on the server, and
    no pickle is ever loaded.  Messages name the uploaded file, not the temporary one.

    Returns
    -------
    str
        The dataset id (the same bytes always give the same id).
    """
    name = _upload_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise NormScopeError(f"{name} is not an array file; upload a .npy or .npz file (or a "
                             ".zip of audio class folders)")
    if not data_bytes:
        raise NormScopeError(f"{name} is empty; upload the file again")
    with _TempDir() as tmp:
        path = tmp / ("data" + suffix)
        path.write_bytes(data_bytes)
        lpath = None
        if labels_bytes is not None:
            lpath = tmp / "labels.npy"
            lpath.write_bytes(labels_bytes)
        try:
            ds = load_array_file(path, lpath)
            return register_arrays(ds.X, ds.y, ds.class_names, name,
                                   {"source": f"upload {name}", "notes": []})
        except NormScopeError as exc:
            msg = str(exc).replace(str(path), name).replace(str(lpath), "the labels file")
            raise NormScopeError(msg) from None


def _safe_member(name: str, archive: str) -> PurePosixPath | None:
    """The member's relative path, None for entries to ignore; raises on traversal."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if (norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts
            or "\x00" in norm):
        raise NormScopeError(
            f"{archive} contains the entry {name[:80]!r}, which points outside the archive (.. or "
            "an absolute path); NormScope refuses such archives: zip the class folders again"
        )
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None  # macOS resource forks, .DS_Store, hidden files
    return PurePosixPath(*parts)


def _extract_zip(zf: zipfile.ZipFile, dest: Path, archive: str, *, max_entries: int,
                 max_bytes: int) -> None:
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise NormScopeError(f"{archive} has {len(infos):,} entries, more than the limit of "
                             f"{max_entries:,}; split it or put the folder on the server")
    members = []
    for info in infos:
        rel = _safe_member(info.filename, archive)
        if rel is None or info.is_dir():
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            continue  # symbolic links are never followed or created
        members.append((info, rel))
    declared = sum(info.file_size for info, _ in members)
    too_big = (f"{archive} unpacks to more than {max_bytes / 2**20:,.0f} MiB, the limit for "
               "uploads; put the folder on the server under the data root instead")
    if declared > max_bytes:
        raise NormScopeError(too_big)
    written = 0
    try:
        for info, rel in members:
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                # Count what is really written: a header could understate the size.
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise NormScopeError(too_big)
                    dst.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise NormScopeError(f"{archive} is damaged ({exc}); zip the folder again") from None
    except RuntimeError as exc:  # encrypted entries
        raise NormScopeError(
            f"{archive} cannot be read ({exc}); upload an unencrypted zip") from None
    except NotImplementedError as exc:
        raise NormScopeError(f"{archive} uses an unsupported compression ({exc}); zip it again "
                             "with the standard (deflate) method") from None


def _class_root(folder: Path) -> Path:
    """Descend through a single top folder (``data.zip`` holding ``data/dog/a.wav``)."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        dirs = [e for e in entries if e.is_dir()]
        loose_audio = any(e.is_file() and e.name.lower().endswith(AUDIO_SUFFIXES) for e in entries)
        if len(dirs) == 1 and not loose_audio and any(e.is_dir() for e in dirs[0].iterdir()):
            folder = dirs[0]
            continue
        return folder


def register_upload_zip(filename: str, data_bytes: bytes, feature_params=None,
                        progress: Callable[[int, int], None] | None = None, *,
                        workers: int | None = None, max_entries: int = ZIP_MAX_ENTRIES,
                        max_bytes: int = ZIP_MAX_BYTES) -> str:
    """Check, unpack and register an uploaded zip of audio class folders.

    Entries with ``..`` or an absolute path refuse the whole archive; more than
    ``max_entries`` entries or more than ``max_bytes`` uncompressed (declared or actually
    written) refuse it too.  Hidden files and ``__MACOSX`` are ignored, symbolic links are never
    created.  The archive is unpacked into a private temporary folder (removed afterwards) and
    goes through :func:`diagnostics.audio.load_audio`; the same zip with the same parameters is
    found in the cache without unpacking.

    Parameters
    ----------
    filename : str
        The uploaded file's name (used for the dataset name and messages only).
    data_bytes : bytes
        The archive.
    feature_params : FeatureParams, optional
        Default :class:`diagnostics.audio.FeatureParams()`.
    progress : callable(done, total), optional
        Called while features are extracted.

    Returns
    -------
    str
        The dataset id.
    """
    from . import audio

    params = feature_params if feature_params is not None else audio.FeatureParams()
    name = _upload_name(filename)
    if not Path(name).suffix.lower() == ".zip":
        raise NormScopeError(f"{name} is not a .zip archive; upload a zip of class folders")
    digest = hashlib.sha256(data_bytes).hexdigest()
    key = audio.source_key({"zip": digest}, params)
    cached = audio.cached_id(key)
    if cached is not None:
        return cached
    try:
        zf = zipfile.ZipFile(io.BytesIO(data_bytes))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NormScopeError(f"{name} is not a readable zip archive ({exc}); zip the class "
                             "folders again") from None
    with zf, _TempDir() as tmp:
        _extract_zip(zf, tmp, name, max_entries=max_entries, max_bytes=max_bytes)
        folder = _class_root(tmp)
        try:
            clips = audio.scan_folder(folder)
        except NormScopeError as exc:
            raise NormScopeError(str(exc).replace(str(folder), name)) from None
        ds = audio.load_clips(clips, params, name=Path(name).stem, source=f"upload {name}",
                              key=key, workers=workers, progress=progress, where=name)
    return ds.id
