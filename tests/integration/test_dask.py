"""Dask: comparisons on real schedulers and workers (a LocalCluster of processes, and one
`dask scheduler` / `dask worker` pair started as subprocesses), statistics over zarr, HDF5 and
.npy on the cluster, and the app attached through NORMSCOPE_DASK_SCHEDULER.

Everything listens on 127.0.0.1 only.  The tests share one cluster and stay on one xdist
worker (the ``pool`` group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
h5py = pytest.importorskip("h5py")

from chunk_helpers import BASIC, offset_data, two_pass, write_offset_copies  # noqa: E402
from compare_helpers import tiny_arrays, wait_for, write_tiny_npz  # noqa: E402
from conftest import REPO, run_cli, run_main  # noqa: E402
from diagnostics.cluster import CONNECT_ENV, SCHEDULER_ENV  # noqa: E402
from diagnostics.data.ingest import load_dataset  # noqa: E402
from diagnostics.errors import NormScopeError  # noqa: E402
from diagnostics.stats.summary import dataset_stats  # noqa: E402
from models.comparison import Comparison, RunningComparisons  # noqa: E402
from models.store import RunStore  # noqa: E402
from models.train import TrainConfig  # noqa: E402

pytestmark = [pytest.mark.pool, pytest.mark.slow]

QUICK = TrainConfig(epochs=2, batch_size=16)
LONG = TrainConfig(epochs=100_000, batch_size=16, patience=0)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes; a dead worker's job is retried once."""
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None)
    client = Client(lc, set_as_default=False)
    client.wait_for_workers(2, timeout=180)
    yield lc
    client.close()
    lc.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture
def tiny(tmp_path):
    return str(write_tiny_npz(tmp_path / "tiny.npz"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finished(comp, timeout=180):
    assert comp.wait(timeout), comp.snapshot().status
    return comp.record()


# -- the executor --------------------------------------------------------------------------
def test_parity_with_the_local_executor(cluster, home, tiny):
    """The same seed and config: the same accuracy and per-example predictions."""
    opts = dict(seeds=1, train=QUICK, evaluation="cv", folds=2, max_repetitions=1, decide=False)
    on = Comparison(tiny, "none,per_pixel", cluster=cluster.scheduler_address, **opts).start()
    local = Comparison(tiny, "none,per_pixel", cluster="", **opts).start()
    ron, rlocal = _finished(on), _finished(local)
    assert on._executor.data_mode == "scattered"
    assert [r.status for r in ron.runs] == ["done"] * 4
    store = RunStore()
    pon, plocal = store.predictions(on.id), store.predictions(local.id)
    for a, b in zip(ron.runs, rlocal.runs):
        assert (a.config, a.fold) == (b.config, b.fold)
        assert a.test_acc == b.test_acc
        for k in ("test_index", "pred", "label"):
            np.testing.assert_array_equal(pon[a.id][k], plocal[b.id][k])
        assert a.history["val_acc"] == b.history["val_acc"]


def test_cancel_reaches_running_jobs(cluster, home, tiny):
    comp = Comparison(tiny, "none,per_pixel,db+per_row", seeds=1, train=LONG,
                      evaluation="holdout", decide=False,
                      cluster=cluster.scheduler_address).start()
    assert wait_for(lambda: len(comp.running_pids()) >= 2, 60)
    t0 = time.monotonic()
    comp.cancel()
    assert comp.wait(15)
    took = time.monotonic() - t0
    statuses = sorted(r.status for r in comp.record().runs)
    assert statuses == ["cancelled"] * 3, statuses
    assert took < 10, took  # polled every 0.5 s between minibatches


def test_a_killed_worker_reruns_only_its_job(cluster, home, tiny):
    from distributed import Client

    train = TrainConfig(epochs=40, batch_size=16, patience=0)
    comp = Comparison(tiny, "none,per_pixel", seeds=1, train=train, evaluation="holdout",
                      decide=False, cluster=cluster.scheduler_address).start()
    assert wait_for(lambda: len(comp.running_pids()) >= 1, 60)
    victim_run, pid = next(iter(comp.running_pids().items()))
    os.kill(pid, signal.SIGKILL)
    rec = _finished(comp, 240)
    by = {r.id: r for r in rec.runs}
    # Retried once on another worker: the comparison finishes and every run is done.
    assert [r.status for r in rec.runs] == ["done", "done"], [(r.status, r.message) for r in rec.runs]
    assert by[victim_run].test_acc is not None
    with Client(cluster.scheduler_address, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=180)  # the nanny restarted the killed one


def test_unreachable_scheduler_one_error(home, tiny, monkeypatch):
    # A dead port is waited out: 1 s here (NORMSCOPE_DASK_CONNECT_S) rather than the default 5.
    monkeypatch.setenv(CONNECT_ENV, "1")
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(NormScopeError, match=r"no Dask scheduler answers .* \(within 1 s"):
        Comparison(tiny, "none,per_pixel", cluster=f"tcp://127.0.0.1:{port}").start()
    assert time.monotonic() - t0 < 15
    r = run_cli("compare", tiny, "--cluster", f"tcp://127.0.0.1:{port}", "--epochs", "1",
                env={"NORMSCOPE_HOME": str(home), CONNECT_ENV: "1"})
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith("error: no Dask scheduler answers"), r.stderr
    assert "(within 1 s" in lines[-1], r.stderr
    assert "Traceback" not in r.stderr
    # A bad setting is one sentence too, before anything is waited for.
    bad = run_main("compare", tiny, "--cluster", f"tcp://127.0.0.1:{port}", "--epochs", "1",
                   env={"NORMSCOPE_HOME": str(home), CONNECT_ENV: "soon"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith(f"error: {CONNECT_ENV}='soon' must be a number of seconds")
    bad = run_cli("stats", tiny, "--cluster", "http://nowhere", env={"NORMSCOPE_HOME": str(home)})
    assert bad.returncode == 2 and "is not a Dask scheduler address" in bad.stderr


def test_comparisons_run_concurrently_on_a_cluster(cluster, home, tiny):
    reg = RunningComparisons()
    kw = dict(seeds=1, train=LONG, evaluation="holdout", decide=False,
              cluster=cluster.scheduler_address)
    a = reg.start(tiny, "none,per_pixel", **kw)
    b = reg.start(tiny, "none,db+per_row", **kw)
    try:
        # Both run at once (the scheduler queues their jobs); locally the second would wait.
        assert wait_for(lambda: a.snapshot().status == b.snapshot().status == "running", 60)
        assert wait_for(lambda: a.running_pids() or b.running_pids(), 60)
        local = RunningComparisons()
        c = local.start(tiny, "none,per_pixel", seeds=1, train=LONG, evaluation="holdout",
                        decide=False, cluster="")
        d = local.start(tiny, "none,db+per_row", seeds=1, train=LONG, evaluation="holdout",
                        decide=False, cluster="")
        assert wait_for(lambda: "running" in (c.snapshot().status, d.snapshot().status), 60)
        assert "waiting" in (c.snapshot().status, d.snapshot().status)
        c.cancel()
        d.cancel()
        assert c.wait(30) and d.wait(30)
    finally:
        a.cancel()
        b.cancel()
    assert a.wait(20) and b.wait(20)


def test_too_big_to_scatter_opened_from_shared_home(cluster, home, tiny, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_DASK_SCATTER_MB", "0")
    comp = Comparison(tiny, "none,per_pixel", seeds=1, train=QUICK, evaluation="holdout",
                      decide=False, cluster=cluster.scheduler_address).start()
    assert comp._executor.data_mode == "shared"  # same machine: the workers see the file
    assert [r.status for r in _finished(comp).runs] == ["done", "done"]
    # A dataset the workers cannot open, too big to scatter: refused with one sentence.
    X, y = tiny_arrays(1)
    from diagnostics.data.dataset import Dataset
    from models.dask_executor import DaskExecutor

    ex = DaskExecutor(cluster.scheduler_address)
    try:
        ds = Dataset(X=X, y=y, class_names=("a", "b", "c"), name="elsewhere", id="fabcdef01234")
        with pytest.raises(NormScopeError, match="cannot open it themselves"):
            ex.attach_data(ds, "/nowhere/x.npy", None, str(home))
    finally:
        ex.shutdown()


# -- statistics ------------------------------------------------------------------------------
def test_stats_on_the_cluster_equal_npy(cluster, tmp_path, rng=np.random.default_rng(5)):
    from distributed import Client

    X = (100 + 3 * rng.standard_normal((900, 8, 10))).astype(np.float32)
    y = rng.integers(0, 4, 900)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("X", data=X, chunks=(100, 8, 10))
    g.create_array("y", data=y)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(128, 8, 10))
        f.create_dataset("y", data=y)
    ref = dataset_stats(load_dataset(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy")))
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        for spec, labels in [(tmp_path / "g.zarr", None), (tmp_path / "f.h5", None),
                             (tmp_path / "x.npy", tmp_path / "y.npy")]:
            ds = load_dataset(str(spec), labels=None if labels is None else str(labels))
            st = dataset_stats(ds, client=client)
            assert st.n == ref.n
            np.testing.assert_allclose(st.mean, ref.mean, rtol=1e-12, atol=0)
            np.testing.assert_allclose(st.std, ref.std, rtol=1e-12, atol=0)
            np.testing.assert_allclose(st.class_means, ref.class_means, rtol=1e-12)
            np.testing.assert_array_equal(st.sample, ref.sample)
            np.testing.assert_array_equal(st.min, ref.min)



def test_offset_data_on_the_cluster_equal_a_float64_two_pass(cluster, tmp_path,
                                                              rng=np.random.default_rng(6)):
    """Mean 1e4, std 0.01 (float32): every copy, merged in the tree, within 1e-12 of a float64
    two-pass (merges of absolute means near 1e4 left ~1e-11)."""
    from distributed import Client

    from diagnostics.stats.moments import compute_stats

    X = offset_data(rng)
    write_offset_copies(tmp_path, X)
    mu, sd = two_pass(X)
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        for X in (np.load(tmp_path / BASIC[0], mmap_mode="r"),  # workers open it by path
                  load_dataset(str(tmp_path / BASIC[1])).X,
                  load_dataset(str(tmp_path / BASIC[2])).X):
            spec = getattr(getattr(X, "spec", None), "kind", "npy")
            st = compute_stats(X, client=client)
            np.testing.assert_allclose(st.mean, mu, rtol=1e-12, atol=0, err_msg=spec)
            np.testing.assert_allclose(st.std, sd, rtol=1e-12, atol=0, err_msg=spec)

# -- a scheduler and a worker started by hand -------------------------------------------------
def _start(args, log):
    """``dask scheduler ...`` / ``dask worker ...`` (the venv's ``dask`` command)."""
    dask_cmd = Path(sys.executable).with_name("dask")
    cmd = [str(dask_cmd)] if dask_cmd.exists() else [sys.executable, "-m", "dask"]
    return subprocess.Popen([*cmd, *args], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            start_new_session=True)


def test_cli_on_a_hand_started_scheduler_and_a_lost_scheduler(tmp_path, home, tiny):
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    sched = _start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard", "--dashboard-address", "127.0.0.1:0"], log)
    worker = None
    try:
        worker = _start(["worker", addr, "--nworkers", "1", "--nthreads", "1",
                         "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address",
                         "127.0.0.1:0"], log)
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(addr, timeout=3, set_as_default=False) as c:
                    c.wait_for_workers(1, timeout=180)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "dask.log").read_text()[-2000:]
                time.sleep(0.5)
        env = {"NORMSCOPE_HOME": str(home), SCHEDULER_ENV: addr}
        r = run_cli("stats", tiny, "--json", env=env)
        assert r.returncode == 0, r.stderr
        r = run_cli("compare", tiny, "--configs", "none,per_pixel", "--eval", "holdout",
                    "--seeds", "1", "--no-decide", "--epochs", "1", env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        # The scheduler dies mid-comparison: finished runs are kept, the rest interrupted.
        train = TrainConfig(epochs=150, batch_size=16, patience=0)  # seconds a run
        comp = Comparison(tiny, "none,per_pixel,db+per_row", seeds=1, train=train,
                          evaluation="holdout", decide=False, cluster=addr).start()
        assert wait_for(lambda: comp.snapshot().counts.get("done", 0) >= 1, 180)
        os.killpg(sched.pid, signal.SIGKILL)
        rec = _finished(comp, 60)
        statuses = [r.status for r in rec.runs]
        assert statuses[0] == "done" and rec.runs[0].test_acc is not None
        assert "interrupted" in statuses and "done" in statuses, statuses
        assert set(statuses) <= {"done", "interrupted"}, statuses
    finally:
        for p in (worker, sched):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        log.close()


# -- the app ------------------------------------------------------------------------------------
def test_app_attached_through_the_environment(cluster, home, tmp_path, monkeypatch):
    from distributed import Client
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="cmp_model").set_value("linear")
    at.number_input(key="cmp_epochs").set_value(1)
    at.selectbox(key="cmp_eval").set_value("holdout")
    at.number_input(key="cmp_seeds").set_value(1)
    at.toggle(key="cmp_decide").set_value(False) if _has(at, "toggle", "cmp_decide") else None
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    cid = at.multiselect(key="runs").value[0]
    store = RunStore()
    assert wait_for(lambda: store.load_comparison(cid).status in ("done", "failed", "cancelled"),
                    240)
    assert {r.status for r in store.load_comparison(cid).runs} == {"done"}
    with Client(cluster.scheduler_address, set_as_default=False) as c:
        seen = c.run(lambda: list(__import__("models.dask_executor").dask_executor._CACHES))
    assert any(cid in ids for ids in seen.values())  # the jobs ran on the cluster's workers
    # An address that does not answer: st.error, the page keeps working (waited out for 1 s).
    monkeypatch.setenv(SCHEDULER_ENV, f"tcp://127.0.0.1:{_free_port()}")
    monkeypatch.setenv(CONNECT_ENV, "1")
    assert wait_for(lambda: not at.run().button(key="start").disabled, 60)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    assert any("no Dask scheduler answers" in str(e.value) and "(within 1 s" in str(e.value)
               for e in at.error)


def _has(at, kind: str, key: str) -> bool:
    try:
        getattr(at, kind)(key=key)
        return True
    except KeyError:
        return False
