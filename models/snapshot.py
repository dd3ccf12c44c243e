"""What a UI reads of a running comparison: frozen copies of its live state.

:meth:`models.comparison.Comparison.snapshot` returns a :class:`ComparisonSnapshot`; it holds
one :class:`RunState` per run and, from decide mode's first look on, the latest
:class:`~diagnostics.verdicts.decide.Decision` (``decision``), from which a progress view shows
the pairs decided so far (:func:`diagnostics.verdicts.stored.pair_words`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .store import FINISHED


@dataclass(frozen=True)
class RunState:
    """Live state of one run (copied out of the comparison under its lock)."""

    run_id: str
    config: str
    seed: int
    status: str
    epoch: int
    epochs: int
    fraction: float  # of this run's minibatches done
    train_loss: tuple
    train_acc: tuple
    val_acc: tuple
    batch_acc: tuple
    test_acc: float | None
    message: str | None
    repetition: int = 0  # of the evaluation design (holdout: the index of the seed)
    fold: int = 0
    model: str = ""  # which model's block the run belongs to


@dataclass(frozen=True)
class ComparisonSnapshot:
    """A comparison's state for a UI poll."""

    comparison_id: str
    status: str  # new | waiting | queued | running | done | cancelled | failed
    #: Of all minibatches of all runs; in decide mode, of every run it may need (every
    #: repetition up to the most), so it never runs backwards and may end below 100%
    fraction: float
    elapsed_s: float
    #: Seconds left (decide mode: at most, if every repetition is needed); None when unknown
    eta_s: float | None
    counts: dict  # run status -> number of runs
    runs: tuple[RunState, ...]
    error: str | None = None
    #: ``{kind, folds, repetitions (complete), cells (complete folds), max_repetitions, decide,
    #: stopped_because, note, running, per_repetition_s}`` (DecideLoop.evaluation);
    #: ``stopped_because`` is None while more folds may come
    evaluation: dict | None = None
    #: The latest decision (diagnostics.verdicts.decide.Decision), None before decide mode's
    #: first look; its ``pairs`` say which are decided (verdict != "unclear")
    decision: object = None
    #: With several models: ``{model: latest Decision or None}`` (``decision`` is the
    #: first model's); empty with one model
    decisions: dict = field(default_factory=dict)

    #: Decide mode: the mean wall time of one repetition (from the work done so far)
    per_repetition_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def progress_line(self) -> str:
        """What the progress bar says, the same in the app and on the CLI.

        Decide mode does not know how many repetitions it will need, so it says which one is
        under way, of at most how many, how long one takes and the most time left: "running:
        repetition 2 of at most 5, 30% of the most it may run, after 63 s; about 41 s a
        repetition, at most about 2.6 min more (it stops once the pairs are decided)".  A fixed
        comparison counts its runs.
        """
        ev = self.evaluation or {}
        if ev.get("decide") and ev.get("stopped_because") is None and ev.get("running"):
            line = (f"{self.status}: repetition {ev['running']} of at most "
                    f"{ev.get('max_repetitions')}, {self.fraction:.0%} of the most it may run, "
                    f"after {self.elapsed_s:.0f} s")
            if self.per_repetition_s is not None:
                line += f"; about {_seconds(self.per_repetition_s)} a repetition"
                if self.eta_s is not None:
                    line += f", at most about {_seconds(self.eta_s)} more"
                line += " (it stops once the pairs are decided)"
            return line
        if ev.get("decide") and ev.get("stopped_because") and not self.finished:
            return (f"{self.status}: stopped ({ev['stopped_because'].replace('_', ' ')}) after "
                    f"{self.elapsed_s:.0f} s; ending the runs it does not need")
        eta = f", about {_seconds(self.eta_s)} left" if self.eta_s is not None else ""
        return f"{self.status}: {self.fraction:.0%} after {self.elapsed_s:.0f} s{eta}"

    def accuracies(self) -> dict[str, dict[int, float | None]]:
        """``{config: {seed: test_acc or None}}`` so far, for diagnostics.results.compare."""
        out: dict[str, dict[int, float | None]] = {}
        for r in self.runs:
            out.setdefault(r.config, {})[r.seed] = r.test_acc if r.status == "done" else None
        return out

    def curves(self, key: str = "val_acc") -> dict[str, list[tuple]]:
        """``{config: [curve of each seed]}`` of ``train_loss``, ``train_acc``, ``val_acc`` or
        ``batch_acc``, for diagnostics.results.seed_band."""
        out: dict[str, list[tuple]] = {}
        for r in self.runs:
            out.setdefault(r.config, []).append(getattr(r, key))
        return out


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def plan_progress(runs, evaluation: dict | None, elapsed_s: float,
                  running: bool) -> tuple[float, float | None, float | None]:
    """(fraction, eta_s, per_repetition_s) of a comparison (see :class:`ComparisonSnapshot`).

    ``runs`` are its :class:`RunState` (``fraction`` each); the work rate so far gives the
    time left.  In decide mode, while more repetitions may come, the work is that of every
    repetition up to ``max_repetitions`` (configs x folds runs each), so ``eta_s`` is an upper
    bound, and ``per_repetition_s`` the wall time that one repetition's work took so far.
    """
    done = sum(r.fraction for r in runs)
    ev = evaluation or {}
    per_rep = None
    total = float(len(runs))
    if ev.get("decide") and ev.get("stopped_because") is None and runs:
        per_rep = len({(getattr(r, "model", ""), r.config) for r in runs}) * int(ev.get("folds") or 1)
        total = max(total, float(per_rep * int(ev.get("max_repetitions") or 1)))
    fraction = done / total if total else 0.0
    eta = per_rep_s = None
    if running and 0.02 < fraction < 1 and done > 0:
        eta = elapsed_s * (total - done) / done
        if per_rep is not None:
            per_rep_s = elapsed_s * per_rep / done
    return fraction, eta, per_rep_s
