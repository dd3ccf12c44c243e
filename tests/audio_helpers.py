"""Audio fixtures synthesised by the tests (tones and noise written with soundfile)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SR = 22050


def signal(freq: float, *, seconds: float = 1.0, sr: int = SR, channels: int = 1,
           noise: float = 0.01, rng: np.random.Generator | None = None) -> np.ndarray:
    """A sine tone plus a little white noise; (n,) or (n, channels) float32."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    if rng is not None and noise:
        x = x + noise * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def write_clip(path: Path, freq: float = 440.0, *, rng=None, **kw) -> Path:
    """Write a tone to ``path`` (format from the extension: wav, flac, ogg, mp3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = kw.get("sr", SR)
    sf.write(path, signal(freq, rng=rng, **kw), sr)
    return path


def make_folder(root: Path, rng, *, classes=(("dog", 440.0), ("cat", 1320.0)),
                per_class: int = 6, seconds: float = 1.0) -> Path:
    """One sub-folder per class with ``per_class`` one-second tone clips each."""
    for name, freq in classes:
        for i in range(per_class):
            write_clip(root / name / f"{i:02d}.wav", freq * (1 + 0.02 * i), rng=rng,
                       seconds=seconds)
    return root


def librosa_reference(path: Path, *, feature: str = "mel", sr: int = SR, n_mels: int = 60,
                      n_fft: int = 2048, hop: int = 512, duration: float = 3.0,
                      n_mfcc: int = 20) -> np.ndarray:
    """What a user's own librosa pipeline gives for one clip (written out independently)."""
    y, _ = librosa.load(path, sr=sr, mono=True, duration=duration)
    y = librosa.util.fix_length(y, size=int(duration * sr))
    if feature == "mfcc":
        return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop,
                                    n_mels=n_mels)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    return librosa.power_to_db(S) if feature == "logmel" else S


def zip_bytes(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive in memory with the given entry names (written as is) and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


def wav_bytes(freq: float = 440.0, *, rng=None, seconds: float = 1.0, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, signal(freq, rng=rng, seconds=seconds, sr=sr), sr, format="WAV")
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """What a user's ``np.save`` writes (never pickled)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
