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
from .dataset import Dataset
from .store import dataset_dir, is_dataset_id, is_registered, open_dataset


# --- sources: ids, folders, manifests, array files -------------------------------------------

def source_kind(spec: str) -> str:
    """What ``spec`` names: ``builtin``, ``id``, ``folder``, ``manifest`` or ``file``."""
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
                root: str | os.PathLike | None = None,
                home: str | os.PathLike | None = None) -> Dataset:
    """Open a registered id, an audio folder, a ``.csv`` manifest or an array file.

    Audio folders and manifests are turned into features (cached) and registered, so the
    returned dataset's id is its content id.  With ``root`` every path (the spec, the labels
    file and each clip of a manifest) must lie under it.  ``home`` is the data directory that
    registered ids are looked up in (default :func:`diagnostics.config.home`; training workers
    pass their job's); audio sources are registered under the default one.
    """
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
    if spec == "demo":
        return demo_dataset()
    if spec == "digits":
        return digits_dataset()
    return open_source(spec, labels=labels, params=params, workers=workers, progress=progress,
                       root=root, home=home)


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


