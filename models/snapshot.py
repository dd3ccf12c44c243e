"""What a UI reads of a running comparison: frozen copies of its live state.

:meth:`models.comparison.Comparison.snapshot` returns a :class:`ComparisonSnapshot`; it holds
one :class:`RunState` per run and, once a repetition is complete, the latest
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
    fraction: float  # of all minibatches of all runs
    elapsed_s: float
    eta_s: float | None
    counts: dict  # run status -> number of runs
    runs: tuple[RunState, ...]
    error: str | None = None
    #: ``{kind, folds, repetitions (complete), max_repetitions, decide, stopped_because,
    #: note}``; ``stopped_because`` is None while more repetitions may come
    evaluation: dict | None = None
    #: The latest decision (diagnostics.verdicts.decide.Decision), None before the first
    #: repetition is complete; its ``pairs`` say which are decided (verdict != "unclear")
    decision: object = None
    #: With several models: ``{model: latest Decision or None}`` (``decision`` is the
    #: first model's); empty with one model
    decisions: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

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
