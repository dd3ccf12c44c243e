"""The one way in: a spec (built-in name, dataset id, audio folder, manifest, array file) to a
:class:`~diagnostics.data.dataset.Dataset`.  The only module of ``diagnostics.data`` that imports
the others; everything above the data layer opens and deletes data through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..config import home, resolve_under_root
from ..errors import NormScopeError
from . import store
from .arrays import load_array_file
from .audio import clip_cache
from .builtin import BUILTINS, demo_dataset, digits_dataset
from .chunked import open_chunked, parse_spec, reference_of
from .chunkio import is_read_only_local
from .dataset import Dataset
from .store import dataset_dir, is_dataset_id, is_registered, open_dataset


# --- sources: ids, folders, manifests, array files -------------------------------------------

def source_kind(spec: str) -> str:
    """What ``spec`` names: ``builtin``, ``id``, ``chunked`` (zarr/HDF5), ``folder``,
    ``manifest`` or ``file``."""
    text = str(spec).strip()
    if text in BUILTINS:
        return "builtin"
    if is_registered(text):
        return "id"
    p = Path(text).expanduser()
    if parse_spec(text) is not None:
        return "chunked"
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
                root: str | os.PathLike | None = None,
                home: str | os.PathLike | None = None) -> Dataset:
    """Open a registered id, an audio folder, a ``.csv`` manifest or an array file.

    Audio folders and manifests are turned into features (cached) and registered, so the
    returned dataset's id is its content id.  With ``root`` every path (the spec, the labels
    file and each clip of a manifest) must lie under it.  ``home`` is the data directory that
    registered ids are looked up in (default :func:`diagnostics.config.home`; training workers
    pass their job's); audio sources are registered under the default one.
    """
    store.clean_stale()  # once per process: what dead writers left in the data directory
    text = os.fspath(spec).strip()
    if labels is not None and not os.fspath(labels).strip():
        labels = None  # an empty form field means "no labels file"
    if not text:
        raise NormScopeError("no dataset given; name a built-in (demo, digits), a dataset id, a "
                             "folder of audio clips, a .csv manifest or a .npy/.npz file")
    if is_registered(text, home=home):
        if labels is not None:
            raise NormScopeError(f"dataset {text} is registered with its labels; --labels applies "
                                 "to .npy files only")
        return open_dataset(text, home=home)
    rel = root is not None and not Path(text).expanduser().is_absolute()
    chunked = parse_spec(str(Path(root) / text) if rel else text)
    if chunked is not None:  # zarr store or HDF5 file: read in place, chunk by chunk
        if root is not None:
            base = resolve_under_root(chunked.path, root=root)
            text = str(base) if chunked.kind == "zarr" and not chunked.key else (
                f"{base}/{chunked.key}" if chunked.kind == "zarr" else f"{base}:{chunked.key}")
            if labels is not None:
                labels = resolve_under_root(labels, root=root)
        return open_chunked(text, labels)
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
        from .audio.loader import load_audio  # librosa: only for audio

        return load_audio(path, params=params, workers=workers, progress=progress, root=root)
    if is_dataset_id(text) and not path.exists():
        dataset_dir(text, home=home)  # raises: unknown id
    return load_array_file(path, labels)



def load_dataset(spec: str, *, labels: str | None = None, params=None, workers: int | None = None,
                 progress=None, root: str | os.PathLike | None = None,
                 home: str | os.PathLike | None = None) -> Dataset:
    """Open a dataset: a built-in (``demo``, ``digits``), a registered id, an audio folder, a
    ``.csv`` manifest (``path,label``) or a ``.npy``/``.npz`` file.

    Audio sources take ``params`` (:class:`diagnostics.data.audio.features.FeatureParams`), ``workers`` and
    ``progress(done, total)`` and are registered (their id is the content id).  With ``root``
    (the app: :func:`diagnostics.config.data_root`) every path must lie under it.  ``home``
    names the data directory of registered ids (default :func:`diagnostics.config.home`).  See
    :func:`diagnostics.data.ingest.open_source`.
    """
    store.clean_stale()
    if spec == "demo":
        return demo_dataset()
    if spec == "digits":
        return digits_dataset()
    return open_source(spec, labels=labels, params=params, workers=workers, progress=progress,
                       root=root, home=home)


def open_request(kind: str, *, path: str = "", labels: str | bytes | None = None,
                 name: str = "", data: bytes | None = None, params=None,
                 progress: Callable[[int, int], None] | None = None,
                 root: str | os.PathLike | None = None) -> str:
    """Open what a user asked for (the app's open and upload forms), register it, return its id.

    Parameters
    ----------
    kind : {"path", "upload"}
        ``"path"``: a file or folder on the server, ``path`` (and ``labels``, a path to a
        ``.npy``), both under ``root``.  ``"upload"``: an uploaded file's ``name`` and ``data``;
        a ``.zip`` of audio class folders, else a ``.npy``/``.npz`` with optional ``labels``
        (the bytes of a ``.npy``).
    params : FeatureParams, optional
        Audio feature settings (folders, manifests and zips only).
    progress : callable(done, total), optional
        Called while audio features are extracted.

    Returns
    -------
    str
        The dataset id: registered, so a link can name it.

    Raises
    ------
    NormScopeError
        On any bad request or data; nothing is registered then.
    """
    if kind == "path":
        if not str(path).strip():
            raise NormScopeError("type the path of a file or folder under the data root first")
        ds = load_dataset(path, labels=labels or None, params=params, progress=progress,
                          root=root)
        if is_registered(ds.id):
            return ds.id
        ref = reference_of(ds)
        if ref is not None and is_read_only_local(ds.X.spec):
            # Read-only and local: it cannot change under a reference, so nothing is copied.
            return store.register_reference(ds, ref, source=f"server file {ds.name}")
        return store.register_dataset(ds, source=f"server file {ds.name}")
    if kind != "upload":
        raise NormScopeError(f"cannot open a request of kind {kind!r}; use 'path' or 'upload'")
    if data is None:
        raise NormScopeError("choose a file to upload first")
    from . import uploads  # librosa (through the audio loader): only for uploads

    if name.lower().endswith(".zip"):
        return uploads.register_upload_zip(name, data, params, progress=progress)
    return uploads.register_upload_npy_npz(name, data, labels)


def delete_dataset(ident: str) -> int:
    """Remove a registered dataset and the cache entries naming it; return the bytes freed
    (see :func:`diagnostics.data.store.delete_dataset`)."""
    size = store.delete_dataset(ident)
    _forget_caches(str(ident).strip())
    return size


def _forget_caches(ident: str) -> None:
    """Remove cache entries naming a deleted dataset (they would only be misses)."""
    clip_cache.forget(ident)
    for f in (home() / "cache" / "audio").glob("*.json"):
        try:
            if json.loads(f.read_text()).get("id") == ident:
                f.unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            continue


