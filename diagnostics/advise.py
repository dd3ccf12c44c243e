# Over 450 lines on purpose: the candidate rules and the recommendation read one contract.
"""The advisor: candidate normalizations read off the statistics, and the recommendation read
off the comparison that tested them (NumPy only; no torch, no streamlit).

:func:`propose` turns a dataset's training-split :class:`~diagnostics.stats.accumulate.PixelStats`
into a short list of configs, each with the one sentence that says why it is in:

* ``none`` (the reference every gain is measured against) and ``per_pixel`` (the seed's
  per-pixel z-score: the question's reference only, never proposed as a cure);
* the **sign and tail** of the values (:func:`~diagnostics.stats.findings.data_kind`): linear
  power (non-negative, heavy right tail) gets compression (``db+per_row``, and ``pcen+per_row``
  where the installed grammar has PCEN); signed or log-domain values (MFCC, logmel) get no
  compression: per-band scaling (``per_row``, CMVN) and per-example per-band scaling
  (``instance_row``) where it exists; image intensities one global scale;
* **low-SNR rows**: the main cure with ``@mask``, proposed only where the masked rows carry
  little class information (:func:`~diagnostics.stats.findings.mask_information`); rows that
  carry the class are left in, and the list of left-out configs says why;
* **constant pixels**: per-pixel scaling has nothing to scale there, so a per-band scaler is
  always among the candidates;
* **amplification**: where per-pixel z-scoring would inflate pixels more than
  :data:`~diagnostics.stats.findings.AMPLIFICATION_LIMIT` times, ``shrink`` (a per-pixel std
  shrunk toward its band's) where it exists, and ``per_row``.

Names that the installed grammar or the data cannot take (``valid_config_names``) are left
out, so the advisor works with and without the newer normalizations.

:func:`recommend` reads the comparison's JSON (:func:`diagnostics.results.comparison_json`):
the recommended config is the comparison's best (highest pooled accuracy among the configs no
other config is shown to beat), and its gains over ``none`` and ``per_pixel`` are the pairs of
that same comparison, with their plain 95% intervals and their sequential, Shaffer-adjusted tests
over *every* pair, so choosing the best after looking does not inflate them (never
pick-then-test).  When some of the best's pairs are undecided the recommendation says so and
names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.errors import NormScopeError
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.findings import (AMPLIFICATION_LIMIT, DataKind, data_kind,
                                        mask_information, ranges)
from diagnostics.stats.moments import row_mask

#: The advisor's time budget when none is given (seconds): about 1,000 examples of 60 x 130
#: get up to three repetitions of 5-fold CV of four or five candidates on 2 idle cores.
DEFAULT_BUDGET_S = 360.0
#: Most CV repetitions of the advisor's decide mode (looks spend alpha over these).
DEFAULT_MAX_REPETITIONS = 3
#: Seconds of training per (training example x pixel x epoch) of the default CNN with one
#: torch thread, measured on this project's 2-core machines (demo, 5-fold CV, 15 epochs).
#: Used only to refuse a budget too small for one repetition when no stored run says better.
SECONDS_PER_EXAMPLE_PIXEL_EPOCH = 1.2e-7
#: Fixed cost of one run (data, test): seconds.
RUN_OVERHEAD_S = 2.0
#: Starting the worker pool (fork server, torch import): seconds, once per comparison.
START_S = 10.0


@dataclass(frozen=True)
class Candidate:
    """One config to compare and the one sentence that says why it is in.

    ``rule`` names the statistic that put it in: reference, question, compression, signed,
    image, scale, masking, constant, amplification."""

    config: str
    reason: str
    rule: str

    def as_json(self) -> dict:
        return {"config": self.config, "reason": self.reason}


@dataclass(frozen=True)
class Proposal:
    """What :func:`propose` returns: the candidates (reference first), the configs considered
    and left out with their reason, and what the data looks like."""

    candidates: tuple[Candidate, ...]
    left_out: tuple[Candidate, ...]
    kind: DataKind

    @property
    def configs(self) -> list[str]:
        return [c.config for c in self.candidates]

    def reason(self, config: str) -> str | None:
        return next((c.reason for c in self.candidates if c.config == config), None)


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 else "under 1%"


def propose(stats: PixelStats, *, mask_snr: float = DEFAULT_MASK_SNR,
            valid: Iterable[str] | None = None, kind: DataKind | None = None) -> Proposal:
    """Candidate configs for a dataset, each with its reason (see the module docstring).

    Parameters
    ----------
    stats : PixelStats
        Statistics of the training split, with ``band_info`` (labels) for the masking rule.
    mask_snr : float
        Row-SNR threshold of ``@mask`` (0: no masking candidate).
    valid : iterable of str, optional
        Config names the data and the installed grammar can take (default
        :func:`diagnostics.normalize.valid_config_names` of ``stats``).
    kind : DataKind, optional
        Default :func:`~diagnostics.stats.findings.data_kind` of ``stats``.

    Returns
    -------
    Proposal
    """
    from diagnostics.normalize import valid_config_names

    kind = kind or data_kind(stats)
    ok = set(valid_config_names(stats) if valid is None else valid)
    row = kind.row_label
    out: dict[str, Candidate] = {}
    left: dict[str, Candidate] = {}

    def add(config: str, reason: str, rule: str) -> bool:
        if config in out:
            return True
        if config not in ok:
            left[config] = Candidate(config, "not available for this data or in this version "
                                     "of the grammar.", rule)
            return False
        out[config] = Candidate(config, reason, rule)
        return True

    def also(config: str, clause: str) -> bool:
        """Add a clause to a candidate's one sentence; False if it is not a candidate."""
        c = out.get(config)
        if c is None:
            return False
        out[config] = Candidate(config, f"{c.reason[:-1]}; {clause}.", c.rule)
        return True

    add("none", "The reference: raw inputs, against which every gain is measured.", "reference")
    add("per_pixel", "The question's reference only: the seed's per-pixel z-score, which the "
        "recommendation is also measured against.", "question")
    skew = stats.skewness
    # The main cure for the kind of data: the scaler that masking is tried on.
    if kind.kind == "power":
        main = "db+per_row"
        add(main, f"The values are non-negative with a heavy right tail (skewness {skew:.1f}), "
            "as linear power is: dB compression, then one mean and std per band.", "compression")
        add("pcen+per_row", "Linear power again: per-channel energy normalization (PCEN, an "
            "adaptive gain per band over time), then per-band scaling.", "compression")
    elif kind.kind == "log":
        main = "per_row"
        add(main, "The values are signed, as log-domain features (MFCC, logmel) are, so no "
            f"compression: one mean and std per {row} (CMVN).", "signed")
        add("instance_row", f"Signed values again: each example z-scored per {row} "
            "(frequency-wise instance normalization), which removes per-recording gain and "
            "offset.", "signed")
    elif kind.kind == "image":
        main = "global"
        add(main, "The values look like image intensities (few levels, non-negative), so no "
            "compression: one global mean and std keeps their relative brightness.", "image")
    else:
        main = "per_row"
        add(main, f"The values are non-negative without a heavy tail (skewness {skew:.1f}), so "
            f"compression has nothing to cure: one mean and std per {row}.", "scale")

    # Low-SNR rows: masking only where they carry little class information.
    mask = row_mask(stats.row_snr, threshold=mask_snr) if mask_snr > 0 else np.zeros(
        stats.shape[0], bool)
    if mask.any() and not mask.all():
        where = f"{row}s {ranges(np.flatnonzero(mask))}"
        mi = mask_information(stats, mask)
        masked = f"{main}@mask"
        if mi is None:
            left[masked] = Candidate(masked, f"{int(mask.sum())} {row}s have SNR under "
                                     f"{mask_snr:g} ({where}), but without labels their class "
                                     "information is unknown, so they are not masked.", "masking")
        elif mi.informative:
            left[masked] = Candidate(masked, f"{int(mask.sum())} {row}s have SNR under "
                                     f"{mask_snr:g} ({where}) but carry class information "
                                     f"({row}-energy η² {mi.masked:.2f} vs {mi.kept:.2f} kept, "
                                     f"chance {mi.chance:.3f}), so masking them would remove "
                                     "signal.", "masking")
        else:
            add(masked, f"{int(mask.sum())} {row}s have SNR under {mask_snr:g} ({where}) and "
                f"carry little class information ({row}-energy η² {mi.masked:.2f} vs "
                f"{mi.kept:.2f} kept, chance {mi.chance:.3f}): {main} without them.", "masking")
    # Constant pixels: per-pixel scaling divides nothing there; a per-band scaler pools them.
    if stats.n_constant:
        share = stats.n_constant / stats.constant.size
        scaler = main if main.endswith("per_row") else "per_row"
        clause = (f"{stats.n_constant:,} pixels ({_pct(share)}) never change: per-pixel "
                  f"scaling has nothing to scale there, while one scale per {row} pools them "
                  f"with their {row}")
        if not also(scaler, clause):
            add(scaler, clause[0].upper() + clause[1:] + ".", "constant")
    # Amplification: per-pixel z-scoring inflating faint pixels.
    amp = stats.amplification
    big = amp > AMPLIFICATION_LIMIT
    if big.any():
        top = float(np.nanmax(amp))
        what = (f"per-pixel z-scoring would inflate {_pct(float(big.mean()))} of the pixels "
                f"more than {AMPLIFICATION_LIMIT:g}x, up to {top:,.0f}x")
        if kind.kind == "power":
            also(main, f"it also answers the amplification ({what})")
        else:
            add("shrink", f"{what[0].upper()}{what[1:]}: per-pixel stds shrunk toward their "
                f"{row}'s std keep the pixel scales without blowing faint noise up.",
                "amplification")
            also(main, f"{'one scale per ' + row if main.endswith('per_row') else 'one global scale'} "
                 f"also answers the amplification ({what})")
    for name in out:
        left.pop(name, None)
    return Proposal(tuple(out.values()), tuple(left.values()), kind)


# ---------------------------------------------------------------- the recommendation


@dataclass(frozen=True)
class Gain:
    """The recommended config against another: ``diff`` = recommended - other (accuracy),
    its plain 95% interval, the adjusted p-value and the pair's verdict.  Against itself:
    diff 0, no interval, verdict ``same config``."""

    against: str
    diff: float | None
    ci95: tuple[float, float] | None
    p_adjusted: float | None
    verdict: str

    def as_json(self) -> dict:
        return {"diff": self.diff, "ci95": None if self.ci95 is None else list(self.ci95),
                "p_adjusted": self.p_adjusted, "verdict": self.verdict}

    @classmethod
    def from_json(cls, against: str, d: Mapping) -> "Gain":
        ci = d.get("ci95")
        return cls(against, d.get("diff"), None if ci is None else (ci[0], ci[1]),
                   d.get("p_adjusted"), d.get("verdict", "unclear"))

    def words(self) -> str:
        if self.verdict == "same config":
            return f"it is {self.against} itself"
        if self.diff is None:
            return f"no run in common with {self.against}"
        ci = ("no interval" if self.ci95 is None else
              f"95% CI {100 * self.ci95[0]:+.1f} to {100 * self.ci95[1]:+.1f}")
        p = "" if self.p_adjusted is None else f", p_adj={self.p_adjusted:.3g}"
        return f"{100 * self.diff:+.1f} points over {self.against} ({ci}{p}; {self.verdict})"


@dataclass(frozen=True)
class Recommendation:
    """The comparison's best config with its adjusted tests (see :func:`recommend`)."""

    config: str
    reason: str
    settled: bool
    accuracy: float | None
    ci95: tuple[float, float] | None
    gain_vs_none: Gain
    gain_vs_per_pixel: Gain
    undecided: tuple[str, ...]
    #: The best against each config in ``undecided``: the difference and its interval.
    undecided_gains: tuple[Gain, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping) -> "Recommendation":
        """The inverse of :meth:`as_json` (a stored recommendation)."""
        ci = d.get("ci95")
        return cls(d["config"], d["reason"], bool(d.get("settled")), d.get("accuracy"),
                   None if ci is None else (ci[0], ci[1]),
                   Gain.from_json("none", d["gain_vs_none"]),
                   Gain.from_json("per_pixel", d["gain_vs_per_pixel"]),
                   tuple(d.get("undecided") or ()),
                   tuple(Gain.from_json(g["against"], g)
                         for g in d.get("undecided_gains") or ()))

    def as_json(self) -> dict:
        return {"config": self.config, "reason": self.reason, "settled": self.settled,
                "accuracy": self.accuracy,
                "ci95": None if self.ci95 is None else list(self.ci95),
                "gain_vs_none": self.gain_vs_none.as_json(),
                "gain_vs_per_pixel": self.gain_vs_per_pixel.as_json(),
                "undecided": list(self.undecided),
                "undecided_gains": [{"against": g.against, **g.as_json()}
                                    for g in self.undecided_gains]}


_FLIP = {"better": "worse", "worse": "better"}


def _gain(pairs: Sequence[Mapping], best: str, other: str) -> Gain:
    if other == best:
        return Gain(other, 0.0, None, None, "same config")
    for p in pairs:
        if (p["a"], p["b"]) == (other, best):
            ci = p.get("ci95")
            return Gain(other, p.get("diff"), None if ci is None else (ci[0], ci[1]),
                        p.get("p_adjusted"), p["verdict"])
        if (p["a"], p["b"]) == (best, other):
            ci = p.get("ci95")
            d = p.get("diff")
            return Gain(other, None if d is None else -d,
                        None if ci is None else (-ci[1], -ci[0]), p.get("p_adjusted"),
                        _FLIP.get(p["verdict"], p["verdict"]))
    return Gain(other, None, None, None, "not compared")


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def recommend(doc: Mapping) -> Recommendation:
    """The recommendation of a finished comparison.

    Parameters
    ----------
    doc : dict
        :func:`diagnostics.results.comparison_json` of the comparison (its ``configs``,
        ``pairs`` and ``answer``).

    Returns
    -------
    Recommendation
        ``config`` is the comparison's best: named outright (``settled``) when its adjusted
        tests against every other config are decided in its favour, else the leader with the
        configs it is not yet shown ahead of in ``undecided``.

    Raises
    ------
    NormScopeError
        The comparison has no verdict (no repetition completed, or every run failed).
    """
    pairs = list(doc.get("pairs") or [])
    configs = {c["name"]: c for c in doc.get("configs") or []}
    answer = doc.get("answer") or {}
    if not pairs or not configs:
        why = " ".join(answer.get("text") or []) or "no repetition of the comparison completed"
        raise NormScopeError(f"there is nothing to recommend yet: {why}")
    named = answer.get("best")
    # The best as decide() chose it: the config every reported pair was built around.
    best = named or _leader(configs, pairs)
    mine = [p for p in pairs if best in (p["a"], p["b"])]
    undecided = tuple(p["a"] if p["b"] == best else p["b"] for p in mine
                      if p["verdict"] == "unclear")
    c = configs[best]
    acc = _finite(c.get("accuracy"))
    ci = c.get("ci95")
    settled = named is not None
    design = _design_words(doc)
    if settled:
        reason = (f"{best} had the highest accuracy ({100 * acc:.1f}%) and its adjusted tests "
                  f"against every other candidate are decided in its favour ({design}).")
    else:
        reason = (f"{best} leads with {100 * acc:.1f}% but is not yet shown ahead of "
                  f"{', '.join(undecided) or 'every other candidate'} ({design}); a bigger "
                  "budget (more repetitions) may decide it, or the two may be too close to "
                  "tell apart on this data.") if acc is not None else \
            f"{best} leads, but nothing is decided yet ({design})."
    return Recommendation(best, reason, settled, acc, None if ci is None else (ci[0], ci[1]),
                          _gain(pairs, best, "none"), _gain(pairs, best, "per_pixel"), undecided,
                          tuple(_gain(pairs, best, o) for o in undecided))


def _leader(configs: Mapping, pairs: Sequence[Mapping]) -> str:
    """Highest accuracy among the configs no other is shown to beat (decide's rule)."""
    beaten = set()
    for p in pairs:
        if p["verdict"] == "better":
            beaten.add(p["a"])
        elif p["verdict"] == "worse":
            beaten.add(p["b"])
    names = list(configs)
    ranked = sorted(names, key=lambda n: (-(configs[n].get("accuracy") or -1.0), names.index(n)))
    return next((n for n in ranked if n not in beaten), ranked[0])


def _design_words(doc: Mapping) -> str:
    ev = doc.get("evaluation") or {}
    n = ev.get("repetitions") or 0
    if ev.get("kind") == "cv":
        return f"{ev.get('folds')}-fold CV x {n}"
    return f"holdout, {n} seed{'s' if n != 1 else ''}"


def advice_json(recommendation: Recommendation | None, proposal: Proposal | Sequence[Mapping],
                comparison_id: str, answer: Mapping | None) -> dict:
    """The ``advise --json`` document: ``{recommendation: {config, reason, gain_vs_none,
    gain_vs_per_pixel, ...}, candidates: [{config, reason}], comparison_id, answer}``;
    ``gain_*`` = ``{diff, ci95, p_adjusted, verdict}`` (accuracy, 0.01 = 1 point)."""
    cands = ([c.as_json() for c in proposal.candidates] if isinstance(proposal, Proposal)
             else [{"config": c["config"], "reason": c["reason"]} for c in proposal])
    left = ([c.as_json() for c in proposal.left_out] if isinstance(proposal, Proposal) else [])
    return {"recommendation": None if recommendation is None else recommendation.as_json(),
            "candidates": cands, "left_out": left, "comparison_id": comparison_id,
            "answer": dict(answer or {})}


def recommendation_lines(rec: Recommendation) -> list[str]:
    """The recommendation in plain sentences (CLI and app)."""
    head = (f"Recommended: {rec.config}" if rec.settled else
            f"Leading, not yet decided: {rec.config}")
    acc = "" if rec.accuracy is None else f" ({100 * rec.accuracy:.1f}% accuracy"
    if acc and rec.ci95 is not None:
        acc += f", 95% CI {100 * rec.ci95[0]:.1f} to {100 * rec.ci95[1]:.1f}"
    lines = [head + (acc + ")" if acc else "") + ".", rec.reason,
             f"Against no normalization: {rec.gain_vs_none.words()}.",
             f"Against per-pixel z-scoring: {rec.gain_vs_per_pixel.words()}."]
    if rec.undecided:
        # Each undecided pair with its interval: "not shown" is never "no difference".
        told = {g.against: g for g in rec.undecided_gains}
        # none and per_pixel have their own lines above.
        each = "; ".join(told[o].words() for o in rec.undecided
                         if o in told and o not in ("none", "per_pixel"))
        lines.append(f"Still undecided: {rec.config} against {', '.join(rec.undecided)}"
                     + (f": {each}" if each else "") + ". Neither a difference nor an "
                     "equivalence is shown there yet.")
    return lines


# ---------------------------------------------------------------- the budget


def run_seconds(n_train: int, shape: tuple[int, int], epochs: int, *,
                measured: Sequence[float] = ()) -> float:
    """Seconds one training run is expected to take: the median of ``measured`` (stored runs
    of the same dataset, model and epochs) when there are any, else the cost model
    :data:`SECONDS_PER_EXAMPLE_PIXEL_EPOCH` x examples x pixels x epochs + overhead."""
    good = [float(s) for s in measured if s is not None and math.isfinite(s) and s > 0]
    if good:
        return float(np.median(good))
    H, W = shape
    return RUN_OVERHEAD_S + SECONDS_PER_EXAMPLE_PIXEL_EPOCH * n_train * H * W * epochs


def repetition_seconds(n_runs: int, run_s: float, workers: int) -> float:
    """Wall seconds of the first repetition: the pool's start, then ``n_runs`` runs on
    ``workers`` parallel workers."""
    return START_S + math.ceil(n_runs / max(int(workers), 1)) * run_s


def planned_repetitions(budget_s: float, *, n_runs: int, run_s: float, workers: int,
                        max_repetitions: int) -> int:
    """How many repetitions decide mode plans for: as many as the budget fits by the estimate
    (at least 1, at most ``max_repetitions``).

    Decided before any result is seen, from times only, so the looks' alpha spending stays
    valid; planning fewer looks spends more alpha at each.  If the estimate is too low the
    loop stops early on the clock (``stopped_because="budget"``, with alpha left unspent: the
    tests stay valid, only less powerful); one repetition is then a fixed-sample analysis.
    """
    first = repetition_seconds(n_runs, run_s, workers)
    more = first - START_S
    fits = 1 + int(max(budget_s - first, 0.0) // more) if more > 0 else max_repetitions
    return max(1, min(int(max_repetitions), fits))


def check_budget_fits(budget_s: float, *, n_configs: int, folds: int, epochs: int,
                      run_s: float, workers: int, measured: bool) -> None:
    """Refuse, in one sentence, a budget too small for one repetition of every candidate.

    Raises
    ------
    NormScopeError
    """
    need = repetition_seconds(n_configs * folds, run_s, workers)
    if budget_s < need:
        src = "stored runs of this dataset" if measured else "this machine's training speed"
        raise NormScopeError(
            f"budget {budget_s:g} s is too small for one repetition: {n_configs} candidates x "
            f"{folds} folds = {n_configs * folds} runs of up to {epochs} epochs need about "
            f"{need:.0f} s on {workers} worker{'s' if workers != 1 else ''} (estimated from "
            f"{src}); give a budget of at least {math.ceil(need / 10) * 10:.0f} s, or fewer "
            "epochs")
