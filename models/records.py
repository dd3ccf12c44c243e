"""What the run store returns: a stored run and a stored comparison, as frozen dataclasses.

Plain Python (json, sqlite3 rows in, dataclasses out): :mod:`diagnostics.results` and the
report read these records duck-typed, without importing the store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunRecord:
    """One stored run and, when loaded with curves, its per-epoch and per-minibatch metrics."""

    id: str
    comparison_id: str
    position: int
    dataset_id: str
    config: str
    seed: int
    model: str
    hyper: dict
    status: str
    test_acc: float | None
    message: str | None
    created: float
    started: float | None
    finished: float | None
    elapsed_s: float | None
    n_params: int | None
    init_digest: str | None
    versions: dict
    repetition: int | None = None  # cross-validation: which repetition and fold (None: holdout)
    fold: int | None = None
    history: dict = field(default_factory=dict)  # epoch, train_loss, train_acc, val_acc, elapsed_s
    batches: dict = field(default_factory=dict)  # step, epoch, train_acc, train_loss


@dataclass(frozen=True)
class ComparisonRecord:
    """One stored comparison; ``runs`` is filled by :meth:`RunStore.load_comparison`."""

    id: str
    created: float
    finished: float | None
    status: str
    dataset_id: str
    dataset_name: str
    data_spec: str
    labels_spec: str | None
    model: str
    configs: list
    seeds: list
    hyper: dict
    host: str
    pid: int
    pid_start: str | None = None  # the owner's start time, so a reused pid is not taken for it
    runs: tuple[RunRecord, ...] = ()
    counts: dict = field(default_factory=dict)  # status -> number of runs

    def accuracies(self) -> dict[str, dict[int, float | None]]:
        """``{config: {seed: test_acc or None}}`` for :func:`diagnostics.results.compare`."""
        out: dict[str, dict[int, float | None]] = {c: {} for c in self.configs}
        for r in self.runs:
            out.setdefault(r.config, {})[r.seed] = r.test_acc if r.status == "done" else None
        return out

    def statuses(self) -> dict[str, dict[int, str]]:
        out: dict[str, dict[int, str]] = {c: {} for c in self.configs}
        for r in self.runs:
            out.setdefault(r.config, {})[r.seed] = r.status
        return out


def _run_record(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    d["hyper"] = json.loads(d["hyper"] or "{}")
    d["versions"] = json.loads(d["versions"] or "{}")
    return RunRecord(**d)


def _comparison_record(row: sqlite3.Row, runs=(), counts=None) -> ComparisonRecord:
    d = dict(row)
    for k in ("configs", "seeds", "hyper"):
        d[k] = json.loads(d[k])
    return ComparisonRecord(**d, runs=tuple(runs), counts=counts or {})
