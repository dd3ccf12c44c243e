"""Open-then-register for audio: a clip list to a registered dataset, through the caches.

A source is keyed by the SHA-256 of every clip's bytes plus the feature parameters that matter;
the key maps to the id of the registered dataset, so a second open only lists the folder, looks
the hashes up and memory-maps the stored array.  Each source keeps a hash manifest, like git's
index: a file whose size, mtime, ctime and inode are unchanged keeps its recorded hash (ctime
cannot be set by tools that restore timestamps, so a replaced file is always hashed again; a file
modified within two seconds of being hashed is hashed again next time, the "racy" case).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from ...config import home, subdir
from ...errors import NormScopeError
from ..dataset import encode_labels
from ..files import NotRegularFile, describe_mode, open_regular
from ..store import is_registered, open_dataset, register_arrays
from . import clip_cache
from .features import (Extraction, FeatureParams, Progress, check_dataset_size,
                       extract_features)
from .sources import ClipList, read_manifest, scan_folder

#: A file changed this close to the moment its hash was recorded is hashed again (racy stat).
RACY_NS = 2_000_000_000


# --- cache -------------------------------------------------------------------------------------

#: Bump when the features of unchanged files and parameters change (a librosa upgrade that
#: changes the numbers, a new padding rule): every source and clip cache entry becomes a miss.
CACHE_VERSION = 1


def source_key(source: dict, params: FeatureParams) -> str:
    """Cache key of a source description (clip hashes, or an archive's hash) and parameters."""
    blob = json.dumps({"v": CACHE_VERSION, "source": source, "params": params.key()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _write_json(path: Path, obj) -> None:
    """Atomic write (temp file + rename): a concurrent reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache we cannot write only costs time next open


def cached_id(key: str) -> str | None:
    """Dataset id stored under a source key, if that dataset is still registered."""
    try:
        ident = json.loads((home() / "cache" / "audio" / f"{key}.json").read_text())["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ident if is_registered(ident) else None


def _remember(key: str, ident: str, source: str) -> None:
    try:
        d = subdir("cache", "audio")
    except NormScopeError:
        return
    _write_json(d / f"{key}.json", {"id": ident, "source": source})


def _sha256_file(path: Path) -> str:
    with open_regular(path) as fh:  # a FIFO swapped in after the stat is refused, not waited on
        return hashlib.file_digest(fh, "sha256").hexdigest()


def content_hashes(clips: ClipList, *, remember: bool = True,
                   root: Path | None = None) -> list[str]:
    """SHA-256 of each clip's bytes, reusing recorded hashes of unchanged files.

    A clip that cannot be read gets ``"!"`` plus the reason instead of a hash (it is skipped
    later): FIFOs, devices and sockets are never opened; with ``root``, clips resolving outside
    it are never read.
    """
    manifest = None
    entries: dict = {}
    if remember:
        try:
            manifest = subdir("cache", "hashes") / (
                hashlib.sha256(str(clips.origin).encode()).hexdigest()[:24] + ".json")
            entries = json.loads(manifest.read_text()).get("files", {})
        except (OSError, ValueError, AttributeError, NormScopeError):
            entries = {}
    now = time.time_ns()
    out, fresh, changed = [], {}, False
    for p in clips.paths:
        key = str(p)
        if root is not None and not p.resolve().is_relative_to(root):
            out.append("!lies outside the data root")
            continue
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out.append("!does not exist")
            continue
        except OSError as exc:
            out.append(f"!cannot be read ({exc.strerror})")
            continue
        if not stat.S_ISREG(st.st_mode):
            out.append(f"!is {describe_mode(st.st_mode)}, not an audio file")
            continue
        sig = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        e = entries.get(key)
        if (isinstance(e, list) and len(e) == 6 and e[:4] == sig
                and max(st.st_mtime_ns, st.st_ctime_ns) < e[5] - RACY_NS):
            out.append(e[4])
            fresh[key] = e
            continue
        try:
            digest = _sha256_file(p)
        except NotRegularFile as exc:
            out.append(f"!{exc.strerror}")
            continue
        except OSError as exc:
            out.append(f"!cannot be read ({exc.strerror})")
            continue
        out.append(digest)
        fresh[key] = sig + [digest, now]
        changed = True
    if manifest is not None and (changed or len(fresh) != len(entries)):
        _write_json(manifest, {"origin": str(clips.origin), "files": fresh})
    return out


# --- the whole way: source -> registered dataset ------------------------------------------------

def _mel_notes(params: FeatureParams) -> list[str]:
    """Warn when the mel filter bank has empty filters (too many bands for n_fft)."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = librosa.filters.mel(sr=params.sr, n_fft=params.n_fft, n_mels=params.n_mels)
    empty = int(np.sum(fb.max(axis=1) == 0))
    if not empty:
        return []
    what = "rows are" if params.feature != "mfcc" else "bands feed the MFCCs as"
    return [f"{empty} of the {params.n_mels} mel filters are empty (n_mels={params.n_mels} is too "
            f"many for n_fft={params.n_fft}): their {what} constant; lower n_mels or raise n_fft"]


def _encode(labels: list[str], where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if all(re.fullmatch(r"[+-]?\d{1,18}", s) for s in labels):
        arr = np.array([int(s) for s in labels], dtype=np.int64)  # 2 < 10, not "10" < "2"
    else:
        arr = np.array(labels, dtype=str)
    return encode_labels(arr, len(labels), where)


def load_clips(clips: ClipList, params: FeatureParams | None = None, *, name: str, source: str,
               key: str | None = None, workers: int | None = None,
               progress: Progress | None = None, root: Path | None = None,
               where: str | None = None):
    """Features of a clip list, from the cache or extracted and registered.

    Parameters
    ----------
    clips : ClipList
    params : FeatureParams, optional
    name, source : str
        Dataset name and a description of where it came from (kept in its meta).
    key : str, optional
        Cache key when the caller knows one (an upload's hash); otherwise the clips' content
        hashes make it.
    root : Path, optional
        Clips resolving outside it are skipped unread.
    where : str, optional
        How messages name the source (default its path; an upload's file name).

    Returns
    -------
    Dataset
        Registered, so its id is the content id.
    """
    params = params or FeatureParams()
    where = where or str(clips.origin)
    check_dataset_size(len(clips.paths), params)
    pre: dict[int, str] = {}
    hashes: list[str] = []
    if key is None:
        hashes = content_hashes(clips, remember=True, root=root)
        pre = {i: h[1:] for i, h in enumerate(hashes) if h.startswith("!")}
        labels = clips.labels or ("",) * len(clips.paths)
        key = source_key({"clips": [[n, lab, h] for n, lab, h in
                                    zip(clips.names, labels, hashes)]}, params)
    hit = cached_id(key)
    if hit is not None:
        return open_dataset(hit)
    todo = [i for i in range(len(clips.paths)) if i not in pre]
    # Clips whose features some registered dataset already holds are copied, not decoded:
    # one changed clip in a large folder costs one extraction.
    ckey = {"v": CACHE_VERSION, "params": params.key()}
    found, arrays = (clip_cache.lookup(ckey, {i: hashes[i] for i in todo}, params.shape)
                     if hashes else ({}, {}))
    need = [i for i in todo if i not in found]
    if need:
        ext = extract_features([clips.paths[i] for i in need], params, workers=workers,
                               progress=progress)
    else:  # everything reused: no pool, no "0 of 0 clips" progress
        ext = Extraction(X=np.empty((0, *params.shape), np.float32), ok=np.zeros(0, bool),
                         skipped=(), truncated=(), seconds=0.0, workers=0)
    new_ok = [need[j] for j in np.flatnonzero(ext.ok)]
    kept = sorted(set(new_ok) | set(found))
    reason_of = dict(pre)
    reason_of.update({need[j]: r for j, r in
                      zip(np.flatnonzero(~ext.ok), (r for _, r in ext.skipped))})
    trunc_paths = set(ext.truncated)
    truncated = [found[i][2] if i in found else os.fspath(clips.paths[i]) in trunc_paths
                 for i in kept]
    if found:
        X = np.empty((len(kept),) + ext.X.shape[1:], np.float32)
        pos = {i: k for k, i in enumerate(kept)}
        if new_ok:
            X[[pos[i] for i in new_ok]] = ext.X
        try:
            clip_cache.gather(found, arrays, {i: pos[i] for i in found}, X)
        except (OSError, ValueError):
            # The stored rows could not be read (a disk error under the memmap): forget
            # them and decode every clip instead; slower, never wrong.
            for ds in arrays:
                clip_cache.forget(ds)
            return load_clips(clips, params, name=name, source=source, workers=workers,
                              progress=progress, root=root, where=where)
    else:
        X = ext.X
    skipped = [[clips.names[i], reason_of[i]] for i in sorted(reason_of)]
    if not kept:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise NormScopeError(
            f"none of the {len(clips.paths)} clips in {where} could be decoded{first}; check "
            "that they are audio files soundfile can read"
        )
    notes = list(clips.notes)
    if skipped:
        notes.append(f"{len(skipped)} of {len(clips.paths)} clips could not be decoded and were "
                     "skipped (see the list of skipped clips)")
    if any(truncated):
        notes.append(f"{sum(truncated)} clip(s) are cut short (damaged or truncated files); "
                     "the part that could be read was kept and padded with zeros")
    notes += _mel_notes(params)
    y, class_names = None, ()
    if clips.labels is not None:
        y, class_names = _encode([clips.labels[i] for i in kept], where)
        lost = sorted(set(clips.labels) - {clips.labels[i] for i in kept})
        if lost:
            notes.append(f"class(es) {', '.join(lost[:5])} lost every clip to decoding errors")
    ident = register_arrays(X, y, class_names, name, {
        "source": source, "feature_params": params.key(), "skipped": skipped, "notes": notes,
        "files": [clips.names[i] for i in kept],
        "row_label": "MFCC coefficient" if params.feature == "mfcc" else "frequency band",
        "col_label": "frame", "row_origin": "lower",
        "extract_seconds": round(ext.seconds, 3), "workers": ext.workers,
        "extracted": len(need), "reused": len(found),
    })
    _remember(key, ident, source)
    if hashes:
        clip_cache.remember(ckey, ident, [hashes[i] for i in kept], truncated)
    return open_dataset(ident)


def load_audio(source: str | os.PathLike, *, params: FeatureParams | None = None,
               workers: int | None = None, progress: Progress | None = None,
               root: str | os.PathLike | None = None, name: str | None = None):
    """Open an audio folder (one sub-folder per class) or a ``path,label`` CSV manifest.

    The features are cached and the dataset registered: the second open of unchanged files
    with the same parameters only lists the files and memory-maps the stored array.

    Parameters
    ----------
    source : path-like
        A folder or a ``.csv`` file.
    params : FeatureParams, optional
        Default ``FeatureParams()`` (60 x 130 linear-power mel).
    workers : int, optional
        Processes for feature extraction (default: every core).
    progress : callable(done, total), optional
        Called during extraction only (not on a cache hit).
    root : path-like, optional
        If given, clips resolving outside it (manifest entries, symbolic links) are skipped
        without being read.
    name : str, optional
        Dataset name; default the folder's or manifest's name.

    Returns
    -------
    Dataset
        A registered dataset: ``ds.id`` is its content id; skipped clips are in
        ``registry.dataset_meta(ds.id)["skipped"]``.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        clips = scan_folder(path)
        kind = "folder"
    elif path.suffix.lower() == ".csv":
        clips = read_manifest(path)
        kind = "manifest"
    elif not path.exists():
        raise NormScopeError(f"{path} does not exist; check the path")
    else:
        raise NormScopeError(f"{path} is neither a folder of audio clips nor a .csv manifest")
    root = Path(root).resolve() if root is not None else None
    return load_clips(clips, params, name=name or (path.stem if kind == "manifest" else path.name),
                      source=f"{kind} {clips.origin}", workers=workers, progress=progress,
                      root=root)
