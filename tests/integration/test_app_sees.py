"""AppTest of the "What the network sees" tab: configs, examples, colour modes, audio, bad input."""

from __future__ import annotations


import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from audio_helpers import make_folder
from test_app import APP, TIMEOUT, _decode, _figures

TAB = "What the network sees"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    return tmp_path


def _open(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["tab"] = TAB
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _sees(at):
    """The grid's column charts (one per config, left to right) read as one figure: their
    traces and annotations in order, and the configs, examples and colour mode they show."""
    figs = [f for f in _figures(at) if "config" in f["layout"].get("meta", {})]
    bars = [f for f in _figures(at) if "colourbar" in f["layout"].get("meta", {})]
    assert figs and len(bars) == 1  # one colourbar beside the columns
    metas = [f["layout"]["meta"] for f in figs]
    assert all(m["examples"] == metas[0]["examples"] for m in metas)
    assert {m["colour"] for m in metas} == {bars[0]["layout"]["meta"]["colourbar"]}
    assert [f["layout"]["title"]["text"] for f in figs] == [f"<b>{m['config']}</b>" for m in metas]
    return {"data": [t for f in figs for t in f["data"]],
            "layout": {"meta": {"configs": [m["config"] for m in metas],
                                "examples": metas[0]["examples"], "colour": metas[0]["colour"]},
                       "annotations": [a for f in figs for a in f["layout"]["annotations"]]}}


def test_defaults_are_the_comparison_configs_one_example_per_class():
    at = _open()
    fig = _sees(at)
    assert fig["layout"]["meta"]["configs"] == at.multiselect(key="sees_configs").value
    assert fig["layout"]["meta"]["configs"][:2] == ["none", "per_pixel"]
    assert len(fig["layout"]["meta"]["examples"]) == 6  # the demo's six classes
    assert len(fig["data"]) == 6 * len(fig["layout"]["meta"]["configs"])
    prof = [f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Per-band mean")]
    assert len(prof) == 1 and len(prof[0]["data"]) == 2 * len(fig["layout"]["meta"]["configs"])


def test_a_link_configs_are_the_defaults():
    at = _open({"configs": ["none", "db+per_row"]})
    assert _sees(at)["layout"]["meta"]["configs"] == ["none", "db+per_row"]


def test_config_change_colour_and_chosen_example():
    at = _open()
    at.multiselect(key="sees_configs").set_value(["per_pixel", "db+global"]).run()
    assert not at.exception
    fig = _sees(at)
    assert fig["layout"]["meta"]["configs"] == ["per_pixel", "db+global"]
    ranges = {(t["zmin"], t["zmax"]) for t in fig["data"]}
    assert len(ranges) > 1  # own scale per panel
    at.radio(key="sees_colour").set_value("One shared scale").run()
    fig = _sees(at)
    assert fig["layout"]["meta"]["colour"] == "shared"
    assert len({(t["zmin"], t["zmax"]) for t in fig["data"]}) == 1
    at.radio(key="sees_pick").set_value("A chosen example").run()
    at.number_input(key="sees_index").set_value(17).run()
    fig = _sees(at)
    assert fig["layout"]["meta"]["examples"] == ["#17 · " + fig["layout"]["meta"]["examples"][0].split(" · ", 1)[1]]
    assert len(fig["data"]) == 2
    z = _decode(fig["data"][0]["z"])
    assert z.shape == (60, 130) and np.isfinite(z).all()


def test_masked_config_draws_dropped_rows_washed_out():
    at = _open({"configs": ["per_pixel@mask"]})
    fig = _sees(at)
    z = _decode(fig["data"][0]["z"])
    assert np.isnan(z[48:]).all() and np.isfinite(z[:48]).all()  # the demo's 12 quiet bands
    assert any(a["text"] == "dropped" for a in fig["layout"]["annotations"])


def test_no_config_is_a_notice_not_an_error():
    at = _open({"dataset": "digits"})
    assert len(_sees(at)["layout"]["meta"]["examples"]) == 10
    at.multiselect(key="sees_configs").set_value([]).run()
    assert not at.exception and any("at least one config" in i.value for i in at.info)


def test_audio_dataset_plays_its_clips_from_the_server(home):
    from diagnostics.data.audio.loader import load_audio

    folder = make_folder(home / "tones", np.random.default_rng(3), per_class=4)
    ds = load_audio(folder, workers=1)
    at = _open({"dataset": ds.id})
    assert not at.exception
    audio = at.get("audio")
    assert len(audio) == 2  # one example per class
    # A clip that moved away is not played; the other still is.
    for f in (folder / "dog").iterdir():
        f.unlink()
    at = _open({"dataset": ds.id})
    assert len(at.get("audio")) == 1
    for f in (folder / "cat").iterdir():
        f.unlink()
    at = _open({"dataset": ds.id})
    assert not at.get("audio")
    assert any("no longer on the server" in c.value for c in at.caption)


def test_clips_outside_the_data_root_are_not_played(home, tmp_path_factory, monkeypatch):
    from diagnostics.data.audio.loader import load_audio

    outside = make_folder(tmp_path_factory.mktemp("elsewhere") / "tones", np.random.default_rng(4),
                          per_class=3)
    ds = load_audio(outside, workers=1)
    at = _open({"dataset": ds.id})
    assert not at.get("audio")
    assert any("outside the data root" in c.value for c in at.caption)


def test_statistics_page_shows_shift_per_band_beside_row_snr(home):
    from diagnostics.data import store

    rng = np.random.default_rng(5)
    level = np.geomspace(20.0, 0.1, 30)[:, None]
    a = (rng.exponential(1.0, (200, 30, 12)) * level).astype(np.float32)
    b = (rng.exponential(1.0, (200, 30, 12)) * level).astype(np.float32)
    b[:, 10:20] *= 2.5
    ya, yb = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    ida = store.register_arrays(a, ya, ("p", "q"), "device-a")
    idb = store.register_arrays(b, yb, ("p", "q"), "device-b")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["dataset"] = ida
    at.query_params["profiles"] = "true"  # the expander under the four maps, open
    at.run()
    assert not at.exception, at.exception
    titles = [f["layout"]["title"]["text"] for f in _figures(at)]
    assert any(t.startswith("Shift per band: train vs test") for t in titles)
    assert any("No band shifts detectably" in i.value for i in at.info)
    sel = at.selectbox(key="shift_against")
    assert len(sel.options) == 2 and idb in sel.options[1]  # 30 bands only: not demo, not digits
    sel.set_value(idb).run()
    assert not at.exception
    shift = [f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Shift per band")]
    assert shift[0]["layout"]["meta"]["shifted"] == list(range(10, 20))
    assert any("bands 10-19" in w.value and "gain" in w.value for w in at.warning)


def _share_link(at) -> str:
    return next(c.value for c in at.code if c.value.startswith("http"))


def test_a_link_reopens_the_sees_choices():
    at = _open({"sees_configs": ["per_pixel", "db+per_row"], "sees_pick": "A chosen example",
                "sees_index": "17", "sees_colour": "One shared scale"})
    fig = _sees(at)
    assert fig["layout"]["meta"]["configs"] == ["per_pixel", "db+per_row"]
    assert fig["layout"]["meta"]["colour"] == "shared"
    assert [e.split(" · ")[0] for e in fig["layout"]["meta"]["examples"]] == ["#17"]
    assert not at.warning
    # The share box carries them on, so the link's receiver sees the same grid.
    link = _share_link(at)
    for part in ("sees_configs=per_pixel", "sees_configs=db%2Bper_row", "sees_index=17",
                 "sees_colour=One+shared+scale"):
        assert part in link, link
    # A change in the tab reaches the share box.
    at.radio(key="sees_colour").set_value("Own scale per panel").run()
    assert "sees_colour" not in _share_link(at)


def test_bad_sees_link_values_fall_back_with_a_notice():
    at = _open({"sees_configs": ["none", "nope++"], "sees_pick": "all of them",
                "sees_colour": "loud", "sees_index": "x"})
    notes = " ".join(w.value for w in at.warning)
    for key in ("sees\\_configs='nope++'", "sees\\_pick='all of them'", "sees\\_colour='loud'",
                "sees\\_index='x'"):
        assert key in notes, notes
    fig = _sees(at)
    assert fig["layout"]["meta"]["configs"] == ["none"] and fig["layout"]["meta"]["colour"] == "own"
    assert len(fig["layout"]["meta"]["examples"]) == 6  # one per class, the default


def test_link_configs_the_dataset_cannot_take_and_an_index_past_the_end(home):
    from diagnostics.data import store

    rng = np.random.default_rng(8)
    signed = rng.normal(0.0, 1.0, (90, 8, 10)).astype(np.float32)  # MFCC-like: no dB
    ident = store.register_arrays(signed, rng.integers(0, 3, 90), ("a", "b", "c"), "signed")
    at = _open({"dataset": ident, "sees_configs": ["none", "db+per_row"],
                "sees_pick": "A chosen example", "sees_index": "500"})
    notes = [w.value for w in at.warning]
    assert any("sees\\_configs='db+per\\_row' does not apply to signed" in n for n in notes), notes
    assert any("sees\\_index='500' is past signed's last example (89); showing example 0" in n
               for n in notes), notes
    fig = _sees(at)
    assert fig["layout"]["meta"]["configs"] == ["none"]
    assert fig["layout"]["meta"]["examples"][0].startswith("#0 · ")
    at.run()  # the notices are for the link: said once, not on every rerun
    assert not [w for w in at.warning if "sees" in w.value]


def test_shift_profile_has_a_caption_and_exports(home):
    from diagnostics.data import store
    from webapp.charts import kaleido_browser

    rng = np.random.default_rng(9)
    a = rng.exponential(1.0, (120, 20, 8)).astype(np.float32)
    b = (rng.exponential(1.0, (120, 20, 8)) * 2.0).astype(np.float32)
    ida = store.register_arrays(a, rng.integers(0, 2, 120), ("p", "q"), "dev-a")
    idb = store.register_arrays(b, rng.integers(0, 2, 120), ("p", "q"), "dev-b")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": ida, "profiles": "true"})
    at.run()
    assert not at.exception, at.exception

    def shift_fig():
        return next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Shift per"))

    sub = shift_fig()["layout"]["title"]["subtitle"]["text"]
    assert sub.startswith("dev-a · N = ") and " train vs " in sub and "test examples of 120" in sub
    assert "all 20 bands compared (the mask does not apply)" in sub
    ids = " ".join(b.proto.id for b in at.get("download_button"))
    if kaleido_browser():
        for key in ("dl_row_snr_png", "dl_row_snr_svg", "dl_shift_png", "dl_shift_svg"):
            assert key in ids, ids
    else:
        assert any("PNG/SVG files need chromium" in c.value for c in at.caption)
    at.selectbox(key="shift_against").set_value(idb).run()
    assert not at.exception
    sub = shift_fig()["layout"]["title"]["subtitle"]["text"]
    assert sub.startswith("dev-a (N = 120) vs dev-b (N = 120)")
    if kaleido_browser():  # another picture: its own image cache entry and file name
        ids = " ".join(b.proto.id for b in at.get("download_button"))
        assert f"dl_shift-vs-{idb}_png" in ids, ids
    at.toggle(key="report").set_value(True).run()  # report view: figures without buttons
    assert not at.exception and not at.get("download_button") and shift_fig()


def test_cached_columns_equal_fresh_ones_after_every_change():
    """Each column chart comes from a cache keyed by what its picture depends on: after
    changes of configs, colour mode, mask threshold and example, every column equals one
    built afresh from the same fits."""
    import json

    from diagnostics import sees
    from diagnostics.data.ingest import load_dataset
    from diagnostics.plots.sees import panel_ranges, sees_column_figure

    ds = load_dataset("demo")
    at = _open()
    # "none" stays the first column while the shared range changes under it (step 3).
    steps = [dict(configs=["none", "per_pixel@mask"]), dict(colour="One shared scale"),
             dict(configs=["none", "db+per_row"]), dict(mask_snr=0.5),
             dict(configs=["per_pixel@mask", "none", "db+per_row"]),
             dict(colour="Own scale per panel"), dict(mask_snr=0.2)]
    for step in steps:
        if "configs" in step:
            at.multiselect(key="sees_configs").set_value(step["configs"])
        if "colour" in step:
            at.radio(key="sees_colour").set_value(step["colour"])
        if "mask_snr" in step:
            at.slider(key="mask_snr").set_value(step["mask_snr"])
        at.run()
        assert not at.exception, at.exception
        configs = at.multiselect(key="sees_configs").value
        colour = "shared" if at.radio(key="sees_colour").value == "One shared scale" else "own"
        threshold = at.slider(key="mask_snr").value
        examples = sees.pick_examples(ds)
        views = [sees.network_view(ds, sees.fit_config(ds, c, mask_snr=threshold),
                                   [i for i, _ in examples]) for c in configs]
        ranges = panel_ranges(views, colour)
        want = [json.loads(sees_column_figure(
            v, [lab for _, lab in examples], r, row_label=ds.row_label, col_label=ds.col_label,
            row_origin=ds.row_origin, own=colour == "own", first=k == 0).to_json())
            for k, (v, r) in enumerate(zip(views, ranges))]
        got = [f for f in _figures(at) if "config" in f["layout"].get("meta", {})]
        assert got == want, step
