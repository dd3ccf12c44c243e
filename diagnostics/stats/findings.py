"""Findings: plain sentences, each with a code and a severity, read off :class:`PixelStats`.

The advice depends on what the data is (:func:`data_kind`): compression (dB) is the cure for
linear power only; signed or log-domain features (MFCC, logmel) get per-row scaling (CMVN) or
none; images (bounded pixel intensities such as 8 x 8 digits) get neither dB nor words of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.moments import row_mask

#: Per-pixel z-scoring that inflates a pixel more than this, relative to one global scale,
#: is reported as amplified noise.
AMPLIFICATION_LIMIT = 10.0
#: Sample skewness above this (with non-negative values) reads as a heavy right tail.
SKEW_LIMIT = 2.0
#: Non-negative values on at most this many levels (8-bit) read as image intensities.
IMAGE_LEVELS = 256
#: Values of the statistics' sample read to count levels (enough to see 256 of them).
LEVEL_SAMPLE = 100_000


@dataclass(frozen=True)
class DataKind:
    """What the values look like, read off their statistics (see :func:`data_kind`).

    Attributes
    ----------
    kind : {"power", "log", "image", "other"}
        ``power``: non-negative with a heavy right tail (linear power: compress it);
        ``log``: signed, as log-domain features (MFCC, logmel in dB) are;
        ``image``: non-negative on few levels or whole numbers (pixel intensities);
        ``other``: non-negative without a heavy tail (nothing for compression to cure).
    text : str
        One sentence for the user: what was seen and what it means for the advice.
    """

    kind: str
    text: str

    @property
    def row_label(self) -> str:
        """What a row is called when the caller does not say: a band of audio, else a row."""
        return "row" if self.kind == "image" else "band"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text}


def data_kind(stats: PixelStats) -> DataKind:
    """Classify the data from its statistics: power, log-domain, image or other.

    * any finite value negative: ``log`` (signed; dB and log compression do not apply);
    * non-negative on at most :data:`IMAGE_LEVELS` levels, or whole numbers only: ``image``;
    * non-negative with skewness above :data:`SKEW_LIMIT`: ``power``;
    * otherwise ``other``.
    """
    fin = np.isfinite(stats.min)
    lo = float(np.min(stats.min[fin])) if fin.any() else 0.0
    hi = float(np.max(stats.max[np.isfinite(stats.max)])) if fin.any() else 0.0
    sample = np.asarray(stats.sample[:LEVEL_SAMPLE], dtype=np.float64)
    skew = stats.skewness
    if lo < 0:
        neg = float(np.mean(sample < 0)) if sample.size else 0.0
        share = f"{neg:.0%}" if neg >= 0.01 else "some"
        return DataKind("log", (
            f"{share} of the values are negative (down to {lo:.4g}): these look like "
            "log-domain features (MFCC, logmel in dB) or other signed values, so dB or log "
            "compression does not apply; compare per_row (CMVN) or no scaling."))
    levels = int(np.unique(sample).size) if sample.size else 0
    whole = bool(sample.size) and bool(np.all(sample == np.round(sample)))
    # Few levels only mean something when the sample is much bigger than their count.
    quantized = 0 < levels <= IMAGE_LEVELS and sample.size >= 4 * levels
    if quantized or (whole and sample.size >= 4 * IMAGE_LEVELS):
        what = f"{levels} levels" if quantized else "whole numbers"
        return DataKind("image", (
            f"Values are non-negative, {what} from {lo:.4g} to {hi:.4g}: these look like "
            "image intensities, so compression does not apply."))
    if skew > SKEW_LIMIT:
        return DataKind("power", (
            f"Values are non-negative with a heavy right tail (skewness {skew:.1f}): these look "
            "like linear power (a spectrogram before dB), so compress it (db+) before scaling."))
    return DataKind("other", (
        f"Values are non-negative without a heavy tail (skewness {skew:.1f}): compression has "
        "nothing to cure (they may be compressed already)."))


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "info" | "warning" | "error"
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message}


def ranges(idx: np.ndarray) -> str:
    """Compact text of sorted integer indices: ``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    idx = np.asarray(idx, int)
    if idx.size == 0:
        return "none"
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i != prev + 1:
            parts.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = i
        prev = i
    parts.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(parts)


@dataclass(frozen=True)
class MaskInformation:
    """Class information (band-energy eta^2) of the masked rows against the kept rows."""

    masked: float
    kept: float
    chance: float

    @property
    def informative(self) -> bool:
        """The masked rows carry real class information: masking them would likely hurt."""
        return self.masked > 3 * self.chance and self.masked >= 0.5 * self.kept


def mask_information(stats: PixelStats, mask: np.ndarray) -> MaskInformation | None:
    """Median band-energy eta^2 of masked and kept rows, or None without labels or a mask."""
    info = stats.band_info
    if info is None or not mask.any() or mask.all():
        return None
    with np.errstate(invalid="ignore"):
        masked = float(np.nanmedian(info.eta2[mask])) if np.isfinite(info.eta2[mask]).any() else 0.0
        kept = float(np.nanmedian(info.eta2[~mask])) if np.isfinite(info.eta2[~mask]).any() else 0.0
    return MaskInformation(masked, kept, info.chance)


#: What to try instead of per-pixel z-scoring when it inflates noise, by kind of data.
_AMPLIFIED_CURE = {
    "power": "prefer dB compression (usually the cure) or per-{row} scaling",
    "log": "prefer per-{row} scaling (per_row, as CMVN does) or no scaling",
    "image": "prefer one global scale (global) or no scaling",
    "other": "prefer per-{row} scaling (per_row) or one global scale (global)",
}
#: What to try instead of masking rows that carry the class, by kind of data.
_KEEP_ROWS_CURE = {"power": "try db+per_row instead", "log": "try per_row instead",
                   "image": "keep them", "other": "try per_row instead"}


def find(stats: PixelStats, *, mask_snr: float = DEFAULT_MASK_SNR, row_label: str | None = None,
         kind: DataKind | None = None) -> list[Finding]:
    """Everything worth telling the user about these statistics, worst first.

    Parameters
    ----------
    stats : PixelStats
    mask_snr : float
        Row-SNR threshold for low-SNR rows (0: off).
    row_label : str, optional
        What a row is called (default: ``band``, or ``row`` for images).  Images never read
        ``band``: a file's rows are called bands only by default, and pixel rows are not.
    kind : DataKind, optional
        What the data is (default: :func:`data_kind` of ``stats``); the advice follows it.
    """
    kind = kind or data_kind(stats)
    if not row_label or (kind.kind == "image" and row_label in ("band", "frequency band")):
        row_label = kind.row_label
    out: list[Finding] = []
    H, W = stats.shape
    if stats.n_nonfinite:
        rows = np.flatnonzero(stats.nonfinite.sum(1))
        out.append(Finding(
            "nonfinite_values", "error",
            f"{stats.n_nonfinite:,} values are NaN or infinite (in {row_label}s {ranges(rows)}); "
            "statistics leave them out, but training on them fails: fix them at the source "
            "or replace them (e.g. np.nan_to_num) before normalizing.",
        ))
    if stats.n_constant:
        rows = np.flatnonzero(stats.constant.any(1))
        share = stats.n_constant / stats.constant.size
        sev = "error" if stats.n_constant == stats.constant.size else "warning"
        out.append(Finding(
            "constant_pixels", sev,
            f"{stats.n_constant:,} pixels ({share:.0%}) never change (std 0) or have no finite "
            f"value, in {row_label}s {ranges(rows)}; per-pixel z-scoring would divide by zero "
            "there: they are masked and carry no information.",
        ))
    skew = stats.skewness
    if kind.kind == "power":
        out.append(Finding(
            "skewed_values", "warning",
            f"Values are non-negative with a heavy right tail (skewness {skew:.1f}, max "
            f"{np.nanmax(stats.max):,.4g} vs mean {stats.global_mean:,.3g}), as linear power "
            "is: compress with log or dB (e.g. librosa.power_to_db) before any scaling.",
        ))
    amp = stats.amplification
    big = amp > AMPLIFICATION_LIMIT
    if big.any():
        rows = np.flatnonzero(big.any(1))
        out.append(Finding(
            "amplified_noise", "warning",
            f"Per-pixel z-scoring would inflate {int(big.sum()):,} pixels ({big.mean():.0%}) "
            f"more than {AMPLIFICATION_LIMIT:g}x relative to one global scale, up to "
            f"{np.nanmax(amp):,.0f}x, in {row_label}s {ranges(rows)}: their tiny stds blow "
            f"faint noise up; {_AMPLIFIED_CURE[kind.kind].format(row=row_label)}, and "
            "mask rows only where they carry no class information.",
        ))
    if mask_snr > 0:
        m = row_mask(stats.row_snr, threshold=mask_snr)
        if m.any() and not m.all():
            text = (f"{int(m.sum())} of {H} {row_label}s have a median SNR (mean/std) under "
                    f"{mask_snr:g}: {row_label}s {ranges(np.flatnonzero(m))}.")
            mi = mask_information(stats, m)
            if mi is None:
                text += " Compare training with and without them (config suffix @mask)."
            elif mi.informative:
                text += (f" But they carry class information ({row_label}-energy η² "
                         f"{mi.masked:.2f} vs {mi.kept:.2f} for the kept {row_label}s, chance "
                         f"{mi.chance:.3f}): their signal comes and goes, it is not noise. "
                         f"Masking them would likely hurt; {_KEEP_ROWS_CURE[kind.kind]}.")
            else:
                text += (f" They carry little class information ({row_label}-energy η² {mi.masked:.2f} "
                         f"vs {mi.kept:.2f} for the kept {row_label}s, chance {mi.chance:.3f}): "
                         "masking them is worth a comparison (config suffix @mask).")
            out.append(Finding("low_snr_rows", "warning", text))
        elif m.all() and not np.isfinite(stats.row_snr).any():
            out.append(Finding(
                "low_snr_rows", "warning",
                f"No {row_label} has a defined SNR (every pixel is constant): there is nothing "
                "to mask or compare.",
            ))
        elif m.all():
            out.append(Finding(
                "low_snr_rows", "warning",
                f"Every {row_label} has a median SNR under {mask_snr:g}: the threshold is too "
                "high to be useful; lower it.",
            ))
    if not out:
        out.append(Finding("no_problems", "info",
                           "No problems found: per-pixel scaling should be safe on this data."))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


def suggested_configs(stats: PixelStats, threshold: float, *,
                      kind: DataKind | None = None) -> list[str]:
    """Configs worth comparing, from the training split's statistics.

    ``none`` vs ``per_pixel`` (the question), plus the cures the statistics point to: masking
    the low-SNR rows when they carry little class information, dB compression for linear power
    (non-negative, heavy-tailed), and per-row scaling (CMVN) for signed, log-domain features.
    Images and other light-tailed non-negative data get no compression.
    """
    kind = kind or data_kind(stats)
    configs = ["none", "per_pixel"]
    mask = row_mask(stats.row_snr, threshold=threshold)
    if threshold > 0 and mask.any() and not mask.all():
        mi = mask_information(stats, mask)
        if mi is None or not mi.informative:
            configs.append("per_pixel@mask")
    if kind.kind == "power":
        configs.append("db+per_row")
    elif kind.kind == "log":
        configs.append("per_row")
    return configs
