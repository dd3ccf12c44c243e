"""AppTest: user text reaches the page as text (never Markdown), link notices are grouped, and a
damaged run store is moved aside with a notice while every page keeps working."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from webapp.text import grouped, md

APP = str(Path(__file__).resolve().parents[2] / "app.py")
EVIL = "![x](https://evil.example/t.png) [Click to re-login](https://evil.example/login)"
# Markdown that would make a link or an image: ](, or a bare https:// link.
ACTIVE = re.compile(r"(?<!\\)\]\(|(?<!\\)https:(?!\S*\\)")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    return tmp_path


def test_md_escapes_links_images_and_control_characters():
    out = md(EVIL + "\n# heading \x1b[31m")
    assert not ACTIVE.search(out) and "\\!\\[x\\]" in out and "\n" not in out
    assert "\\x1b" in out and "\x1b" not in out
    assert md("1. not a list").startswith("\\1.") and md("- no").startswith("\\-")
    assert grouped([]) is None
    box = grouped([f"bad {i}" for i in range(990)])
    assert box.count("\n- ") == 5 and "985 more" in box


@pytest.mark.parametrize("text", ["https://evil.example/x", "WWW.evil.example", "bob@evil.example",
                                  "mailto:bob", "xmpp:bob@evil.org", "ftp://evil.example"])
def test_bare_addresses_are_broken_by_a_word_joiner(text):
    """GitHub-flavoured Markdown links a bare address even when its characters are escaped
    (chromium showed it: tests/browser); an invisible word joiner inside it stops that."""
    out = md(text)
    assert "\u2060" in out and out.replace("\u2060", "").replace("\\", "") == text
    assert md("db+per_row@mask") == "db+per\\_row@mask"  # configs read as before


def test_plotly_text_of_user_names_is_escaped():
    from diagnostics.plots import figures

    assert figures._text('<a href="https://e.example">x</a> %{y} &amp; < 0.6') == \
        '&lt;a href="https://e.example">x&lt;/a> %&#123;y} &amp;amp; < 0.6'
    from diagnostics.stats.moments import compute_stats

    X = np.random.default_rng(0).exponential(1.0, (20, 3, 4))
    stats = compute_stats(X, labels=np.arange(20) % 2, n_classes=2)
    fig = figures.class_means(stats, ("<b>a</b>", "b"), caption_text="<i>c</i>",
                              dataset_name="<a href='x'>d</a>")
    text = str(fig.layout.to_plotly_json()) + str([t.hovertemplate for t in fig.data])
    assert "<b>" not in text and "<a " not in text and "<i>" not in text


def test_a_class_name_with_markdown_is_shown_as_text(env, rng):
    from diagnostics.data import store

    X = rng.exponential(1.0, (41, 6, 8)).astype(np.float32)
    y = np.array([0] * 20 + [1] * 20 + [2])  # class 2 has one example: a note names it
    ident = store.register_arrays(X, y, ("a", "b", EVIL), "evil-classes", {"source": "test"})
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = ident
    at.run()
    assert not at.exception
    shown = [str(e.value) for kind in (at.warning, at.info, at.error, at.markdown, at.caption)
             for e in kind]
    named = [s for s in shown if "evil" in s]
    assert named, "the note naming the class is missing"
    assert not any(ACTIVE.search(s) for s in named), named


def test_990_bad_configs_in_a_link_give_one_box(env):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["configs"] = [f"bad{i}" for i in range(990)]
    at.query_params["tab"] = "Compare"
    at.run()
    assert not at.exception
    boxes = [w for w in at.warning if "The link" in str(w.value)]
    assert len(boxes) == 1 and "more" in str(boxes[0].value)


def test_a_damaged_run_store_is_moved_aside_and_the_app_keeps_working(env):
    home = env / "home"
    home.mkdir()
    (home / "runs.db").write_bytes(b"garbage, not SQLite" * 200)
    for tab in ("Statistics", "Compare"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["tab"] = tab
        at.run()
        assert not at.exception, at.exception
        assert any("damaged" in str(w.value) for w in at.warning)
    assert list(home.glob("runs.db.damaged-*"))


def test_report_view_keeps_runs_in_the_link_on_every_tab_and_hides_the_picker(env):
    from models.store import RunStore

    RunStore().create_comparison(
        {"id": "abc123def456", "dataset_id": "digits", "dataset_name": "digits",
         "data_spec": "digits", "model": "cnn", "configs": ["none", "per_pixel"], "seeds": [0],
         "hyper": {"epochs": 1}}, [{"id": "abc123def456-0", "position": 0, "config": "none",
                                    "seed": 0}])
    for tab in ("Compare", "Statistics"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update({"dataset": "digits", "tab": tab, "report": "true",
                                "runs": "abc123def456"})
        at.run()
        assert not at.exception, at.exception
        assert at.multiselect(key="runs").value == ["abc123def456"]
        assert at.query_params.get("runs") in ("abc123def456", ["abc123def456"])
        # The picker lives in the sidebar, which report view hides.
        assert at.sidebar.multiselect(key="runs") is not None
