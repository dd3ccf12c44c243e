"""The user's own model through the real command line: it trains, a bad one gets one sentence
(exit 2, nothing stored), one that raises mid-training fails its own runs with the message."""

from __future__ import annotations

import json

import pytest

from compare_helpers import write_tiny_npz
from conftest import REPO, run_main

pytestmark = pytest.mark.pool
TESTS = str(REPO / "tests")


def _compare(cli, home, data, *extra):
    env = {"NORMSCOPE_HOME": str(home), "PYTHONPATH": f"{REPO}:{TESTS}"}
    return cli("compare", str(data), "--configs", "none,per_pixel", "--seeds", "1", "--eval",
               "holdout",
               "--epochs", "2", "--batch-size", "16", "--workers", "1", *extra, env=env,
               **({} if cli is run_main else {"timeout": 300}))


def test_a_user_model_runs_through_the_cli(cli, home, tmp_path):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "out.json"
    r = _compare(cli, home, data, "--model", "user_models:tiny", "--optimizer", "sgd",
                 "--lr", "0.01", "--json", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["model"] == "user_models:tiny"
    assert all(run["status"] == "done" for c in doc["configs"] for run in c["runs"])


@pytest.mark.parametrize("model, match", [
    ("user_models:wrong_output", "must return class scores of shape (2, 3)"),
    ("user_models:not_a_module", "not a torch.nn.Module"),
    ("no_such_pkg.mod:f", "cannot be imported"),
])
def test_a_bad_factory_is_one_error_line_and_stores_nothing(cli, cli_main, home, tmp_path, model,
                                                           match):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    # One real command line (exit status, no traceback); the CLI's main in this process for
    # the other factories (the same checks of its output).
    run = cli if model == "no_such_pkg.mod:f" else cli_main
    r = _compare(run, home, data, "--model", model)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and match in r.stderr
    assert json.loads(cli_main("runs", "--json").stdout) == []  # (home: the fixture's)


def test_a_model_that_raises_mid_training_fails_its_runs_with_the_message(cli, cli_main, home,
                                                                          tmp_path):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    r = _compare(cli, home, data, "--model", "user_models:explodes")
    assert r.returncode == 1 and "exploded mid-training" in r.stderr
    runs = json.loads(cli_main("runs", "--json").stdout)
    assert len(runs) == 2 and {x["status"] for x in runs} == {"failed"}
    assert all("exploded mid-training" in x["message"] for x in runs)


def test_bad_training_settings_exit_2(cli, cli_main, home, tmp_path):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    for extra, match in ((("--lr", "0"),  "must be a finite number > 0"),
                         (("--device", "cuda"), "torch sees no GPU")):
        import torch

        if extra[0] == "--device" and torch.cuda.is_available():
            continue
        # --lr on the real command line; --device through the CLI's main in this process.
        r = _compare(cli if extra[0] == "--lr" else cli_main, home, data, *extra)
        assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr
