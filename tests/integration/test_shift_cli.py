"""`python -m diagnostics shift` in a real subprocess: bands found, JSON, one-line errors."""

from __future__ import annotations

import json

import numpy as np

from conftest import run_cli, run_main
from test_cli_stats import assert_ok, assert_one_line_error, strict_json


def _save(path, rng, n=200, h=30, w=12, gain_rows=None):
    level = np.geomspace(20.0, 0.1, h)[:, None]
    X = (rng.exponential(1.0, (n, h, w)) * level).astype(np.float32)
    if gain_rows is not None:
        X[:, gain_rows] *= 2.5
    np.savez(path, X=X, y=rng.integers(0, 3, n))
    return path


def test_shift_between_two_files_names_the_gain_bands(tmp_path, rng, home):
    a = _save(tmp_path / "a.npz", rng)
    b = _save(tmp_path / "b.npz", rng, gain_rows=slice(10, 20))
    out = run_cli("shift", str(a), "--against", str(b), "--json", env={"NORMSCOPE_HOME": str(home)})
    assert_ok(out)
    info = strict_json(out.stdout)
    assert info["shifted"] == list(range(10, 20))
    assert {info["kind"][h] for h in range(10, 20)} == {"gain"}
    assert info["finding"]["code"] == "band_shift" and "instance_row" in info["finding"]["message"]
    text = run_main("shift", str(a), "--against", str(b))  # the summary, in this process
    assert_ok(text)
    assert "bands 10-19" in text.stdout and "gain" in text.stdout


def test_shift_of_one_dataset_compares_train_and_test(home):
    out = run_cli("shift", "demo", "--json", env={"NORMSCOPE_HOME": str(home)})
    assert_ok(out)
    info = json.loads(out.stdout)
    assert info["names"] == ["train", "test"] and info["n"] == [840, 180]


def test_shapes_that_differ_get_one_sentence_naming_both(tmp_path, rng, home):
    a = _save(tmp_path / "a.npz", rng, h=30)
    b = _save(tmp_path / "b.npz", rng, h=20)
    out = run_cli("shift", str(a), "--against", str(b), env={"NORMSCOPE_HOME": str(home)})
    assert_one_line_error(out, "30 x 12")
    assert "20 x 12" in out.stderr


def test_bad_alpha_is_refused(home):
    out = run_cli("shift", "demo", "--alpha", "2", env={"NORMSCOPE_HOME": str(home)})
    assert_one_line_error(out, "--alpha")
