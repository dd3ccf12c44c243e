"""``python -m diagnostics compare`` and ``runs``: JSON schema, same numbers twice, bad input."""

from __future__ import annotations

import csv
import re
import json

import numpy as np
import pytest

from diagnostics.cli.main import main
from models.store import RunStore

from compare_helpers import tiny_arrays, write_tiny_npz



pytestmark = pytest.mark.pool  # starts training worker pools: one xdist worker


def _check_schema(doc: dict, configs: list[str], seeds: int, epochs: int) -> None:
    assert {"dataset", "model", "epochs", "seeds", "elapsed_s", "configs", "paired",
            "evaluation", "pairs", "answer"} <= set(doc)
    assert doc["epochs"] == epochs and doc["seeds"] == seeds and doc["model"] == "cnn"
    assert isinstance(doc["elapsed_s"], float) and doc["elapsed_s"] > 0
    assert [c["name"] for c in doc["configs"]] == configs
    for c in doc["configs"]:
        # today's keys kept for existing readers, the verdict's keys merged in
        assert set(c) == {"name", "test_acc_mean", "test_acc_std", "test_acc_ci95", "runs",
                          "accuracy", "ci95", "n_runs", "n_examples"}
        assert 0 <= c["test_acc_mean"] <= 1 and c["test_acc_std"] >= 0
        lo, hi = c["test_acc_ci95"]
        assert lo <= c["test_acc_mean"] <= hi
        assert [r["seed"] for r in c["runs"]] == list(range(seeds))
        for r in c["runs"]:
            assert set(r) == {"seed", "repetition", "fold", "run_id", "status", "test_acc",
                              "history"}
            assert r["status"] == "done" and 0 <= r["test_acc"] <= 1
            assert set(r["history"]) == {"epoch", "train_loss", "train_acc", "val_acc"}
            assert r["history"]["epoch"] == list(range(1, epochs + 1))
            assert all(len(v) == epochs for v in r["history"].values())
    assert [(p["a"], p["b"]) for p in doc["paired"]] == [(configs[0], c) for c in configs[1:]]
    for p in doc["paired"]:
        assert {"a", "b", "mean_diff", "p_value"} <= set(p)
        assert isinstance(p["mean_diff"], float) and (p["p_value"] is None or 0 <= p["p_value"] <= 1)


@pytest.mark.slow
def test_compare_json_schema_and_same_numbers_twice(home, tmp_path, cli, cli_main):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    args = ["compare", str(data), "--configs", "none,per_pixel@mask", "--seeds", "2",
            "--epochs", "2", "--batch-size", "16", "--eval", "holdout", "--no-decide"]
    env = {"NORMSCOPE_HOME": str(home)}
    first = cli(*args, "--json", str(tmp_path / "a.json"), env=env)
    assert first.returncode == 0, first.stderr
    assert "per_pixel@mask vs none" in first.stdout and "95% CI" in first.stdout
    assert "run 4/4" in first.stderr  # the progress lines (stderr is not a terminal here)
    # The second time in this process (its warm pool): the same numbers, without a second
    # interpreter importing torch.
    second = cli_main(*args, "--json", str(tmp_path / "b.json"), env=env)
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    _check_schema(a, ["none", "per_pixel@mask"], seeds=2, epochs=2)
    # the answer leads the output, and the JSON's summary is that same text
    assert first.stdout.splitlines()[: len(a["answer"]["text"])] == a["answer"]["text"]
    assert a["summary"] == " ".join(a["answer"]["text"]) and "2 seeds" in first.stdout
    assert a["evaluation"] == {"kind": "holdout", "folds": 1, "repetitions": 2, "cells": 2,
                               "stopped_because": a["evaluation"]["stopped_because"]}
    for ca, cb in zip(a["configs"], b["configs"]):
        assert [r["test_acc"] for r in ca["runs"]] == [r["test_acc"] for r in cb["runs"]]
        assert [r["history"] for r in ca["runs"]] == [r["history"] for r in cb["runs"]]
    assert a["comparison_id"] != b["comparison_id"]

    # runs: the table, JSON with curves, CSV export of every epoch of every run
    assert main(["runs"]) == 0
    assert main(["runs", "--csv", str(tmp_path / "curves.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert len(rows) == 2 * 2 * 2 * 2  # comparisons x configs x seeds x epochs
    assert {r["config"] for r in rows} == {"none", "per_pixel@mask"}
    assert {"run_id", "epoch", "train_loss", "train_acc", "val_acc", "test_acc"} <= set(rows[0])


def test_runs_json_lists_runs_with_curves(home, tmp_path, capsys):
    data = write_tiny_npz(tmp_path / "tiny.npz")
    assert main(["compare", str(data), "--configs", "none", "--seeds", "1", "--epochs", "1",
                 "--batch-size", "16", "--model", "linear", "--eval", "holdout"]) == 0
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["config"] == "none" and run["model"] == "linear" and run["status"] == "done"
    assert run["history"]["epoch"] == [1] and run["hyper"]["batch_size"] == 16


def _bad_inputs(tmp_path):
    X, y = tiny_arrays(0)
    np.save(tmp_path / "nolabels.npy", X)
    np.savez(tmp_path / "oneclass.npz", X=X, y=np.zeros(len(y), np.int64))
    y_small = y.copy()
    y_small[:2] = 3  # a fourth class with 2 examples: no room in val and test
    y_small[2:][y_small[2:] == 3] = 0
    np.savez(tmp_path / "small.npz", X=X, y=y_small)
    y_single = y.copy()
    y_single[0] = 3  # a fourth class with a single example: no 2-fold CV either
    np.savez(tmp_path / "single.npz", X=X, y=y_single)
    good = write_tiny_npz(tmp_path / "good.npz")
    return [
        ([str(tmp_path / "nolabels.npy")], "has no labels, and comparisons need labels"),
        ([str(tmp_path / "oneclass.npz")], "a single class"),
        ([str(tmp_path / "small.npz"), "--eval", "holdout"],
         "class '3' has only 2 example.*too few for the 70/15/15 split"),
        ([str(tmp_path / "single.npz")], "class '3' has 1 example; cross-validation needs at "
                                         "least 2 per class"),
        ([str(good), "--budget", "0"], "too small for even one repetition"),
        ([str(good), "--budget", "nan"], "not a number of seconds"),
        ([str(good), "--margin", "-1"], "non-negative number of accuracy points"),
        ([str(good), "--margin", "nan"], "non-negative number of accuracy points"),
        ([str(good), "--folds", "1"], "--folds: '1' must be at least 2"),
        ([str(good), "--max-repetitions", "0"], "--max-repetitions: '0' must be at least 1"),
        ([str(good), "--configs", "none,per-pixel"], "unknown scaler 'per-pixel'.*valid parts"),
        ([str(good), "--configs", "per_pixel@mask", "--mask-snr", "1e9"], "removes all 12 rows"),
        ([str(good), "--batch-size", "500"], "fewer than one batch of 500"),
        ([str(good), "--model", "transformer"], "neither one of cnn, .* nor package.module:factory"),
        ([str(good), "--seeds", "0"], "must be at least 1"),
        ([str(tmp_path / "missing.npz")], "does not exist"),
    ]


def test_every_bad_input_is_one_line_exit_2_and_stores_nothing(home, tmp_path, capsys):
    import re

    for extra, message in _bad_inputs(tmp_path):
        try:
            rc = main(["compare", *extra, "--epochs", "1"])
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
        err = capsys.readouterr().err
        assert rc == 2, (extra, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (extra, err)
        assert re.search(message, lines[0]), (message, lines[0])
        assert "Traceback" not in err
    assert RunStore().list_comparisons() == [] and RunStore().list_runs() == []


def test_bad_input_on_the_real_command_line_is_one_line(home, tmp_path, cli):
    X, _ = tiny_arrays(0)
    np.save(tmp_path / "nolabels.npy", X)
    r = cli("compare", str(tmp_path / "nolabels.npy"), env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "need labels" in r.stderr


def test_compression_on_signed_data_is_refused_before_training(home, tmp_path, cli):
    import time

    X, y = tiny_arrays(0)
    signed = np.log10(X) * 10.0  # logmel-like: dB values, most of them negative
    np.save(tmp_path / "logmel.npy", signed)
    np.save(tmp_path / "y.npy", y)
    n_neg = int((signed < 0).sum())
    t0 = time.perf_counter()
    r = cli("compare", str(tmp_path / "logmel.npy"), "--labels", str(tmp_path / "y.npy"),
            "--configs", "none,db+per_row", env={"NORMSCOPE_HOME": str(home)})
    took = time.perf_counter() - t0
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: db+per_row refused: "), r.stderr
    assert f"{n_neg:,} of {signed.size:,} values" in lines[0] and "per_row (CMVN)" in lines[0]
    assert RunStore().list_comparisons() == []  # refused before anything was stored
    assert took < 30, took  # no worker pool was started (that alone takes longer on 2 cores)


def test_other_verbs_do_not_import_torch():
    import subprocess
    import sys

    from conftest import REPO

    code = ("import sys, diagnostics.cli as c, diagnostics.normalize, diagnostics.results; "
            "c.build_parser(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_runs_table_gives_epochs_points_and_date(home, capsys):
    """``runs``: epochs trained of the most allowed, accuracy in points as the verdicts give it,
    and the date each run started (built in the store directly: no training needed)."""
    store = RunStore()
    store.create_comparison(
        {"id": "c1", "dataset_id": "demo", "dataset_name": "demo", "data_spec": "demo",
         "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0], "hyper": {"epochs": 20},
         "pid": 0},
        [{"id": "c1-0", "position": 0, "config": "none", "seed": 0},
         {"id": "c1-1", "position": 1, "config": "per_pixel", "seed": 0}])
    store.start_run("c1-0")
    for ep in range(1, 8):  # early stopping after 7 of 20 epochs
        store.add_epoch("c1-0", {"epoch": ep, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5})
    store.finish_run("c1-0", "done", test_acc=0.4972)
    capsys.readouterr()
    assert main(["runs"]) == 0
    head, *rows = capsys.readouterr().out.splitlines()
    assert "epochs" in head and "test acc %" in head and head.rstrip().endswith("date")
    done = next(r for r in rows if r.startswith("c1-0"))
    assert " 7/20 " in done and " 49.7 " in done and "0.497" not in done
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d$", done)
    queued = next(r for r in rows if r.startswith("c1-1"))
    assert " 0/20 " in queued and re.search(r"queued\s+0/20\s+-\s+\d{4}-", queued)
