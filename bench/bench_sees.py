"""Benchmark of the "What the network sees" tab in a real browser (Debian chromium, Playwright).

Measures, in one run (demo, 6 examples x 4 configs):

1. a config change: removing a config from the multiselect, and adding it back (timed from
   the choice in the open dropdown), each timed until the rerun it caused has finished, the grid's column titles show the new configs and
   two frames have been painted (target <= 0.5 s); the configs were fitted before (their fits
   are cached by dataset id + config);
2. the colour option (own scale <-> shared), a redraw of the same grid;
3. baselines measured the same way in the same run, so that the machine's load cancels out:
   a key press on a bare slider of Streamlit's own empty page (a second server running a
   one-slider script: a rerun and a round trip, nothing drawn), and the Statistics page's
   mask-slider key press that masks a row, to its four heatmaps redrawn (bench_browser.py);
4. a first fit: adding a config never fitted in this server (reported apart: it adds the
   fit on the training split once; every later change to it is case 1).

Also prints the server-side time of one rerun's figure building and the JSON size of the
grid's charts the browser receives (one per config, and the colourbar).

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
from bench_browser import (ARGS, CHARTS, DONE, EMPTY_SCRIPT, ROOT, RERUN_DONE,  # noqa: E402
                           TWO_FRAMES, WATCH_RERUNS, bare_slider, key_presses, masked_caption,
                           slider_points, start_server)

TAB = "/?tab=What+the+network+sees"
VIEWPORT = {"width": 1500, "height": 1900}
#: The grid's column titles, left to right (one chart per config in the ``sees_grid`` container).
TITLES = "Array.from(document.querySelectorAll('.st-key-sees_grid .gtitle')).map(e => e.textContent)"
DEFAULT = ["none", "per_pixel", "per_pixel@mask", "db+per_row"]


def titles_are(want: list[str]) -> str:
    wanted = json.dumps(json.dumps(want, separators=(",", ":")))  # a JS string literal
    return f"JSON.stringify({TITLES}) === {wanted}"


def colour_drawn(*, shared: bool, panels: int) -> str:
    """JS: the colourbar reads the mode, and every column shows its panels' ranges (own) or
    none (shared)."""
    bar = "value after normalization" if shared else "its own min"
    ranges = ("Array.from(document.querySelectorAll('.st-key-sees_grid .annotation-text'))"
              ".filter(e => e.textContent.includes(' … ')).length")
    return (f"{ranges} === {0 if shared else panels} && Array.from(document.querySelectorAll("
            f"'.cbtitle')).some(e => e.textContent.includes({bar!r}))")


def configs_drawn(page, want: list[str]) -> None:
    page.wait_for_function(titles_are(want), timeout=60_000)
    page.wait_for_selector(DONE, timeout=60_000)


def timed(page, act, drawn: str) -> float:
    """Seconds from ``act()`` until its rerun finished, ``drawn`` holds and two frames painted."""
    page.evaluate(WATCH_RERUNS)
    t = time.perf_counter()
    act()
    page.wait_for_function(f"{RERUN_DONE} && ({drawn})", timeout=60_000)
    page.evaluate(TWO_FRAMES)
    return time.perf_counter() - t


def remove(page, name: str) -> None:
    page.get_by_role("button", name=f"Remove {name}", exact=True).click()


def open_configs(page) -> None:
    """Open the configs' dropdown (before the clock starts: the change is the choice in it)."""
    page.get_by_role("combobox", name="Configs (columns)").click()
    page.get_by_role("option").first.wait_for()


def add(page, name: str) -> None:
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def server_side() -> tuple[float, int, int]:
    """Seconds to build the live grid (a chart per config and the colourbar) and the profile
    of the default view with cached fits (median of 5), and the JSON the browser receives:
    one column's chart, and all of the grid's charts."""
    sys.path.insert(0, str(ROOT))
    from diagnostics import sees
    from diagnostics.data.ingest import load_dataset
    from diagnostics.plots.sees import (band_profile_figure, panel_ranges,
                                        sees_colourbar_figure, sees_column_figure)

    ds = load_dataset("demo")
    fits = [sees.fit_config(ds, c, mask_snr=0.2) for c in DEFAULT]
    ex = sees.pick_examples(ds)
    labels = [lab for _, lab in ex]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        views = [sees.network_view(ds, f, [i for i, _ in ex]) for f in fits]
        ranges = panel_ranges(views)
        sizes = [len(sees_column_figure(v, labels, r, first=k == 0).to_json())
                 for k, (v, r) in enumerate(zip(views, ranges))]
        sizes.append(len(sees_colourbar_figure(len(labels), None).to_json()))
        band_profile_figure(views)
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(sizes[:-1]), sum(sizes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="normscope-bench-sees-")
    empty_script = Path(home) / "empty.py"
    empty_script.write_text(EMPTY_SCRIPT)
    load_before = os.getloadavg()
    proc, url = start_server(home, ROOT / "app.py")
    empty, empty_url = start_server(home, empty_script)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + TAB)  # warm: statistics and the default fits are cached
            configs_drawn(page, DEFAULT)
            page.close()

            first = []
            for _ in range(3):
                page = browser.new_page(viewport=VIEWPORT)
                t = time.perf_counter()
                page.goto(url + TAB)
                configs_drawn(page, DEFAULT)
                first.append(time.perf_counter() - t)
                page.close()

            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + TAB)
            configs = list(DEFAULT)
            configs_drawn(page, configs)
            change, colour = [], []
            for _ in range(args.repeat):
                configs = [c for c in configs if c != "per_pixel"]
                change.append(timed(page, lambda: remove(page, "per_pixel"), titles_are(configs)))
                configs = configs + ["per_pixel"]
                open_configs(page)
                change.append(timed(page, lambda: add(page, "per_pixel"), titles_are(configs)))
            for i in range(args.repeat * 2):
                label = "One shared scale" if i % 2 == 0 else "Own scale per panel"
                colour.append(timed(page, lambda: page.get_by_text(label, exact=True).click(),
                                    colour_drawn(shared=i % 2 == 0, panels=6 * len(configs))))
            page.close()

            # Baselines in the same run.
            bare = bare_slider(browser, empty_url, args.repeat * 2)
            cross, _, snr = slider_points()
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/?mask_snr={cross:g}")
            page.wait_for_function(CHARTS, timeout=120_000)
            page.wait_for_selector(DONE)
            stat_key = key_presses(page, args.repeat * 2, masked_caption(snr))
            page.close()

            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + TAB)  # a new session: the default configs again
            configs = list(DEFAULT)
            configs_drawn(page, configs)
            cold = {}
            for name in ("global", "robust"):
                configs = configs + [name]
                open_configs(page)
                cold[name] = timed(page, lambda: add(page, name), titles_are(configs))
            browser.close()
    finally:
        for pr in (proc, empty):
            pr.terminate()
            pr.wait(10)

    build, column, grid = server_side()
    f, c, k, b, s = (statistics.median(x) for x in (first, change, colour, bare, stat_key))
    la = os.getloadavg()
    print(f"load average {load_before[0]:.2f} before, {la[0]:.2f} at the end "
          f"({os.cpu_count()} cores); medians")
    print(f"first render of the tab (6 examples x 4 configs, fits cached): {f:.2f} s "
          f"over {len(first)}")
    print(f"config change (remove or add back a fitted config) to grid redrawn: {c:.2f} s "
          f"over {len(change)}, max {max(change):.2f} s (target <= 0.5 s); removing "
          f"{statistics.median(change[0::2]):.2f} s, adding back {statistics.median(change[1::2]):.2f} s")
    print(f"colour option (own <-> shared) to grid redrawn: {k:.2f} s over {len(colour)}")
    print(f"baseline, a bare slider's rerun on Streamlit's empty page: {b:.2f} s over {len(bare)}; "
          f"ratios config change / bare {c / b:.2f}, colour / bare {k / b:.2f}")
    print(f"baseline, Statistics page mask-slider press to its four heatmaps redrawn: {s:.2f} s "
          f"over {len(stat_key)}; ratio config change / slider {c / s:.2f}")
    print("first fit of a new config, added to the grid: " +
          ", ".join(f"{n} {v:.2f} s" for n, v in cold.items()))
    print(f"server side, building the default grid and profile (fits cached): {build * 1e3:.0f} ms; "
          f"JSON of one config's column {column / 1e3:.0f} kB, of the whole grid {grid / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
