"""Audio clips to features: folders of class sub-folders or CSV manifests, through librosa.

A clip becomes one (H, W) example exactly as a typical librosa pipeline makes it::

    y, _ = librosa.load(path, sr=sr, mono=True, duration=duration)   # resample, mix to mono
    y = librosa.util.fix_length(y, size=int(duration * sr))          # pad with zeros / trim
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop,
                                       n_mels=n_mels, power=2.0)      # feature="mel"
    S = librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)     # feature="logmel"
    S = librosa.feature.mfcc(S=that_db, n_mfcc=n_mfcc)                # feature="mfcc"

so every clip has exactly ``1 + int(duration * sr) // hop`` frames (130 for the defaults).
Silence gives zeros (mel) or the ``amin`` floor (dB), never NaN or inf.  A clip that cannot be
decoded (not audio, damaged, no samples, NaN samples) is skipped and listed with the reason;
only a source with no usable clip at all is an error.

Work is spread over a process pool (forkserver where available, else spawn; file paths go in,
float32 arrays come out) and reported through ``progress(done, total)``.

Cache (under ``NORMSCOPE_HOME/cache``).  A source is keyed by the SHA-256 of every clip's bytes
plus the feature parameters that matter for the chosen feature; the key maps to the id of the
registered dataset, so a second open only lists the folder, looks the hashes up and memory-maps
the stored array.  Hashing every file again on each open would read the whole folder (minutes
for large collections), so each source keeps a hash manifest, like git's index: a file whose
size, mtime, ctime and inode are unchanged keeps its recorded hash.  ctime cannot be set by
tools that restore timestamps (``cp -p``, ``rsync -t``, unzip), so a replaced file is always
hashed again; and a file modified within two seconds of being hashed is hashed again next time
(the "racy" case where a write lands in the same timestamp tick).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import clip_cache
from .errors import NormScopeError

#: File name endings read as audio (all readable by soundfile / libsndfile >= 1.1).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
FEATURES = ("mel", "logmel", "mfcc")
#: A file changed this close to the moment its hash was recorded is hashed again (racy stat).
RACY_NS = 2_000_000_000
#: Modules the forkserver imports once, so every worker forks with librosa ready.
PRELOAD = ("diagnostics.audio", "soundfile", "soxr", "scipy.signal", "scipy.fft",
           "librosa.core.audio", "librosa.core.spectrum", "librosa.feature.spectral",
           "librosa.filters", "diagnostics._audio_warm")
#: With ``workers=None``, fewer clips than this are done in this process: starting a pool
#: (about 1.5 s the first time, when the forkserver imports librosa) costs more than it saves.
MIN_POOL_CLIPS = 256

Progress = Callable[[int, int], None]
_INLINE_LOCK = threading.Lock()


# --- parameters --------------------------------------------------------------------------------

def _int_param(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                       np.floating)):
        raise NormScopeError(f"{name}={value!r} must be a whole number")
    if value != int(value):
        raise NormScopeError(f"{name}={value!r} must be a whole number")
    if not lo <= int(value) <= hi:
        raise NormScopeError(f"{name}={value!r} must be between {lo} and {hi}")
    return int(value)


@dataclass(frozen=True)
class FeatureParams:
    """How clips become features; the defaults give 60 x 130 linear-power mel spectrograms.

    Invalid values raise :class:`NormScopeError` naming the value.
    """

    #: "mel" (linear power, power=2), "logmel" (power_to_db of it) or "mfcc".
    feature: str = "mel"
    #: Sample rate clips are resampled to (librosa's soxr_hq), in Hz.
    sr: int = 22050
    #: Mel bands (the rows of mel/logmel; the filter bank behind mfcc).
    n_mels: int = 60
    #: FFT window length in samples.
    n_fft: int = 2048
    #: Hop between frames in samples.
    hop: int = 512
    #: Clip length in seconds: shorter clips are padded with zeros, longer ones trimmed.
    duration: float = 3.0
    #: MFCC coefficients (the rows of mfcc).
    n_mfcc: int = 20
    #: dB conversion (logmel, mfcc): librosa.power_to_db's defaults, ref=1.0.
    top_db: float | None = 80.0
    amin: float = 1e-10

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise NormScopeError(f"feature={self.feature!r} is unknown; use mel, logmel or mfcc")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen)
        set_("sr", _int_param("sr", self.sr, 1000, 384_000))
        set_("n_fft", _int_param("n_fft", self.n_fft, 16, 65_536))
        set_("n_mels", _int_param("n_mels", self.n_mels, 1, 1024))
        set_("hop", _int_param("hop", self.hop, 1, 65_536))
        set_("n_mfcc", _int_param("n_mfcc", self.n_mfcc, 1, 1024))
        try:
            duration = float(self.duration)
        except (TypeError, ValueError):
            raise NormScopeError(
                f"duration={self.duration!r} must be a number of seconds") from None
        if not np.isfinite(duration) or not 0 < duration <= 3600:
            raise NormScopeError(f"duration={self.duration!r} must be between 0 and 3600 seconds")
        set_("duration", duration)
        if int(duration * self.sr) < 1:
            raise NormScopeError(f"duration={duration} s at sr={self.sr} is less than one sample")
        if self.feature == "mfcc" and self.n_mfcc > self.n_mels:
            raise NormScopeError(f"n_mfcc={self.n_mfcc} must not exceed n_mels={self.n_mels}")
        if self.top_db is not None and not (np.isfinite(self.top_db) and self.top_db >= 0):
            raise NormScopeError(f"top_db={self.top_db!r} must be a number >= 0 or None")
        if not (np.isfinite(self.amin) and self.amin > 0):
            raise NormScopeError(f"amin={self.amin!r} must be a number > 0")

    @property
    def n_samples(self) -> int:
        """Samples per clip after padding or trimming."""
        return int(self.duration * self.sr)

    @property
    def n_frames(self) -> int:
        """Frames per clip (centered STFT): ``1 + n_samples // hop``."""
        return 1 + self.n_samples // self.hop

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, frames) of one example."""
        return (self.n_mfcc if self.feature == "mfcc" else self.n_mels), self.n_frames

    def key(self) -> dict:
        """The parameters that change the numbers (part of cache keys and dataset ids)."""
        d = asdict(self)
        if self.feature != "mfcc":
            del d["n_mfcc"]
        if self.feature == "mel":
            del d["top_db"], d["amin"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeatureParams:
        """Inverse of :meth:`key` / :func:`dataclasses.asdict` (unknown keys are refused)."""
        names = {f for f in cls.__dataclass_fields__}
        bad = sorted(set(d) - names)
        if bad:
            raise NormScopeError(f"unknown feature parameter(s) {', '.join(bad)}")
        return cls(**d)


# --- one clip ----------------------------------------------------------------------------------

class ClipError(Exception):
    """A clip that cannot be turned into features; the message is the reason shown to users."""


def _decode(path: str, params: FeatureParams) -> tuple[np.ndarray, bool]:
    """Samples of a clip (resampled, mono, at most ``duration`` s) and whether it is truncated."""
    import librosa
    import soundfile as sf

    if isinstance(path, str) and not os.path.isfile(path):
        raise ClipError("does not exist" if not os.path.exists(path) else "is not a file")
    try:
        info = sf.info(path)
        if hasattr(path, "seek"):  # a file object (the warm-up) is read twice
            path.seek(0)
    except Exception as exc:  # noqa: BLE001 -- any decoder failure is a reason, not a crash
        msg = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
        raise ClipError(f"not readable as audio: {msg}") from None
    if info.frames == 0:
        raise ClipError("holds no samples")
    # libsndfile reads what is there of a cut-off file and logs "(should be N)" for its chunks.
    truncated = "should be" in (info.extra_info or "")
    try:
        y, _ = librosa.load(path, sr=params.sr, mono=True, duration=params.duration)
    except Exception as exc:  # noqa: BLE001
        if "not finite" in str(exc):  # librosa's own check of the samples
            raise ClipError("holds NaN or infinite samples") from None
        raise ClipError(f"cannot be decoded: {str(exc) or type(exc).__name__}") from None
    if y.size == 0:
        raise ClipError("holds no samples")
    if not np.all(np.isfinite(y)):
        raise ClipError("holds NaN or infinite samples")
    return y, truncated


def features_from_signal(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Features of a mono signal already at ``params.sr``.

    Parameters
    ----------
    y : float array, shape (n,)
    params : FeatureParams

    Returns
    -------
    float32 array, shape ``params.shape``
    """
    import librosa

    y = librosa.util.fix_length(np.asarray(y, dtype=np.float32), size=params.n_samples)
    S = librosa.feature.melspectrogram(y=y, sr=params.sr, n_fft=params.n_fft,
                                       hop_length=params.hop, n_mels=params.n_mels, power=2.0)
    if params.feature != "mel":
        S = librosa.power_to_db(S, ref=1.0, amin=params.amin, top_db=params.top_db)
    if params.feature == "mfcc":
        S = librosa.feature.mfcc(S=S, sr=params.sr, n_mfcc=params.n_mfcc)
    S = librosa.util.fix_length(S, size=params.n_frames, axis=-1)
    return np.ascontiguousarray(S, dtype=np.float32)


def clip_features(path: str | os.PathLike, params: FeatureParams | None = None) -> np.ndarray:
    """Features of one audio file (see the module docstring for the exact librosa calls).

    Raises
    ------
    ClipError
        If the file cannot be decoded; the message is the reason.
    """
    params = params or FeatureParams()
    y, _ = _decode(os.fspath(path), params)
    return features_from_signal(y, params)


def _one(path: str, params: FeatureParams) -> tuple[np.ndarray | None, str | None, bool]:
    """(features, None, truncated) or (None, reason, False); never raises for a bad clip."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decoder chatter would break one-line CLI output
            y, truncated = _decode(path, params)
            F = features_from_signal(y, params)
        if not np.all(np.isfinite(F)):
            return None, "features are not finite", False
        return F, None, truncated
    except ClipError as exc:
        return None, str(exc), False
    except MemoryError:
        return None, "too large to decode in memory", False
    except Exception as exc:  # noqa: BLE001 -- a bad clip must never stop the others
        return None, f"{type(exc).__name__}: {exc}"[:300], False


def _batch(paths: list[str], params: FeatureParams) -> list[tuple]:
    return [_one(p, params) for p in paths]


def _worker_init() -> None:
    # One BLAS thread per worker: two workers x two OpenBLAS threads on two cores ran the mel
    # projection about 4x slower than one thread (oversubscription).
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warnings.simplefilter("ignore")


def _warm_up() -> None:
    """Run the whole feature path once on silence (used by the forkserver; see PRELOAD)."""
    _worker_init()
    try:
        import audioread

        import io

        import soundfile as sf

        audioread.available_backends()  # librosa.load asks on every call; the first is slow
        buf = io.BytesIO()
        sf.write(buf, np.zeros(2205, np.float32), 22050, format="WAV")
        wav = buf.getvalue()
        for sr in (22050, 16000):  # decoding and resampling
            _one(io.BytesIO(wav), FeatureParams(sr=sr, duration=0.1))
    except Exception:  # noqa: BLE001 -- a failed warm-up only costs time later
        pass


# --- many clips --------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Extraction:
    """Features of the clips that could be decoded, in input order.

    Attributes
    ----------
    X : float32 array, shape (n_ok, H, W)
    ok : bool array, shape (N,)
        Which input clips are in X.
    skipped : tuple of (str, str)
        (path, reason) of each clip left out.
    truncated : tuple of str
        Paths of clips whose file is cut short (decoded part kept).
    seconds : float
    workers : int
    """

    X: np.ndarray
    ok: np.ndarray
    skipped: tuple[tuple[str, str], ...]
    truncated: tuple[str, ...]
    seconds: float
    workers: int


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _mp_context():
    import multiprocessing as mp
    from multiprocessing import forkserver

    if "forkserver" in mp.get_all_start_methods():
        # Workers fork from a server that imported librosa once, so after the first pool a new
        # one starts in milliseconds; spawn would re-import librosa (~1 s) in every worker.
        # Keep whatever another part of the program asked to preload.
        current = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(current + [m for m in PRELOAD if m not in current])
        return ctx
    return mp.get_context("spawn")


class _Reporter:
    """Calls ``progress`` at the start, at most ten times a second, and at the end."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.last = progress, total, 0.0
        if progress:
            progress(0, total)

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.progress and (done >= self.total or now - self.last >= 0.1):
            self.last = now
            self.progress(done, self.total)


def extract_features(paths: Sequence[str | os.PathLike], params: FeatureParams | None = None, *,
                     workers: int | None = None, progress: Progress | None = None) -> Extraction:
    """Features of many clips, on ``workers`` processes (default: every core).

    Parameters
    ----------
    paths : sequence of path-like
    params : FeatureParams, optional
    workers : int, optional
        1 runs in this process, more use a process pool.  Default: every core, for at least
        :data:`MIN_POOL_CLIPS` clips (fewer are done in this process).  The pool starts
        workers with forkserver (or spawn), which imports the calling script again: call this
        from under ``if __name__ == "__main__":`` in scripts.
    progress : callable(done, total), optional
        Called with (0, total) first, then at most ten times a second, and with
        (total, total) at the end.

    Returns
    -------
    Extraction
    """
    params = params or FeatureParams()
    paths = [os.fspath(p) for p in paths]
    n = len(paths)
    if workers is None:
        workers = default_workers() if n >= MIN_POOL_CLIPS else 1
    workers = int(workers)
    if workers < 1:
        raise NormScopeError(f"workers={workers} must be at least 1")
    workers = min(workers, n) if n > 1 else 1
    H, W = params.shape
    X = np.empty((n, H, W), np.float32)
    ok = np.zeros(n, bool)
    reasons: dict[int, str] = {}
    truncated: list[int] = []
    report = _Reporter(progress, n)
    t0 = time.perf_counter()

    def store(i: int, result: tuple) -> None:
        F, reason, trunc = result
        if F is None:
            reasons[i] = reason
        else:
            X[i], ok[i] = F, True
            if trunc:
                truncated.append(i)

    if workers == 1:
        from threadpoolctl import threadpool_limits

        # One BLAS thread (see _worker_init).  threadpoolctl's limit is process-wide, so
        # in-process runs take turns: interleaved enter/exit from two threads (two app
        # sessions) could otherwise leave the whole process at one thread.
        with _INLINE_LOCK, threadpool_limits(1, user_api="blas"):
            for i, p in enumerate(paths):
                store(i, _one(p, params))
                report(i + 1)
    else:
        size = int(np.clip(n // (workers * 16), 1, 32))  # small batches: smooth progress, cheap IPC
        batches = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        ex = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(),
                                 initializer=_worker_init)
        try:
            futures = {ex.submit(_batch, [paths[i] for i in b], params): b for b in batches}
            done = 0
            for fut in as_completed(futures):
                b = futures[fut]
                try:
                    results = fut.result()
                except BrokenProcessPool:
                    raise NormScopeError(
                        f"a feature worker stopped while reading {paths[b[0]]} or one of the "
                        f"{len(b) - 1} clips after it (out of memory, a decoder crash, or a script "
                        "that starts the work outside `if __name__ == '__main__':`); run again "
                        "with --workers 1 to find the clip"
                    ) from None
                for i, r in zip(b, results):
                    store(i, r)
                done += len(b)
                report(done)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
    # Compact in place: the kept rows move up, no second array.
    k = 0
    for i in np.flatnonzero(ok):
        if k != i:
            X[k] = X[i]
        k += 1
    return Extraction(
        X=X[:k], ok=ok, skipped=tuple((paths[i], reasons[i]) for i in sorted(reasons)),
        truncated=tuple(paths[i] for i in sorted(truncated)),
        seconds=time.perf_counter() - t0, workers=workers,
    )


# --- sources: folders and manifests -----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ClipList:
    """The clips of a source, in the order they become rows.

    Attributes
    ----------
    paths : tuple of Path
        Absolute paths.
    names : tuple of str
        How each clip is shown (relative to ``base`` where possible).
    labels : tuple of str, or None
        Class of each clip (the sub-folder, or the manifest's label); None without classes.
    origin : Path
        The folder or the manifest file.
    kind : {"folder", "manifest"}
    notes : tuple of str
        What was ignored and why.
    """

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    labels: tuple[str, ...] | None
    origin: Path
    kind: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _ext_list() -> str:
    return ", ".join(AUDIO_EXTENSIONS[:4]) + ", ..."


def scan_folder(folder: str | os.PathLike) -> ClipList:
    """List the clips of a folder with one sub-folder per class (nested folders allowed).

    Hidden files and folders are ignored, and so are files that are not audio (counted in
    the notes).  A folder with audio files but no class sub-folders gives unlabelled clips.

    Raises
    ------
    NormScopeError
        If the folder does not exist, is empty, or holds no audio file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise NormScopeError(f"{folder} does not exist; check the path")
    if not folder.is_dir():
        raise NormScopeError(f"{folder} is not a folder")
    try:
        top = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")),
                     key=lambda e: e.name)
    except OSError as exc:
        raise NormScopeError(f"cannot read {folder} ({exc.strerror})") from None
    if not top:
        raise NormScopeError(f"{folder} is empty; put one sub-folder per class with audio clips "
                             f"({_ext_list()}) in it")
    labelled: list[tuple[str, str]] = []  # (relative name, class)
    loose: list[str] = []
    other = 0
    for entry in top:
        if entry.is_dir():
            for dirpath, dirnames, filenames in os.walk(entry.path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fname in sorted(filenames):
                    if fname.startswith("."):
                        continue
                    if _is_audio(fname):
                        rel = os.path.relpath(os.path.join(dirpath, fname), folder)
                        labelled.append((Path(rel).as_posix(), entry.name))
                    else:
                        other += 1
        elif _is_audio(entry.name):
            loose.append(entry.name)
        else:
            other += 1
    notes = []
    if other:
        notes.append(f"{other} file(s) that are not audio ({_ext_list()}) were ignored")
    if labelled:
        if loose:
            notes.append(f"{len(loose)} clip(s) directly in {folder.name}/ (not in a class "
                         "sub-folder) were ignored")
        labelled.sort()
        names = tuple(r for r, _ in labelled)
        labels: tuple[str, ...] | None = tuple(c for _, c in labelled)
    elif loose:
        notes.append("the clips are not sorted into class sub-folders, so they have no labels")
        names, labels = tuple(sorted(loose)), None
    else:
        raise NormScopeError(
            f"{folder} holds no audio clips ({_ext_list()}) in class sub-folders "
            f"({other} other file(s)); put one sub-folder per class with audio clips in it"
        )
    paths = tuple((folder / n).absolute() for n in names)
    return ClipList(paths=paths, names=names, labels=labels, origin=folder.absolute(),
                    kind="folder", notes=tuple(notes))


def read_manifest(csv_path: str | os.PathLike) -> ClipList:
    """Read a ``path,label`` CSV; paths are relative to the CSV's folder (or absolute).

    A header line ``path,label`` is optional; blank lines and lines starting with ``#`` are
    skipped.  Files that are missing are not an error here: they are skipped, with the reason,
    when the features are made.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise NormScopeError(f"{csv_path} does not exist; check the path")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise NormScopeError(f"{csv_path} is not a UTF-8 text file; save the manifest as CSV "
                             "(path,label)") from None
    except OSError as exc:
        raise NormScopeError(f"cannot read {csv_path} ({exc.strerror})") from None
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise NormScopeError(f"{csv_path} is not a valid CSV ({exc})") from None
    base = csv_path.parent.absolute()
    paths, names, labels = [], [], []
    for lineno, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not paths and [c.lower() for c in cells[:2]] in (["path", "label"], ["file", "label"],
                                                            ["filename", "label"]):
            continue  # header
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise NormScopeError(f"line {lineno} of {csv_path} is {','.join(row)[:80]!r}; every "
                                 "line must be path,label")
        p = Path(cells[0]).expanduser()
        paths.append(p if p.is_absolute() else base / p)
        names.append(cells[0])
        labels.append(cells[1])
    if not paths:
        raise NormScopeError(f"{csv_path} lists no clips; write one line path,label per clip")
    return ClipList(paths=tuple(paths), names=tuple(names), labels=tuple(labels),
                    origin=csv_path.absolute(), kind="manifest")


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
    from .registry import home, is_registered

    try:
        ident = json.loads((home() / "cache" / "audio" / f"{key}.json").read_text())["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ident if is_registered(ident) else None


def _remember(key: str, ident: str, source: str) -> None:
    from .registry import _subdir

    try:
        d = _subdir("cache", "audio")
    except NormScopeError:
        return
    _write_json(d / f"{key}.json", {"id": ident, "source": source})


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def content_hashes(clips: ClipList, *, remember: bool = True,
                   root: Path | None = None) -> list[str]:
    """SHA-256 of each clip's bytes, reusing recorded hashes of unchanged files.

    A clip that cannot be read gets ``"!"`` plus the reason instead of a hash (it is skipped
    later); with ``root``, clips resolving outside it are never read.
    """
    from .registry import _subdir

    manifest = None
    entries: dict = {}
    if remember:
        try:
            manifest = _subdir("cache", "hashes") / (
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
        sig = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        e = entries.get(key)
        if (isinstance(e, list) and len(e) == 6 and e[:4] == sig
                and max(st.st_mtime_ns, st.st_ctime_ns) < e[5] - RACY_NS):
            out.append(e[4])
            fresh[key] = e
            continue
        try:
            digest = _sha256_file(p)
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
    from .datasets import encode_labels

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
    from .registry import open_dataset, register_arrays

    params = params or FeatureParams()
    where = where or str(clips.origin)
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
