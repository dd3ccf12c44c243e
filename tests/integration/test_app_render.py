"""AppTest: the statistics maps come from a cache (webapp.cache.heatmap_figure) that must never
serve a stale picture: after every change of mask, colour scale or log colour the four maps
are exactly what a fresh figures.heatmap builds for that state, and a state seen before gives
the same spec again (the browser then keeps the chart instead of drawing it anew)."""

import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from diagnostics.data.ingest import load_dataset
from diagnostics.plots import figures
from diagnostics.stats import summary
from diagnostics.stats.moments import row_mask

APP = str(Path(__file__).resolve().parents[2] / "app.py")
MAPS = ("mean", "std", "snr", "amplification")


def _maps(at) -> list[dict]:
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return [_rounded(s) for s in specs if s["data"] and s["data"][0]["type"] == "heatmap"]


def _rounded(spec: dict) -> dict:
    # The page's statistics and the test's are computed apart: their colour range may
    # differ in the last bit of a float64.
    for key in ("zmin", "zmax"):
        if spec["data"][0].get(key) is not None:
            spec["data"][0][key] = float(f"{spec['data'][0][key]:.12g}")
    return spec


def _fresh(stats, ds, threshold: float, log_color: bool, scale: str) -> list[dict]:
    """The oracle: the four maps built without any cache, in the page's order."""
    mask = row_mask(stats.row_snr, threshold=threshold)
    cap = figures.caption(ds.name, stats.n, ds.n, "train", mask)
    return [_rounded(json.loads(figures.heatmap(
        stats, w, mask=mask, log_color=log_color, colorscale=scale, row_label=ds.row_label,
        col_label=ds.col_label, row_origin=ds.row_origin, caption_text=cap,
        dataset_name=ds.name).to_json())) for w in MAPS]


def test_cached_maps_follow_every_view_change(home):
    ds = load_dataset("demo")
    stats = summary.dataset_stats(ds, on="train")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    snr = np.sort(stats.row_snr[np.isfinite(stats.row_snr)])
    # Two thresholds that mask different rows (between distinct row SNRs).
    a, b = (round(float(v), 2) for v in (snr[5] + 1e-3, snr[20] + 1e-3))
    assert row_mask(stats.row_snr, threshold=a).sum() != row_mask(stats.row_snr, threshold=b).sum()
    seen = {}
    steps = [(a, True, "Viridis"), (b, True, "Viridis"), (a, True, "Viridis"),
             (a, False, "Viridis"), (a, False, "Magma"), (b, False, "Magma"), (a, True, "Viridis")]
    for threshold, log_color, scale in steps:
        at.slider(key="mask_snr").set_value(threshold)
        at.checkbox(key="log_color").set_value(log_color)
        at.selectbox(key="colorscale").set_value(scale)
        at.run()
        assert not at.exception, at.exception
        got = _maps(at)
        want = _fresh(stats, ds, threshold, log_color, scale)
        assert got == want, (threshold, log_color, scale)
        state = (threshold, log_color, scale)
        if state in seen:  # the same view again: the same bytes to the browser
            assert [el.proto.spec for el in at.get("plotly_chart")][:4] == seen[state]
        seen[state] = [el.proto.spec for el in at.get("plotly_chart")][:4]

