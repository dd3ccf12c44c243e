"""Uploads from the app: checked, unpacked into a private temporary folder and registered.
Pure functions (no streamlit): the app passes the file's name and bytes."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..config import subdir
from ..errors import NormScopeError
from .arrays import NPZ_MAX_BYTES, load_array_file
from .audio import features as audio_features
from .audio import loader as audio_loader
from .audio.sources import AUDIO_EXTENSIONS, scan_folder
from .files import claim_dir, release_dir
from .store import clean_stale, register_arrays

#: Zip uploads: most entries and most uncompressed bytes accepted (zip-bomb guard).
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_BYTES = 2 * 2**30
#: Longest name of one part of a path (bytes), as most file systems allow.
NAME_MAX = 255
#: Longest relative path of a zip entry (bytes); Linux's PATH_MAX is 4096 including the folder.
PATH_MAX = 1024


# --- uploads (pure functions for the app; no streamlit here) ----------------------------------

def _upload_name(filename: str) -> str:
    """The last part of an uploaded file's name, without control characters."""
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "upload"


class _TempDir:
    """A private temporary folder under ``NORMSCOPE_HOME/tmp``, removed on exit.

    It is claimed (see :mod:`diagnostics.data.files`) while in use, so if this process dies
    the next one removes it at start-up (:func:`diagnostics.data.store.clean_stale`).
    """

    def __enter__(self) -> Path:
        clean_stale()
        parent = subdir("tmp")
        try:
            self.path = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
        except OSError as exc:
            raise NormScopeError(f"cannot store the upload in {parent} ({exc.strerror}); free "
                                 "some disk space or set NORMSCOPE_HOME to a writable folder"
                                 ) from None
        self.claim = claim_dir(self.path)
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        release_dir(self.claim)


def register_upload_npy_npz(filename: str, data_bytes: bytes,
                            labels_bytes: bytes | None = None) -> str:
    """Check and register an uploaded ``.npy`` or ``.npz`` (and optional labels ``.npy``).

    The bytes are written to a private temporary file and read with ``allow_pickle=False`` by
    :func:`diagnostics.data.arrays.load_array_file`: the same rules as a file on the server, and
    no pickle is ever loaded.  A compressed ``.npz`` member may unpack to at most
    :data:`diagnostics.data.arrays.NPZ_MAX_BYTES` (checked before inflating).  Messages name the
    uploaded file, not the temporary one.

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
        lpath = None
        try:
            path.write_bytes(data_bytes)
            if labels_bytes is not None:
                lpath = tmp / "labels.npy"
                lpath.write_bytes(labels_bytes)
        except OSError as exc:
            raise NormScopeError(f"cannot store the upload {name} in {tmp.parent} "
                                 f"({exc.strerror}); free some disk space or set NORMSCOPE_HOME "
                                 "to a writable folder") from None
        try:
            ds = load_array_file(path, lpath, max_unpacked=NPZ_MAX_BYTES)
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
    _check_layout(members, archive)
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
    except OSError as exc:  # a full disk, a name the file system refuses
        raise NormScopeError(f"cannot unpack {archive} ({exc.strerror}); free some disk space, "
                             "or zip the class folders again with shorter names") from None


def _check_layout(members: list, archive: str) -> None:
    """Refuse names no file system holds and trees that cannot exist, before writing anything:
    a part longer than :data:`NAME_MAX` bytes, a path longer than :data:`PATH_MAX`, the same
    path twice, and a path that is both a file and a folder (``data/a`` and ``data/a/0.wav``)."""
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for _, rel in members:
        for part in rel.parts:
            if len(os.fsencode(part)) > NAME_MAX:
                raise NormScopeError(
                    f"{archive} contains an entry whose name {part[:40]!r}... is "
                    f"{len(os.fsencode(part))} bytes long, more than the {NAME_MAX} a file name "
                    "may have; rename it and zip the folders again")
        if len(os.fsencode(str(rel))) > PATH_MAX:
            raise NormScopeError(f"{archive} contains an entry whose path is longer than "
                                 f"{PATH_MAX} bytes ({str(rel)[:40]!r}...); shorten the folder "
                                 "names and zip again")
        if rel in files:
            raise NormScopeError(f"{archive} contains {str(rel)[:80]!r} twice; zip the class "
                                 "folders again")
        files.add(rel)
        folders.update(rel.parents)
    both = sorted(files & folders)
    if both:
        raise NormScopeError(f"{archive} holds {str(both[0])[:80]!r} both as a file and as a "
                             "folder; rename one of them and zip the folders again")


def _class_root(folder: Path) -> Path:
    """Descend through a single top folder (``data.zip`` holding ``data/dog/a.wav``)."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        dirs = [e for e in entries if e.is_dir()]
        loose_audio = any(e.is_file() and e.name.lower().endswith(AUDIO_EXTENSIONS) for e in entries)
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
    goes through :func:`diagnostics.data.audio.loader.load_audio`; the same zip with the same parameters is
    found in the cache without unpacking.

    Parameters
    ----------
    filename : str
        The uploaded file's name (used for the dataset name and messages only).
    data_bytes : bytes
        The archive.
    feature_params : FeatureParams, optional
        Default :class:`diagnostics.audio_features.FeatureParams()`.
    progress : callable(done, total), optional
        Called while features are extracted.

    Returns
    -------
    str
        The dataset id.
    """
    params = feature_params if feature_params is not None else audio_features.FeatureParams()
    name = _upload_name(filename)
    if not Path(name).suffix.lower() == ".zip":
        raise NormScopeError(f"{name} is not a .zip archive; upload a zip of class folders")
    clean_stale()
    digest = hashlib.sha256(data_bytes).hexdigest()
    key = audio_loader.source_key({"zip": digest}, params)
    cached = audio_loader.cached_id(key)
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
            clips = scan_folder(folder)
        except NormScopeError as exc:
            raise NormScopeError(str(exc).replace(str(folder), name)) from None
        ds = audio_loader.load_clips(clips, params, name=Path(name).stem, source=f"upload {name}",
                              key=key, workers=workers, progress=progress, where=name)
    return ds.id
