"""Comparisons on the local process executor: results, a killed worker, cancel, the set of
running comparisons."""

from __future__ import annotations

from compare_helpers import wait_for as _wait_for

import os
import signal
import time

import pytest

from diagnostics.data.ingest import load_dataset
from diagnostics.data.dataset import split_indices
from diagnostics.errors import NormScopeError
from models.comparison import Comparison, RunningComparisons
from models.jobs import Job, run_job
from models.store import RunStore
from models.train import TrainConfig

from compare_helpers import write_tiny_npz

QUICK = TrainConfig(epochs=2, batch_size=16)
#: Today's design: the fixed holdout, every seed run (the tests here are about the executor).
HOLDOUT = dict(evaluation="holdout", decide=False)



@pytest.fixture
def data(tmp_path):
    return str(write_tiny_npz(tmp_path / "tiny.npz"))


pytestmark = pytest.mark.pool  # starts training worker pools: one xdist worker



def test_comparison_stores_paired_runs_with_shared_initial_weights(home, data):
    comp = Comparison(data, "none,per_pixel@mask", seeds=2, train=QUICK, workers=2,
                      **HOLDOUT).start()
    assert comp.wait(60)
    snap = comp.snapshot()
    assert snap.status == "done" and snap.fraction == 1.0 and snap.counts == {"done": 4}
    ds = load_dataset(data)
    steps = -(-len(split_indices(ds.n, ds.y).train) // QUICK.batch_size)
    rec = RunStore().load_comparison(comp.id)
    assert rec.status == "done" and [(r.config, r.seed) for r in rec.runs] == [
        ("none", 0), ("per_pixel@mask", 0), ("none", 1), ("per_pixel@mask", 1)]
    for r in rec.runs:
        assert r.status == "done" and 0 <= r.test_acc <= 1 and r.history["epoch"] == [1, 2]
        assert len(r.batches["step"]) == 2 * steps and r.versions["torch"]
    by_seed = {}
    for r in rec.runs:
        by_seed.setdefault(r.seed, set()).add(r.init_digest)
    assert all(len(d) == 1 for d in by_seed.values()) and len({*by_seed[0], *by_seed[1]}) == 2
    # the snapshot carries the same curves as the store
    live = {r.run_id: r for r in snap.runs}
    assert all(list(live[r.id].val_acc) == r.history["val_acc"] for r in rec.runs)


@pytest.mark.slow
def test_worker_results_equal_an_in_process_run(home, data):
    """Same seed and config give the same numbers, in a worker or here (with the same
    single torch thread: reductions over two threads may round differently)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    comp = Comparison(data, "per_pixel", seeds=[3], train=QUICK, workers=1, **HOLDOUT).start()
    assert comp.wait(60)
    (stored,) = comp.record().runs
    ds = load_dataset(data)
    job = Job(run_id="x", comparison_id="x", data=data, labels=None, dataset_id=ds.id,
              config="per_pixel", seed=3, train=QUICK.as_dict())
    events = []
    try:
        result = run_job(job, emit=events.append)
    finally:
        torch.set_num_threads(threads)
    assert result["status"] == "done" and result["test_acc"] == stored.test_acc
    assert events[-1] is result and [e["kind"] for e in events][0] == "started"
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["val_acc"] for e in epochs] == stored.history["val_acc"]
    assert [e["train_loss"] for e in epochs] == stored.history["train_loss"]


@pytest.mark.slow
def test_a_killed_worker_fails_its_run_and_the_others_finish(home, data):
    # Runs long enough (about 2 s each, far above the few ms between being picked and being
    # killed) that the victim cannot finish in between, and short enough that the three
    # others finish soon; we do not wait for both workers to be busy, since under load the
    # second one may start only after the first has finished several short runs.
    comp = Comparison(data, "none,per_pixel", seeds=2, workers=2, **HOLDOUT,
                      train=TrainConfig(epochs=200, batch_size=16, patience=0)).start()

    def started():
        epochs = {r.run_id: r.epoch for r in comp.snapshot().runs}
        return [(rid, pid) for rid, pid in sorted(comp.running_pids().items())
                if epochs.get(rid, 0) >= 1]

    found = []
    assert _wait_for(lambda: found.extend(started()) or found, timeout=120)
    victim, pid = found[0]
    os.kill(pid, signal.SIGKILL)
    assert comp.wait(180)
    rec = comp.record()
    status = {r.id: r.status for r in rec.runs}
    assert status.pop(victim) == "failed"
    assert set(status.values()) == {"done"} and len(status) == 3
    killed = next(r for r in rec.runs if r.id == victim)
    assert "worker process died" in killed.message and "-9" in killed.message
    assert rec.status == "done"


@pytest.mark.slow
def test_cancel_stops_within_two_seconds_and_nothing_stays_running(home, data):
    comp = Comparison(data, "none,per_pixel", seeds=3, workers=2, **HOLDOUT,
                      train=TrainConfig(epochs=100_000, batch_size=16, patience=0)).start()
    assert _wait_for(lambda: any(r.epoch >= 1 for r in comp.snapshot().runs))
    comp.cancel()
    # 100,000 epochs could never end on their own: finishing at all proves the workers
    # stopped between batches (bench/bench_compare.py --only cancel measures how fast).
    assert comp.wait(30)
    rec = comp.record()
    assert rec.status == "cancelled" and {r.status for r in rec.runs} == {"cancelled"}
    assert comp.snapshot().status == "cancelled"
    assert RunStore().mark_interrupted() == 0


def test_bad_input_stores_nothing(home, tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.ones((40, 4, 5), np.float32))
    with pytest.raises(NormScopeError, match="comparisons need labels"):
        Comparison(str(tmp_path / "x.npy"), "none").start()
    with pytest.raises(NormScopeError, match="unknown scaler"):
        Comparison("demo", "none,zscore")
    assert RunStore().list_comparisons() == []


@pytest.mark.slow
def test_running_comparisons_run_one_at_a_time_and_keep_runs_apart(home, data):
    running = RunningComparisons()
    # a cannot finish by itself (100,000 epochs), so b must still be waiting when we look.
    a = running.start(data, "none,per_pixel", seeds=1, workers=1, **HOLDOUT,
                      train=TrainConfig(epochs=100_000, batch_size=16, patience=0))
    b = running.start(data, "global", seeds=2, train=QUICK, workers=1, **HOLDOUT)
    assert running.get(a.id) is a and running.get(b.id) is b and running.get("nope") is None
    assert _wait_for(lambda: any(r.epoch >= 1 for r in a.snapshot().runs))
    time.sleep(0.5)  # time enough for b to start, were it not waiting
    wb = b.snapshot()
    assert wb.status == "waiting" and wb.counts == {"queued": 2} and not wb.finished
    assert RunStore().load_comparison(b.id).status == "queued"
    assert running.active() == [a, b]
    a.cancel()
    assert a.wait(30) and b.wait(60)
    store = RunStore()
    ra, rb = store.load_comparison(a.id), store.load_comparison(b.id)
    assert {r.config for r in ra.runs} == {"none", "per_pixel"} and len(ra.runs) == 2
    assert {r.config for r in rb.runs} == {"global"} and len(rb.runs) == 2
    assert ra.status == "cancelled" and {r.status for r in ra.runs} == {"cancelled"}
    assert rb.status == "done" and all(r.status == "done" for r in rb.runs)
    first_b = min(r.started for r in rb.runs)
    assert first_b >= max(r.finished for r in ra.runs) - 0.5  # b waited for a
    assert running.active() == []


@pytest.mark.slow
def test_a_loaded_dataset_object_is_reopened_by_workers(home):
    ds = load_dataset("digits")
    comp = Comparison(ds, "none", seeds=1, train=TrainConfig(epochs=1), workers=1,
                      **HOLDOUT).start()
    assert comp.data == "digits" and comp.wait(60)
    assert comp.record().runs[0].status == "done"
