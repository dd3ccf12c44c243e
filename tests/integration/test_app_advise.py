"""AppTest of the Advise tab: candidates with reasons, a run, the recommendation, its link,
and a budget too small (one sentence, the previous advice kept)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compare_helpers import run_until, tiny_arrays

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")
pytestmark = pytest.mark.pool  # starts a training worker pool: one xdist worker


def _tiny_dataset() -> str:
    from diagnostics.data import store

    X, y = tiny_arrays(0)
    return store.register_arrays(X, y, ("a", "b", "c"), "tiny power", {"source": "test"})


def _texts(at) -> list[str]:
    return [str(e.value) for kind in ("success", "warning", "markdown", "caption", "error")
            for e in at.get(kind)]


def _run_until(at, done, timeout: float = 400.0):
    try:
        return run_until(at, done, timeout, what="the advice")
    except AssertionError as e:
        raise AssertionError(f"{e}: {_texts(at)}") from None


def _recommended(at) -> bool:
    return any(t.replace("\\", "").startswith(("Recommended: ", "Leading, not yet decided: "))
               for t in (str(e.value) for e in list(at.success) + list(at.warning)))


@pytest.mark.slow
def test_advise_flow_recommends_reopens_from_a_link_and_refuses_a_tiny_budget(home):
    ident = _tiny_dataset()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": ident, "tab": "Advise"})
    at.run()
    assert not at.exception, at.exception
    cands = next(t.value for t in at.table if "why it is in" in t.value.columns)
    configs = list(cands["candidate"])
    assert configs[:2] == ["none", "per_pixel"] and "db+per_row" in configs  # power data
    assert all(r.endswith(".") for r in cands["why it is in"])
    at.number_input(key="adv_epochs").set_value(2)
    at.selectbox(key="adv_model").set_value("linear")
    at.number_input(key="adv_budget").set_value(0.6)  # the estimate fits one repetition
    at.button(key="advise_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    cid = at.selectbox(key="advice").value
    assert cid
    _run_until(at, _recommended)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recommended" if "Recommended" in metrics else "Leading"] in configs
    assert "Gain over no normalization" in metrics and "Gain over per-pixel z-scoring" in metrics
    assert any(t.replace("\\", "").startswith("Against no normalization:") for t in _texts(at))
    from webapp import runs

    # The advice as JSON, and the export of the recommended config where this build has it.
    assert len(at.get("download_button")) == (2 if runs.export_available() else 1)
    from models.store import RunStore

    stored = RunStore().load_advice(cid)
    assert stored["recommendation"]["config"] in configs
    assert [c["config"] for c in stored["candidates"]] == configs

    # A link with the advice id reopens it from the run store in a new session.
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params.update({"dataset": ident, "tab": "Advise", "advice": cid})
    other.run()
    assert not other.exception, other.exception
    assert other.selectbox(key="advice").value == cid
    assert _recommended(other)
    assert {m.label: m.value for m in other.metric} == metrics

    # A budget too small for one repetition: one sentence, the advice shown stays.
    at.number_input(key="adv_budget").set_value(0.1)
    at.number_input(key="adv_epochs").set_value(200)
    at.button(key="advise_start").click().run()
    assert not at.exception, at.exception
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and "too small for one repetition" in errors[0], errors
    assert at.selectbox(key="advice").value == cid and _recommended(at)
    assert [a[0] for a in RunStore().list_advice(ident)] == [cid]


def test_a_link_to_unknown_advice_gives_a_notice(home):
    ident = _tiny_dataset()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": ident, "tab": "Advise", "advice": "0123456789ab"})
    at.run()
    assert not at.exception, at.exception
    assert any("advice='0123456789ab'" in t and "no stored advice" in t for t in _texts(at))
    assert at.selectbox(key="advice").value is None
