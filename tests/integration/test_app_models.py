"""AppTest: a comparison under two models from the Compare tab: only served models can be
chosen, and the stored comparison reopens with each model's block and the agreement."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, home, wait_done as _wait_done  # noqa: F401 (home: a fixture)
from models.store import RunStore

pytestmark = pytest.mark.pool


def test_the_models_multiselect_offers_only_served_models(home, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare", "cmp_more": "os:system"})
    at.run()
    assert not at.exception
    more = at.multiselect(key="cmp_more")
    assert list(more.options) == ["cnn", "cnn_bn", "cnn_bn0", "resnet", "mlp", "linear"]
    assert more.value == []  # a link cannot name code to run
    monkeypatch.setenv("NORMSCOPE_MODELS", "user_models:tiny")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    assert list(at.multiselect(key="cmp_more").options)[-1] == "user_models:tiny"


def test_a_two_model_comparison_reports_per_model_in_the_app(home):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    at.multiselect(key="configs").set_value(["none", "per_pixel"])
    at.selectbox(key="cmp_model").set_value("linear")
    at.multiselect(key="cmp_more").set_value(["mlp"])
    at.selectbox(key="cmp_eval").set_value("holdout")
    at.number_input(key="cmp_epochs").set_value(1)
    at.number_input(key="cmp_seeds").set_value(1)
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    cid = at.multiselect(key="runs").value[0]
    _wait_done(cid)
    rec = RunStore().load_comparison(cid)
    assert rec.model == "linear,mlp" and {r.model for r in rec.runs} == {"linear", "mlp"}
    assert len(rec.runs) == 4 and rec.status == "done"
    # A teammate's link to the stored comparison: each model's block, then the agreement.
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare", "runs": cid})
    at.run()
    assert not at.exception
    text = [str(m.value).replace("\\", "") for m in at.markdown]  # md() escapes ':' etc.
    assert "#### Model linear" in text and "#### Model mlp" in text
    assert any(t.startswith("linear: ") for t in text) and any(t.startswith("mlp: ") for t in
                                                               text)
    assert any("adjusted for all its pairs within that model" in t for t in text)
    assert any("agree" in t and t.startswith("**") for t in text)
    # one pairs table per model
    assert sum(1 for df in at.dataframe if "verdict" in df.value.columns) == 2
