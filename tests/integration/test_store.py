"""The SQLite run store: round trips, the env var read at call time, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager

import numpy as np
import pytest

from models.store import RunStore

from conftest import REPO



pytestmark = pytest.mark.pool  # starts training worker pools: one xdist worker


def _comparison(store: RunStore, cid: str, *, pid: int | None = None, dataset: str = "demo",
                n: int = 2) -> None:
    store.create_comparison(
        {"id": cid, "dataset_id": dataset, "dataset_name": dataset, "data_spec": dataset,
         "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0], "hyper": {"epochs": 1},
         "pid": os.getpid() if pid is None else pid},
        [{"id": f"{cid}-{i}", "position": i, "config": ["none", "per_pixel"][i % 2], "seed": 0}
         for i in range(n)])


def _crash(p: subprocess.Popen) -> None:
    """SIGKILL: no cleanup, no atexit, as a power cut or the OOM killer would end it."""
    p.send_signal(signal.SIGKILL)
    p.wait(10)


@contextmanager
def _reaped(p: subprocess.Popen):
    """Never leave the child behind, whatever the test asserts."""
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_path_follows_the_environment_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "a"))
    a = RunStore()
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "b"))
    b = RunStore()
    assert a.path == tmp_path / "a" / "runs.db" and b.path == tmp_path / "b" / "runs.db"
    _comparison(a, "c1")
    assert a.list_comparisons() and not b.list_comparisons()


def test_round_trip_with_curves(home):
    s = RunStore()
    _comparison(s, "c1")
    _comparison(s, "c2", dataset="other")
    s.start_run("c1-0", versions={"torch": "x"})
    s.add_epoch("c1-0", {"epoch": 1, "train_loss": 1.5, "train_acc": 0.4, "val_acc": 0.5,
                         "elapsed_s": 0.1, "batch_acc": [0.3, 0.5], "batch_loss": [1.6, None],
                         "first_step": 1})
    s.add_epoch("c1-0", {"epoch": 2, "train_loss": 1.0, "train_acc": 0.6, "val_acc": 0.7,
                         "elapsed_s": 0.2, "batch_acc": [0.6], "batch_loss": [0.9],
                         "first_step": 3})
    s.finish_run("c1-0", "done", test_acc=0.75, elapsed_s=0.3, n_params=10, init_digest="ab")
    s.finish_run("c1-1", "diverged", message="the loss became nan")
    rec = s.load_comparison("c1")
    r0 = rec.runs[0]
    assert rec.dataset_id == "demo" and rec.configs == ["none", "per_pixel"]
    assert r0.status == "done" and r0.test_acc == 0.75 and r0.versions == {"torch": "x"}
    assert r0.history["epoch"] == [1, 2] and r0.history["val_acc"] == [0.5, 0.7]
    assert r0.batches["step"] == [1, 2, 3] and r0.batches["train_loss"] == [1.6, None, 0.9]
    assert rec.counts == {"done": 1, "diverged": 1}
    assert rec.accuracies() == {"none": {0: 0.75}, "per_pixel": {0: None}}
    assert [c.id for c in s.list_comparisons("demo")] == ["c1"]
    assert {c.id for c in s.list_comparisons()} == {"c1", "c2"}
    assert s.load_comparison("nope") is None
    assert len(s.list_runs(dataset_id="demo")) == 2 and len(s.list_runs()) == 4


def test_a_failing_transaction_writes_nothing(home):
    s = RunStore()
    with pytest.raises(Exception):
        # duplicate run ids: the comparison row must not stay behind without its runs
        s.create_comparison({"id": "c1", "dataset_id": "d", "dataset_name": "d", "data_spec": "d",
                             "model": "cnn", "configs": ["none"], "seeds": [0], "hyper": {}},
                            [{"id": "r", "position": 0, "config": "none", "seed": 0},
                             {"id": "r", "position": 1, "config": "none", "seed": 1}])
    assert s.list_comparisons() == [] and s.list_runs() == []


def test_mark_interrupted_only_touches_runs_of_dead_processes(home):
    s = RunStore()
    _comparison(s, "dead", pid=_dead_pid())
    _comparison(s, "live")  # this process: still running
    s.start_run("dead-0")
    s.finish_run("dead-1", "done", test_acc=0.5)
    assert s.mark_interrupted() == 1
    dead, live = s.load_comparison("dead"), s.load_comparison("live")
    assert [r.status for r in dead.runs] == ["interrupted", "done"] and dead.status == "interrupted"
    assert dead.runs[1].test_acc == 0.5  # finished runs are never touched
    assert {r.status for r in live.runs} == {"queued"} and live.status == "queued"
    assert s.mark_interrupted(only_dead=False) == 2
    assert {r.status for r in s.load_comparison("live").runs} == {"interrupted"}


def test_killed_writer_leaves_no_half_transaction(home):
    """SIGKILL a process in the middle of a write transaction: nothing of it remains, the
    file is sound, and the lock is gone."""
    s = RunStore()
    _comparison(s, "c1")
    s.finish_run("c1-0", "done", test_acc=0.9)
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from models.store import RunStore
        s = RunStore()
        with s.transaction() as con:
            con.executemany("INSERT INTO batch_metrics VALUES (?, ?, 1, 0.5, 1.0)",
                            [("c1-1", i) for i in range(50000)])
            con.execute("UPDATE runs SET status='done', test_acc=0.1 WHERE id='c1-1'")
            print("written", flush=True)
            time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ})
    with _reaped(p):
        assert p.stdout.readline().strip() == "written"
        _crash(p)
    assert s.integrity_check() == "ok"
    rec = s.load_comparison("c1")
    assert [r.status for r in rec.runs] == ["done", "queued"] and rec.runs[0].test_acc == 0.9
    assert rec.runs[1].batches["step"] == []
    s.finish_run("c1-1", "failed", message="after the crash")  # the write lock is free again
    assert s.load_comparison("c1").runs[1].status == "failed"


@pytest.mark.slow
def test_server_killed_mid_comparison_leaves_interrupted_runs(home, tmp_path):
    """Kill the process that runs a comparison (as a dying server would): the runs it had
    finished or started stay readable and become ``interrupted`` at the next start."""
    from compare_helpers import write_tiny_npz

    data = write_tiny_npz(tmp_path / "tiny.npz")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NORMSCOPE_MAX_EPOCHS": "5000"}
    p = subprocess.Popen([sys.executable, "-m", "diagnostics", "compare", str(data), "--seeds", "2",
                          "--eval", "holdout", "--no-decide",
                          "--epochs", "5000", "--patience", "0", "--batch-size", "16",
                          "--workers", "1"],
                         cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = RunStore()
    with _reaped(p):
        deadline = time.time() + 60
        while time.time() < deadline:
            runs = s.list_runs(curves=True) if s.path.exists() else []
            if any(len(r.history.get("epoch", [])) >= 2 for r in runs):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the comparison never stored an epoch")
        _crash(p)
    assert s.integrity_check() == "ok"
    (comp,) = s.list_comparisons()
    assert comp.status == "running"
    assert s.mark_interrupted() == 4
    rec = s.load_comparison(comp.id)
    assert rec.status == "interrupted" and {r.status for r in rec.runs} == {"interrupted"}
    started = [r for r in rec.runs if r.history["epoch"]]
    assert started and started[0].history["epoch"][:2] == [1, 2]


def test_per_example_predictions_round_trip(home):
    s = RunStore()
    s.create_comparison({"id": "p1", "dataset_id": "d", "dataset_name": "d", "data_spec": "demo",
                         "model": "cnn", "configs": ["none"], "seeds": [0], "hyper": {}},
                        [{"id": "p1-0", "position": 0, "config": "none", "seed": 0,
                          "repetition": 1, "fold": 3}])
    idx = np.array([5, 0, 70000, 12])
    pred, label = np.array([1, 2, 0, 300]), np.array([1, 1, 0, 300])
    s.finish_run("p1-0", "done", test_acc=0.75, predictions=(idx, pred, label))
    got = s.predictions("p1")["p1-0"]
    np.testing.assert_array_equal(got["test_index"], idx)
    np.testing.assert_array_equal(got["pred"], pred)
    np.testing.assert_array_equal(got["label"], label)
    run = s.load_comparison("p1").runs[0]
    assert (run.repetition, run.fold) == (1, 3)
    with pytest.raises(ValueError, match="equally long"):
        s.finish_run("p1-0", "done", predictions=(idx, pred[:2], label))


def test_a_version_1_store_is_upgraded_in_place(home):
    import sqlite3

    import models.store as ms

    path = home / "runs.db"
    home.mkdir(parents=True, exist_ok=True)
    v1 = ms._SCHEMA.split("CREATE TABLE IF NOT EXISTS predictions")[0]
    con = sqlite3.connect(path)
    con.executescript(v1 + "PRAGMA user_version=1;")
    con.execute("INSERT INTO comparisons VALUES ('old', 1, 2, 'done', 'd', 'd', 'demo', NULL, "
                "'cnn', '[\"none\"]', '[0]', '{}', 'h', 1)")
    con.commit()
    con.close()
    s = RunStore()
    assert s.load_comparison("old").status == "done"  # kept
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(runs)")}
    assert {"repetition", "fold"} <= cols
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == ms.SCHEMA_VERSION


def test_a_reused_pid_does_not_keep_dead_runs_running(home):
    """A restarted server can get its predecessor's pid (PID 1 in a container): the start
    time tells the two apart, so the old comparison is interrupted."""
    s = RunStore()
    me = os.getpid()
    for cid, start in (("old", "1"), ("live", None)):  # "1": another process that had our pid
        s.create_comparison({"id": cid, "dataset_id": "d", "dataset_name": "d",
                             "data_spec": "demo", "model": "cnn", "configs": ["none"],
                             "seeds": [0], "hyper": {}, "pid": me, "pid_start": start},
                            [{"id": f"{cid}-0", "position": 0, "config": "none", "seed": 0}])
    s.create_comparison({"id": "mine", "dataset_id": "d", "dataset_name": "d",
                         "data_spec": "demo", "model": "cnn", "configs": ["none"], "seeds": [0],
                         "hyper": {}}, [{"id": "mine-0", "position": 0, "config": "none",
                                         "seed": 0}])
    assert s.mark_interrupted() == 1
    assert s.load_comparison("old").status == "interrupted"
    assert s.load_comparison("mine").status == "queued"  # this very process: alive
    assert s.load_comparison("live").status == "queued"  # no start time kept: pid alone


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_moved_aside_and_a_new_one_started(home, damage):
    s = RunStore()
    s.create_comparison({"id": "c", "dataset_id": "d", "dataset_name": "d", "data_spec": "demo",
                         "model": "cnn", "configs": ["none"], "seeds": [0], "hyper": {}},
                        [{"id": "c-0", "position": 0, "config": "none", "seed": 0}])
    import sqlite3

    con = sqlite3.connect(s.path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    con.close()
    raw = s.path.read_bytes()
    s.path.write_bytes(b"this is not a database" * 100 if damage == "garbage" else raw[:3000])
    fresh = RunStore()
    assert fresh.notice and "damaged" in fresh.notice and "moved to" in fresh.notice
    kept = list(home.glob("runs.db.damaged-*"))
    assert kept and any(k.name.endswith(tuple("0123456789")) for k in kept)
    assert fresh.list_comparisons() == [] and fresh.integrity_check() == "ok"
    again = RunStore()  # the new store is sound; the notice stays for this process to show
    assert again.integrity_check() == "ok" and again.notice == fresh.notice
    assert len(list(home.glob("runs.db.damaged-*"))) == len(kept)  # not moved twice


def test_the_cli_says_when_it_moved_a_damaged_store_aside(cli, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "runs.db").write_bytes(b"not a database" * 300)
    r = cli("runs", "--json", env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 0 and r.stdout.strip() == "[]"
    assert r.stderr.startswith("warning: the run store") and "damaged" in r.stderr
    assert "Traceback" not in r.stderr and list(home.glob("runs.db.damaged-*"))
