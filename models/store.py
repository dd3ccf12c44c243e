"""The run store: SQLite at ``$NORMSCOPE_HOME/runs.db`` (default ``~/.normscope``).

Write-ahead logging lets the app read while a comparison writes; every write is one
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a crash leaves either the whole change or
none of it.  A comparison and all its runs are inserted together (status ``queued``) only after
its inputs were validated; epochs are committed as they finish; a run's final status, test
accuracy and timings are committed together.  Runs still ``queued`` or ``running`` when their
owning process died are turned into ``interrupted`` by :meth:`RunStore.mark_interrupted` at
the next start.

The path is read from the environment each time a :class:`RunStore` is made, so tests and
users can point ``NORMSCOPE_HOME`` elsewhere at any time.

The statuses of runs and comparisons are defined here, once: :data:`STATUSES`,
:data:`ACTIVE` (may still change) and :data:`FINISHED` (never change again).

Over 450 lines on purpose: one SQLite schema, its upgrade and every transaction on it live
together, so a reader sees every write that can touch a table.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from diagnostics.errors import NormScopeError

from diagnostics.config import home

from diagnostics.processes import owner_alive as _owner_alive, process_start

from .records import ComparisonRecord, RunRecord, _comparison_record, _run_record

__all__ = ["ACTIVE", "FINISHED", "STATUSES", "ComparisonRecord", "RunRecord", "RunStore"]

SCHEMA_VERSION = 2  # 2: runs.repetition, runs.fold, comparisons.pid_start, predictions
#: Every status a run can have; a comparison has one of these too (never ``diverged``).
STATUSES = ("queued", "running", "done", "cancelled", "failed", "interrupted", "diverged")
#: Statuses of a run or comparison that may still change.
ACTIVE = frozenset({"queued", "running"})
#: Statuses of a run or comparison that never change again (its record can be cached).
FINISHED = frozenset(STATUSES) - ACTIVE


def _sql_list(statuses) -> str:
    """``'a', 'b'`` for ``IN (...)``: the statuses above are fixed words, never user input."""
    return ", ".join(f"'{s}'" for s in sorted(statuses))


_ACTIVE_SQL = _sql_list(ACTIVE)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS comparisons (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    data_spec TEXT NOT NULL,
    labels_spec TEXT,
    model TEXT NOT NULL,
    configs TEXT NOT NULL,          -- JSON list, reference first
    seeds TEXT NOT NULL,            -- JSON list of ints
    hyper TEXT NOT NULL,            -- JSON: training hyper-parameters, mask_snr, std_floor
    host TEXT NOT NULL,
    pid INTEGER NOT NULL            -- process that runs it (to tell live from interrupted)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    comparison_id TEXT NOT NULL REFERENCES comparisons(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    dataset_id TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    model TEXT NOT NULL,
    hyper TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_sql_list(STATUSES)})),
    test_acc REAL,
    message TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    elapsed_s REAL,
    n_params INTEGER,
    init_digest TEXT,
    versions TEXT                   -- JSON: python, numpy, torch, platform
);
CREATE INDEX IF NOT EXISTS runs_by_comparison ON runs(comparison_id, position);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
CREATE INDEX IF NOT EXISTS comparisons_by_dataset ON comparisons(dataset_id, created);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL,
    train_acc REAL,
    val_acc REAL,
    elapsed_s REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batch_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    train_acc REAL,
    train_loss REAL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,             -- test examples of the run
    test_index BLOB NOT NULL,       -- little-endian int32: row of each test example
    pred BLOB NOT NULL,             -- little-endian int16: predicted class
    label BLOB NOT NULL             -- little-endian int16: true class
);
"""
#: The advisor's recommendations, one per comparison it ran (a table of its own, created on
#: first open whatever the schema version: older files get it without a version bump, and a
#: file written by an older NormScope simply never reads it).
_ADVICE_SCHEMA = """
CREATE TABLE IF NOT EXISTS advice (
    comparison_id TEXT PRIMARY KEY REFERENCES comparisons(id) ON DELETE CASCADE,
    dataset_id TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    doc TEXT NOT NULL               -- JSON: candidates, left_out, recommendation (null while
                                    -- the comparison runs), answer
)"""
#: Columns added to ``runs`` by schema 2 (a version-1 file gets them on first open).
_RUN_COLUMNS_V2 = (("repetition", "INTEGER"), ("fold", "INTEGER"))
_COMPARISON_COLUMNS_V2 = (("pid_start", "TEXT"),)  # the owner's start time (pid reuse)


def db_path() -> Path:
    """``runs.db`` in the data directory (:func:`diagnostics.config.home`, read now)."""
    return home() / "runs.db"


#: This process: pid and start time, written with every comparison it owns.
_SELF = (os.getpid(), process_start(os.getpid()))


def _insert_runs(con, comparison_id: str, dataset_id: str, model: str, hyper: dict,
                 runs: list[dict], now: float) -> None:
    con.executemany(
        "INSERT INTO runs (id, comparison_id, position, dataset_id, config, seed, model, "
        "hyper, status, created, repetition, fold) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
        [(r["id"], comparison_id, r["position"], dataset_id, r["config"], int(r["seed"]),
          r.get("model", model), json.dumps(hyper), now, r.get("repetition"), r.get("fold"))
         for r in runs],
    )


#: Stores found damaged and moved aside in this process: path -> the notice.
_MOVED_ASIDE: dict[str, str] = {}


def moved_aside() -> list[str]:
    """The notices of every run store this process found damaged and moved aside."""
    return list(_MOVED_ASIDE.values())


#: sqlite error names of a store that cannot be written, though it is not damaged.
_UNWRITABLE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether an error opening the store means its file is damaged (not a database, or
    corrupt, or failing its check), as opposed to a full disk, a read-only or missing folder,
    or an I/O error, which moving the file aside would not mend."""
    name = getattr(exc, "sqlite_errorname", None)
    return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or (
        name is None and not isinstance(exc, sqlite3.OperationalError))


def unwritable(path: Path, exc: BaseException) -> str:
    """One sentence for a run store that cannot be opened or written (not damaged)."""
    return (f"the run store {path} cannot be written ({exc}); free some space there, or set "
            "NORMSCOPE_HOME to a folder with room; the write was undone")


class RunStore:
    """Access to one ``runs.db``; every method opens its own short connection (thread-safe).

    Parameters
    ----------
    path : path-like, optional
        Database file; default ``$NORMSCOPE_HOME/runs.db`` read at construction.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else db_path()
        #: One sentence when a damaged store was moved aside (by this or an earlier open in
        #: this process), for the app and the CLI to show.
        self.notice: str | None = _MOVED_ASIDE.get(str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise NormScopeError(f"cannot create the run store's folder {self.path.parent} "
                                 f"({exc.strerror}); set NORMSCOPE_HOME to a writable folder") \
                from None
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):  # a full disk or a read-only folder is no damage
                raise NormScopeError(unwritable(self.path, exc)) from None
            # A damaged file is never used silently: keep it for the operator, start afresh.
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            self._open()
            self.notice = (f"the run store {self.path} was damaged ({exc}); it was moved to "
                           f"{aside.name} and a new, empty store was started")
            _MOVED_ASIDE[str(self.path)] = self.notice

    def _open(self) -> None:
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                # One transaction; a failure leaves it open and closing rolls back.
                con.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
                for name, kind in _RUN_COLUMNS_V2:
                    if name not in have:
                        con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                have = {r[1] for r in con.execute("PRAGMA table_info(comparisons)")}
                for name, kind in _COMPARISON_COLUMNS_V2:
                    if name not in have:
                        con.execute(f"ALTER TABLE comparisons ADD COLUMN {name} {kind}")
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                con.execute("COMMIT")
            if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='advice'"
                           ).fetchone() is None:
                con.execute("BEGIN IMMEDIATE")
                con.execute(_ADVICE_SCHEMA)
                con.execute("COMMIT")

    # -- plumbing --------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=30000")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front); commit on
        success, roll back on any error."""
        with self._connect() as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                # The transaction was rolled back: the store is as it was.  A full disk (or a
                # folder that became read-only) is one sentence, not a crash.
                if (getattr(exc, "sqlite_errorname", None) or "").startswith(_UNWRITABLE):
                    raise NormScopeError(unwritable(self.path, exc)) from None
                raise

    # -- writes ----------------------------------------------------------------------------
    def create_comparison(self, comparison: dict, runs: list[dict]) -> None:
        """Insert a comparison and all its runs (status ``queued``) in one transaction.

        ``comparison`` holds id, dataset_id, dataset_name, data_spec, labels_spec, model,
        configs, seeds, hyper; each run holds id, position, config, seed.
        """
        now = time.time()
        c = comparison
        with self.transaction() as con:
            con.execute(
                "INSERT INTO comparisons (id, created, status, dataset_id, dataset_name, "
                "data_spec, labels_spec, model, configs, seeds, hyper, host, pid, pid_start) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c["id"], now, c["dataset_id"], c["dataset_name"], c["data_spec"],
                 c.get("labels_spec"), c["model"], json.dumps(c["configs"]),
                 json.dumps(c["seeds"]), json.dumps(c["hyper"]), socket.gethostname(),
                 int(c.get("pid", _SELF[0])),
                 c.get("pid_start", _SELF[1]) if "pid" not in c else c.get("pid_start")),
            )
            _insert_runs(con, c["id"], c["dataset_id"], c["model"], c["hyper"], runs, now)

    def add_runs(self, comparison_id: str, runs: list[dict], *,
                 seeds: list[int] | None = None) -> None:
        """Insert more queued runs into a stored comparison (decide mode's next repetition),
        in one transaction; ``seeds`` replaces the comparison's list of repetitions queued.

        Each run holds id, position, config, seed, repetition, fold; the dataset, model and
        hyper-parameters are the comparison's.
        """
        now = time.time()
        with self.transaction() as con:
            row = con.execute("SELECT dataset_id, model, hyper FROM comparisons WHERE id=?",
                              (comparison_id,)).fetchone()
            if row is None:
                raise KeyError(f"comparison {comparison_id} is not in the run store")
            _insert_runs(con, comparison_id, row["dataset_id"], row["model"],
                         json.loads(row["hyper"]), runs, now)
            if seeds is not None:
                con.execute("UPDATE comparisons SET seeds=? WHERE id=?",
                            (json.dumps([int(x) for x in seeds]), comparison_id))

    def set_evaluation(self, comparison_id: str, **fields) -> None:
        """Merge ``fields`` (e.g. ``stopped_because``) into ``hyper["evaluation"]``."""
        with self.transaction() as con:
            row = con.execute("SELECT hyper FROM comparisons WHERE id=?",
                              (comparison_id,)).fetchone()
            if row is None:
                raise KeyError(f"comparison {comparison_id} is not in the run store")
            hyper = json.loads(row["hyper"])
            hyper["evaluation"] = {**hyper.get("evaluation", {}), **fields}
            con.execute("UPDATE comparisons SET hyper=? WHERE id=?",
                        (json.dumps(hyper), comparison_id))

    def set_comparison_status(self, comparison_id: str, status: str, *, final: bool = False) -> None:
        with self.transaction() as con:
            con.execute("UPDATE comparisons SET status=?, finished=? WHERE id=?",
                        (status, time.time() if final else None, comparison_id))

    def start_run(self, run_id: str, *, versions: dict | None = None) -> None:
        with self.transaction() as con:
            con.execute("UPDATE runs SET status='running', started=?, versions=? WHERE id=?",
                        (time.time(), json.dumps(versions or {}), run_id))

    def add_epoch(self, run_id: str, m: dict) -> None:
        """Commit one epoch: its metrics and its minibatches, together."""
        first = int(m.get("first_step", 1))
        with self.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, train_loss, train_acc, "
                "val_acc, elapsed_s) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, int(m["epoch"]), m["train_loss"], m["train_acc"], m["val_acc"],
                 m.get("elapsed_s")),
            )
            con.executemany(
                "INSERT OR REPLACE INTO batch_metrics (run_id, step, epoch, train_acc, train_loss) "
                "VALUES (?, ?, ?, ?, ?)",
                [(run_id, first + i, int(m["epoch"]), a, l)
                 for i, (a, l) in enumerate(zip(m.get("batch_acc", ()), m.get("batch_loss", ())))],
            )

    def finish_run(self, run_id: str, status: str, *, test_acc: float | None = None,
                   elapsed_s: float | None = None, message: str | None = None,
                   n_params: int | None = None, init_digest: str | None = None,
                   predictions: tuple | None = None) -> None:
        """Final status, accuracy, timings and per-example predictions of a run, in one
        transaction.  ``predictions`` is ``(test_index, pred, label)``, three int arrays of the
        run's test examples."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status=?, test_acc=?, elapsed_s=?, message=?, finished=?, "
                "n_params=COALESCE(?, n_params), init_digest=COALESCE(?, init_digest) WHERE id=?",
                (status, test_acc, elapsed_s, message, time.time(), n_params, init_digest, run_id),
            )
            if predictions is not None:
                idx, pred, label = (np.asarray(a) for a in predictions)
                if not (idx.shape == pred.shape == label.shape and idx.ndim == 1):
                    raise ValueError("test_index, pred and label must be 1-d and equally long")
                con.execute(
                    "INSERT OR REPLACE INTO predictions (run_id, n, test_index, pred, label) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, int(idx.size), idx.astype("<i4").tobytes(),
                     pred.astype("<i2").tobytes(), label.astype("<i2").tobytes()))

    def predictions(self, comparison_id: str) -> dict[str, dict]:
        """``{run_id: {"test_index", "pred", "label"}}`` (int arrays) of a comparison's runs."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT p.* FROM predictions p JOIN runs r ON r.id = p.run_id "
                "WHERE r.comparison_id=? ORDER BY r.position", (comparison_id,)).fetchall()
        return {r["run_id"]: {"test_index": np.frombuffer(r["test_index"], "<i4").astype(np.int64),
                              "pred": np.frombuffer(r["pred"], "<i2").astype(np.int64),
                              "label": np.frombuffer(r["label"], "<i2").astype(np.int64)}
                for r in rows}

    def discard_queued(self, comparison_id: str, run_ids, *, seeds: list[int]) -> int:
        """Delete runs that are still queued (decide mode stopped before they started: they
        were never needed) and set the comparison's repetitions to ``seeds``; returns how
        many went."""
        ids = list(run_ids)
        with self.transaction() as con:
            n = 0
            for rid in ids:
                n += con.execute("DELETE FROM runs WHERE id=? AND comparison_id=? AND "
                                 "status='queued'", (rid, comparison_id)).rowcount
            con.execute("UPDATE comparisons SET seeds=? WHERE id=?",
                        (json.dumps([int(x) for x in seeds]), comparison_id))
            return n

    def cancel_queued(self, comparison_id: str, status: str = "cancelled", message: str = "") -> int:
        """Close every still-queued run of a comparison (e.g. after Cancel)."""
        with self.transaction() as con:
            cur = con.execute(
                "UPDATE runs SET status=?, message=?, finished=? WHERE comparison_id=? AND "
                "status='queued'", (status, message, time.time(), comparison_id))
            return cur.rowcount

    def mark_interrupted(self, *, only_dead: bool = True) -> int:
        """Turn stale ``queued``/``running`` runs into ``interrupted``; returns how many.

        Call it at startup.  With ``only_dead`` (default) a comparison whose owning process
        is still alive on this host (another app or a CLI run) is left alone.
        """
        host = socket.gethostname()
        with self.transaction() as con:
            rows = con.execute(
                f"SELECT id, host, pid, pid_start FROM comparisons WHERE status IN ({_ACTIVE_SQL})"
            ).fetchall()
            stale = [r["id"] for r in rows if not only_dead or r["host"] != host
                     or not _owner_alive(r["pid"], r["pid_start"])]
            # Orphaned runs (their comparison already closed) are stale as well.
            orphans = con.execute(
                "SELECT r.comparison_id FROM runs r JOIN comparisons c ON c.id = r.comparison_id "
                f"WHERE r.status IN ({_ACTIVE_SQL}) AND c.status NOT IN ({_ACTIVE_SQL})"
            ).fetchall()
            stale = sorted(set(stale) | {r[0] for r in orphans})
            n = 0
            now = time.time()
            for cid in stale:
                n += con.execute(
                    "UPDATE runs SET status='interrupted', finished=?, message=COALESCE(message, "
                    "'the process running it stopped') WHERE comparison_id=? AND status IN "
                    f"({_ACTIVE_SQL})", (now, cid)).rowcount
                con.execute("UPDATE comparisons SET status='interrupted', finished=? WHERE id=? "
                            f"AND status IN ({_ACTIVE_SQL})", (now, cid))
            return n

    def save_advice(self, comparison_id: str, dataset_id: str, doc: dict) -> None:
        """Store (or replace) the advisor's document of a comparison, in one transaction."""
        now = time.time()
        with self.transaction() as con:
            con.execute(
                "INSERT INTO advice (comparison_id, dataset_id, created, updated, doc) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(comparison_id) DO UPDATE SET "
                "doc=excluded.doc, updated=excluded.updated",
                (comparison_id, dataset_id, now, now, json.dumps(doc, allow_nan=False)))

    # -- reads -----------------------------------------------------------------------------
    def load_advice(self, comparison_id: str) -> dict | None:
        """The advisor's document of a comparison (None if the advisor did not run it)."""
        with self._connect() as con:
            row = con.execute("SELECT doc FROM advice WHERE comparison_id=?",
                              (comparison_id,)).fetchone()
        return None if row is None else json.loads(row["doc"])

    def list_advice(self, dataset_id: str, *, limit: int = 100) -> list[tuple[str, float, dict]]:
        """``(comparison_id, created, doc)`` of a dataset's advice, newest first."""
        with self._connect() as con:
            rows = con.execute("SELECT comparison_id, created, doc FROM advice WHERE "
                               "dataset_id=? ORDER BY created DESC LIMIT ?",
                               (dataset_id, int(limit))).fetchall()
        return [(r["comparison_id"], r["created"], json.loads(r["doc"])) for r in rows]

    def list_comparisons(self, dataset_id: str | None = None, *, limit: int = 100) -> list[ComparisonRecord]:
        """Newest first, with run counts per status (runs themselves not loaded)."""
        q = "SELECT * FROM comparisons"
        args: tuple = ()
        if dataset_id is not None:
            q += " WHERE dataset_id=?"
            args = (dataset_id,)
        q += " ORDER BY created DESC LIMIT ?"
        with self._connect() as con:
            rows = con.execute(q, args + (int(limit),)).fetchall()
            out = []
            for row in rows:
                counts = {r[0]: r[1] for r in con.execute(
                    "SELECT status, COUNT(*) FROM runs WHERE comparison_id=? GROUP BY status",
                    (row["id"],))}
                out.append(_comparison_record(row, counts=counts))
        return out

    def load_comparison(self, comparison_id: str, *, batches: bool = True) -> ComparisonRecord | None:
        """A comparison with its runs and their curves (None if the id is unknown)."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM comparisons WHERE id=?", (comparison_id,)).fetchone()
            if row is None:
                return None
            runs = self._runs(con, "WHERE comparison_id=? ORDER BY position", (comparison_id,),
                              batches=batches)
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return _comparison_record(row, runs, counts)

    def list_runs(self, *, comparison_id: str | None = None, dataset_id: str | None = None,
                  curves: bool = False, limit: int = 10_000) -> list[RunRecord]:
        """Stored runs, newest comparison first; with ``curves`` their per-epoch metrics."""
        where, args = [], []
        if comparison_id:
            where.append("comparison_id=?")
            args.append(comparison_id)
        if dataset_id:
            where.append("dataset_id=?")
            args.append(dataset_id)
        clause = ("WHERE " + " AND ".join(where) + " " if where else "") + \
            "ORDER BY created DESC, comparison_id, position LIMIT ?"
        with self._connect() as con:
            return self._runs(con, clause, tuple(args) + (int(limit),), curves=curves, batches=False)

    def epochs_trained(self, run_ids: list[str]) -> dict[str, int]:
        """``{run_id: epochs committed}`` (runs without any epoch are left out), in one query."""
        if not run_ids:
            return {}
        with self._connect() as con:
            rows = con.execute("SELECT run_id, COUNT(*) FROM epoch_metrics GROUP BY run_id"
                               ).fetchall() if len(run_ids) > 500 else con.execute(
                "SELECT run_id, COUNT(*) FROM epoch_metrics WHERE run_id IN "
                f"({', '.join('?' * len(run_ids))}) GROUP BY run_id", tuple(run_ids)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def _runs(self, con, clause: str, args: tuple, *, curves: bool = True,
              batches: bool = True) -> list[RunRecord]:
        rows = con.execute(f"SELECT * FROM runs {clause}", args).fetchall()
        out = []
        for row in rows:
            rec = _run_record(row)
            if curves:
                ep = con.execute("SELECT epoch, train_loss, train_acc, val_acc, elapsed_s FROM "
                                 "epoch_metrics WHERE run_id=? ORDER BY epoch", (rec.id,)).fetchall()
                hist = {k: [r[k] for r in ep] for k in ("epoch", "train_loss", "train_acc",
                                                         "val_acc", "elapsed_s")}
                bt = {}
                if batches:
                    b = con.execute("SELECT step, epoch, train_acc, train_loss FROM batch_metrics "
                                    "WHERE run_id=? ORDER BY step", (rec.id,)).fetchall()
                    bt = {k: [r[k] for r in b] for k in ("step", "epoch", "train_acc", "train_loss")}
                rec = RunRecord(**{**rec.__dict__, "history": hist, "batches": bt})
            out.append(rec)
        return out

    def integrity_check(self) -> str:
        """SQLite's own check: ``"ok"`` when the file is sound."""
        with self._connect() as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
