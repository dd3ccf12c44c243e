"""Findings: plain sentences, each with a code and a severity, read off :class:`PixelStats`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.stats.moments import PixelStats, row_mask

#: Per-pixel z-scoring that inflates a pixel more than this, relative to one global scale,
#: is reported as amplified noise.
AMPLIFICATION_LIMIT = 10.0
#: Sample skewness above this (with non-negative values) reads as a heavy right tail.
SKEW_LIMIT = 2.0


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


def find(stats: PixelStats, *, mask_snr: float = DEFAULT_MASK_SNR, row_label: str = "band") -> list[Finding]:
    """Everything worth telling the user about these statistics, worst first."""
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
    lo = float(np.nanmin(stats.min)) if np.isfinite(stats.min).any() else 0.0
    skew = stats.skewness
    if lo >= 0 and skew > SKEW_LIMIT:
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
            "faint noise up; prefer dB compression (usually the cure) or per-band scaling, and "
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
                text += (f" But they carry class information (band-energy η² {mi.masked:.2f} vs "
                         f"{mi.kept:.2f} for the kept {row_label}s, chance {mi.chance:.3f}): "
                         "their signal comes and goes, it is not noise. Masking them would "
                         "likely hurt; try db+per_row instead.")
            else:
                text += (f" They carry little class information (band-energy η² {mi.masked:.2f} "
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


def suggested_configs(stats: PixelStats, threshold: float) -> list[str]:
    """Configs worth comparing, from the training split's statistics.

    ``none`` vs ``per_pixel`` (the question), plus the cures the statistics point to: masking
    the low-SNR rows when they carry little class information, and dB compression when the
    values are non-negative and heavy-tailed (linear power).
    """
    configs = ["none", "per_pixel"]
    mask = row_mask(stats.row_snr, threshold=threshold)
    if threshold > 0 and mask.any() and not mask.all():
        mi = mask_information(stats, mask)
        if mi is None or not mi.informative:
            configs.append("per_pixel@mask")
    lo = float(np.nanmin(stats.min)) if np.isfinite(stats.min).any() else 0.0
    if lo >= 0 and stats.skewness > SKEW_LIMIT:
        configs.append("db+per_row")
    return configs
