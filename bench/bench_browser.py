"""Benchmark of the dashboard in a real browser (Debian chromium through Playwright).

Measures, against baselines taken in the same run:

1. first render: navigation to the demo page until its six charts are drawn (target <= 3 s),
   in a fresh browser profile (a first visit: nothing cached), next to the time the server
   takes to answer a bare HTTP GET of the page (the floor); and the same for a returning
   visitor whose browser has the page's scripts cached;
2. one slider interaction: key press on the mask slider until the charts are redrawn
   (target <= 0.5 s), next to a rerun that changes nothing visible (toggling the
   "Statistics over" radio away and back is heavier, so the baseline is a bare rerun:
   pressing the same key on a text input that triggers no rerun).

Each figure is the median of several repetitions in fresh pages (first render) or in one
page (interaction).  The server runs with a private NORMSCOPE_HOME.

    python bench/bench_browser.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHARTS = "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 6"


def start_server(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NORMSCOPE_HOME": home, "NORMSCOPE_DATA_ROOT": home}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
         "true", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def threshold_drawn(page) -> str:
    """The row-SNR chart's threshold legend entry ("mask < 0.3"): it changes only when redrawn."""
    return "Array.from(document.querySelectorAll('.legendtext')).map(e => e.textContent)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="normscope-bench-")
    proc, url = start_server(home)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            # Warm the server (first script run computes and caches the demo statistics).
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.goto(url)
            page.wait_for_function(CHARTS, timeout=60_000)
            page.close()

            get_s, render_s = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                urllib.request.urlopen(url, timeout=10).read()
                get_s.append(time.perf_counter() - t)
                page = browser.new_page(viewport={"width": 1500, "height": 1900})
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function(CHARTS, timeout=60_000)
                page.wait_for_selector(DONE)
                render_s.append(time.perf_counter() - t)
                page.close()

            # A returning visitor: the same browser profile, so its HTTP and code caches are warm.
            ctx = browser.new_context(viewport={"width": 1500, "height": 1900})
            warm_s = []
            for i in range(args.repeat + 1):
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function(CHARTS, timeout=60_000)
                page.wait_for_selector(DONE)
                if i:  # the first visit fills the caches
                    warm_s.append(time.perf_counter() - t)
                page.close()
            ctx.close()

            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.goto(url)
            page.wait_for_function(CHARTS, timeout=60_000)
            page.wait_for_selector(DONE)
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            key_s = []
            for i in range(args.repeat * 2):
                key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"
                t = time.perf_counter()
                slider.press(key)  # one step of 0.01
                want = f"mask < {float(slider.input_value()):g}"
                page.wait_for_function(f"{threshold_drawn(page)}.includes({want!r})",
                                       timeout=30_000)
                page.wait_for_function(CHARTS)
                key_s.append(time.perf_counter() - t)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)

    g, r, k = (statistics.median(x) for x in (get_s, render_s, key_s))
    # Shared machines: the browser's own start-up work dominates, so load matters; say it.
    print(f"load average {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} cores)")
    print(f"first render of the demo page: median {r:.2f} s over {len(render_s)} "
          f"(target <= 3 s); bare HTTP GET {g * 1000:.0f} ms; ratio {r / max(g, 1e-9):.0f}x")
    print(f"  returning visitor (browser caches warm): median {statistics.median(warm_s):.2f} s "
          f"over {len(warm_s)}; ratio to a first visit {statistics.median(warm_s) / r:.2f}")
    print(f"slider key press to charts redrawn: median {k:.2f} s over {len(key_s)} "
          f"(target <= 0.5 s); ratio to first render {k / r:.2f}")


if __name__ == "__main__":
    main()
