"""Figure builders: the drawn numbers are the statistics, masks are drawn, rows point up."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from diagnostics.plots import figures
from diagnostics.stats.moments import compute_stats, row_mask


@pytest.fixture
def stats(spectro, labels):
    X = spectro.copy()
    X[:, 1, 2] = 5.0  # a constant pixel: SNR and amplification undefined there
    return compute_stats(X, labels=labels, n_classes=4)


def _z(fig: go.Figure, i: int = 0) -> np.ndarray:
    return np.asarray(fig.data[i].z, dtype=np.float64)


@pytest.mark.parametrize("which", ["mean", "std", "snr", "amplification"])
def test_heatmap_values_are_the_statistics(stats, which):
    fig = figures.heatmap(stats, which)
    (trace,) = fig.data
    assert isinstance(trace, go.Heatmap)
    # Sent as float32 (half the bytes to the browser): equal to float32 precision.
    np.testing.assert_allclose(_z(fig), getattr(stats, which), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(np.asarray(trace.customdata, float), getattr(stats, which),
                               rtol=1e-6, equal_nan=True)
    assert np.array_equal(np.isnan(_z(fig)), np.isnan(getattr(stats, which)))  # NaN where undefined
    np.testing.assert_array_equal(trace.x, np.arange(17))
    np.testing.assert_array_equal(trace.y, np.arange(12))
    assert which in trace.colorbar.title.text  # the colorbar says what it shows
    assert "%{customdata" in trace.hovertemplate  # hover gives the raw value
    if which in ("snr", "amplification"):
        assert np.isnan(_z(fig)[1, 2])
    json.loads(fig.to_json())  # serialisable for the browser (NaN -> null)


@pytest.mark.parametrize("which", ["mean", "std", "amplification"])
def test_log_colour_is_log10(stats, which):
    fig = figures.heatmap(stats, which, log_color=True)
    values = getattr(stats, which)
    with np.errstate(divide="ignore", invalid="ignore"):
        expect = np.where(values > 0, np.log10(values), np.nan)
    np.testing.assert_allclose(_z(fig), expect, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(np.asarray(fig.data[0].customdata, float), values, rtol=1e-6,
                               equal_nan=True)
    cb = fig.data[0].colorbar
    assert "log" in cb.title.text
    # Ticks sit at integer exponents and read as the values themselves.
    assert all(float(t) == pytest.approx(10.0 ** v) for v, t in zip(cb.tickvals, cb.ticktext))


def test_log_colour_of_zeros_is_undefined_and_signed_maps_stay_linear(rng):
    X = rng.exponential(1.0, (50, 3, 4)).astype(np.float32)
    X[:, 0, 0] = 0.0
    st = compute_stats(X)
    z = _z(figures.heatmap(st, "mean", log_color=True))
    assert np.isnan(z[st.mean <= 0]).all() and np.isfinite(z[st.mean > 0]).all()
    # A signed map (the mean of dB or MFCC features) would lose its negative half: linear.
    signed = compute_stats(rng.standard_normal((50, 3, 4)).astype(np.float32))
    fig = figures.heatmap(signed, "mean", log_color=True)
    assert fig.layout.meta["log_color"] is False
    np.testing.assert_allclose(_z(fig), signed.mean, rtol=1e-6)
    assert "log" not in fig.data[0].colorbar.title.text


def test_masked_rows_are_drawn_as_shapes(stats):
    mask = np.zeros(12, bool)
    mask[[2, 3, 7]] = True
    fig = figures.heatmap(stats, "mean", mask=mask)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(s.y0, s.y1) for s in rects] == [(1.5, 3.5), (6.5, 7.5)]
    assert all((s.x0, s.x1) == (-0.5, 16.5) and s.fillcolor == figures.MASK_FILL for s in rects)
    assert [a.text for a in fig.layout.annotations] == ["masked", "masked"]
    plain = figures.heatmap(stats, "mean")
    assert not plain.layout.shapes and not plain.layout.annotations


def test_axes_and_row_origin(stats):
    fig = figures.heatmap(stats, "snr")
    assert fig.layout.xaxis.title.text == "frame"
    assert fig.layout.yaxis.title.text == "frequency band"
    lo, hi = fig.layout.yaxis.range
    assert lo < hi and (lo, hi) == (-0.5, 11.5)  # row 0 at the bottom, as spectrograms
    img = figures.heatmap(stats, "snr", row_origin="upper", row_label="row", col_label="column")
    assert img.layout.yaxis.range[0] > img.layout.yaxis.range[1]  # images: row 0 on top
    assert (img.layout.xaxis.title.text, img.layout.yaxis.title.text) == ("column", "row")


def test_caption_is_shown(stats):
    mask = row_mask(stats.row_snr, rows=(9, 11))
    text = figures.caption("demo", stats.n, 1200, "train", mask)
    assert text == "demo · N = 240 train examples of 1,200 · 3 masked rows (9-11)"
    # the rows, not the threshold: a manual range adds rows that no threshold names
    assert figures.row_ranges(np.array([0, 1, 2, 5, 7, 9, 10, 20])) == "0-2, 5, 7, and 2 more"
    assert figures.caption("x", 5, 9, "all", np.zeros(3, bool)).endswith("no rows masked")
    for fig in (figures.heatmap(stats, "mean", caption_text=text, dataset_name="demo"),
                figures.row_snr_profile(stats, caption_text=text),
                figures.value_histogram(stats, caption_text=text),
                figures.class_means(stats, ("a", "b", "c", "d"), caption_text=text)):
        # Narrow figures break the line before the mask part; the words are the same.
        assert fig.layout.title.subtitle.text.replace("<br>", " · ") == text
        assert fig.layout.title.text
    assert "<br>" in figures.row_snr_profile(stats, caption_text=text).layout.title.subtitle.text


def test_row_snr_profile(stats):
    mask = np.zeros(12, bool)
    mask[9:] = True
    fig = figures.row_snr_profile(stats, mask=mask, threshold=0.3)
    line, kept, masked = fig.data[:3]
    np.testing.assert_array_equal(np.asarray(line.x, float), stats.row_snr)
    np.testing.assert_array_equal(masked.y, np.arange(9, 12))
    np.testing.assert_array_equal(kept.y, np.arange(9))
    assert kept.name == "kept (9)" and masked.name == "masked (3)"
    thr = next(d for d in fig.data if d.name == "mask < 0.3")  # the threshold line
    assert tuple(thr.x) == (0.3, 0.3)
    # Same rows, same orientation as the heatmaps beside it.
    assert tuple(fig.layout.yaxis.range) == (-0.5, 11.5) and fig.layout.yaxis.autorange is False
    img = figures.row_snr_profile(stats, row_origin="upper")
    assert tuple(img.layout.yaxis.range) == (11.5, -0.5)
    assert fig.layout.yaxis.title.text == "frequency band" and "SNR" not in fig.layout.yaxis.title.text
    assert "mean| / std" in fig.layout.xaxis.title.text


def test_value_histogram_counts_the_sample(stats):
    fig = figures.value_histogram(stats)
    counts = np.asarray(fig.data[0].y)
    assert counts.sum() == (stats.sample > 0).sum()
    assert fig.layout.xaxis.type == "log"  # exponential power spans decades


def test_class_means_share_one_scale(stats):
    names = ("a", "b", "c", "d")
    fig = figures.class_means(stats, names, log_color=False)
    assert len(fig.data) == 4
    for c, tr in enumerate(fig.data):
        np.testing.assert_allclose(np.asarray(tr.z, float), stats.class_means[c], rtol=1e-6,
                                   equal_nan=True)  # float32 on the wire
        assert (tr.zmin, tr.zmax) == (fig.data[0].zmin, fig.data[0].zmax)
    assert [a.text for a in fig.layout.annotations] == list(names)
    assert sum(bool(tr.showscale) for tr in fig.data) == 1


def test_curves_figure_draws_the_mean_and_min_max_band_of_each_config():
    curves = {"none": [[0.5, 0.6, 0.7], [0.3, 0.4]], "per_pixel": [[0.2, 0.2, 0.4]],
              "empty": [[]]}
    fig = figures.curves_figure(curves, caption_text="cap", dataset_name="demo")
    assert fig.layout.title.text == "Validation accuracy — demo"
    assert fig.layout.title.subtitle.text == "cap"
    band, mean = fig.data[0], fig.data[1]
    assert mean.name == "none (2 runs)"
    np.testing.assert_allclose(mean.y, [40.0, 50.0, 70.0])  # ragged: point 3 has one seed
    np.testing.assert_allclose(band.y, [50, 60, 70, 70, 40, 30])  # max forwards, min back
    assert [t.name for t in fig.data if t.showlegend is not False] == \
        ["none (2 runs)", "per_pixel (1 run)"]  # nothing for a config with no points
    smooth = figures.curves_figure({"a": [[0.0, 1.0, 0.0, 1.0]]}, smooth=2)
    np.testing.assert_allclose(smooth.data[1].y, [50.0, 50.0, 50.0])


def test_results_figure_marks_each_mean_with_its_interval():
    from diagnostics.results import compare

    acc = {"none": {0: 0.8, 1: 0.9}, "per_pixel": {0: 0.6, 1: 0.7}, "db": {0: None, 1: None}}
    res = compare(list(acc), acc)
    fig = figures.results_figure(res, caption_text="cap", dataset_name="demo")
    assert fig.layout.title.text == "Test accuracy — demo"
    means = {t.y[0]: t.x[0] for t in fig.data if t.mode == "markers"}
    assert means == pytest.approx({"none": 85.0, "per_pixel": 65.0})  # nothing for "db"
    none = next(t for t in fig.data if t.y[0] == "none" and t.mode == "markers")
    lo, hi = res.configs[0].ci95
    assert none.error_x.array[0] == pytest.approx(100 * hi - 85.0)
    assert none.error_x.arrayminus[0] == pytest.approx(85.0 - 100 * lo)
    assert "over 2 runs" in none.hovertemplate
    one = figures.results_figure(compare(["none"], {"none": {0: 0.8}}))
    assert "over 1 run<" in one.data[0].hovertemplate  # never "1 seeds"


def _stops(fig_or_trace):
    cs = fig_or_trace.colorscale
    return [c for _, c in cs]


@pytest.mark.parametrize("name", ["Magma", "Inferno", "Viridis", "Cividis", "Plasma"])
def test_no_colour_scale_carries_streamlits_placeholder_colours(name):
    import re

    from plotly.colors import sequential

    from diagnostics.plots.figures import safe_colorscale

    stops = [c for _, c in safe_colorscale(name)]
    assert len(stops) == len(getattr(sequential, name))
    assert not any(re.fullmatch(r"#0000[0-9a-fA-F]{2}", c) for c in stops)
    # ... and the scale still looks the same: every stop within one step of plotly's.
    for a, b in zip(stops, getattr(sequential, name)):
        assert all(abs(int(a[i:i + 2], 16) - int(b[i:i + 2], 16)) <= 1 for i in (1, 3, 5))


def test_colour_range_comes_from_the_kept_rows(stats):
    mask = np.zeros(stats.mean.shape[0], bool)
    mask[-3:] = True
    kept = figures.heatmap(stats, "mean", mask=mask).data[0]
    assert kept.zmin == pytest.approx(float(stats.mean[~mask].min()), rel=1e-6)
    assert kept.zmax == pytest.approx(float(stats.mean[~mask].max()), rel=1e-6)
    every = figures.heatmap(stats, "mean", mask=mask, range_from="all").data[0]
    assert every.zmin == pytest.approx(float(stats.mean.min()), rel=1e-6)


def test_class_means_have_axis_titles_and_washed_out_masked_rows(stats):
    H = stats.mean.shape[0]
    mask = np.zeros(H, bool)
    mask[:2] = True
    fig = figures.class_means(stats, ("a", "b", "c", "d"), mask=mask,
                              row_label="frequency band", col_label="frame")
    layout = fig.to_plotly_json()["layout"]
    titles = {v["title"]["text"] for k, v in layout.items()
              if k.startswith(("xaxis", "yaxis")) and "title" in v}
    assert titles == {"frequency band", "frame"}
    assert len(fig.layout.shapes) == 4 and all(s.fillcolor == figures.MASK_FILL
                                               for s in fig.layout.shapes)


def test_row_snr_threshold_is_a_legend_entry_and_eta_axis_has_a_title(stats):
    fig = figures.row_snr_profile(stats, threshold=0.2)
    assert not fig.layout.annotations
    assert any(t.name == "mask < 0.2" for t in fig.data)
    if stats.band_info is not None:
        ax = fig.layout.xaxis2
        assert ax.title.text == "class information η²" and ax.dtick in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def test_the_colourbar_says_when_its_range_comes_from_the_kept_rows(stats):
    mask = np.zeros(stats.mean.shape[0], bool)
    mask[-3:] = True
    assert figures.heatmap(stats, "mean", mask=mask).data[0].colorbar.title.text.endswith(
        ", kept rows")
    assert "kept" not in figures.heatmap(stats, "mean").data[0].colorbar.title.text
