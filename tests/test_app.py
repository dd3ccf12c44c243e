"""AppTest: the dashboard runs headless on the built-in data and reacts to its widgets."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _decode(arr):
    """plotly 7 ships arrays as base64 typed arrays in the JSON spec."""
    if isinstance(arr, dict) and "bdata" in arr:
        shape = [int(s) for s in str(arr.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(arr["bdata"]), arr["dtype"]).reshape(shape)
    return np.asarray(arr, dtype=float)


def _figures(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _heatmaps(at):
    return [f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "heatmap"]


@pytest.fixture()
def app():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_demo_opens_with_four_heatmaps(app):
    heat = _heatmaps(app)
    assert len(heat) == 4
    titles = [h["layout"]["title"]["text"] for h in heat]
    for word in ("mean", "std", "SNR", "amplification"):
        assert any(word in t for t in titles), titles
    z = _decode(heat[0]["data"][0]["z"])
    assert z.shape == (60, 130)
    codes = " ".join(str(e.value) for e in app.warning)
    assert "amplified_noise" in codes and "skewed_values" in codes


def test_mask_slider_changes_masked_row_count(app):
    def masked_shapes(at):
        return sum(len(h["layout"].get("shapes", [])) for h in _heatmaps(at))

    before = app.markdown[0].value
    assert "12 of 60 bands masked" in before
    app.slider(key="mask_snr").set_value(0.0).run()
    assert not app.exception
    assert "No bands masked" in app.markdown[0].value
    assert masked_shapes(app) == 0
    app.slider(key="mask_snr").set_value(0.5).run()
    assert not app.exception
    text = app.markdown[0].value
    n = int(text.split(" of ")[0].strip("*"))
    assert 12 < n < 60
    assert masked_shapes(app) > 0


def test_digits_switch_and_bad_server_path_keeps_dataset(app, tmp_path, monkeypatch):
    app.selectbox(key="source").set_value("digits").run()
    assert not app.exception
    assert _decode(_heatmaps(app)[0]["data"][0]["z"]).shape == (8, 8)
    app.selectbox(key="source").set_value("file on the server").run()
    app.text_input(key="server_path").input("../../etc/passwd").run()
    assert not app.exception
    assert any("outside the data root" in str(e.value) for e in app.error)
    # The previous dataset (digits) is still shown.
    assert _decode(_heatmaps(app)[0]["data"][0]["z"]).shape == (8, 8)
