"""Make a real spoken-word dataset: ten English digits from varied espeak-ng voices, in noise.

    python bench/make_speech.py                    # 10 classes x 80 clips -> bench/data/speech
    python bench/make_speech.py --quick            # 10 x 8 clips -> bench/data/speech-quick
    python bench/make_speech.py --snr -9 6 --out bench/data/speech-hard   # a harder variant

Each clip is one word ("zero" .. "nine") spoken by espeak-ng with a random accent (8 English
voices), voice variant (male, female, klatt, croak, ...), speed, pitch and word gap, resampled
to 22,050 Hz, placed at a random offset in a 3 s clip, scaled to a random speech-to-noise ratio
against coloured noise (pink to brown, random spectral slope) plus a faint high-frequency hiss,
and finally given a random overall recording level (+-12 dB) -- real recordings differ in
loudness, which is exactly what per-pixel scaling of linear power is sensitive to.  Files are
written as 16-bit wav into one sub-folder per class (the layout `python -m diagnostics stats`
opens).  Everything is a function of --seed: the same seed gives byte-identical files.

The default SNR range (-3..12 dB) was chosen so the comparison is informative, neither trivial
nor hopeless: measured with the default CNN, 30 epochs, 3 seeds, test accuracy is about 0.70 on
raw linear power, 0.58 after per-pixel z-scoring and 0.91 after dB compression; with -9..6 dB
it is about 0.61, 0.53 and 0.86.

The data goes under bench/data/ (git-ignored) and is never committed.  At most two processes
are used (espeak-ng is fast; the whole default set takes well under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

DATA = Path(__file__).resolve().parent / "data"
SR = 22050
SECONDS = 3.0
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "croak")


@dataclass(frozen=True)
class Clip:
    """Everything that decides one clip (drawn up front in the parent, so workers are pure)."""

    index: int
    word: str
    voice: str
    speed: int
    pitch: int
    gap: int
    offset_s: float
    snr_db: float
    slope: float
    hiss_db: float
    level_db: float
    noise_seed: int
    path: str


def plan(*, per_class: int, seed: int, snr: tuple[float, float], out: Path) -> list[Clip]:
    """Draw every clip's parameters from one generator, in a fixed order.

    Parameters
    ----------
    per_class : int
        Clips per word.
    seed : int
        Seed of the only random generator; the plan (and so every file) is a function of it.
    snr : (float, float)
        Range of the speech-to-noise ratio in dB (uniform).
    out : Path
        Root folder; clip i of word w goes to ``out / w / f"{w}_{i:04d}.wav"``.

    Returns
    -------
    list of Clip
    """
    rng = np.random.default_rng(seed)
    clips = []
    for k in range(per_class * len(WORDS)):
        word = WORDS[k % len(WORDS)]
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
        clips.append(Clip(
            index=k, word=word, voice=voice,
            speed=int(rng.integers(110, 231)), pitch=int(rng.integers(15, 86)),
            gap=int(rng.integers(0, 6)),
            # The word may start anywhere that leaves it >= ~0.7 s inside the clip;
            # the actual start is clamped in render() once the word length is known.
            offset_s=float(rng.uniform(0.0, 2.3)),
            snr_db=float(rng.uniform(*snr)),
            slope=float(rng.uniform(1.0, 2.0)),   # 1 = pink, 2 = brown
            hiss_db=float(rng.uniform(-38.0, -28.0)),  # hiss level relative to the noise
            level_db=float(rng.uniform(-12.0, 12.0)),
            noise_seed=int(rng.integers(2**31)),
            path=str(out / word / f"{word}_{k // len(WORDS):04d}.wav"),
        ))
    return clips


def speak(clip: Clip) -> np.ndarray:
    """The word as float64 at SR, from espeak-ng's wav on stdout (22,050 Hz for these voices)."""
    cmd = ["espeak-ng", "-v", clip.voice, "-s", str(clip.speed), "-p", str(clip.pitch),
           "-g", str(clip.gap), "--stdout", clip.word]
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float64")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != SR:
        g = np.gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g)
    # espeak pads with silence; trim it so the offset and the SNR refer to the word itself.
    active = np.flatnonzero(np.abs(x) > 1e-3 * max(np.abs(x).max(), 1e-12))
    return x[active[0]:active[-1] + 1] if active.size else x


def coloured_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise whose power spectrum falls as 1/f**slope (1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, d=1.0 / SR)
    f[0] = f[1]  # no division by zero at DC; DC is removed below anyway
    spec *= f ** (-slope / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x * x))


def hiss(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white noise above ~6 kHz (a brick-wall high-pass in the FFT domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, d=1.0 / SR) < 6000.0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x * x))


def render(clip: Clip) -> float:
    """Synthesise, mix and write one clip; returns its peak amplitude (before any clipping)."""
    rng = np.random.default_rng(clip.noise_seed)
    n = int(SECONDS * SR)
    word = speak(clip)[:n]
    start = min(int(clip.offset_s * SR), n - word.size)
    speech = np.zeros(n)
    speech[start:start + word.size] = word
    # SNR against the word's own power (over its duration), not the whole clip's, so a short
    # fast word is not "quieter" than a long slow one.
    p_word = np.mean(word * word)
    noise = coloured_noise(n, clip.slope, rng) + 10 ** (clip.hiss_db / 20) * hiss(n, rng)
    noise *= np.sqrt(p_word / 10 ** (clip.snr_db / 10) / np.mean(noise * noise))
    x = speech + noise
    # Mixture at a nominal RMS of -34 dBFS, then the random recording level.
    x *= 10 ** ((-34.0 + clip.level_db) / 20) / np.sqrt(np.mean(x * x))
    peak = float(np.abs(x).max())
    Path(clip.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(clip.path, np.clip(x, -1.0, 1.0).astype(np.float32), SR, subtype="PCM_16")
    return peak


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="output folder (default bench/data/speech, "
                    "or bench/data/speech-quick with --quick)")
    ap.add_argument("--per-class", type=int, help="clips per word (default 80; 8 with --quick)")
    ap.add_argument("--quick", action="store_true", help="8 clips per word (a check it runs)")
    ap.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    ap.add_argument("--snr", type=float, nargs=2, default=(-3.0, 12.0), metavar=("LO", "HI"),
                    help="speech-to-noise ratio range in dB (default -3 12)")
    ap.add_argument("--workers", type=int, default=2, choices=(1, 2),
                    help="processes (default 2; never more: the machine is shared)")
    args = ap.parse_args(argv)
    per_class = args.per_class or (8 if args.quick else 80)
    out = args.out or DATA / ("speech-quick" if args.quick else "speech")
    if shutil.which("espeak-ng") is None:
        sys.exit("error: espeak-ng is not installed; run `apt-get install -y espeak-ng`.")

    clips = plan(per_class=per_class, seed=args.seed, snr=tuple(args.snr), out=out)
    # A fresh folder, so a smaller re-run never leaves stale clips from a larger one behind.
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if args.workers == 1:
        peaks = [render(c) for c in clips]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            peaks = list(pool.map(render, clips, chunksize=16))
    elapsed = time.perf_counter() - t0
    clipped = sum(p > 1.0 for p in peaks)
    print(f"{len(clips)} clips ({len(WORDS)} words x {per_class}) -> {out}")
    print(f"seed {args.seed}, SNR {args.snr[0]:g}..{args.snr[1]:g} dB, {args.workers} workers, "
          f"{elapsed:.1f} s ({elapsed / len(clips) * 1e3:.1f} ms per clip); "
          f"{clipped} clips clipped at full scale")


if __name__ == "__main__":
    main()
