"""Whether several models agree: the words follow from each model's verdicts alone ("agree"
only when every model decided the same way; an undecided model is named, never counted)."""

from __future__ import annotations

import pytest

from diagnostics.verdicts.models import (agreement, answer_lines, joint_stop, multiplicity,
                                         pair_verdict, question_pair)
from models.catalog import model_list

CONFIGS = ["none", "per_pixel", "db+per_row"]


def block(model, q_verdict, best, *, flipped=False):
    pair = ({"a": "per_pixel", "b": "none", "verdict": {"worse": "better", "better": "worse"}
             .get(q_verdict, q_verdict)} if flipped else
            {"a": "none", "b": "per_pixel", "verdict": q_verdict})
    return {"model": model, "pairs": [pair], "answer": {"best": best, "text": [f"{model} says"]}}


def test_both_decided_the_same_way_agree():
    a = agreement([block("cnn", "worse", "none"), block("cnn_bn0", "worse", "none")], CONFIGS)
    assert a["question"]["agree"] is True and a["best"]["agree"] is True
    assert a["text"][0] == ("The models agree on per-pixel z-scoring against no normalization: "
                            "under both models per-pixel z-scoring is worse than no "
                            "normalization.")
    assert a["text"][1] == "The models agree on what is best: no normalization under both models."


def test_one_undecided_model_is_named_and_nothing_is_called_agreement():
    a = agreement([block("cnn", "worse", "none"), block("cnn_bn0", "unclear", None)], CONFIGS)
    assert a["question"]["agree"] is None and a["best"]["agree"] is None
    assert "not shown" in a["text"][0] and "still undecided under cnn_bn0" in a["text"][0]
    assert "worse than no normalization under cnn" in a["text"][0]
    assert "no best is named yet under cnn_bn0" in a["text"][1] and "cnn names" in a["text"][1]
    assert not any(" agree on " in t and "not shown" not in t for t in a["text"][:2])


def test_different_decided_verdicts_are_called_different():
    a = agreement([block("cnn", "worse", "none"), block("cnn_bn0", "equivalent", "db+per_row")],
                  CONFIGS)
    assert a["question"]["agree"] is False and a["best"]["agree"] is False
    assert a["text"][0].startswith("The models reach different verdicts")
    assert "equivalent to no normalization under cnn_bn0" in a["text"][0]
    assert "db+per_row under cnn_bn0" in a["text"][1]


def test_a_pair_stored_the_other_way_round_is_read_for_per_pixel_against_none():
    assert pair_verdict([{"a": "per_pixel", "b": "none", "verdict": "better"}],
                        "none", "per_pixel") == "worse"
    a = agreement([block("cnn", "worse", "none", flipped=True), block("m2", "worse", "none")],
                  CONFIGS)
    assert a["question"]["verdicts"] == {"cnn": "worse", "m2": "worse"}


def test_three_models_and_the_multiplicity_sentence():
    blocks = [block(m, "worse", "none") for m in ("a", "b", "c")]
    a = agreement(blocks, CONFIGS)
    assert "all 3 models" in a["text"][0]
    assert a["text"][-1] == multiplicity(3) and "up to 15%" in a["text"][-1]
    assert answer_lines(blocks, a)[:3] == ["a: a says", "b: b says", "c: c says"]


def test_question_pair_and_a_single_config():
    assert question_pair(["db", "per_pixel", "none"]) == ("none", "per_pixel")
    assert question_pair(["db", "global"]) == ("db", "global")
    a = agreement([block("x", "worse", "none"), block("y", "worse", "none")], ["none"])
    assert "question" not in a and len(a["text"]) == 2


@pytest.mark.parametrize("reasons, want", [
    (["decided", "decided"], "decided"), (["decided", None], None),
    (["decided", "max_repetitions"], "max_repetitions"), (["budget", "decided"], "budget")])
def test_joint_stop_never_says_decided_for_an_undecided_model(reasons, want):
    assert joint_stop(reasons) == want


def test_model_list():
    assert model_list("cnn") == ["cnn"]
    assert model_list(" cnn , cnn_bn0,") == ["cnn", "cnn_bn0"]
    assert model_list(["cnn", "user_models:tiny"]) == ["cnn", "user_models:tiny"]


def test_a_link_carries_the_extra_models_as_repeated_parameters():
    from urllib.parse import parse_qs, urlsplit

    from webapp.share import View, view_url

    url = view_url("http://h:8501/", View(tab="Compare", settings=(
        ("cmp_model", "linear"), ("cmp_more", ("cnn_bn0", "user_models:tiny")))))
    q = parse_qs(urlsplit(url).query)
    assert q["cmp_more"] == ["cnn_bn0", "user_models:tiny"] and q["cmp_model"] == ["linear"]
