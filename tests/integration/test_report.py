"""HTML report: self-contained, with the statistics, findings and stored comparisons."""

from __future__ import annotations

import json
import re
from html import escape

import pytest


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path


def _env(home):
    return {"NORMSCOPE_HOME": str(home / "home")}


def test_report_of_the_demo_is_self_contained(cli, home):
    out = home / "r.html"
    res = cli("report", "demo", "--out", str(out), env=_env(home))
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    # plotly.js inlined once; nothing loaded from the network.
    assert html.count("Plotly.newPlot") >= 6
    assert not re.search(r"<script[^>]+src=", html)
    assert "cdn.plot.ly/plotly" not in html  # (the inlined library mentions its own URL)
    for text in ("Per-pixel mean", "Per-pixel std", "Per-pixel SNR", "Noise amplification",
                 "Row SNR", "amplified_noise", "low_snr_rows", "masked rows"):
        assert text in html, text
    assert "Comparison " not in html  # none stored yet


@pytest.mark.slow
def test_report_includes_a_stored_comparison(cli, cli_main, home):
    js = home / "c.json"
    res = cli("compare", "digits", "--configs", "none,per_pixel", "--model", "linear",
              "--epochs", "1", "--folds", "3", "--max-repetitions", "2", "--json", str(js),
              env=_env(home), timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(js.read_text())
    cid = doc["comparison_id"]
    out = home / "r.html"
    # The report's content in this process; its exit status on the real command line below.
    res = cli_main("report", "digits", "--runs", cid, "--out", str(out), env=_env(home))
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert f"Comparison {cid}" in html
    assert "Validation accuracy" in html and "Test accuracy" in html
    assert "per_pixel" in html and "95% CI" in html
    # The section leads with the answer (the CLI's and the JSON's text), then the pairs table.
    section = html[html.index(f"Comparison {cid}"):]
    first = doc["answer"]["text"][0]
    assert first and escape(first) in section
    assert section.index(escape(first)) < section.index("<table>")
    for head in ("p_adjusted", "verdict", "b − a (points)"):
        assert head in section
    assert doc["pairs"][0]["verdict"] in section
    # Without --runs the newest comparisons of the dataset are included.
    res = cli_main("report", "digits", "--out", str(out), env=_env(home))
    assert res.returncode == 0 and f"Comparison {cid}" in out.read_text()
    # A comparison of another dataset is refused with one line.
    res = cli("report", "demo", "--runs", cid, "--out", str(out), env=_env(home))
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "ran on dataset digits" in res.stderr


@pytest.mark.parametrize("args, words", [
    (["report", "nosuch.npy"], "does not exist"),
    (["report", "demo", "--runs", "zzz"], "not in the run store"),
    (["report", "demo", "--out", "/nonexistent-dir/r.html"], "cannot write"),
])
def test_report_bad_input(cli, cli_main, home, args, words):
    # A missing file on the real command line (exit status); the others through the CLI's main
    # in this process (the same checks of its output).
    res = (cli if args == ["report", "nosuch.npy"] else cli_main)(*args, env=_env(home))
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and words in res.stderr
    assert "Traceback" not in res.stderr


def test_report_with_empty_runs_list_is_refused(cli, home):
    res = cli("report", "demo", "--runs", ",,", "--out", str(home / "r.html"), env=_env(home))
    assert res.returncode == 2 and "names no comparison id" in res.stderr
