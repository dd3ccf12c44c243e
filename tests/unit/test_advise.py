"""The advisor's rules (candidates from the statistics), its recommendation, its budget check
and its stored advice."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from band_helpers import speechlike
from diagnostics.advise import (Recommendation, advice_json, check_budget_fits, propose,
                                recommend, recommendation_lines, repetition_seconds,
                                run_seconds)
from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import all_config_names
from diagnostics.stats.summary import dataset_stats
from diagnostics.verdicts.decide import decide
from diagnostics.verdicts.design import Design

#: Every name the newer grammar adds, as the advisor refers to them (strings only).
NEWER = {"pcen+per_row", "instance_row", "shrink"}


def _stats(X, y):
    names = tuple(f"c{i}" for i in range(int(y.max()) + 1))
    return dataset_stats(Dataset(X=X.astype(np.float32), y=y, class_names=names, name="t",
                                 id="t"))


def _one_sentence(text: str) -> bool:
    return text.endswith(".") and ". " not in text and "\n" not in text


@pytest.fixture
def power(spectro, labels):
    return _stats(spectro, labels)


@pytest.fixture
def signed(rng):
    # MFCC-like: signed, one scale per coefficient, a class-dependent offset in two rows.
    y = np.arange(300) % 3
    X = rng.standard_normal((300, 12, 16)) * np.geomspace(40, 0.05, 12)[:, None] - 3
    X[:, 3] += y[:, None] * 2.0
    return _stats(X, y)


def test_power_data_gets_compression_and_the_references(power):
    p = propose(power, valid=set(all_config_names()) | NEWER)
    assert p.kind.kind == "power"
    assert p.configs[:2] == ["none", "per_pixel"]
    assert "db+per_row" in p.configs and "pcen+per_row" in p.configs
    assert all(_one_sentence(c.reason) for c in p.candidates), [c.reason for c in p.candidates]
    assert "skewness" in p.reason("db+per_row")
    assert "question's reference" in p.reason("per_pixel")


def test_signed_data_gets_no_compression(signed):
    p = propose(signed, valid=set(all_config_names()) | NEWER)
    assert p.kind.kind == "log"
    assert not any("+" in c for c in p.configs), p.configs
    assert {"none", "per_pixel", "per_row", "instance_row"} <= set(p.configs)
    assert "no compression" in p.reason("per_row")
    # Amplified pixels (stds falling 800x over the rows) bring the shrunk per-pixel std in.
    assert "shrink" in p.configs and "inflate" in p.reason("shrink")
    # With the grammar the data allows (no compression of signed values), the same.
    from diagnostics.normalize import valid_config_names

    assert not any("+" in c for c in propose(signed, valid=valid_config_names(signed)).configs)


def test_newer_names_are_left_out_where_the_grammar_lacks_them(power, signed):
    old = set(all_config_names()) - NEWER
    p = propose(power, valid=old)
    assert "pcen+per_row" not in p.configs
    assert [c.config for c in p.left_out] == ["pcen+per_row"]
    q = propose(signed, valid=old)
    assert "instance_row" not in q.configs and "shrink" not in q.configs
    assert {"instance_row", "shrink"} <= {c.config for c in q.left_out}


def test_masking_is_proposed_for_noise_rows_without_class_information():
    from diagnostics.data.builtin import demo_dataset

    # The demo's top 12 bands carry only faint noise and clicks, no class information.
    stats = dataset_stats(demo_dataset())
    p = propose(stats, mask_snr=0.2)
    assert "db+per_row@mask" in p.configs
    assert "little class information" in p.reason("db+per_row@mask")
    assert "bands 48-59" in p.reason("db+per_row@mask")
    assert "@mask" not in " ".join(propose(stats, mask_snr=0.0).configs)


def test_masking_is_not_proposed_where_the_masked_rows_carry_the_class(rng):
    stats = dataset_stats(speechlike(rng))
    p = propose(stats, mask_snr=0.5)
    assert not any("@mask" in c for c in p.configs), p.configs
    left = {c.config: c.reason for c in p.left_out}
    assert "db+per_row@mask" in left and "carry class information" in left["db+per_row@mask"]


def test_constant_pixels_bring_in_a_per_band_scaler(rng):
    y = np.arange(200) % 2
    X = rng.normal(0, 1, (200, 6, 8))
    X[:, 2, :3] = 5.0  # constant pixels
    X[y == 1, 4] += 1.0
    p = propose(_stats(X, y), mask_snr=0.0)
    assert "per_row" in p.configs
    assert "never change" in p.reason("per_row") and _one_sentence(p.reason("per_row"))


def _scores(acc: dict[str, float], reps: int, folds: int = 5, n: int = 200, seed: int = 0):
    """Per-example outcomes with the given accuracies; paired (shared easy examples)."""
    rng = np.random.default_rng(seed)
    out = {k: {} for k in acc}
    for r in range(reps):
        for f in range(folds):
            u = rng.random(n)
            for k, a in acc.items():
                out[k][(r, f)] = u < a + rng.normal(0, 0.01)
    return out


def test_recommend_names_the_best_with_its_adjusted_gains():
    design = Design("cv", 5, 3, 0, 0.15)
    d = decide(_scores({"none": 0.80, "per_pixel": 0.70, "db+per_row": 0.90}, reps=2), design,
               max_repetitions=3)
    doc = d.as_json()
    rec = recommend(doc)
    assert rec.config == "db+per_row" == d.best and rec.settled
    pair = next(p for p in doc["pairs"] if {p["a"], p["b"]} == {"none", "db+per_row"})
    assert rec.gain_vs_none.diff == pytest.approx(pair["diff"] if pair["b"] == "db+per_row"
                                                  else -pair["diff"])
    assert rec.gain_vs_none.diff > 0.05 and rec.gain_vs_per_pixel.diff > 0.15
    lo, hi = rec.gain_vs_per_pixel.ci95
    assert lo < rec.gain_vs_per_pixel.diff < hi and lo > 0
    assert rec.gain_vs_none.verdict == "better" and rec.gain_vs_none.p_adjusted <= 0.05
    assert rec.undecided == ()
    assert Recommendation.from_json(rec.as_json()) == rec
    assert "Recommended: db+per_row" in recommendation_lines(rec)[0]


def test_recommend_says_what_remains_undecided_and_when_none_is_best():
    design = Design("cv", 5, 3, 0, 0.15)
    d = decide(_scores({"none": 0.85, "per_pixel": 0.60, "per_row": 0.85}, reps=1, seed=3),
               design, max_repetitions=3)
    rec = recommend(d.as_json())
    assert not rec.settled
    assert set(rec.undecided) and "per_pixel" not in rec.undecided
    assert "not yet shown ahead" in rec.reason
    still = [line for line in recommendation_lines(rec) if line.startswith("Still undecided")]
    assert len(still) == 1
    # Each undecided pair is given with its difference and interval, never as "no difference".
    assert [g.against for g in rec.undecided_gains] == list(rec.undecided)
    pairs = d.as_json()["pairs"]
    for g in rec.undecided_gains:
        pair = next(p for p in pairs if {p["a"], p["b"]} == {g.against, rec.config})
        sign = 1 if pair["b"] == rec.config else -1
        assert g.diff == pytest.approx(sign * pair["diff"]) and g.verdict == "unclear"
        lo, hi = g.ci95
        assert lo < g.diff < hi
        told = f"{100 * g.diff:+.1f} points over {g.against} (95% CI {100 * lo:+.1f} to " \
               f"{100 * hi:+.1f}"
        # On the "Still undecided" line, or (none, per_pixel) on their own lines above it.
        assert told in (still[0] if g.against not in ("none", "per_pixel")
                        else " ".join(recommendation_lines(rec)))
    assert "no difference" not in " ".join(recommendation_lines(rec)).lower()
    assert Recommendation.from_json(rec.as_json()) == rec
    if rec.config == "none":
        assert rec.gain_vs_none.verdict == "same config" and rec.gain_vs_none.diff == 0.0
        assert rec.gain_vs_per_pixel.diff > 0


def test_recommend_without_a_verdict_is_one_sentence():
    with pytest.raises(NormScopeError, match="nothing to recommend"):
        recommend({"configs": [], "pairs": [], "answer": {"best": None, "text": []}})


def test_advice_json_has_the_documented_shape(power):
    p = propose(power)
    design = Design("cv", 5, 3, 0, 0.15)
    d = decide(_scores({c: 0.8 for c in p.configs}, reps=2), design, max_repetitions=3)
    doc = d.as_json()
    out = advice_json(recommend(doc), p, "abc123", doc["answer"])
    assert {"recommendation", "candidates", "comparison_id", "answer"} <= set(out)
    assert {"config", "reason", "gain_vs_none", "gain_vs_per_pixel"} <= set(out["recommendation"])
    for g in ("gain_vs_none", "gain_vs_per_pixel"):
        assert {"diff", "ci95"} <= set(out["recommendation"][g])
    assert [c["config"] for c in out["candidates"]] == p.configs
    assert all(set(c) == {"config", "reason"} for c in out["candidates"])
    assert out["comparison_id"] == "abc123" and out["answer"]["text"]
    json.dumps(out, allow_nan=False)


def test_a_budget_too_small_for_one_repetition_is_one_sentence():
    run_s = run_seconds(800, (60, 130), 15)
    need = repetition_seconds(25, run_s, 2)
    with pytest.raises(NormScopeError, match="too small for one repetition") as exc:
        check_budget_fits(need / 2, n_configs=5, folds=5, epochs=15, run_s=run_s, workers=2,
                          measured=False)
    assert "\n" not in str(exc.value) and "5 candidates x 5 folds = 25 runs" in str(exc.value)
    check_budget_fits(need + 1, n_configs=5, folds=5, epochs=15, run_s=run_s, workers=2,
                      measured=False)
    assert run_seconds(800, (60, 130), 15, measured=[3.0, 5.0, 100.0]) == 5.0


def test_planned_repetitions_are_what_the_budget_fits():
    from diagnostics.advise import planned_repetitions

    first = repetition_seconds(20, 8.0, 2)  # the pool's start + 10 rounds of 8 s
    assert planned_repetitions(first, n_runs=20, run_s=8.0, workers=2, max_repetitions=3) == 1
    assert planned_repetitions(first + 80, n_runs=20, run_s=8.0, workers=2,
                               max_repetitions=3) == 2
    assert planned_repetitions(1e6, n_runs=20, run_s=8.0, workers=2, max_repetitions=3) == 3
    assert planned_repetitions(1.0, n_runs=20, run_s=8.0, workers=2, max_repetitions=3) == 1


def _comparison(store, cid="c0ffee000001", dataset="d1"):
    store.create_comparison(
        {"id": cid, "dataset_id": dataset, "dataset_name": "n", "data_spec": dataset,
         "labels_spec": None, "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0],
         "hyper": {}}, [{"id": f"{cid}-000", "position": 0, "config": "none", "seed": 0}])


def test_stored_advice_round_trips_and_old_stores_get_the_table(tmp_path):
    from models.store import RunStore

    path = tmp_path / "runs.db"
    store = RunStore(path)
    _comparison(store)
    doc = {"recommendation": None, "candidates": [{"config": "none", "reason": "r."}],
           "comparison_id": "c0ffee000001", "answer": {}}
    store.save_advice("c0ffee000001", "d1", doc)
    assert store.load_advice("c0ffee000001") == doc
    done = {**doc, "recommendation": {"config": "none", "gain_vs_none": {"diff": 0.0}}}
    store.save_advice("c0ffee000001", "d1", done)  # replaced, not duplicated
    assert RunStore(path).load_advice("c0ffee000001") == done
    assert [a[0] for a in store.list_advice("d1")] == ["c0ffee000001"]
    assert store.load_advice("nope") is None and store.list_advice("d2") == []
    # A store written before the advisor existed (no advice table) gets it on open.
    con = sqlite3.connect(path)
    con.execute("DROP TABLE advice")
    con.commit()
    con.close()
    again = RunStore(path)
    assert again.load_advice("c0ffee000001") is None
    again.save_advice("c0ffee000001", "d1", doc)
    assert again.load_advice("c0ffee000001") == doc
    assert again.integrity_check() == "ok"
