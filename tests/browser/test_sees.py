"""The "What the network sees" tab in Debian's chromium: the grid redraws after a config
change, and an audio dataset's clips play from the server."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from audio_helpers import make_folder

from .conftest import shot, wait_idle

TAB = "/?tab=What+the+network+sees"
#: The grid's column titles, left to right (one chart per config in the ``sees_grid`` container).
TITLES = "Array.from(document.querySelectorAll('.st-key-sees_grid .gtitle')).map(e => e.textContent)"
#: Marks the column charts now in the page, to tell later whether a chart was drawn anew.
MARK = "document.querySelectorAll('.st-key-sees_grid .js-plotly-plot').forEach(e => e.dataset.seen = '1')"
REDRAWN = ("Array.from(document.querySelectorAll('.st-key-sees_grid .js-plotly-plot'))"
           ".filter(e => !e.dataset.seen).map(e => e.querySelector('.gtitle').textContent)")


def column_titles(page) -> list[str]:
    return page.evaluate(TITLES)


@pytest.mark.slow
def test_grid_redraws_after_a_config_change(server, page):
    page.goto(server + TAB)
    wait_idle(page)
    page.wait_for_function(f"{TITLES}.length === 4", timeout=60_000)
    assert column_titles(page) == ["none", "per_pixel", "per_pixel@mask", "db+per_row"]
    page.get_by_text("What the network sees — demo", exact=True).wait_for()
    titles = [t.text_content() for t in page.locator('[data-testid="stPlotlyChart"] .gtitle').all()]
    assert any(t.startswith("Per-band mean and std") for t in titles)
    assert page.locator(".heatmaplayer image").count() >= 4 * 6  # every panel drawn
    # The profile's margins are fixed (no second layout pass): its legend and axis titles must
    # still fit inside its chart.
    outside = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stPlotlyChart"] .js-plotly-plot')).filter(gd => Array.from(
          gd.querySelectorAll('.gtitle')).some(t => t.textContent.startsWith('Per-band mean')))
        .flatMap(gd => { const box = gd.querySelector('.main-svg').getBoundingClientRect();
          return Array.from(gd.querySelectorAll('.legendtext, .xtitle, .x2title, .ytitle'))
            .filter(t => { const r = t.getBoundingClientRect();
              return r.width > 0 && (r.right > box.right + 0.5 || r.left < box.left - 0.5
                                     || r.bottom > box.bottom + 0.5 || r.top < box.top - 0.5); })
            .map(t => t.textContent); })""")
    assert outside == []
    assert page.locator(".legendtext").count() >= 4
    page.evaluate(MARK)
    page.get_by_role("button", name="Remove per_pixel", exact=True).click()
    page.wait_for_function(f"{TITLES}.length === 3", timeout=60_000)
    wait_idle(page)
    assert column_titles(page) == ["none", "per_pixel@mask", "db+per_row"]
    # Only the columns that moved are drawn anew: the first column's chart is the same one.
    assert page.evaluate(REDRAWN) == ["per_pixel@mask", "db+per_row"]
    page.evaluate(MARK)
    page.get_by_text("One shared scale", exact=True).click()
    page.wait_for_function("Array.from(document.querySelectorAll('.cbtitle'))"
                           ".some(e => e.textContent.includes('value after normalization'))",
                           timeout=60_000)
    wait_idle(page)
    assert page.get_by_text("one colour scale for all panels", exact=False).count() == 1
    assert page.evaluate(REDRAWN) == ["none", "per_pixel@mask", "db+per_row"]  # every range changed
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "sees")
    # The grid's PNG is the one-figure export, built on the click: every row of panels in it.
    with page.expect_download(timeout=60_000) as info:
        page.locator('[data-testid="stDownloadButton"] button', has_text="PNG").first.click()
    data = open(info.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and info.value.suggested_filename == "normscope-demo-sees.png"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (2800, 2 * (110 + 175 * 6))  # scale 2 of 1400 px; six example rows
    # The tab reruns alone (a fragment), so the sidebar's share link was last built before
    # these changes; opening it rebuilds it, and it carries the tab's view as it is now.
    page.get_by_role("button", name="Share this view").click()
    page.wait_for_function("Array.from(document.querySelectorAll('[data-testid=\"stCode\"]'))"
                           ".some(e => e.textContent.includes('sees_configs='))", timeout=30_000)
    wait_idle(page)
    link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
    q = parse_qs(urlsplit(link).query)
    assert q["sees_configs"] == ["none", "per_pixel@mask", "db+per_row"], link
    assert q["sees_colour"] == ["One shared scale"], link


@pytest.mark.slow
def test_audio_clips_play_in_the_browser(server, server_home, page, monkeypatch):
    from diagnostics.data.audio.loader import load_audio

    monkeypatch.setenv("NORMSCOPE_HOME", str(server_home))  # the server's registry
    folder = make_folder(server_home / "tones", np.random.default_rng(11), per_class=3)
    ds = load_audio(folder, workers=1)
    page.goto(f"{server}{TAB}&dataset={ds.id}")
    wait_idle(page)
    page.wait_for_selector("audio", timeout=60_000)
    assert page.locator("audio").count() == 2  # one example per class
    page.locator('[data-testid="stPlotlyChart"]').first.click()  # a user gesture, for autoplay rules
    audio = page.locator("audio").first
    audio.evaluate("a => a.play()")
    page.wait_for_function("document.querySelector('audio').currentTime > 0.05", timeout=30_000)
    duration = audio.evaluate("a => a.duration")
    assert duration == pytest.approx(1.0, abs=0.05)  # the one-second source clip itself
    assert page.locator('[data-testid="stException"]').count() == 0
