"""AppTest: the dashboard runs headless on the built-in data and reacts to its widgets."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from compare_helpers import run_until

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _plain(markdown: object) -> str:
    """What the reader sees: user text reaches the page with Markdown's backslash escapes."""
    return re.sub(r"\\(.)", r"\1", str(markdown))


def _decode(arr):
    """plotly 7 ships arrays as base64 typed arrays in the JSON spec."""
    if isinstance(arr, dict) and "bdata" in arr:
        shape = [int(s) for s in str(arr.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(arr["bdata"]), arr["dtype"]).reshape(shape)
    return np.asarray(arr, dtype=float)


def _figures(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _heatmaps(at):
    return [f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "heatmap"
            and not f["layout"]["title"]["text"].startswith("Per-class")]


def test_per_class_mean_maps(app):
    assert not [f for f in _figures(app) if f["layout"]["title"]["text"].startswith("Per-class")]
    app.toggle(key="class_maps").set_value(True).run()
    figs = [f for f in _figures(app) if f["layout"]["title"]["text"].startswith("Per-class")]
    assert len(figs) == 1
    assert len(figs[0]["data"]) == 6  # one map per demo class


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Each test gets its own data directory (registry, run store) and data root."""
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    return tmp_path


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


def test_side_figures_wait_for_their_expander_and_links_keep_it_open(app):
    """The first screen draws the four maps only; the row-SNR profile and the value
    distribution run when their expander is opened, and a link opens it again."""
    titles = [f["layout"]["title"]["text"] for f in _figures(app)]
    assert len(titles) == 4 and not any(t.startswith(("Row SNR", "Value", "Shift"))
                                        for t in titles), titles
    assert any(e.label.startswith("Row-SNR profile") for e in app.expander)
    assert not app.get("selectbox") or "shift_against" not in [s.key for s in app.selectbox]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["profiles"] = "true"
    at.run()
    assert not at.exception, at.exception
    side = [f["layout"]["title"]["text"] for f in _figures(at)
            if f["data"][0]["type"] != "heatmap"]
    assert [t.split(" — ")[0].split(":")[0] for t in side] == \
        ["Row SNR", "Shift per band", "Value distribution (sample)"], side
    assert at.session_state["profiles"] is True  # what "Share this view" reads


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


def _submit_open(at, path, labels=""):
    at.text_input(key="server_path").input(path)
    at.text_input(key="server_labels").input(labels)
    next(b for b in at.button if b.label == "Open").click()
    return at.run()


def test_digits_switch_and_bad_server_path_keeps_dataset(app):
    app.selectbox(key="dataset").set_value("digits").run()
    assert not app.exception
    assert _decode(_heatmaps(app)[0]["data"][0]["z"]).shape == (8, 8)
    _submit_open(app, "../../etc/passwd")
    assert not app.exception
    assert any("outside the data root" in str(e.value) for e in app.error)
    # The previous dataset (digits) is still shown.
    assert _decode(_heatmaps(app)[0]["data"][0]["z"]).shape == (8, 8)


def test_open_server_file_and_bad_file(home):
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 1.0, (40, 5, 7)).astype("float32")
    np.save(home / "x.npy", X)
    np.save(home / "y.npy", np.arange(40) % 2)
    (home / "bad.npy").write_bytes(b"not an array at all")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _submit_open(at, "x.npy", "y.npy")
    assert not at.exception
    assert _decode(_heatmaps(at)[0]["data"][0]["z"]).shape == (5, 7)
    ident = at.selectbox(key="dataset").value
    assert ident not in ("demo", "digits") and len(ident) == 12  # a registered content id
    _submit_open(at, "bad.npy")
    assert not at.exception
    assert any("not a .npy array file" in str(e.value) for e in at.error)
    assert _decode(_heatmaps(at)[0]["data"][0]["z"]).shape == (5, 7)  # kept
    # A teammate's link names the id, and the shared registry finds it.
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params["dataset"] = ident
    other.run()
    assert not other.exception
    assert other.selectbox(key="dataset").value == ident
    assert _decode(_heatmaps(other)[0]["data"][0]["z"]).shape == (5, 7)


def _upload(at, data, labels=None):
    at.file_uploader(key="upload_data").set_value(data)
    if labels is not None:
        at.file_uploader(key="upload_labels").set_value(labels)
    next(b for b in at.button if b.label == "Upload").click()
    return at.run()


def test_upload_npz_and_bad_upload(home):
    import io

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    np.savez(buf, X=rng.gamma(2.0, 1.0, (30, 4, 6)).astype("float32"), y=np.arange(30) % 3)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _upload(at, ("mine.npz", buf.getvalue(), "application/octet-stream"))
    assert not at.exception, at.exception
    assert _decode(_heatmaps(at)[0]["data"][0]["z"]).shape == (4, 6)
    good = at.selectbox(key="dataset").value
    import pickle
    _upload(at, ("evil.npy", pickle.dumps({"a": 1}), "application/octet-stream"))
    assert not at.exception
    assert any("pickle" in str(e.value) for e in at.error)
    assert at.selectbox(key="dataset").value == good  # previous dataset kept


def test_upload_zip_of_audio_folders(home):
    import io
    import zipfile

    import soundfile as sf

    rng = np.random.default_rng(2)
    sr = 8000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label, freq in (("low", 300.0), ("high", 2400.0)):
            for k in range(4):
                t = np.arange(int(0.5 * sr)) / sr
                y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
                wav = io.BytesIO()
                sf.write(wav, y, sr, format="WAV")
                zf.writestr(f"{label}/{k}.wav", wav.getvalue())
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _upload(at, ("clips.zip", buf.getvalue(), "application/zip"))
    assert not at.exception, at.exception
    z = _decode(_heatmaps(at)[0]["data"][0]["z"])
    assert z.shape == (60, 130)  # default mel features, 3 s padded


def test_zip_with_path_traversal_is_refused(home):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil/x.wav", b"RIFF")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _upload(at, ("evil.zip", buf.getvalue(), "application/zip"))
    assert not at.exception
    assert at.error and at.selectbox(key="dataset").value == "demo"
    assert not (home.parent / "evil").exists()


def test_link_restores_view():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "digits", "mask_snr": "0.9", "log_color": "false",
                            "colorscale": "Cividis"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="dataset").value == "digits"
    assert at.slider(key="mask_snr").value == pytest.approx(0.9)
    heat = _heatmaps(at)
    assert heat[0]["layout"]["meta"]["log_color"] is False
    assert "Cividis" in json.dumps(heat[0]["data"][0]["colorscale"]) or heat[0]["data"][0]["colorscale"]
    assert not [w for w in at.warning if "link" in str(w.value)]


@pytest.mark.parametrize("params, word", [
    ({"dataset": "../../etc/passwd"}, "dataset"),
    ({"dataset": "nosuchid"}, "dataset"),
    ({"mask_snr": "lots"}, "mask_snr"),
    ({"mask_snr": "-1"}, "mask_snr"),
    ({"tab": "Nowhere"}, "tab"),
    ({"colorscale": "Jet"}, "colorscale"),
    ({"log_color": "maybe"}, "log_color"),
])
def test_bad_link_parameter_gives_notice_and_default(params, word):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    assert not at.exception
    notes = [_plain(w.value) for w in at.warning if "The link's" in _plain(w.value)]
    assert len(notes) == 1 and word in notes[0]
    assert at.selectbox(key="dataset").value == "demo"
    assert len(_heatmaps(at)) == 4


def test_report_view_hides_controls(app):
    app.toggle(key="report").set_value(True).run()
    assert not app.exception
    assert len(_heatmaps(app)) == 4
    assert not [b for b in app.get("download_button")]
    app.button(key="leave_report").click().run()
    assert not app.exception
    assert app.toggle(key="report").value is False


def test_slider_moves_do_not_recompute_statistics(monkeypatch):
    import diagnostics.stats.summary as summary

    calls = []
    real = summary.dataset_stats

    def counting(ds, **kw):
        calls.append(ds.id)
        return real(ds, **kw)

    monkeypatch.setattr(summary, "dataset_stats", counting)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["on"] = "all"  # a cache entry no other test made
    at.run()
    first = len(calls)
    assert first == 1
    for v in (0.1, 0.4, 0.8):
        at.slider(key="mask_snr").set_value(v).run()
        assert not at.exception
    at.checkbox(key="log_color").uncheck().run()
    assert len(calls) == first


@pytest.mark.slow
def test_compare_tab_runs_a_tiny_comparison_and_reopens_it(home):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="configs").value == ["none", "per_pixel"]  # digits: no low-SNR rows
    at.selectbox(key="cmp_model").set_value("linear")
    at.number_input(key="cmp_epochs").set_value(2)
    at.selectbox(key="cmp_eval").set_value("cv")
    at.number_input(key="cmp_folds").set_value(2)
    at.number_input(key="cmp_reps").set_value(2)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    cid = at.multiselect(key="runs").value[0]

    def answered(a):
        return any("accuracy (%)" in df.value.columns for df in a.dataframe)

    run_until(at, lambda a: answered(a) and not a.get("progress"))
    at.run()  # the finished comparison, drawn from the store
    configs = next(df.value for df in at.dataframe if "accuracy (%)" in df.value.columns)
    assert list(configs["config"]) == ["none", "per_pixel"]
    pairs = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    assert set(pairs["verdict"]) <= {"better", "worse", "equivalent", "unclear"}
    bold = [str(m.value) for m in at.markdown if str(m.value).startswith("**")]
    assert any("no normalization" in b or "per-pixel" in b.lower() or "per_pixel" in b
               for b in bold), bold  # the answer leads with the user's question
    assert any("2-fold cross-validation" in str(c.value) for c in at.caption)
    # A link with the comparison id reopens it from the store in a new session.
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.query_params.update({"dataset": "digits", "tab": "Compare", "runs": cid})
    other.run()
    assert not other.exception, other.exception
    assert other.multiselect(key="runs").value == [cid]
    again = next(df.value for df in other.dataframe if "accuracy (%)" in df.value.columns)
    assert list(again["config"]) == ["none", "per_pixel"]
    curves = [f for f in _figures(other) if "accuracy" in f["layout"]["title"]["text"].lower()]
    assert len(curves) >= 2


def test_compare_bad_config_and_no_labels(home):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "digits", "tab": "Compare"})
    at.run()
    at.multiselect(key="configs").set_value(["none"])
    at.button(key="start").click().run()
    assert not at.exception
    assert any("at least two configs" in str(e.value) for e in at.error)
    assert at.multiselect(key="runs").value == []
    # A dataset without labels cannot be compared: the tab says why.
    rng = np.random.default_rng(3)
    np.save(home / "nolabels.npy", rng.random((20, 4, 5)).astype("float32"))
    _submit_open(at, "nolabels.npy")
    at.run()
    assert not at.exception
    assert any("need labels" in str(i.value) for i in at.info)


def test_bad_runs_parameter_gives_notice(home):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"tab": "Compare", "runs": "nosuchrun"})
    at.run()
    assert not at.exception
    assert any("runs=" in str(w.value) for w in at.warning)


def test_open_audio_folder_by_path_with_feature_settings(home):
    import soundfile as sf

    rng = np.random.default_rng(4)
    sr = 8000
    for label, freq in (("low", 250.0), ("high", 2000.0)):
        (home / "clips" / label).mkdir(parents=True)
        for k in range(3):
            t = np.arange(int(0.4 * sr)) / sr
            y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(home / "clips" / label / f"{k}.wav", y, sr)
    (home / "clips" / "low" / "broken.wav").write_bytes(b"RIFF....not really a wav")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.number_input(key="path_n_mels").set_value(32)
    at.number_input(key="path_duration").set_value(1.0)
    _submit_open(at, "clips")
    assert not at.exception, at.exception
    z = _decode(_heatmaps(at)[0]["data"][0]["z"])
    assert z.shape == (32, 44)  # 32 mel bands, 1 s at 22,050 Hz / hop 512 -> 44 frames
    assert any("skipped" in str(e.label) for e in at.expander)  # broken.wav is listed


def _cancel_button(at, cid):
    return [b for b in at.button if b.key == f"cancel_{cid}"]


def test_only_the_starter_cancels_and_a_share_link_leaves_its_token_out(home, monkeypatch):
    a = AppTest.from_file(APP, default_timeout=TIMEOUT)
    a.query_params.update({"dataset": "digits", "tab": "Compare"})
    a.run()
    a.selectbox(key="cmp_model").set_value("linear")
    a.number_input(key="cmp_epochs").set_value(100)  # long enough to still run below
    a.button(key="start").click().run()
    assert not a.exception and not a.error, [e.value for e in a.error]
    cid = a.multiselect(key="runs").value[0]
    token = a.query_params["owner"]
    token = token[-1] if isinstance(token, list) else token
    assert len(token) >= 22 and _cancel_button(a, cid)  # the starter's page can cancel
    link = a.sidebar.code[0].value if a.sidebar.code else a.code[0].value
    assert f"runs={cid}" in link and token not in link and "owner" not in link

    # A viewer of the shared link (or of one with a made-up token) sees it read-only.
    for params in ({}, {"owner": "x" * 22}):
        b = AppTest.from_file(APP, default_timeout=TIMEOUT)
        b.query_params.update({"dataset": "digits", "tab": "Compare", "runs": cid, **params})
        b.run()
        assert not b.exception, b.exception
        assert not _cancel_button(b, cid)
        assert any("only the page that started" in str(c.value) for c in b.caption)
        # ... and cannot start a second comparison while the server's queue is full.
        monkeypatch.setenv("NORMSCOPE_MAX_QUEUED", "1")
        b.button(key="start").click().run()
        assert not b.exception
        assert any("already runs or queues 1 comparisons" in str(e.value) for e in b.error)
        monkeypatch.delenv("NORMSCOPE_MAX_QUEUED")

    # The operator may let everyone cancel.
    monkeypatch.setenv("NORMSCOPE_ANYONE_CAN_CANCEL", "true")
    b.run()
    assert _cancel_button(b, cid)
    monkeypatch.delenv("NORMSCOPE_ANYONE_CAN_CANCEL")
    b.run()
    assert not _cancel_button(b, cid)

    # A reload of the starter's page (its URL keeps the token) keeps the right to cancel.
    c = AppTest.from_file(APP, default_timeout=TIMEOUT)
    c.query_params.update({"dataset": "digits", "tab": "Compare", "runs": cid, "owner": token})
    c.run()
    assert not c.exception, c.exception
    _cancel_button(c, cid)[0].click().run()
    run_until(c, lambda s: any("cancelled" in str(m.value) for m in s.markdown), timeout=60)
    a.run()
    assert not a.exception
    assert any("cancelled" in str(m.value) for m in a.markdown)  # the starter sees it too


def test_a_request_over_a_limit_is_one_error_and_starts_nothing(home, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_MAX_CONFIGS", "2")
    monkeypatch.setenv("NORMSCOPE_MAX_EPOCHS", "5")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "digits", "tab": "Compare", "cmp_epochs": "50"})
    at.run()
    assert not at.exception, at.exception
    # The widget offers no more than the limit; a link asking for more gets the default.
    assert at.number_input(key="cmp_epochs").value == 5
    assert at.number_input(key="cmp_epochs").max == 5
    at.multiselect(key="configs").set_value(["none", "global", "per_pixel"])
    at.button(key="start").click().run()
    assert not at.exception
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and "3 configs is over this server's limit of 2" in errors[0], errors
    assert at.multiselect(key="runs").value == []
    from models.store import RunStore

    assert RunStore().list_comparisons() == []  # nothing half-written in the store


def test_dataset_with_no_finite_value_is_refused_and_the_previous_one_kept(home):
    np.save(home / "allnan.npy", np.full((30, 4, 5), np.nan, np.float32))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _submit_open(at, "allnan.npy")
    assert not at.exception, at.exception
    assert any("NaN or infinite" in str(e.value) for e in at.error)
    assert at.selectbox(key="dataset").value == "demo"
    assert len(_heatmaps(at)) == 4
    # Refused, it is not registered: no session lists it.
    again = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert again.selectbox(key="dataset").options == ["demo", "digits"]
    assert not list((home / "home" / "datasets").glob("[0-9a-f]*"))


def test_link_configs_are_validated_before_the_widget_reads_them():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"tab": "Compare", "dataset": "digits",
                            "configs": ["none", "per_pixel@@mask", "db+per_row"]})
    at.run()
    assert not at.exception
    assert at.multiselect(key="configs").value == ["none", "db+per_row"]
    assert any("configs='per_pixel@@mask'" in _plain(w.value) for w in at.warning)


def test_share_link_shows_the_whole_view():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"tab": "Compare", "dataset": "digits", "mask_snr": "0.7"})
    at.run()
    link = at.sidebar.code[0].value if at.sidebar.code else at.code[0].value
    assert "dataset=digits" in link and "tab=Compare" in link and "mask_snr=0.7" in link


def test_runs_of_a_dead_server_show_as_interrupted_on_the_first_view():
    import subprocess
    import sys

    from models.store import RunStore

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    RunStore().create_comparison(
        {"id": "c0ffee000001", "dataset_id": "demo", "dataset_name": "demo", "data_spec": "demo",
         "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0],
         "hyper": {"epochs": 1}, "pid": dead.pid},
        [{"id": f"r{i}", "position": i, "config": c, "seed": 0}
         for i, c in enumerate(["none", "per_pixel"])])
    RunStore().start_run("r0")  # left "running" by a server that died
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["tab"] = "Compare"
    at.query_params["runs"] = "c0ffee000001"
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "**interrupted**" in shown and "running" not in shown


def test_compare_defaults_and_captions_use_the_training_split():
    import json

    from models.store import RunStore

    s = RunStore()
    s.create_comparison(
        {"id": "c0ffee000002", "dataset_id": "demo", "dataset_name": "demo", "data_spec": "demo",
         "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0],
         "hyper": {"epochs": 1}},
        [{"id": f"q{i}", "position": i, "config": c, "seed": 0}
         for i, c in enumerate(["none", "per_pixel"])])
    for i in range(2):
        s.start_run(f"q{i}")
        s.add_epoch(f"q{i}", {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5,
                              "batch_acc": [0.4, 0.6], "batch_loss": [1.1, 0.9]})
        s.finish_run(f"q{i}", "done", test_acc=0.5 + 0.1 * i)
    s.set_comparison_status("c0ffee000002", "done", final=True)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["tab"] = "Compare"
    at.query_params["on"] = "all"  # the Statistics tab summarises all 1,200 examples ...
    at.query_params["runs"] = "c0ffee000002"
    at.run()
    assert not at.exception, at.exception
    # ... but comparisons fit on the 840 training examples, and say so.
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    captions = [sp["layout"]["title"]["subtitle"]["text"] for sp in specs]
    assert captions and all("train 840 " in c for c in captions), captions
    assert at.multiselect(key="configs").value == ["none", "per_pixel", "per_pixel@mask",
                                                   "db+per_row"]
