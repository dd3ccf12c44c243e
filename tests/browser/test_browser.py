"""End-to-end tests in Debian's chromium: what only a real browser shows."""

from __future__ import annotations


import pytest

import re
from urllib.parse import parse_qs, urlsplit

from .conftest import shot, wait_idle

HEATMAP_TITLES = ("Per-pixel mean", "Per-pixel std", "Per-pixel SNR", "Noise amplification")


def heatmap_titles(page) -> list[str]:
    return [t.text_content() for t in page.locator('[data-testid="stPlotlyChart"] .gtitle').all()]


def masked_line(page) -> str:
    return page.get_by_text(re.compile(r"(bands masked|No bands masked)")).first.inner_text()


@pytest.mark.slow
def test_demo_loads_with_four_heatmaps(demo_page):
    page = demo_page  # loaded, six charts drawn (the fixture waits for them)
    titles = heatmap_titles(page)
    for t in HEATMAP_TITLES:
        assert any(x.startswith(t) for x in titles), titles
    # The maps' margins are fixed (plotly's second layout pass is off): each colourbar, its
    # tick labels and its title, and the axis titles, must still fit inside their chart.
    outside = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stPlotlyChart"] .js-plotly-plot')).filter(gd => gd.querySelector('.colorbar'))
        .flatMap(gd => { const box = gd.querySelector('.main-svg').getBoundingClientRect();
          return Array.from(gd.querySelectorAll('.colorbar text, .cbtitle text, .xtitle, .ytitle'))
            .filter(t => { const r = t.getBoundingClientRect();
              return r.width > 0 && (r.right > box.right + 0.5 || r.left < box.left - 0.5
                                     || r.bottom > box.bottom + 0.5); })
            .map(t => t.textContent); })""")
    assert outside == []
    assert page.locator('[data-testid="stPlotlyChart"] .colorbar').count() >= 4
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "dashboard")


@pytest.mark.slow
def test_slider_updates_url_and_link_restores_view(server, page, browser):
    page.goto(server)
    wait_idle(page)
    assert "12 of 60 bands masked" in masked_line(page)
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
    slider.focus()
    # 0.20 -> 0.36: the demo's 13th-quietest band has SNR 0.355 on the training split (the
    # default), so only the final value masks 13 bands; every value on the way masks 12.
    for _ in range(16):
        slider.press("ArrowRight")
    # The slider's own value is final at once; the URL and the page follow, one rerun per
    # press.  Wait for the URL to carry that final value, then for the masked line of the
    # final value's rerun (no earlier rerun writes "13 of 60").
    final = float(slider.input_value())
    assert abs(final - 0.36) < 1e-9, final
    page.wait_for_function(
        "(v) => { const m = new URLSearchParams(location.search).get('mask_snr');"
        " return m !== null && Math.abs(parseFloat(m) - v) < 1e-9; }", arg=final, timeout=30_000)
    page.get_by_text(re.compile(r"13 of 60 bands masked")).first.wait_for(timeout=30_000)
    wait_idle(page)
    q = parse_qs(urlsplit(page.url).query)
    assert float(q["mask_snr"][0]) > 0.2
    line = masked_line(page)
    assert "12 of 60" not in line and "13 of 60 bands masked" in line
    # Switch to the Compare tab; the URL records it too.
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function("location.search.includes('tab=Compare')", timeout=15_000)
    page.get_by_role("button", name="Start comparison").wait_for(timeout=30_000)  # tab's rerun
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    # The link a user copies from "Share this view" carries the address bar's view (and spells
    # out the Compare tab's default configs, so a later change of defaults keeps the view).
    page.get_by_role("button", name="Share this view").click()
    code = page.locator('[data-testid="stCode"]').first
    code.wait_for(timeout=15_000)
    link = code.inner_text().strip()
    assert link.startswith(server + "/?")
    shared, address = parse_qs(urlsplit(link).query), parse_qs(urlsplit(page.url).query)
    assert {k: shared.get(k) for k in address} == address
    assert shared["configs"][:2] == ["none", "per_pixel"]
    # A teammate opens the link in a fresh context.
    ctx = browser.new_context(viewport={"width": 1500, "height": 1900})
    other = ctx.new_page()
    other.goto(link)
    other.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    sl = other.locator('[data-testid="stSlider"] input[type="range"]').first
    assert float(sl.input_value()) == float(q["mask_snr"][0])
    assert other.get_by_role("tab", name="Compare").get_attribute("aria-selected") == "true"
    other.get_by_role("tab", name="Statistics").click()
    wait_idle(other)
    assert masked_line(other) == line
    ctx.close()


def test_bad_dataset_parameter_shows_notice(server, page):
    page.goto(server + "/?dataset=..%2F..%2Fetc%2Fpasswd")
    wait_idle(page)
    notice = page.get_by_text(re.compile("The link's dataset="))
    notice.wait_for(timeout=15_000)
    assert "showing demo instead" in notice.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "12 of 60 bands masked" in masked_line(page)


@pytest.mark.slow
def test_png_download(demo_page):
    page = demo_page
    button = page.locator('[data-testid="stDownloadButton"] button', has_text="PNG").first
    with page.expect_download(timeout=60_000) as info:
        button.click()
    path = info.value.path()
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert info.value.suggested_filename == "normscope-demo-mean.png"


@pytest.mark.slow
def test_html_report_opens_offline(demo_page, browser, tmp_path):
    page = demo_page
    with page.expect_download(timeout=60_000) as info:
        page.locator('[data-testid="stDownloadButton"] button', has_text="HTML report").first.click()
    target = tmp_path / "report.html"
    info.value.save_as(target)
    html = target.read_text()
    assert "<script src=\"http" not in html  # plotly.js is inlined, nothing is fetched
    ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 1600})
    rp = ctx.new_page()
    rp.goto(target.as_uri())
    rp.wait_for_function("document.querySelectorAll('.main-svg').length >= 6", timeout=30_000)
    titles = [t.text_content() for t in rp.locator(".gtitle").all()]
    for t in HEATMAP_TITLES:
        assert any(x.startswith(t) for x in titles), titles
    assert rp.get_by_text("amplified_noise").count() >= 1
    shot(rp, "report")
    ctx.close()


@pytest.mark.slow
def test_comparison_shows_live_progress_and_only_its_starter_cancels(server, page, browser):
    page.goto(server + "/?tab=Compare")
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.get_by_role("button", name="Start comparison").click()
    page.wait_for_function("location.search.includes('runs=')", timeout=30_000)
    # Live progress: the bar's text moves past 0% of the most decide mode may run (it says
    # which repetition, of at most how many) and curves appear while runs are going.
    progress = page.get_by_text(re.compile(r"running: repetition 1 of at most 5, [1-9]\d?% of "
                                           r"the most it may run"))
    progress.wait_for(timeout=90_000)
    page.wait_for_selector("text=Validation accuracy", timeout=60_000)
    shot(page, "compare-live")
    # The starter's address keeps its private token; its share link does not.
    address = parse_qs(urlsplit(page.url).query)
    token = address["owner"][0]
    page.get_by_role("button", name="Share this view").click()
    link = page.locator('[data-testid="stCode"]').first.text_content()
    page.keyboard.press("Escape")
    assert "runs=" in link and "owner" not in link and token not in link
    # A viewer of the share link sees the comparison read-only: no Cancel.
    viewer = browser.new_page()
    viewer.goto(link)
    viewer.get_by_text("only the page that started this comparison can cancel it").wait_for(
        timeout=60_000)
    assert viewer.get_by_role("button", name="Cancel").count() == 0
    viewer.close()
    # A reload of the starter's own address keeps the right to cancel.
    page.reload()
    page.get_by_role("button", name="Cancel").click(timeout=60_000)
    page.get_by_text(re.compile(r"^cancelled")).first.wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0


EVIL = "![x](https://evil.example/t.png) [Click to re-login](https://evil.example/login)"


def test_a_class_name_with_markdown_makes_no_image_no_link_and_no_request(
        server, server_home, page, monkeypatch):
    import numpy as np

    from diagnostics.data import store

    monkeypatch.setenv("NORMSCOPE_HOME", str(server_home))  # register where the server looks
    rng = np.random.default_rng(5)
    X = rng.exponential(1.0, (41, 6, 8)).astype(np.float32)
    y = np.array([0] * 20 + [1] * 20 + [2])  # class 2 has one example: a note names it
    # Plotly reads <a href=...> in titles as a link: the per-class maps' titles are class names.
    plotly_link = '<a href="https://evil.example/p">Plotly link</a>'
    ident = store.register_arrays(X, y, ("a", plotly_link, EVIL), "evil-classes",
                                  {"source": "test"})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    for tab in ("Statistics", "Compare"):
        page.goto(f"{server}/?dataset={ident}&tab={tab}")
        wait_idle(page) if tab == "Statistics" else page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
        note = page.get_by_text("Click to re-login").first
        if tab == "Statistics":
            note.wait_for(timeout=30_000)  # the note is shown, as text
            assert "](https" in note.inner_text() and "evil.example" in note.inner_text()
            page.get_by_text("Show per-class mean maps").click()
            # Not get_by_text("Per-class mean maps"): the toggle's own label matches it at once.
            page.locator('[data-testid="stPlotlyChart"] .gtitle',
                         has_text="Per-class mean maps").first.wait_for(timeout=60_000)
            wait_idle(page)
            titles = [t.text_content() for t in
                      page.locator('[data-testid="stPlotlyChart"] .annotation-text').all()]
            assert plotly_link in titles, titles  # the class name, as text
        assert page.locator('img[src*="evil.example"]').count() == 0
        assert page.locator('a[href*="evil.example"]').count() == 0  # SVG links included
        assert page.locator('[data-testid="stException"]').count() == 0
    page.wait_for_timeout(1000)  # time for any late image request
    assert requests and not [u for u in requests if "evil.example" in u]
    shot(page, "evil-class-name")


@pytest.mark.slow
def test_opening_an_audio_folder_can_be_cancelled(server, server_home, page):
    import numpy as np
    import soundfile as sf

    # Enough work to click Cancel in the middle: 600 two-second clips at a small hop.
    folder = server_home / "many-clips"
    t = np.arange(2 * 22050) / 22050
    for i in range(600):
        out = folder / f"class{i % 3}" / f"{i:04d}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, (0.2 * np.sin(2 * np.pi * 300 * (1 + i % 3) * t)).astype(np.float32),
                 22050, subtype="PCM_16")
    before = sorted(p.name for p in (server_home / "datasets").glob("*")) \
        if (server_home / "datasets").exists() else []
    page.goto(server)
    wait_idle(page)
    page.get_by_text("Open data on the server").click()
    page.get_by_role("textbox", name="Path under the data root").fill(str(folder))
    page.get_by_text("Audio feature settings", exact=True).click()
    hop = page.get_by_role("spinbutton", name="Hop")
    hop.fill("32")
    hop.press("Tab")
    page.locator("[data-testid=\"stBaseButton-secondaryFormSubmit\"]", has_text="Open").click()
    # Generous: the first progress line waits for a feature worker to start, which under a busy
    # neighbour (the other xdist worker trains) took over 60 s once in CI.
    page.get_by_text(re.compile(r"Extracting features: [1-9][\d,]* of 600 clips")).wait_for(
        timeout=180_000)
    shot(page, "extracting")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Opening cancelled").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    after = sorted(p.name for p in (server_home / "datasets").glob("*")) \
        if (server_home / "datasets").exists() else []
    assert after == before  # nothing registered, not even half
    assert "12 of 60 bands masked" in masked_line(page)  # the demo is still open


def test_magma_reaches_the_browser_as_drawn(server, page):
    """Streamlit's front end swaps #000001-#0000ff placeholder colours anywhere in a figure;
    Magma starts at #000004, so its zero turned lavender. The colourbar's first stop must be
    Magma's near-black."""
    page.goto(server + "/?colorscale=Magma&log_color=false")
    wait_idle(page)
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 6")
    stops = page.evaluate("""() => {
        const g = document.querySelector('[data-testid="stPlotlyChart"] linearGradient');
        return g ? Array.from(g.querySelectorAll('stop')).map(s => s.getAttribute('stop-color')) : [];
    }""")
    assert stops, "no colourbar gradient found"
    rgb = [int(v) for v in re.findall(r"\d+", stops[0])[:3]] if stops[0].startswith("rgb") else [
        int(stops[0][i:i + 2], 16) for i in (1, 3, 5)]
    assert max(rgb) < 40, stops[:3]  # near-black, not lavender (about 200, 190, 230)
