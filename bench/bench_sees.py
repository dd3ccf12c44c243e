"""Benchmark of the "What the network sees" tab in a real browser (Debian chromium, Playwright).

Measures, against the tab's first render in the same run (demo, 6 examples x 4 configs):

1. a config change: removing a config from the multiselect, and adding it back, until the
   grid's column titles show the new configs and the script is idle (target <= 0.5 s); the
   configs were fitted before (their fits are cached by dataset id + config);
2. the colour option (own scale <-> shared), a redraw of the same grid;
3. baseline: the Statistics page's mask-slider key press to its charts redrawn (the house's
   0.5 s redraw target, bench_browser.py), so the ratio speaks where the load varies;
4. a first fit: adding a config never fitted in this server (reported apart: it adds the
   fit on the training split once; every later change to it is case 1).

    python bench/bench_sees.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_browser import ARGS, CHARTS, DONE, start_server, threshold_drawn  # noqa: E402

TAB = "/?tab=What+the+network+sees"
TITLES = ("Array.from(document.querySelectorAll('.annotation-text')).map(e => e.textContent)"
          ".filter(t => t !== 'dropped')")


def configs_drawn(page, want: list[str]) -> None:
    wanted = json.dumps(json.dumps(want, separators=(",", ":")))  # a JS string literal
    page.wait_for_function(f"JSON.stringify({TITLES}) === {wanted}", timeout=60_000)
    page.wait_for_selector(DONE, timeout=60_000)


def remove(page, name: str) -> None:
    page.get_by_role("button", name=f"Remove {name}", exact=True).click()


def add(page, name: str) -> None:
    page.get_by_role("combobox", name="Configs (columns)").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="normscope-bench-sees-")
    proc, url = start_server(home)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.goto(url + TAB)  # warm: statistics and the default fits are cached
            configs = ["none", "per_pixel", "per_pixel@mask", "db+per_row"]
            configs_drawn(page, configs)
            page.close()

            first = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1500, "height": 1900})
                t = time.perf_counter()
                page.goto(url + TAB)
                configs_drawn(page, configs)
                first.append(time.perf_counter() - t)
                page.close()

            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.goto(url + TAB)
            configs_drawn(page, configs)
            change = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                remove(page, "per_pixel")
                configs_drawn(page, [c for c in configs if c != "per_pixel"])
                change.append(time.perf_counter() - t)
                t0 = time.perf_counter()
                add(page, "per_pixel")
                configs = [c for c in configs if c != "per_pixel"] + ["per_pixel"]
                configs_drawn(page, configs)
                change.append(time.perf_counter() - t0)
            colour = []
            for i in range(args.repeat * 2):
                label = "One shared scale" if i % 2 == 0 else "Own scale per panel"
                want = "one colour scale" if i % 2 == 0 else "each panel on its own"
                t = time.perf_counter()
                page.get_by_text(label, exact=True).click()
                page.wait_for_function(
                    "Array.from(document.querySelectorAll('.gtitle-subtitle, .gtitle'))"
                    f".some(e => e.textContent.includes({want!r}))", timeout=60_000)
                page.wait_for_selector(DONE, timeout=60_000)
                colour.append(time.perf_counter() - t)
            # Baseline in the same run: the Statistics page's mask slider (the house's redraw
            # target of 0.5 s), one key press to its charts redrawn.
            page.goto(url + "/?profiles=true")  # the row-SNR chart's threshold legend entry
            page.wait_for_function(CHARTS, timeout=60_000)
            page.wait_for_selector(DONE)
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            key_s = []
            for i in range(args.repeat * 2):
                t = time.perf_counter()
                slider.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
                want = f"mask < {float(slider.input_value()):g}"
                page.wait_for_function(f"{threshold_drawn(page)}.includes({want!r})", timeout=60_000)
                page.wait_for_function(CHARTS)
                key_s.append(time.perf_counter() - t)
            page.goto(url + TAB)  # a new session: the default configs again
            configs = ["none", "per_pixel", "per_pixel@mask", "db+per_row"]
            configs_drawn(page, configs)
            cold = {}
            for name in ("global", "robust"):
                t = time.perf_counter()
                add(page, name)
                configs = configs + [name]
                configs_drawn(page, configs)
                cold[name] = time.perf_counter() - t
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)

    f, c, k, s = (statistics.median(x) for x in (first, change, colour, key_s))
    print(f"load average {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} cores)")
    print(f"first render of the tab (6 examples x 4 configs, fits cached): median {f:.2f} s "
          f"over {len(first)}")
    print(f"config change (remove or add back a fitted config) to grid redrawn: median {c:.2f} s "
          f"over {len(change)}, max {max(change):.2f} s (target <= 0.5 s); ratio to first "
          f"render {c / f:.2f}")
    print(f"colour option (own <-> shared) to grid redrawn: median {k:.2f} s over {len(colour)}; "
          f"ratio to first render {k / f:.2f}")
    print(f"baseline, Statistics page mask slider key press to charts redrawn: median {s:.2f} s "
          f"over {len(key_s)}; config change / slider ratio {c / s:.2f}")
    print("first fit of a new config, added to the grid: " +
          ", ".join(f"{n} {s:.2f} s" for n, s in cold.items()))


if __name__ == "__main__":
    main()
