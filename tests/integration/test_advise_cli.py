"""``python -m diagnostics advise``: candidates, a decide-mode run, the stored recommendation,
its JSON, and bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compare_helpers import tiny_arrays, write_tiny_npz
from models.store import RunStore

pytestmark = pytest.mark.pool  # starts training worker pools: one xdist worker


@pytest.mark.slow
def test_advise_runs_the_candidates_and_stores_the_recommendation(home, tmp_path, cli):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    out = tmp_path / "advice.json"
    r = cli("advise", str(data), "--model", "linear", "--epochs", "2", "--folds", "2",
            "--max-repetitions", "2", "--budget", "600", "--workers", "1", "--json", str(out),
            env={"NORMSCOPE_HOME": str(home)}, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert set(doc) >= {"recommendation", "candidates", "comparison_id", "answer"}
    rec = doc["recommendation"]
    assert set(rec) >= {"config", "reason", "gain_vs_none", "gain_vs_per_pixel", "undecided",
                        "undecided_gains"}
    assert [g["against"] for g in rec["undecided_gains"]] == rec["undecided"]
    for g in ("gain_vs_none", "gain_vs_per_pixel"):
        assert set(rec[g]) >= {"diff", "ci95"}
    configs = [c["config"] for c in doc["candidates"]]
    assert configs[:2] == ["none", "per_pixel"] and "db+per_row" in configs  # power data
    assert rec["config"] in configs and all(c["reason"] for c in doc["candidates"])
    assert doc["answer"]["text"]
    # Printed: the candidates with their reasons, then the recommendation.
    assert "candidates:" in r.stdout and "db+per_row" in r.stdout
    assert ("Recommended: " in r.stdout) or ("Leading, not yet decided: " in r.stdout)
    assert f"Against no normalization:" in r.stdout
    # Stored with its evidence: the same document under the comparison's id, whose runs are
    # those of the candidates.
    store = RunStore()
    assert store.load_advice(doc["comparison_id"]) == doc
    comp = store.load_comparison(doc["comparison_id"], batches=False)
    assert comp.configs == configs and comp.hyper["evaluation"]["decide"]


def test_a_budget_too_small_is_one_line_and_stores_nothing(home, tmp_path, cli):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    r = cli("advise", str(data), "--budget", "1", env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: budget 1 s is too small for one "
                                                   "repetition"), r.stderr
    assert RunStore().list_comparisons() == []


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "too small for even one repetition"),
    (["--budget", "soon"], "not a number of seconds"),
    (["--epochs", "0"], "must be at least 1"),
    (["--also", "per-pixel"], "unknown scaler 'per-pixel'; valid parts"),
    (["--also", "pcen:t=0"], "pcen parameter t=0 is out of range"),
])
def test_bad_options_are_one_line(home, tmp_path, cli, cli_main, extra, message):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    # --budget 0 on the real command line (exit status, no traceback); the other options
    # through the CLI's main in this process (the same checks of its output).
    run = cli if extra == ["--budget", "0"] else cli_main
    r = run("advise", str(data), *extra, env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr


def test_data_without_labels_is_one_line(home, tmp_path, cli):
    X, _ = tiny_arrays(0)
    np.save(tmp_path / "nolabels.npy", X)
    r = cli("advise", str(tmp_path / "nolabels.npy"), env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "needs labels" in r.stderr


def test_compression_of_signed_data_asked_with_also_is_one_line(home, tmp_path, cli):
    X, y = tiny_arrays(0)
    np.savez(tmp_path / "signed.npz", X=X - X.mean(), y=y)
    r = cli("advise", str(tmp_path / "signed.npz"), "--also", "db+per_row",
            env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: db+per_row refused: ")
    assert "negative" in r.stderr and RunStore().list_comparisons() == []


def test_also_adds_a_candidate_that_the_budget_counts(home, tmp_path, cli, cli_main):
    """--also is tested beside the candidates: its runs count in the one-repetition check."""
    data = write_tiny_npz(tmp_path / "tiny.npz")
    r = cli("advise", str(data), "--budget", "1", "--also", "log1p+per_pixel",
            env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == ""
    plain = cli_main("advise", str(data), "--budget", "1", env={"NORMSCOPE_HOME": str(home)})
    n = int(plain.stderr.split(" candidates x ")[0].rsplit(" ", 1)[1])
    assert f"{n + 1} candidates x " in r.stderr, (plain.stderr, r.stderr)
