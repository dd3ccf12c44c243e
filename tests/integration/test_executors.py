"""Executors: the contract (plain dict events, one ``finished`` per job, cancel owned by the
executor, a killed worker fails only its job), jobs that carry their data directory instead of
changing the environment, and a comparison that runs unchanged on another executor."""

from __future__ import annotations

from compare_helpers import wait_for as _wait

import json
import os
import signal
import time
import uuid

import pytest

from diagnostics.data.store import register_arrays
from diagnostics.errors import NormScopeError
from models.comparison import Comparison
from models.executors import (CANCEL_GRACE_S, NOT_STARTED, Executor, InlineExecutor,
                              LocalProcessExecutor)
from models.jobs import EVENT_KINDS, Job, run_job
from models.train import TrainConfig

from compare_helpers import tiny_arrays, write_tiny_npz

QUICK = TrainConfig(epochs=2, batch_size=16)
FOREVER = TrainConfig(epochs=100_000, batch_size=16, patience=0)


@pytest.fixture
def data(tmp_path):
    return str(write_tiny_npz(tmp_path / "tiny.npz"))


@pytest.fixture
def two_homes(tmp_path, monkeypatch):
    """``(dataset id, home A)``: a dataset registered only in A, while NORMSCOPE_HOME names B.

    The data is perturbed by a random number, so no other data directory (the fork server's
    or the user's) can hold the same content id.
    """
    a, b = tmp_path / "home-a", tmp_path / "home-b"
    X, y = tiny_arrays(0)
    X[0, 0, 0] += uuid.uuid4().int % 1000 + 1
    monkeypatch.setenv("NORMSCOPE_HOME", str(a))
    ident = register_arrays(X, y, ("c0", "c1", "c2"), "only-in-a")
    monkeypatch.setenv("NORMSCOPE_HOME", str(b))
    return ident, str(a)


def _job(run_id: str, data: str, dataset_id: str, *, train=QUICK, home=None, config="none") -> dict:
    return Job(run_id=run_id, comparison_id="t", data=data, labels=None, dataset_id=dataset_id,
               config=config, seed=0, train=train.as_dict(), home=home).as_dict()


def _collect(ex: Executor, n_finished: int, timeout: float = 60.0) -> list[dict]:
    """Events of ``ex`` until ``n_finished`` jobs finished (or the timeout)."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while sum(e["kind"] == "finished" for e in events) < n_finished:
        assert time.monotonic() < deadline, [e["kind"] for e in events]
        events += ex.events(timeout=0.5)
    return events


def _plain(events: list[dict]) -> None:
    for e in events:
        assert type(e) is dict and e["kind"] in EVENT_KINDS and isinstance(e["run_id"], str)
        assert json.loads(json.dumps(e)) == e


class Recording:
    """Another executor: wraps one, records what crosses the interface, and can swallow
    cancel (to show that the comparison has no other way to reach the workers)."""

    def __init__(self, inner: Executor, *, forward_cancel: bool = True):
        self.inner, self.forward_cancel = inner, forward_cancel
        self.jobs: list[dict] = []
        self.seen: list[dict] = []
        self.cancels = self.shutdowns = 0

    def submit(self, job: dict) -> None:
        self.jobs.append(job)
        self.inner.submit(job)

    def events(self, timeout=None) -> list[dict]:
        out = self.inner.events(timeout)
        self.seen += out
        return out

    def cancel(self) -> None:
        self.cancels += 1
        if self.forward_cancel:
            self.inner.cancel()

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.inner.shutdown()


# -- jobs -----------------------------------------------------------------------------------
def test_run_job_reads_its_home_and_leaves_the_environment_alone(two_homes):
    ident, home_a = two_homes
    ours = lambda: {k: v for k, v in os.environ.items() if k.startswith("NORMSCOPE")}  # noqa: E731
    before = ours()
    events: list[dict] = []
    result = run_job(Job.from_dict(_job("r", ident, ident, home=home_a)), emit=events.append)
    assert result["status"] == "done", result["message"]
    assert ours() == before and before["NORMSCOPE_HOME"] != home_a  # still names B
    assert [e["kind"] for e in events][0] == "started" and events[-1] is result
    assert "epoch" in {e["kind"] for e in events}
    _plain(events)
    # Without the job's home, the process's own (B) is used, and B does not hold it.
    result = run_job(Job.from_dict(_job("s", ident, ident)), emit=events.append)
    assert result["status"] == "failed" and f"no dataset with id {ident}" in result["message"]


def test_a_job_round_trips_through_a_plain_dict():
    job = Job.from_dict(_job("r", "demo", "demo", home="/somewhere"))
    d = job.as_dict()
    assert Job.from_dict(json.loads(json.dumps(d))) == job and d["home"] == "/somewhere"


# -- the local process executor -------------------------------------------------------------
@pytest.mark.pool
def test_a_worker_finds_the_jobs_home_and_never_changes_its_environment(two_homes):
    """Job 1 names home A; job 2 names none, so the worker falls back to its own environment.
    Had job 1 set NORMSCOPE_HOME in the worker (as workers once did), job 2 would find A."""
    ident, home_a = two_homes
    ex = LocalProcessExecutor(workers=1)
    try:
        ex.submit(_job("r1", ident, ident, home=home_a))
        ex.submit(_job("r2", ident, ident))
        events = _collect(ex, 2)
    finally:
        ex.shutdown()
    _plain(events)
    started = {e["run_id"]: e["pid"] for e in events if e["kind"] == "started"}
    assert started["r1"] == started["r2"] != os.getpid()  # one worker ran both
    done = {e["run_id"]: e for e in events if e["kind"] == "finished"}
    assert done["r1"]["status"] == "done" and done["r1"]["test_acc"] is not None
    assert done["r2"]["status"] == "failed" and f"no dataset with id {ident}" in done["r2"]["message"]
    assert home_a not in done["r2"]["message"]
    assert [e["kind"] for e in events if e["run_id"] == "r1"][-1] == "finished"


@pytest.mark.pool
def test_cancel_is_the_executors_own_and_ends_every_job(data):
    ex = LocalProcessExecutor(workers=1)
    try:
        ex.submit(_job("long", data, _dataset_id(data), train=FOREVER))
        ex.submit(_job("queued", data, _dataset_id(data)))
        events: list[dict] = []
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "epoch" for e in events):
            assert time.monotonic() < deadline
            events += ex.events(timeout=0.5)
        t0 = time.monotonic()
        ex.cancel()
        events += _collect(ex, 2, timeout=10)
        stopped = time.monotonic() - t0
        ex.submit(_job("late", data, _dataset_id(data)))  # after cancel: ends at once
        late = _collect(ex, 1, timeout=5)
    finally:
        ex.shutdown()
    _plain(events + late)
    done = {e["run_id"]: e for e in events + late if e["kind"] == "finished"}
    assert done["long"]["status"] == "cancelled" and "cancelled in epoch" in done["long"]["message"]
    assert stopped < CANCEL_GRACE_S + 1.0
    for rid in ("queued", "late"):
        assert done[rid]["status"] == "cancelled" and done[rid]["message"] == NOT_STARTED
        assert not any(e["kind"] == "started" and e["run_id"] == rid for e in events + late)
    assert ex.worker_pids() == []


@pytest.mark.pool
@pytest.mark.slow
def test_a_killed_worker_fails_only_its_job_and_a_new_worker_runs_the_rest(data):
    ex = LocalProcessExecutor(workers=1)
    try:
        ex.submit(_job("victim", data, _dataset_id(data), train=FOREVER))
        ex.submit(_job("next", data, _dataset_id(data)))
        events: list[dict] = []
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "epoch" for e in events):
            assert time.monotonic() < deadline
            events += ex.events(timeout=0.5)
        pid = next(e["pid"] for e in events if e["kind"] == "started")
        os.kill(pid, signal.SIGKILL)
        events += _collect(ex, 2)
    finally:
        ex.shutdown()
    done = {e["run_id"]: e for e in events if e["kind"] == "finished"}
    assert done["victim"]["status"] == "failed"
    assert "worker process died" in done["victim"]["message"] and "-9" in done["victim"]["message"]
    assert done["next"]["status"] == "done"
    started = {e["run_id"]: e["pid"] for e in events if e["kind"] == "started"}
    assert started["next"] != pid


def _dataset_id(data: str) -> str:
    from diagnostics.data.ingest import load_dataset

    return load_dataset(data).id


# -- a comparison on other executors ----------------------------------------------------------
@pytest.mark.pool
@pytest.mark.slow
def test_a_comparison_runs_unchanged_on_another_executor(home, data):
    """The same comparison on the in-process executor and on worker processes: the same
    numbers (one torch thread in both), and everything that crossed the interface is plain."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = Recording(InlineExecutor())
        assert isinstance(rec, Executor) and isinstance(rec.inner, Executor)
        inline = Comparison(data, "none,per_pixel", seeds=[3], train=QUICK, executor=rec,
                            evaluation="holdout").start()
        assert inline.wait(60)
    finally:
        torch.set_num_threads(threads)
    local = Comparison(data, "none,per_pixel", seeds=[3], train=QUICK, workers=1,
                       evaluation="holdout").start()
    assert local.wait(60)
    a, b = inline.record(), local.record()
    assert a.status == b.status == "done" and inline.snapshot().status == "done"
    assert [(r.config, r.status, r.test_acc, r.history["val_acc"], r.init_digest) for r in a.runs] \
        == [(r.config, r.status, r.test_acc, r.history["val_acc"], r.init_digest) for r in b.runs]
    # what crossed the interface: plain job dicts naming the data directory, plain events
    assert [j["config"] for j in rec.jobs] == ["none", "per_pixel"]
    assert all(Job.from_dict(json.loads(json.dumps(j))).home == str(home) for j in rec.jobs)
    _plain(rec.seen)
    assert {e["pid"] for e in rec.seen if e["kind"] == "started"} == {os.getpid()}
    assert rec.cancels == 0 and rec.shutdowns == 1


@pytest.mark.slow
def test_cancel_reaches_the_runs_only_through_the_executor(home, data):
    rec = Recording(InlineExecutor(), forward_cancel=False)
    comp = Comparison(data, "none,per_pixel", seeds=2, train=FOREVER, executor=rec,
                      evaluation="holdout", decide=False).start()
    try:
        assert _wait(lambda: any(r.epoch >= 1 for r in comp.snapshot().runs))
        comp.cancel()
        assert rec.cancels == 1 and comp.cancelled
        # The executor swallowed it: the comparison has no other way to stop the runs.
        assert not comp.wait(1.5) and comp.snapshot().counts.get("running") == 1
    finally:
        rec.inner.cancel()
    assert comp.wait(30)
    runs = comp.record().runs
    assert comp.record().status == "cancelled" and {r.status for r in runs} == {"cancelled"}
    assert "cancelled in epoch" in runs[0].message
    assert [r.message for r in runs[1:]] == [NOT_STARTED] * 3
    assert rec.shutdowns == 1
    assert comp.record().hyper["evaluation"]["stopped_because"] == "cancelled"


def test_workers_and_an_executor_are_exclusive(home, data):
    with pytest.raises(ValueError, match="not both"):
        Comparison(data, "none", workers=2, executor=InlineExecutor())
    with pytest.raises(NormScopeError, match="model 'transformer' is unknown; use cnn, cnn_bn"):
        Comparison(data, "none", model="transformer", executor=InlineExecutor()).start()

