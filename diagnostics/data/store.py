# Over 450 lines: registration, references and reading share one id scheme and layout.
"""Registered datasets: plain ``.npy`` files under a content id, and the one way in for uploads.

Layout of the data directory (``NORMSCOPE_HOME``, default ``~/.normscope``)::

    datasets/<id>/X.npy       float32 (N, H, W), or float64 for float64 sources; mmap_mode="r"
    datasets/<id>/y.npy       int64 (N,), only when the dataset has labels
    datasets/<id>/meta.json   name, class names, source, feature parameters, skipped clips
    datasets/<id>/files.json  source file of each row (audio datasets only)
    cache/                    audio caches (see :mod:`diagnostics.data.audio.loader`)
    tmp/                      uploads while they are checked; removed afterwards
    datasets/.tmp-<id>-*      a dataset being written (renamed to <id> when complete)
    datasets/.trash-<id>-*    a dataset being deleted

The id is the first 12 hex digits of a SHA-256 over the arrays (X as little-endian float32, or
float64 where it is stored so, y as int64), the class names, the feature parameters and the list
of skipped clips, so the same data always gets the same id and a link with the id opens the same
numbers on any machine that holds the dataset.  Nothing here is ever pickled or unpickled.

Writes use plain file I/O after a check of free space (a full disk under a writable memory map
would be a SIGBUS, not an error), into a staging folder claimed with a lock (see
:mod:`diagnostics.data.files`); a failed write removes it, and :func:`clean_stale` removes the
folders of writers that died, once per process.

Paths typed into the app are confined to ``NORMSCOPE_DATA_ROOT`` (default: the current
directory) by :func:`resolve_under_root`; both variables are read at call time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from ..config import home, subdir
from ..errors import NormScopeError
from .dataset import Dataset, as_nhw, encode_labels, label_notes, storage_dtype
from .files import claim_dir, format_bytes, free_bytes, release_dir, remove_if_abandoned

#: A dataset id: 12 lowercase hex digits.
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
#: Rows hashed or copied at a time are sized to about this many bytes (bounds extra memory).
CHUNK_BYTES = 32 * 2**20
#: Bump when the layout or the hashed content changes: old ids stay valid, new ones differ.
FORMAT_VERSION = 1


def is_dataset_id(text: str) -> bool:
    """True if ``text`` has the form of a dataset id (12 lowercase hex digits)."""
    return bool(ID_PATTERN.fullmatch(str(text)))


def _home_or_default(where: str | os.PathLike | None) -> Path:
    """The data directory ``where``, or :func:`diagnostics.config.home` when it is None."""
    return home() if where is None else Path(where).expanduser()


def dataset_dir(ident: str, *, home: str | os.PathLike | None = None) -> Path:
    """The folder of registered dataset ``ident`` under ``home`` (default: the data directory,
    :func:`diagnostics.config.home`); a NormScopeError if there is none."""
    root = _home_or_default(home)
    ident = str(ident).strip()
    if not is_dataset_id(ident):
        raise NormScopeError(
            f"{ident[:40]!r} is not a dataset id (12 hex digits); list the registered ones with "
            "python -m diagnostics datasets"
        )
    d = root / "datasets" / ident
    if not (d / "meta.json").is_file():
        raise NormScopeError(
            f"no dataset with id {ident} in {root}; list the registered ones with "
            "python -m diagnostics datasets, or register the data again"
        )
    return d


def is_registered(ident: str, *, home: str | os.PathLike | None = None) -> bool:
    """True if ``ident`` is the id of a dataset in ``home`` (default: the data directory)."""
    root = _home_or_default(home)
    return is_dataset_id(ident) and (root / "datasets" / ident / "meta.json").is_file()


# --- writing -----------------------------------------------------------------------------------

def _x_view(X: np.ndarray, where: str) -> np.ndarray:
    """X as (N, H, W) without copying; the same rules as :mod:`diagnostics.data.dataset`."""
    as_nhw(X[:1], where)  # validates shape and dtype on one example (no copy of X)
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    elif X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    return X


def _row_chunks(X: np.ndarray, itemsize: int = 4):
    """Slices of X's rows of about CHUNK_BYTES each (at ``itemsize`` bytes a value)."""
    per_row = max(1, int(np.prod(X.shape[1:])) * itemsize)
    step = max(1, CHUNK_BYTES // per_row)
    for i in range(0, X.shape[0], step):
        yield slice(i, min(i + step, X.shape[0]))


def content_id(X: np.ndarray, y: np.ndarray | None, class_names: tuple[str, ...],
               feature_params: dict | None = None, *, skipped=None) -> str:
    """First 12 hex digits of the SHA-256 of the arrays, class names and feature parameters.

    X is hashed in row chunks (a memmap is never read whole into memory) in the dtype it is
    stored in (:func:`~diagnostics.data.dataset.storage_dtype`): little-endian float32, or
    float64 (then the dtype is hashed too); y as little-endian int64.  A non-empty list of
    skipped clips is part of the id, so a source whose bad clips were removed gets its own
    dataset and report.  Ids of float32 data without skipped clips are those of format 1.
    """
    dt = storage_dtype(X.dtype)
    h = hashlib.sha256(b"normscope-dataset\x00")
    head = {"v": FORMAT_VERSION, "shape": list(X.shape), "class_names": list(class_names),
            "labels": y is not None, "feature_params": feature_params}
    if dt != np.dtype("<f4"):
        head["dtype"] = dt.str
    if skipped:
        head["skipped"] = [[str(v) for v in s] for s in skipped]
    h.update(json.dumps(head, sort_keys=True).encode())
    for sl in _row_chunks(X, dt.itemsize):
        h.update(np.ascontiguousarray(X[sl], dtype=dt).data)
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
        Real values; stored as float32, or as float64 where float32 would change them
        (float64 and 32/64-bit integer sources).
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

    Raises
    ------
    NormScopeError
        For bad labels, and when the dataset cannot be written (not enough free space, an
        unwritable folder): then nothing is left behind.
    """
    clean_stale()
    meta = dict(meta or {})
    where = f"dataset {name!r}"
    X = _x_view(np.asarray(X) if not isinstance(X, np.ndarray) else X, where)
    y, class_names = _check_labels(y, tuple(class_names or ()), X.shape[0], where)
    params = meta.get("feature_params")
    skipped = [list(s) for s in meta.get("skipped", [])]
    ident = content_id(X, y, class_names, params, skipped=skipped)
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
        "skipped": skipped,
        "notes": [str(s) for s in meta.pop("notes", [])],
        "row_label": meta.pop("row_label", "frequency band"),
        "col_label": meta.pop("col_label", "frame"),
        "row_origin": meta.pop("row_origin", "lower"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta.pop("feature_params", None)
    meta.pop("skipped", None)
    record["extra"] = meta  # whatever else the caller wanted kept
    parent = subdir("datasets")
    dt = storage_dtype(X.dtype)
    shape = tuple(int(v) for v in X.shape)
    need = int(np.prod(shape)) * dt.itemsize + (0 if y is None else 8 * len(y)) + 2**20
    free = free_bytes(parent)
    if free is not None and need > free:
        raise NormScopeError(
            f"dataset {name!r} needs {format_bytes(need)} on disk and only {format_bytes(free)} "
            f"are free in {parent}; free some disk space or set NORMSCOPE_HOME to a folder on a "
            "larger disk"
        )
    staging = parent / f".tmp-{ident}-{uuid.uuid4().hex[:8]}"
    claim = None
    try:
        staging.mkdir()
        claim = claim_dir(staging)
        _write_x(staging / "X.npy", X, dt, name)
        if y is not None:
            with open(staging / "y.npy", "wb") as fh:
                np.save(fh, y.astype("<i8"), allow_pickle=False)
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
        release_dir(claim)
    return ident


def _write_x(path: Path, X: np.ndarray, dt: np.dtype, name: str) -> None:
    """Write X as a ``.npy`` of dtype ``dt`` with plain writes, row chunk by row chunk.

    Plain writes turn a full disk into an OSError; the values are checked as they go, so a
    conversion never turns a finite value into inf (only a float128 source could).
    """
    header = {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False,
              "shape": tuple(int(v) for v in X.shape)}
    narrowing = X.dtype.kind == "f" and X.dtype.itemsize > dt.itemsize
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for sl in _row_chunks(X, dt.itemsize):
            part = np.ascontiguousarray(X[sl], dtype=dt)
            if narrowing and np.count_nonzero(~np.isfinite(part)) != np.count_nonzero(
                    ~np.isfinite(X[sl])):
                raise NormScopeError(f"dataset {name!r} holds values beyond float64's range; "
                                     "scale them down before registering")
            fh.write(part.data)


def register_reference(ds: Dataset, ref: dict, *, source: str) -> str:
    """Register a chunked source (zarr/HDF5) in place: its content id, labels and a reference
    (``meta.json`` ``reference``: path, key, fingerprint) but no copy of X.  Only for sources
    that are read-only and local (see :func:`diagnostics.data.chunkio.is_read_only_local`).
    """
    clean_stale()
    y = None if ds.y is None else ds.y.astype("<i8")
    ident = content_id(ds.X, y, ds.class_names)
    final = home() / "datasets" / ident
    if (final / "meta.json").is_file():
        return ident
    record = {
        "format": FORMAT_VERSION, "id": ident, "name": ds.name, "n": ds.n,
        "shape": list(ds.shape), "class_names": list(ds.class_names), "has_labels": y is not None,
        "class_counts": None if y is None else np.bincount(y, minlength=len(ds.class_names)).tolist(),
        "source": source, "feature_params": None, "skipped": [], "notes": [],
        "row_label": ds.row_label, "col_label": ds.col_label, "row_origin": ds.row_origin,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "extra": {}, "reference": ref,
    }
    parent = subdir("datasets")
    staging = parent / f".tmp-{ident}-{uuid.uuid4().hex[:8]}"
    claim = None
    try:
        staging.mkdir()
        claim = claim_dir(staging)
        if y is not None:
            with open(staging / "y.npy", "wb") as fh:
                np.save(fh, y, allow_pickle=False)
        (staging / "meta.json").write_text(json.dumps(record, indent=1, allow_nan=False))
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
    except OSError as exc:
        raise NormScopeError(f"cannot write dataset {ident} to {parent} ({exc.strerror}); set "
                             "NORMSCOPE_HOME to a writable folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        release_dir(claim)
    return ident


def register_dataset(ds: Dataset, *, source: str, meta: dict | None = None) -> str:
    """Register a loaded :class:`Dataset` (e.g. an array file on the server) and return its id."""
    extra = {"source": source, "row_label": ds.row_label, "col_label": ds.col_label,
             "row_origin": ds.row_origin, **(meta or {})}
    return register_arrays(ds.X, ds.y, ds.class_names, ds.name, extra)


# --- reading -----------------------------------------------------------------------------------

def dataset_meta(ident: str, *, home: str | os.PathLike | None = None) -> dict:
    """The JSON meta of a registered dataset (name, class names, source, skipped clips, ...);
    ``home`` as for :func:`dataset_dir`."""
    d = dataset_dir(ident, home=home)
    try:
        return json.loads((d / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise NormScopeError(f"dataset {ident} in {d.parent.parent} is damaged ({exc}); "
                             "register it again") from None


def dataset_files(ident: str) -> list[str] | None:
    """Source file of each row of an audio dataset, or None for other datasets."""
    f = dataset_dir(ident) / "files.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def open_dataset(ident: str, *, home: str | os.PathLike | None = None) -> Dataset:
    """Open a registered dataset; X is a read-only memmap of its ``X.npy`` (float32 or float64).

    Parameters
    ----------
    ident : str
        The dataset id.
    home : path-like, optional
        The data directory that holds it (default :func:`diagnostics.config.home`); training
        workers pass the one their job names instead of reading the environment.

    Raises
    ------
    NormScopeError
        If ``ident`` is not an id, is unknown, or its files are damaged.
    """
    ident = str(ident).strip()
    meta = dataset_meta(ident, home=home)
    root = _home_or_default(home)
    d = root / "datasets" / ident
    if meta.get("reference"):  # a chunked source registered in place
        from .chunked import open_reference

        X = open_reference(meta["reference"], ident)
        y = np.load(d / "y.npy", allow_pickle=False) if meta.get("has_labels") else None
        class_names = tuple(meta.get("class_names", ()))
        return Dataset(X=X, y=y, class_names=class_names, name=meta.get("name", ident), id=ident,
                       notes=label_notes(y, class_names))
    try:
        X = np.load(d / "X.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(d / "y.npy", allow_pickle=False) if meta.get("has_labels") else None
    except (OSError, ValueError) as exc:
        raise NormScopeError(f"dataset {ident} in {root} is damaged ({exc}); register it "
                             "again") from None
    if (X.ndim != 3 or X.dtype not in (np.dtype("<f4"), np.dtype("<f8"))
            or (y is not None and y.shape != (X.shape[0],))):
        raise NormScopeError(f"dataset {ident} in {root} is damaged (unexpected array shapes); "
                             "register it again")
    class_names = tuple(meta.get("class_names", ()))
    return Dataset(
        X=X, y=y, class_names=class_names, name=meta.get("name", ident), id=ident,
        row_origin=meta.get("row_origin", "lower"),
        row_label=meta.get("row_label", "frequency band"), col_label=meta.get("col_label", "frame"),
        notes=tuple(meta.get("notes", ())) + label_notes(y, class_names),
    )


def listing_signature() -> tuple[str, int, int]:
    """A value that changes whenever a dataset is registered or deleted: the datasets folder,
    its mtime and its number of entries (registering or deleting renames a folder in it).

    Cheap (one ``stat`` and one ``listdir``), so a caller can cache :func:`list_datasets`, which
    reads every dataset's meta, under it.  mtime ticks are coarse (milliseconds): the entry count
    catches a change within one tick.  ``(folder, 0, 0)`` while the folder does not exist.
    """
    folder = home() / "datasets"
    try:
        return str(folder), folder.stat().st_mtime_ns, len(os.listdir(folder))
    except OSError:
        return str(folder), 0, 0


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
    d = dataset_dir(ident)
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
    return size


# --- clean-up -----------------------------------------------------------------------------------

_CLEANED: set[str] = set()


def clean_stale(*, force: bool = False) -> int:
    """Remove what dead writers left in the data directory; return how many folders went.

    ``datasets/.tmp-*`` (a registration that died), ``datasets/.trash-*`` (a deletion that
    died) and ``tmp/upload-*`` (an upload being checked).  A folder still claimed by a live
    process is never touched (see :func:`diagnostics.data.files.remove_if_abandoned`).  Runs
    once per process and data directory unless ``force``; never raises.
    """
    root = home()
    if str(root) in _CLEANED and not force:
        return 0
    _CLEANED.add(str(root))
    removed = 0
    for folder, prefixes in ((root / "datasets", (".tmp-",)), (root / "tmp", ("upload-",))):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(prefixes) and remove_if_abandoned(e):
                removed += 1
    try:
        trash = [e for e in (root / "datasets").iterdir() if e.name.startswith(".trash-")]
    except OSError:
        trash = []
    for e in trash:  # deletions never need finishing by their owner: anyone may finish them
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e, ignore_errors=True)
            removed += not e.exists()
    return removed
