"""One comparison under two models: each model is its own block of paired runs with its own
decide loop; the JSON, the stored record, the CLI and the HTML report give per-model answers
and whether the models agree, and reopen the same from the store."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.plots.report import comparison_section
from diagnostics.results import comparison_json
from diagnostics.verdicts.design import design_folds
from diagnostics.verdicts.models import agreement, answer_lines, model_records
from models.comparison import Comparison
from models.executors import InlineExecutor
from models.jobs import design_of
from models.store import RunStore
from models.train import TrainConfig

from compare_helpers import wait_for, write_tiny_npz
from conftest import REPO, run_main

pytestmark = pytest.mark.pool  # trains (in this process): one xdist worker
QUICK = TrainConfig(epochs=2, batch_size=16)


@pytest.fixture
def data(tmp_path):
    return str(write_tiny_npz(tmp_path / "tiny.npz"))


def test_two_models_train_as_paired_blocks_and_report_per_model(home, data):
    comp = Comparison(data, "none,per_pixel", model="cnn,linear", train=QUICK, folds=3,
                      max_repetitions=1, executor=InlineExecutor()).start()
    assert comp.wait(180)
    store = RunStore()
    rec, preds = comp.record(), store.predictions(comp.id)
    assert rec.status == "done" and rec.model == "cnn,linear"
    assert rec.hyper["models"] == ["cnn", "linear"]
    assert len(rec.runs) == 2 * 2 * 3 and {r.model for r in rec.runs} == {"cnn", "linear"}
    cells: dict = {}
    for r in rec.runs:
        cells.setdefault((r.repetition, r.fold), []).append(r)
    for cell, runs in cells.items():
        # every model and config of a cell: the same split and seed; within a model, the same
        # initial weights (only the normalization changes)
        assert len({r.seed for r in runs}) == 1 and len(runs) == 4
        assert len({tuple(preds[r.id]["test_index"]) for r in runs}) == 1
        for m in ("cnn", "linear"):
            assert len({r.init_digest for r in runs if r.model == m}) == 1
        assert len({r.init_digest for r in runs}) == 2

    doc = comparison_json(rec, preds, elapsed_s=1.0)
    assert [b["model"] for b in doc["models"]] == ["cnn", "linear"]
    assert "configs" not in doc and doc["config_names"] == ["none", "per_pixel"]
    for (m, sub), block in zip(model_records(rec), doc["models"]):
        one = comparison_json(sub, preds, elapsed_s=1.0)  # the one-model document of its runs
        assert block == {"model": m, **{k: one[k] for k in
                                        ("answer", "configs", "pairs", "evaluation")}}
        assert all(run["run_id"] in {r.id for r in sub.runs}
                   for c in block["configs"] for run in c["runs"])
        assert block["answer"]["text"], block
    assert doc["agreement"] == agreement(doc["models"], ["none", "per_pixel"])
    assert doc["answer"]["text"] == answer_lines(doc["models"], doc["agreement"])
    assert doc["answer"]["text"][0].startswith("cnn: ")
    assert "adjusted for all its pairs within that model" in doc["answer"]["text"][-1]

    # JSON round trip, and the same document from a fresh store
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    again = RunStore()
    assert comparison_json(again.load_comparison(comp.id), again.predictions(comp.id),
                           elapsed_s=1.0) == doc

    # the HTML report: the joint answer, then each model's tables and figures
    sec = comparison_section(rec, preds)
    assert sec.html.count("<h3>Model ") == 2 and len(sec.figures) == 6
    assert all(line.replace("'", "&#x27;") in sec.html for line in doc["answer"]["text"])


class PerModel:
    """An executor that trains nothing: the accuracy of each (model, config) is chosen, the
    same examples right for every config of a cell (so differences are clean)."""

    def __init__(self, y, accuracy: dict):
        self.y, self.accuracy, self.pending = y, accuracy, []
        self.jobs: list[dict] = []

    def submit(self, job):
        self.pending.append(job)
        self.jobs.append(job)

    def events(self, timeout=None):
        if not self.pending:
            time.sleep(0.01)
            return []
        job = self.pending.pop(0)
        test = design_folds(design_of(job["design"]), self.y,
                            repetition=job["repetition"])[job["fold"]].test
        label = self.y[test]
        rng = np.random.default_rng([job["repetition"], job["fold"]])
        right = rng.random(test.size) < self.accuracy[job["model"]][job["config"]]
        pred = np.where(right, label, (label + 1) % 3)
        return [{"kind": "finished", "run_id": job["run_id"], "status": "done",
                 "test_acc": float(right.mean()), "message": "", "elapsed_s": 0.0,
                 "n_params": 1, "init_digest": "x", "test_index": test.tolist(),
                 "pred": pred.tolist(), "label": label.tolist()}]

    def cancel(self):
        pass

    def shutdown(self):
        pass


def test_decide_mode_goes_on_until_every_model_is_decided(home, tmp_path):
    path = write_tiny_npz(tmp_path / "big.npz", n=600)
    y = load_dataset(str(path)).y
    # cnn: per_pixel far behind (decided at the first look); m2: a close call (undecided)
    ex = PerModel(y, {"cnn": {"none": 0.95, "per_pixel": 0.45},
                      "linear": {"none": 0.60, "per_pixel": 0.59}})
    comp = Comparison(str(path), "none,per_pixel", model=["cnn", "linear"], train=QUICK,
                      max_repetitions=3, executor=ex).start()
    assert comp.wait(60)
    rec = comp.record()
    reps = {m: {r.repetition for r in rec.runs if r.model == m} for m in ("cnn", "linear")}
    assert reps == {"cnn": {0}, "linear": {0, 1, 2}}
    ev = rec.hyper["evaluation"]
    assert ev["stopped_by_model"] == {"cnn": "decided", "linear": "max_repetitions"}
    assert ev["stopped_because"] == "max_repetitions"  # never "decided" for an undecided one
    doc = comparison_json(rec, RunStore().predictions(comp.id))
    ev_of = {b["model"]: b["evaluation"] for b in doc["models"]}
    assert ev_of["cnn"]["repetitions"] == 1 and ev_of["cnn"]["stopped_because"] == "decided"
    assert ev_of["linear"]["repetitions"] == 3
    assert doc["agreement"]["question"]["verdicts"]["cnn"] == "worse"
    assert doc["agreement"]["best"]["names"]["cnn"] == "none"
    snap = comp.snapshot()
    assert set(snap.decisions) == {"cnn", "linear"} and {r.model for r in snap.runs} == {
        "cnn", "linear"}


def test_a_model_listed_twice_or_unknown_is_one_sentence_and_nothing_is_stored(home, data):
    for model, match in ((["cnn", "cnn"], "list a model twice"),
                         (["cnn", "nope"], "model 'nope' is unknown"),
                         (["cnn", "user_models:not_a_module"], "not a torch.nn.Module")):
        with pytest.raises(NormScopeError, match=match):
            Comparison(data, "none,per_pixel", model=model, train=QUICK,
                       executor=InlineExecutor()).start()
    assert RunStore().list_comparisons() == []


def test_one_model_keeps_the_json_keys_of_before(home, data):
    comp = Comparison(data, "none,per_pixel", model="linear", train=TrainConfig(epochs=1),
                      folds=2, max_repetitions=1, executor=InlineExecutor()).start()
    assert comp.wait(120)
    rec = comp.record()
    assert "models" not in rec.hyper and rec.model == "linear"
    assert "stopped_by_model" not in rec.hyper["evaluation"]
    doc = comparison_json(rec, RunStore().predictions(comp.id))
    assert {"configs", "pairs", "answer", "paired", "verdicts", "summary"} <= set(doc)
    assert "models" not in doc and "agreement" not in doc
    assert comp.snapshot().decisions == {}


def _compare(cli, home, data, *extra):
    env = {"NORMSCOPE_HOME": str(home), "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    return cli("compare", str(data), "--configs", "none,per_pixel", "--folds", "2",
               "--max-repetitions", "1", "--epochs", "1", "--batch-size", "16", "--workers",
               "1", *extra, env=env, **({} if cli is run_main else {"timeout": 300}))


def test_the_cli_compares_two_models_and_writes_per_model_json(cli, home, tmp_path, data):
    out = tmp_path / "out.json"
    r = _compare(cli, home, data, "--models", "linear,user_models:tiny", "--json", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [b["model"] for b in doc["models"]] == ["linear", "user_models:tiny"]
    lines = r.stdout.splitlines()
    assert lines[: len(doc["answer"]["text"])] == doc["answer"]["text"]
    assert "model linear: 2-fold CV" in r.stdout and "model user_models:tiny: 2-fold CV" in r.stdout
    assert "models linear,user_models:tiny" in r.stdout


@pytest.mark.parametrize("extra, match", [
    (("--models", "cnn"), "fewer than two models"),
    (("--models", "cnn,cnn"), "lists a model twice"),
    (("--models", "cnn,os:system"), None),  # an import path that fails: one sentence
    (("--models", "cnn,nope"), "is neither one of"),
    (("--model", "cnn", "--models", "cnn,linear"), "not both"),
])
def test_bad_model_lists_are_one_error_line(cli, cli_main, home, tmp_path, data, extra, match):
    # The import path that fails on the real command line (exit status, no traceback); the
    # other lists through the CLI's main in this process (the same checks of its output).
    real = extra == ("--models", "cnn,os:system")
    r = _compare(cli if real else cli_main, home, data, *extra)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(("error: ", "usage: ")) or \
        "error:" in r.stderr
    if match:
        assert match in r.stderr
    assert json.loads(cli_main("runs", "--json", env={"NORMSCOPE_HOME": str(home)}).stdout) == []


class SlowPerModel(PerModel):
    """:class:`PerModel` whose jobs take ``seconds`` each, so that a time budget bites."""

    def __init__(self, y, accuracy: dict, seconds: float):
        super().__init__(y, accuracy)
        self.seconds = seconds

    def events(self, timeout=None):
        if self.pending:
            time.sleep(self.seconds)
        return super().events(timeout)


def test_a_time_budget_stops_every_model_and_says_so_per_model(home, tmp_path):
    path = write_tiny_npz(tmp_path / "big.npz", n=600)
    y = load_dataset(str(path)).y
    # A repetition takes about 2 x 2 x 5 x 0.08 s = 1.6 s, far over the 0.3 s budget: no second
    # repetition may start for either model.  cnn is decided at the first look anyway; the close
    # call (linear) must end "budget", and the comparison as a whole never says "decided".
    ex = SlowPerModel(y, {"cnn": {"none": 0.95, "per_pixel": 0.45},
                          "linear": {"none": 0.60, "per_pixel": 0.59}}, seconds=0.08)
    comp = Comparison(str(path), "none,per_pixel", model=["cnn", "linear"], train=QUICK,
                      max_repetitions=3, budget_s=0.3, executor=ex).start()
    assert comp.wait(60)
    rec = comp.record()
    assert {r.repetition for r in rec.runs} == {0}  # the budget refused repetition 1 for both
    ev = rec.hyper["evaluation"]
    assert ev["stopped_by_model"] == {"cnn": "decided", "linear": "budget"}
    assert ev["stopped_because"] == "budget"
    doc = comparison_json(rec, RunStore().predictions(comp.id))
    ev_of = {b["model"]: b["evaluation"] for b in doc["models"]}
    assert ev_of["linear"]["stopped_because"] == "budget" and ev_of["linear"]["repetitions"] == 1
    assert doc["agreement"]["question"]["verdicts"] == {"cnn": "worse", "linear": "unclear"}


def test_cancel_ends_the_runs_of_every_model_and_keeps_the_record_whole(home, data):
    comp = Comparison(data, "none,per_pixel", model="cnn,linear", folds=3, max_repetitions=2,
                      workers=2, train=TrainConfig(epochs=100_000, batch_size=16, patience=0)
                      ).start()
    assert wait_for(lambda: any(r.epoch >= 1 for r in comp.snapshot().runs), 120)
    comp.cancel()
    # 100,000 epochs never end by themselves: finishing proves both models' runs were stopped.
    assert comp.wait(60)
    rec = comp.record()
    assert rec.status == "cancelled"
    assert {r.status for r in rec.runs} == {"cancelled"}
    assert {r.model for r in rec.runs} == {"cnn", "linear"}
    assert rec.hyper["evaluation"]["stopped_by_model"] == {"cnn": "cancelled",
                                                           "linear": "cancelled"}
    assert RunStore().mark_interrupted() == 0
    doc = comparison_json(rec, RunStore().predictions(comp.id))  # a cancelled record still reads
    assert [b["model"] for b in doc["models"]] == ["cnn", "linear"]
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
