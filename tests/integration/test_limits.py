"""Per-server limits (diagnostics.limits): read from the environment and limits.toml, checked
by the command line before any data is read, and by the app's queue of comparisons; a request
over a limit gets one sentence and stores nothing."""

from __future__ import annotations

import time

import pytest

from diagnostics import limits
from diagnostics.errors import NormScopeError
from diagnostics.limits import Limits


def test_defaults_file_and_environment(tmp_path):
    d = limits.load(environ={}, home=tmp_path)
    assert d == Limits() and d.max_epochs == 100 and not d.anyone_can_cancel
    (tmp_path / "limits.toml").write_text("max_epochs = 20\nmax_seeds = 4\n"
                                          "anyone_can_cancel = true\n")
    f = limits.load(environ={}, home=tmp_path)
    assert (f.max_epochs, f.max_seeds, f.anyone_can_cancel) == (20, 4, True)
    e = limits.load(environ={"NORMSCOPE_MAX_EPOCHS": "7", "NORMSCOPE_ANYONE_CAN_CANCEL": "0",
                             "NORMSCOPE_MAX_QUEUED": "2"}, home=tmp_path)
    assert (e.max_epochs, e.max_seeds, e.anyone_can_cancel, e.max_queued) == (7, 4, False, 2)


@pytest.mark.parametrize("env, text, match", [
    ({"NORMSCOPE_MAX_EPOCHS": "many"}, None, r"NORMSCOPE_MAX_EPOCHS='many' must be a whole"),
    ({"NORMSCOPE_MAX_SEEDS": "0"}, None, r"NORMSCOPE_MAX_SEEDS='0' must be a whole number of"),
    ({"NORMSCOPE_ANYONE_CAN_CANCEL": "maybe"}, None, r"must be true or false"),
    ({}, "max_epoch = 3\n", r"'max_epoch' is no limit; use max_epochs"),
    ({}, "max_epochs = \n", r"cannot be read as TOML"),
    ({}, "max_epochs = true\n", r"max_epochs=True must be a whole number"),
])
def test_bad_settings_are_one_sentence(tmp_path, env, text, match):
    if text is not None:
        (tmp_path / "limits.toml").write_text(text)
    with pytest.raises(NormScopeError, match=match):
        limits.load(environ=env, home=tmp_path)


def test_check_names_the_request_and_the_setting():
    lim = Limits(max_epochs=10, max_configs=3, max_workers=2)
    lim.check(epochs=10, configs=3, workers=2, seeds=None)
    with pytest.raises(NormScopeError, match=r"^11 epochs is over this server's limit of 10; .*"
                                             r"NORMSCOPE_MAX_EPOCHS$"):
        lim.check(epochs=11)
    with pytest.raises(NormScopeError, match="4 configs .* NORMSCOPE_MAX_CONFIGS"):
        lim.check(configs=4)
    with pytest.raises(NormScopeError, match="3 workers .* NORMSCOPE_MAX_WORKERS"):
        lim.check(workers=3)


@pytest.mark.parametrize("args, env, match", [
    (["--epochs", "101"], {}, "101 epochs is over this server's limit of 100"),
    (["--seeds", "11", "--eval", "holdout"], {}, "11 seeds is over this server's limit of 10"),
    (["--max-repetitions", "3"], {"NORMSCOPE_MAX_REPETITIONS": "2"}, "3 repetitions is over"),
    (["--folds", "4"], {"NORMSCOPE_MAX_FOLDS": "3"}, "4 folds is over"),
    (["--workers", "3"], {"NORMSCOPE_MAX_WORKERS": "2"}, "3 workers is over"),
    (["--configs", "none,global,per_pixel"], {"NORMSCOPE_MAX_CONFIGS": "2"}, "3 configs is over"),
    ([], {"NORMSCOPE_MAX_EPOCHS": "-1"}, "must be a whole number of at least 1"),
])
def test_cli_refuses_a_request_over_a_limit_in_one_line_and_stores_nothing(cli, cli_main, home,
                                                                            args, env, match):
    # --epochs on the real command line (exit status, no traceback); the other limits through
    # the CLI's main in this process (the same checks of its output).
    run = cli if args == ["--epochs", "101"] else cli_main
    r = run("compare", "demo", *args, env={"NORMSCOPE_HOME": str(home), **env})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and match in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (home / "runs.db").exists()  # refused before the run store was opened


@pytest.mark.slow
def test_cli_defaults_are_taken_down_to_the_limits(cli, home, tmp_path):
    import json

    from compare_helpers import write_tiny_npz

    data = write_tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "out.json"
    r = cli("compare", str(data), "--configs", "none,global", "--eval", "cv", "--no-decide",
            "--batch-size", "16", "--json", str(out),
            env={"NORMSCOPE_HOME": str(home), "NORMSCOPE_MAX_EPOCHS": "1",
                 "NORMSCOPE_MAX_REPETITIONS": "1", "NORMSCOPE_MAX_FOLDS": "2",
                 "NORMSCOPE_MAX_WORKERS": "1"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["epochs"] == 1
    assert (doc["evaluation"]["folds"], doc["evaluation"]["repetitions"]) == (2, 1)


class Idle:
    """An executor whose jobs run until cancelled: comparisons that stay queued or running."""

    def __init__(self):
        self.jobs, self.cancelled = [], False

    def submit(self, job: dict) -> None:
        self.jobs.append(job["run_id"])

    def cancel(self) -> None:
        self.cancelled = True

    def events(self, timeout: float | None = None) -> list[dict]:
        if not self.cancelled:
            time.sleep(min(timeout or 0.05, 0.05))
            return []
        out = [{"kind": "finished", "run_id": rid, "status": "cancelled",
                "message": "cancelled"} for rid in self.jobs]
        self.jobs = []
        return out

    def shutdown(self) -> None:
        pass


def test_queue_limits_per_server_and_per_session_count_waiting_comparisons(home):
    from models.comparison import RunningComparisons
    from models.store import RunStore

    running = RunningComparisons()
    lim = Limits(max_queued=2, max_queued_per_session=1)
    opts = dict(seeds=1, evaluation="holdout", limits=lim)
    a = running.start("digits", "none,global", owner="page-1", executor=Idle(), **opts)
    with pytest.raises(NormScopeError, match="you have 1 comparison running or waiting"):
        running.start("digits", "none,global", owner="page-1", executor=Idle(), **opts)
    b = running.start("digits", "none,global", owner="page-2", executor=Idle(), **opts)
    assert b.snapshot().status == "waiting"  # queued behind a: it counts all the same
    with pytest.raises(NormScopeError, match="already runs or queues 2 comparisons"):
        running.start("digits", "none,global", owner="page-3", executor=Idle(), **opts)
    assert len(RunStore().list_comparisons()) == 2  # refused ones stored nothing
    assert running.owner(a.id) == "page-1" and running.owner("nope") is None
    a.cancel()
    assert a.wait(30)
    c = running.start("digits", "none,global", owner="page-3", executor=Idle(), **opts)
    for comp in (b, c):
        comp.cancel()
        assert comp.wait(30)
