"""AppTest: the Compare tab's training settings reach the run store and the share link, the
model picker offers only what the operator listed, and captions describe the run itself."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import APP, home, wait_done as _wait_done  # noqa: F401 (home: a fixture)
from models.store import RunStore

pytestmark = pytest.mark.pool


def test_settings_reach_the_store_the_summary_and_the_link(home):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    at.selectbox(key="cmp_model").set_value("linear")
    at.number_input(key="cmp_epochs").set_value(2)
    at.number_input(key="cmp_seeds").set_value(1)
    at.number_input(key="cmp_reps").set_value(1)  # one repetition of CV: plumbing, not power
    at.selectbox(key="cmp_opt").set_value("sgd")
    at.number_input(key="cmp_lr").set_value(0.01)
    at.number_input(key="cmp_bs").set_value(64)
    at.number_input(key="cmp_patience").set_value(0)
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    cid = at.multiselect(key="runs").value[0]
    assert at.button(key="start").disabled  # no second start while this one runs
    _wait_done(cid)
    rec = RunStore().load_comparison(cid)
    assert rec.model == "linear"
    assert {k: rec.hyper[k] for k in ("optimizer", "lr", "batch_size", "patience", "epochs")} == {
        "optimizer": "sgd", "lr": 0.01, "batch_size": 64, "patience": 0, "epochs": 2}
    at.run()
    assert not at.button(key="start").disabled
    assert any("sgd lr 0.01" in str(m.value) and "batch 64" in str(m.value) for m in at.markdown)
    # The share box's link carries the settings that differ from the defaults.
    link = [str(c.value) for c in at.code]
    assert link and "cmp_opt=sgd" in link[0] and "cmp_bs=64" in link[0] and "cmp_lr=0.01" in link[0]


def test_the_model_picker_offers_only_built_ins_and_the_operators_list(home, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    built_in = list(at.selectbox(key="cmp_model").options)
    assert built_in == ["cnn", "cnn_bn", "cnn_bn0", "resnet", "mlp", "linear"]
    # A link cannot name code to run: an unlisted import path falls back to the default.
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare", "cmp_model": "os:system"})
    at.run()
    assert at.selectbox(key="cmp_model").value == "cnn"
    monkeypatch.setenv("NORMSCOPE_MODELS", "user_models:tiny")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    assert list(at.selectbox(key="cmp_model").options) == built_in + ["user_models:tiny"]


def test_a_stored_comparison_is_captioned_with_its_own_mask(home):
    from models.comparison import Comparison
    from models.train import TrainConfig

    comp = Comparison("digits", "none,per_pixel", seeds=1, model="linear", mask_snr=0.2,
                      train=TrainConfig(epochs=1, batch_size=64), workers=1,
                      evaluation="holdout").start()
    assert comp.wait(240)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "digits", "tab": "Compare", "runs": comp.id,
                            "mask_snr": "0.9"})
    at.run()
    assert not at.exception
    import json

    subs = [json.loads(el.proto.spec)["layout"]["title"]["subtitle"]["text"]
            for el in at.get("plotly_chart")]
    assert subs and all("row SNR < 0.2" in s and "< 0.9" not in s for s in subs), subs
    assert all("train 1,259 / val 269 / test 269" in s for s in subs)
