"""Share links: parse and validate URL parameters; round trip view -> URL -> view."""

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from webapp import share
from diagnostics.plots.figures import COLORSCALES

DATASETS = {"demo", "digits", "a1b2c3d4e5f6"}
RUNS = {"cmp-1", "cmp-2"}


def parse(params):
    return share.parse_view(params, datasets=DATASETS, colorscales=COLORSCALES, runs=RUNS,
                            config_ok=lambda c: c in {"none", "per_pixel", "db+per_row"},
                            mask_max=5.0)


def test_empty_params_give_defaults():
    view, notes = parse({})
    assert view == share.View() and notes == []


def test_round_trip():
    view = share.View(dataset="a1b2c3d4e5f6", mask_snr=0.35, tab="Compare", on="all",
                      log_color=False, colorscale="Magma", configs=("none", "db+per_row"),
                      runs=("cmp-2",), report=True, profiles=True)
    url = share.view_url("http://host:8501/", view)
    q = parse_qs(urlsplit(url).query)  # what a browser would hand back
    assert q["configs"] == ["none", "db+per_row"]  # "+" survives (encoded as %2B)
    back, notes = parse(q)
    assert notes == [] and back == view


def test_defaults_are_left_out_of_the_url():
    assert share.view_url("http://h/", share.View()) == "http://h/"
    # Streamlit's st.context.url has no trailing slash at the root; sub-paths are kept.
    assert share.view_url("http://h:8501", share.View(mask_snr=0.5)) == \
        "http://h:8501/?mask_snr=0.5"
    assert share.view_url("https://h/normscope#x", share.View(mask_snr=0.5)) == \
        "https://h/normscope?mask_snr=0.5"
    assert "mask_snr=0.5" in share.view_url("http://h/?old=1", share.View(mask_snr=0.5))


@pytest.mark.parametrize("params, key", [
    ({"dataset": "/etc/passwd"}, "dataset"),
    ({"dataset": "../x.npy"}, "dataset"),
    ({"dataset": "unknown1"}, "dataset"),
    ({"mask_snr": "nan"}, "mask_snr"),
    ({"mask_snr": "inf"}, "mask_snr"),
    ({"mask_snr": "99"}, "mask_snr"),
    ({"mask_snr": ""}, "mask_snr"),
    ({"tab": "Admin"}, "tab"),
    ({"on": "test"}, "on"),
    ({"colorscale": "<script>"}, "colorscale"),
    ({"report": "2"}, "report"),
    ({"profiles": "yes"}, "profiles"),
    ({"configs": "none,per_pixel@@"}, "configs"),
    ({"runs": "cmp-9"}, "runs"),
])
def test_bad_parameters_give_one_notice_and_the_default(params, key):
    view, notes = parse(params)
    assert len(notes) == 1 and f"{key}=" in notes[0]
    default = share.View()
    if key not in ("configs", "runs"):
        assert getattr(view, key) == getattr(default, key)


def test_comma_joined_values_are_one_name_as_the_widgets_read_them():
    view, notes = parse({"configs": "none,per_pixel"})
    assert view.configs == () and len(notes) == 1


def test_partial_lists_keep_the_good_items():
    view, notes = parse({"configs": ["none", "bogus", "per_pixel"], "runs": ["cmp-1", "cmp-x"]})
    assert view.configs == ("none", "per_pixel")
    assert view.runs == ("cmp-1",)
    assert len(notes) == 2


def test_the_mask_slider_ends_just_above_the_data():
    from webapp.sidebar import slider_top

    assert slider_top(np.array([0.1, 1.3, np.nan])) == 1.5  # the demo: not 0-5
    assert slider_top(np.array([0.02, 0.04])) == 0.1
    assert slider_top(np.array([0.5, 40.0])) == 5.0  # capped at MASK_MAX
    assert slider_top(np.array([0.1, 0.3]), current=0.9) == 0.9  # a link's value stays reachable
    assert slider_top(np.array([np.nan])) == 5.0


def test_sees_choices_round_trip_and_bad_values_fall_back():
    view = share.View(tab="What the network sees", sees_configs=("per_pixel", "db+per_row"),
                      sees_pick=share.SEES_PICKS[1], sees_index=17,
                      sees_colour=share.SEES_COLOURS[1])
    q = parse_qs(urlsplit(share.view_url("http://h/", view)).query)
    assert q["sees_configs"] == ["per_pixel", "db+per_row"] and q["sees_index"] == ["17"]
    back, notes = parse(q)
    assert notes == [] and back == view
    # The index rides only with a chosen example; defaults stay out of the link.
    assert "sees_index" not in share.view_params(share.View(sees_index=17))
    assert share.view_params(share.View()) == {}
    back, notes = parse({"sees_configs": ["none", "nope"], "sees_pick": "all of them",
                         "sees_index": "-1", "sees_colour": "loud"})
    assert back.sees_configs == ("none",) and back.sees_pick == share.SEES_PICKS[0]
    assert back.sees_index == 0 and back.sees_colour == share.SEES_COLOURS[0]
    assert [n.split("=")[0] for n in notes] == ["The link's sees_configs", "The link's sees_pick",
                                                "The link's sees_colour", "The link's sees_index"]
