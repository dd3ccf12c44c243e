"""The evaluation design as a comparison runs it: folds read back from the stored predictions,
configs paired per (repetition, fold), predictions round-tripping through the store and the
CLI export, decide mode's stops on the real comparison, the JSON keys, and an answer that never
contradicts a pair verdict."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from diagnostics.cli.main import main
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer
from diagnostics.results import comparison_json, verdict_of
from diagnostics.verdicts.design import design_folds
from models.comparison import Comparison
from models.executors import NOT_STARTED, InlineExecutor
from models.jobs import Job, design_of, prepare_data
from models.store import RunStore
from models.train import TrainConfig

from compare_helpers import tiny_arrays, write_tiny_npz

pytestmark = pytest.mark.pool  # trains (in this process): one xdist worker
QUICK = TrainConfig(epochs=2, batch_size=16)


@pytest.fixture
def data(tmp_path):
    return str(write_tiny_npz(tmp_path / "tiny.npz"))


class Recording:
    """The in-process executor, recording the job dicts and events that cross the interface."""

    def __init__(self):
        self.inner = InlineExecutor()
        self.jobs: list[dict] = []
        self.seen: list[dict] = []

    def submit(self, job):
        self.jobs.append(job)
        self.inner.submit(job)

    def events(self, timeout=None):
        out = self.inner.events(timeout)
        self.seen += out
        return out

    def cancel(self):
        self.inner.cancel()

    def shutdown(self):
        self.inner.shutdown()


class Scripted:
    """An executor that trains nothing: each job "predicts" its fold's test examples with a
    chosen accuracy per config (deterministic per cell), after ``delay`` seconds."""

    def __init__(self, y: np.ndarray, accuracy: dict, *, delay: float = 0.0):
        self.y, self.accuracy, self.delay = y, accuracy, delay
        self.pending: list[dict] = []
        self.cancelled = False

    def submit(self, job):
        self.pending.append(job)

    def events(self, timeout=None):
        if not self.pending:
            return []
        job = self.pending.pop(0)
        rid = job["run_id"]
        if self.cancelled:
            return [{"kind": "finished", "run_id": rid, "status": "cancelled", "test_acc": None,
                     "message": NOT_STARTED, "elapsed_s": 0.0}]
        time.sleep(self.delay)
        test = design_folds(design_of(job["design"]), self.y,
                            repetition=job["repetition"])[job["fold"]].test
        label = self.y[test]
        rng = np.random.default_rng([job["repetition"], job["fold"]])  # shared by configs
        right = rng.random(test.size) < self.accuracy[job["config"]]
        pred = np.where(right, label, (label + 1) % 3)
        return [{"kind": "started", "run_id": rid, "versions": {}, "pid": 0},
                {"kind": "finished", "run_id": rid, "status": "done",
                 "test_acc": float(right.mean()), "message": "", "elapsed_s": self.delay,
                 "n_params": 1, "init_digest": "x", "test_index": test.tolist(),
                 "pred": pred.tolist(), "label": label.tolist()}]

    def cancel(self):
        self.cancelled = True

    def shutdown(self):
        pass


def test_folds_as_run_are_stratified_complete_paired_and_round_trip(home, data, tmp_path):
    ex = Recording()
    comp = Comparison(data, "none,per_pixel", train=QUICK, evaluation="cv", folds=3,
                      max_repetitions=2, decide=False, executor=ex).start()
    assert comp.wait(120)
    store = RunStore()
    rec, preds = comp.record(), store.predictions(comp.id)
    ds = load_dataset(data)
    assert rec.status == "done" and len(rec.runs) == 2 * 3 * 2 and set(preds) == {
        r.id for r in rec.runs}
    assert rec.seeds == [0, 1] and rec.hyper["evaluation"]["kind"] == "cv"

    # every example tested exactly once per (config, repetition); folds stratified, disjoint
    cells: dict = {}
    for r in rec.runs:
        cells.setdefault((r.repetition, r.fold), {})[r.config] = r
    for config in ("none", "per_pixel"):
        for rep in (0, 1):
            tests = [preds[cells[(rep, f)][config].id]["test_index"] for f in range(3)]
            joined = np.concatenate(tests)
            assert np.array_equal(np.sort(joined), np.arange(ds.n))  # complete and disjoint
            counts = np.array([np.bincount(ds.y[t], minlength=3) for t in tests])
            assert np.all(counts.max(0) - counts.min(0) <= 1)  # stratified
    rep0 = preds[cells[(0, 0)]["none"].id]["test_index"]
    assert not np.array_equal(rep0, preds[cells[(1, 0)]["none"].id]["test_index"])  # reshuffled

    # paired per cell: same split, same initial weights, same seed (batch order); not across
    digests = set()
    for (rep, fold), by_config in cells.items():
        a, b = by_config["none"], by_config["per_pixel"]
        assert np.array_equal(preds[a.id]["test_index"], preds[b.id]["test_index"])
        assert a.init_digest == b.init_digest and a.seed == b.seed == 1000 * rep + fold
        digests.add(a.init_digest)
    assert len(digests) == 6
    jobs = {(j["repetition"], j["fold"], j["config"]): j for j in ex.jobs}
    for (rep, fold, _), j in jobs.items():
        other = jobs[(rep, fold, "none")]
        assert (j["seed"], j["design"]) == (other["seed"], other["design"])

    # the normalizer of a job is fitted on its fold's training part only
    job = Job.from_dict(jobs[(1, 2, "per_pixel")])
    norm, _, _, split = prepare_data(job)
    own = Normalizer("per_pixel").fit(ds.X, indices=split.train)
    assert norm.n_samples_seen_ == split.train.size
    assert np.array_equal(norm.center_, own.center_) and not np.allclose(
        norm.center_, Normalizer("per_pixel").fit(ds.X).center_)
    assert np.intersect1d(split.train, split.test).size == 0

    # predictions: the events' lists == the store == the CLI export
    finished = {e["run_id"]: e for e in ex.seen if e["kind"] == "finished"}
    for rid, p in preds.items():
        for k in ("test_index", "pred", "label"):
            assert p[k].tolist() == finished[rid][k]
        assert np.array_equal(p["label"], ds.y[p["test_index"]])
        assert np.mean(p["pred"] == p["label"]) == pytest.approx(finished[rid]["test_acc"])
    out = tmp_path / "p.csv"
    assert main(["runs", "--predictions", str(out), "--comparison", comp.id]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["run_id", "config", "repetition", "fold", "test_index", "pred",
                             "label"]
    assert len(rows) == 2 * 2 * ds.n
    r0 = [r for r in rows if r["run_id"] == rec.runs[0].id]
    assert [int(r["pred"]) for r in r0] == preds[rec.runs[0].id]["pred"].tolist()
    assert main(["runs", "--predictions", str(tmp_path / "p.json"), "--comparison", comp.id]) == 0
    exported = {d["run_id"]: d for d in json.loads((tmp_path / "p.json").read_text())}
    assert exported[rec.runs[5].id]["test_index"] == preds[rec.runs[5].id]["test_index"].tolist()

    # the stored verdict is the live one; the JSON has the keys
    live, stored = comp.decision, verdict_of(rec, preds)
    assert live is not None and stored.as_json() == live.as_json() and stored.look == 2
    doc = json.loads(json.dumps(comparison_json(rec, preds), allow_nan=False))
    assert doc["evaluation"] == {"kind": "cv", "folds": 3, "repetitions": 2, "cells": 6,
                                 "stopped_because": live.stopped_because}
    for c in doc["configs"]:
        assert {"name", "accuracy", "ci95", "n_runs", "n_examples", "test_acc_mean",
                "runs"} <= set(c)
        assert c["n_runs"] == 6 and c["n_examples"] == 2 * ds.n
        assert all({"history", "repetition", "fold"} <= set(r) for r in c["runs"])
    assert [set(p) for p in doc["pairs"]] == [
        {"a", "b", "diff", "ci95", "p_value", "p_adjusted", "verdict"}]
    assert doc["answer"]["text"] == list(live.answer.text)


def _scripted(data, accuracy, **kw):
    ds = load_dataset(data)
    ex = Scripted(ds.y, accuracy, delay=kw.pop("delay", 0.0))
    comp = Comparison(data, list(accuracy), train=QUICK, evaluation="cv", folds=3,
                      executor=ex, **kw).start()
    assert comp.wait(60)
    rec = comp.record()
    return comp, rec, RunStore().predictions(comp.id)


def test_decide_mode_stops_once_decided(home, data):
    comp, rec, preds = _scripted(data, {"none": 0.95, "per_pixel": 0.3}, max_repetitions=4)
    # One repetition was enough.  The next one was queued before the workers ran dry; its
    # runs never started and leave no trace.
    assert len(rec.runs) == 2 * 3 and rec.seeds == [0]
    assert rec.hyper["evaluation"]["cells"] == 3 and len(comp.snapshot().runs) == 6
    assert rec.hyper["evaluation"]["stopped_because"] == "decided"
    d = verdict_of(rec, preds)
    assert d.pairs[0].verdict == "worse" and d.answer.best == "none"
    assert comp.snapshot().evaluation["stopped_because"] == "decided"


def test_decide_mode_looks_after_every_fold_and_drops_what_it_did_not_need(home, data):
    ds = load_dataset(data)
    ex = Scripted(ds.y, {"none": 0.97, "per_pixel": 0.2})
    comp = Comparison(data, "none,per_pixel", train=QUICK, evaluation="cv", folds=5,
                      executor=ex).start()
    assert comp.wait(60)
    rec, preds = comp.record(), RunStore().predictions(comp.id)
    # Decided at the first look, 3 of 5 folds: the other folds' runs never ran.
    assert rec.hyper["evaluation"]["cells"] == 3 and len(rec.runs) == 2 * 3
    assert {(r.repetition, r.fold) for r in rec.runs} == {(0, f) for f in range(3)}
    d = verdict_of(rec, preds)
    assert d.cells == 3 and d.as_json() == comp.decision.as_json()
    assert "3 folds of 5-fold CV" in d.answer.text[0]
    doc = comparison_json(rec, preds)
    assert doc["evaluation"]["cells"] == 3 and doc["evaluation"]["stopped_because"] == "decided"


def test_decide_mode_stops_at_the_maximum_and_at_the_budget(home, data):
    comp, rec, preds = _scripted(data, {"none": 0.8, "global": 0.8}, max_repetitions=3)
    assert len(rec.runs) == 2 * 3 * 3 and rec.seeds == [0, 1, 2]
    assert sorted({(r.repetition, r.position // 6) for r in rec.runs}) == [(0, 0), (1, 1), (2, 2)]
    assert rec.hyper["evaluation"]["stopped_because"] == "max_repetitions"
    assert any("repetition budget ran out" in t for t in verdict_of(rec, preds).answer.text)
    # 6 runs of 0.05 s: a repetition takes 0.3 s, and a second would overrun 0.5 s
    comp, rec, preds = _scripted(data, {"none": 0.8, "global": 0.8}, max_repetitions=5,
                                 budget_s=0.5, delay=0.05)
    assert len(rec.runs) == 2 * 3 and rec.hyper["evaluation"]["budget_s"] == 0.5
    assert rec.hyper["evaluation"]["stopped_because"] == "budget"
    doc = comparison_json(rec, preds)
    assert doc["evaluation"]["stopped_because"] == "budget"
    assert any("time budget ran out" in t for t in doc["answer"]["text"])


def test_the_answer_never_calls_a_better_or_worse_pair_equivalent(home, data):
    comp, rec, preds = _scripted(data, {"none": 0.9, "per_pixel": 0.9, "global": 0.35},
                                 max_repetitions=3)
    d = verdict_of(rec, preds)
    text = " ".join(d.answer.text)
    words = {frozenset((p.a, p.b)): p.verdict for p in d.pairs}
    assert words[frozenset(("none", "global"))] == "worse"
    for p in d.pairs:
        if p.verdict in ("better", "worse"):
            for clause in text.split("; "):
                if "global" in clause and p.involves("global"):
                    assert "equivalent" not in clause and "either will do" not in clause
    if "either will do" in text:
        assert any(p.verdict == "equivalent" for p in d.pairs)
    assert d.answer.text == tuple(comparison_json(rec, preds)["answer"]["text"])


@pytest.mark.parametrize("kw, match", [
    (dict(budget_s=0), "too small for even one repetition"),
    (dict(budget_s="soon"), "not a number of seconds"),
    (dict(margin=float("nan")), "margin=nan must be a non-negative number"),
    (dict(margin=-0.01), "margin=-0.01 must be a non-negative number"),
    (dict(folds=1), "folds=1 is too few for cross-validation"),
    (dict(evaluation="bootstrap"), "evaluation 'bootstrap' is unknown"),
])
def test_bad_evaluation_options_store_nothing(home, data, kw, match):
    with pytest.raises(NormScopeError, match=match):
        Comparison(data, "none,per_pixel", train=QUICK, executor=InlineExecutor(), **kw).start()
    assert RunStore().list_comparisons() == []


def test_a_class_too_small_for_the_folds_falls_back_or_is_named(home, tmp_path):
    X, y = tiny_arrays(0)
    y[:2] = 3  # a fourth class of 2 examples: 2-fold CV instead of 5, said in the answer
    y[2:][y[2:] == 3] = 0
    np.savez(tmp_path / "small.npz", X=X, y=y)
    ds = load_dataset(str(tmp_path / "small.npz"))
    ex = Scripted(ds.y, {"none": 0.9, "global": 0.9})
    comp = Comparison(str(tmp_path / "small.npz"), "none,global", train=QUICK, executor=ex,
                      max_repetitions=1).start()
    assert comp.wait(60)
    assert comp.plan.design.folds == 2 and comp.evaluation()["note"].startswith(
        "class '3' has only 2 examples, so 2-fold cross-validation is used instead of 5-fold")
    assert comp.decision.answer.text[-1].startswith("Class '3' has only 2 examples")
    y[1] = 0  # now a single example: no CV at all, and nothing stored
    np.savez(tmp_path / "single.npz", X=X, y=y)
    with pytest.raises(NormScopeError, match="class '3' has 1 example; cross-validation needs"):
        Comparison(str(tmp_path / "single.npz"), "none", train=QUICK,
                   executor=InlineExecutor()).start()
    assert [c.id for c in RunStore().list_comparisons()] == [comp.id]
