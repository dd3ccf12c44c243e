"""Benchmark of the dashboard in a real browser (Debian chromium through Playwright).

Measures, against Streamlit's own empty page measured the same way in the same run (a
second server running ``st.write("")``), so that the machine's speed cancels out:

1. first render: navigation to the demo page, in a fresh browser profile (a first visit:
   nothing cached), until its four heatmaps are drawn and the script has finished
   (target <= 2.5 s on a quiet machine); the empty page: navigation until its script has
   finished and its element is in the page.  The returning visitor (browser caches warm) is
   given too;
   The page's main-thread CPU time (from a trace) is given too: the browser's own work,
   which load stretches in wall time but hardly changes;
2. one slider interaction: a key press on the mask slider that masks or unmasks a row, until
   the four heatmaps are redrawn (target <= 0.35 s quiet); a press that changes no row (the
   figures are then the same and nothing is redrawn); and the same key press on a bare
   slider page of the empty server (a rerun and a round trip, nothing drawn).

Each figure is the median of ``--repeat`` repetitions, the demo and the empty page taken in
turn so that a change of load hits both.  ``--load N`` starts N CPU-burning processes for the
measurement (a fixed synthetic load; target: first render <= 1.5x the quiet figure).  A quiet
run leaves its figures in the system's temporary folder; a ``--load`` run reads them and gives
that ratio too.  The servers run with a private NORMSCOPE_HOME.

    python bench/bench_browser.py [--repeat N] [--load N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
HEATMAPS = 4
CHARTS = ("document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg .heatmaplayer')"
          f".length >= {HEATMAPS}")
EMPTY_DRAWN = "document.querySelector('[data-testid=\"stMarkdown\"]') !== null"
#: Streamlit's own empty page; ``?slider=1`` adds a bare slider for the interaction baseline.
EMPTY_SCRIPT = """import streamlit as st
if st.query_params.get("slider"):
    st.markdown(f"value {st.slider('x', 0.0, 1.0, 0.5, 0.01):g}")
else:
    st.write("")
"""


QUIET_FILE = Path(tempfile.gettempdir()) / "normscope-bench-browser-quiet.json"


def start_server(home: str, script: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NORMSCOPE_HOME": home, "NORMSCOPE_DATA_ROOT": home}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless",
         "true", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def burners(n: int) -> list[subprocess.Popen]:
    """``n`` processes that keep one core each busy until killed (the synthetic load)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def first_render(ctx, url: str, drawn: str) -> float:
    """Seconds from navigation in a new page of ``ctx`` (a browser context: its caches are
    shared by its pages; ``None``: a fresh context, nothing cached) until ``drawn`` holds and
    the script has finished."""
    page = ctx.new_page()
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function(drawn, timeout=120_000)
    page.wait_for_selector(DONE, timeout=120_000)
    s = time.perf_counter() - t
    page.close()
    return s


def fresh_render(browser, url: str, drawn: str) -> float:
    """A first visit: a new browser context (profile), closed after."""
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        return first_render(ctx, url, drawn)
    finally:
        ctx.close()


WATCH_RERUNS = """() => {
  window.__reruns = 0;
  if (window.__watching) return;
  window.__watching = true;
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') === 'running') window.__reruns++;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
RERUN_DONE = ("window.__reruns > 0 && document.querySelector('[data-testid=\"stApp\"]')"
              ".getAttribute('data-test-script-state') === 'notRunning'")
DONE_JS = f"document.querySelector({DONE!r}) !== null"
TWO_FRAMES = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def key_presses(page, n: int, drawn=None, *, rerun: bool = True) -> list[float]:
    """``n`` alternating right/left presses on the page's first slider, each timed until the
    rerun it caused has finished (``rerun``: seen to start; a script of a few milliseconds
    starts and ends within one frame, so its page says it through ``drawn`` alone),
    ``drawn(value)`` (a JS condition) holds, and two frames have been painted."""
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
    slider.focus()
    out = []
    for i in range(n):
        page.evaluate(WATCH_RERUNS)
        t = time.perf_counter()
        slider.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        value = float(slider.input_value())
        done = RERUN_DONE if rerun else DONE_JS
        page.wait_for_function(done + (f" && ({drawn(value)})" if drawn else ""),
                               timeout=60_000)
        page.evaluate(TWO_FRAMES)
        out.append(time.perf_counter() - t)
    return out


def bare_slider(browser, empty_url: str, n: int) -> list[float]:
    """The baseline: ``n`` key presses on the slider of Streamlit's empty page, each until its
    new value is drawn (a rerun of a few milliseconds)."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(empty_url + "/?slider=1")
    page.wait_for_selector(DONE)
    times = key_presses(page, n, lambda v: f"document.body.innerText.includes({f'value {v:g}'!r})",
                        rerun=False)
    page.close()
    return times


def slider_points() -> tuple[float, float, np.ndarray]:
    """Two slider positions on the demo: ``cross``, one step (0.01) below a row SNR that no
    other row SNR shares, so every step from it masks or unmasks that row (the four heatmaps
    redrawn); and ``still``, one whose next step changes no row (nothing to redraw).  Also
    the sorted row SNRs, to count the masked rows of a threshold."""
    sys.path.insert(0, str(ROOT))
    from diagnostics.data.ingest import load_dataset
    from diagnostics.stats import summary

    snr = np.sort(summary.dataset_stats(load_dataset("demo"), on="train").row_snr)
    snr = snr[np.isfinite(snr)]

    def rows_between(lo: float, hi: float) -> int:
        return int(((snr >= lo) & (snr < hi)).sum())

    grid = np.round(np.arange(0.25, 1.0, 0.01), 2)
    cross = next(v for v in grid if rows_between(v, v + 0.01) == 1
                 and rows_between(v - 0.01, v) == 0)
    still = next(v for v in grid if rows_between(v - 0.005, v + 0.015) == 0)
    return float(cross), float(still), snr


def masked_caption(snr: np.ndarray):
    """JS condition on a threshold: the four heatmaps' captions give its masked-row count."""
    def drawn(value: float) -> str:
        k = int((snr < value - 1e-9).sum())
        return ("Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"]'))"
                f".filter(c => c.textContent.includes('· {k} masked rows')).length >= {HEATMAPS}")
    return drawn


TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline"]


def main_thread_cpu(browser, url: str, drawn: str) -> float:
    """CPU seconds of the page's main thread (trace ``tdur`` of its tasks) for a first visit:
    the browser's own work, which a busy machine stretches in wall time but hardly changes."""
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    try:
        page.goto(url)
        page.wait_for_function(drawn, timeout=120_000)
        page.wait_for_selector(DONE, timeout=120_000)
    finally:
        raw = browser.stop_tracing()
        ctx.close()
    events = json.loads(raw)["traceEvents"]
    main = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}
    return sum(e["tdur"] for e in events if (e.get("pid"), e.get("tid")) in main
               and e.get("ph") == "X" and "tdur" in e
               and e.get("name") in ("RunTask", "ThreadControllerImpl::RunTask")) / 1e6


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each figure (median)")
    ap.add_argument("--load", type=int, default=0, metavar="N",
                    help="busy processes started for the measurement (the synthetic load)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="normscope-bench-")
    empty_script = Path(home) / "empty.py"
    empty_script.write_text(EMPTY_SCRIPT)
    load_before = os.getloadavg()
    app, url = start_server(home, ROOT / "app.py")
    empty, empty_url = start_server(home, empty_script)
    load: list[subprocess.Popen] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=ARGS)
            # Warm both servers (the app's first run computes and caches the demo statistics).
            fresh_render(browser, url, CHARTS)
            fresh_render(browser, empty_url, EMPTY_DRAWN)
            load = burners(args.load)
            time.sleep(1.0 if load else 0)

            render_s, empty_s = [], []
            for _ in range(args.repeat):
                render_s.append(fresh_render(browser, url, CHARTS))
                empty_s.append(fresh_render(browser, empty_url, EMPTY_DRAWN))

            cpu_s, empty_cpu_s = [], []
            for _ in range(3):
                cpu_s.append(main_thread_cpu(browser, url, CHARTS))
                empty_cpu_s.append(main_thread_cpu(browser, empty_url, EMPTY_DRAWN))

            # A returning visitor: one browser profile, so its HTTP and code caches are warm.
            ctx = browser.new_context(viewport=VIEWPORT)
            first_render(ctx, url, CHARTS)  # fills the caches
            warm_s = [first_render(ctx, url, CHARTS) for _ in range(args.repeat)]
            ctx.close()

            cross, still, snr = slider_points()
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/?mask_snr={cross:g}")
            page.wait_for_function(CHARTS, timeout=120_000)
            page.wait_for_selector(DONE)
            key_s = key_presses(page, args.repeat * 2, masked_caption(snr))
            page.goto(f"{url}/?mask_snr={still:g}")
            page.wait_for_function(CHARTS, timeout=120_000)
            page.wait_for_selector(DONE)
            still_s = key_presses(page, args.repeat * 2)
            page.close()
            bare_s = bare_slider(browser, empty_url, args.repeat * 2)
            browser.close()
    finally:
        for b in load:
            b.kill()
            b.wait(10)
        for proc in (app, empty):
            proc.terminate()
            proc.wait(10)

    r, e, w, k, ks, b, c, ec = (med(x) for x in (render_s, empty_s, warm_s, key_s, still_s,
                                                 bare_s, cpu_s, empty_cpu_s))
    res = {"load": args.load, "first_render_s": r, "empty_page_s": e, "ratio": r / e,
           "returning_s": w, "slider_s": k, "slider_same_mask_s": ks,
           "bare_slider_s": b, "main_thread_cpu_s": c,
           "empty_main_thread_cpu_s": ec, "when": time.time()}
    la = os.getloadavg()
    print(f"synthetic load: {args.load} busy process(es); load average {load_before[0]:.2f} "
          f"before, {la[0]:.2f} at the end ({os.cpu_count()} cores); medians of {args.repeat}")
    print(f"first render of the demo page (fresh profile, 1600x1000): {r:.2f} s "
          f"(target <= 2.5 s quiet)")
    print(f"  Streamlit's empty page, the same way: {e:.2f} s; ratio demo/empty {r / e:.2f}")
    print(f"  the page's main-thread CPU (median of 3 traced visits): {c:.2f} s; the empty "
          f"page's {ec:.2f} s; ratio {c / ec:.1f}")
    print(f"  returning visitor (browser caches warm): {w:.2f} s; ratio to a first visit "
          f"{w / r:.2f}")
    print(f"slider key press that masks or unmasks a row, to the four heatmaps redrawn: "
          f"{k:.2f} s over {len(key_s)} (target <= 0.35 s quiet)")
    print(f"  a press that changes no row (nothing to redraw): {ks:.2f} s; a bare slider's "
          f"rerun on the empty server {b:.2f} s; ratios {k / b:.2f} and {ks / b:.2f}")
    if args.load == 0:
        QUIET_FILE.write_text(json.dumps(res))
    elif QUIET_FILE.exists():
        q = json.loads(QUIET_FILE.read_text())
        age = (time.time() - q["when"]) / 60
        print(f"against the quiet run of {age:.0f} min ago ({q['first_render_s']:.2f} s, "
              f"ratio {q['ratio']:.2f}): first render {r / q['first_render_s']:.2f}x "
              f"(target <= 1.5x); slider {k / q['slider_s']:.2f}x")
    else:
        print("no quiet run to compare with: run it first without --load")
    print("json " + json.dumps({k_: round(v, 4) if isinstance(v, float) else v
                                for k_, v in res.items()}))


if __name__ == "__main__":
    main()
