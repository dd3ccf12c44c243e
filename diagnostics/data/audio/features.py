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

Over 450 lines on purpose: the parameters, the one-clip path and the process pool are one
pipeline whose budget checks and warm-up must agree; split, they would import each other.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass

import numpy as np

from ...errors import NormScopeError
from ..files import format_bytes

FEATURES = ("mel", "logmel", "mfcc")
#: Modules the forkserver imports once, so every worker forks with librosa ready.
PRELOAD = ("diagnostics.data.audio.features", "soundfile", "soxr", "scipy.signal", "scipy.fft",
           "librosa.core.audio", "librosa.core.spectrum", "librosa.feature.spectral",
           "librosa.filters", "diagnostics.data.audio._warm")
#: With ``workers=None``, fewer clips than this are done in this process: starting a pool
#: (about 1.5 s the first time, when the forkserver imports librosa) costs more than it saves.
MIN_POOL_CLIPS = 256

#: Most memory one clip may need while its features are made (bytes): the decoded signal
#: (float32), the STFT (complex64, 1 + n_fft/2 bins x frames), its power (float32) and the mel
#: output.  Settings above it are refused before anything is allocated: the defaults (3 s at
#: 22,050 Hz, hop 512) need about 1.8 MiB, an hour at 16 kHz with hop 160 about 1.4 GiB.
MAX_CLIP_BYTES = 2 * 2**30
#: The features of a whole source are held in memory once (float32) before they are stored:
#: at most this share of the machine's physical memory.
MAX_DATASET_MEMORY_SHARE = 0.5

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
        if self.work_bytes > MAX_CLIP_BYTES:
            raise NormScopeError(
                f"duration={self.duration:g} s at sr={self.sr} with hop={self.hop} and "
                f"n_fft={self.n_fft} makes {self.n_frames:,} frames per clip and needs about "
                f"{format_bytes(self.work_bytes)} of memory per clip, more than the limit of "
                f"{format_bytes(MAX_CLIP_BYTES)}; shorten the duration, lower the sample rate "
                "or raise the hop"
            )

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

    @property
    def work_bytes(self) -> int:
        """Memory one clip needs at its peak (see :data:`MAX_CLIP_BYTES`), in bytes."""
        bins = 1 + self.n_fft // 2
        return (self.n_samples * 4 + bins * self.n_frames * (8 + 4)
                + 2 * self.n_mels * self.n_frames * 4)

    @property
    def example_bytes(self) -> int:
        """Bytes of one example's features (float32)."""
        rows, frames = self.shape
        return rows * frames * 4

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


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_dataset_size(n_clips: int, params: FeatureParams) -> None:
    """Refuse, before anything is allocated, features of ``n_clips`` that would not fit in
    :data:`MAX_DATASET_MEMORY_SHARE` of physical memory."""
    total = int(n_clips) * params.example_bytes
    mem = _physical_memory()
    if mem is not None and total > MAX_DATASET_MEMORY_SHARE * mem:
        rows, frames = params.shape
        raise NormScopeError(
            f"the features of {n_clips:,} clips ({rows} x {frames:,} each) take "
            f"{format_bytes(total)}, more than {MAX_DATASET_MEMORY_SHARE:.0%} of this machine's "
            f"memory ({format_bytes(mem)}); use fewer clips, a shorter duration or a larger hop"
        )


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


def warm_up() -> None:
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
    from ...processes import context

    # Workers fork from a server that imported librosa once, so after the first pool a new
    # one starts in milliseconds; spawn would re-import librosa (~1 s) in every worker.  The
    # server is shared with the training workers: diagnostics.processes keeps both lists.
    return context(PRELOAD)


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
    check_dataset_size(n, params)
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


