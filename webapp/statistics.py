"""The Statistics tab: summary metrics, findings, the six figures and the per-class maps."""

from __future__ import annotations

import numpy as np
import streamlit as st

from diagnostics.data import store
from diagnostics.data.dataset import Dataset
from diagnostics.plots import figures
from diagnostics.stats.findings import find, ranges
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.moments import energy_share, format_share
from webapp.cache import heatmap_figure, histogram_bins
from webapp.charts import chart, image_buttons
from webapp.state import BIND
from webapp.text import md
from webapp.report_view import report_download_ui
from webapp.shift_view import shift_ui

SEVERITY_BOX = {"error": st.error, "warning": st.warning, "info": st.info}


def summary_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float) -> None:
    H, W = stats.shape
    c = st.columns(5)
    c[0].metric("Examples", f"{stats.n:,}", help=f"of {ds.n:,} in all")
    c[1].metric("Shape", f"{H} × {W}")
    c[2].metric("Classes", len(ds.class_names) or "none")
    lo, hi = float(np.nanmin(stats.min)), float(np.nanmax(stats.max))
    lo_text = "0" if 0 <= lo < 1e-6 * max(hi, 1e-300) else f"{lo:.3g}"
    c[3].metric("Value range", f"{lo_text} … {hi:.4g}", help=f"exact minimum {lo:.6g}")
    amp = np.nanmax(stats.amplification) if np.isfinite(stats.amplification).any() else None
    c[4].metric("Max amplification", "n/a" if amp is None else f"{amp:,.0f}×",
                help="Noise amplification: how much per-pixel z-scoring inflates the quietest "
                     "pixel relative to one global scale.")
    share_ = energy_share(stats, mask)
    label = ds.row_noun
    if mask.any():
        st.markdown(
            f"**{int(mask.sum())} of {H} {label}s masked** ({label}s {ranges(np.flatnonzero(mask))}), "
            f"holding **{format_share(share_)}** of the summed \\|mean\\| (for power, of the mean energy)."
        )
    else:
        st.markdown(f"**No {label}s masked** at SNR threshold {threshold:g}.")
    for note in ds.notes:
        st.warning(md(note))
    skipped = store.dataset_meta(ds.id).get("skipped", []) if store.is_registered(ds.id) else []
    if skipped:
        with st.expander(f"{len(skipped)} clip(s) could not be read and were skipped"):
            st.dataframe([{"file": f, "reason": r} for f, r in skipped], hide_index=True)


def findings_ui(stats: PixelStats, threshold: float, ds: Dataset) -> None:
    st.subheader("Findings")
    for f in find(stats, mask_snr=threshold, row_label=ds.row_noun):
        SEVERITY_BOX[f.severity](f"**{f.code}** — {md(f.message)}")


def heatmaps_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float,
                log_color: bool, scale: str, on: str, report_view: bool) -> None:
    """The four maps, two by two (download buttons unless in report view), then the row-SNR
    profile and the value distribution in an expander that runs only when open.

    The first screen is what costs: the browser draws every chart the script sends, each
    a few hundred milliseconds on a busy machine (bench/bench_browser.py), so the side figures
    wait to be asked for.  The expander's state is in the URL (``profiles``), so a link and
    report view show what their sender saw.
    """
    cap = figures.caption(ds.name, stats.n, ds.n, on if on == "train" else "(all)", mask)
    labels = (ds.name, ds.row_label, ds.col_label, ds.row_origin)
    rows = tuple(np.flatnonzero(mask).tolist())
    for row in (("mean", "std"), ("snr", "amplification")):
        for col, which in zip(st.columns(2), row):
            fig = heatmap_figure(ds.id, on, which, rows, log_color, scale or "", cap, labels,
                                 stats)
            with col:
                _figure(fig, ds, on, which, mask, threshold, log_color, scale, report_view)
    side = st.expander("Row-SNR profile (where the mask threshold cuts), shift per "
                       f"{ds.row_noun} and value distribution", key="profiles", bind=BIND,
                       icon=":material/bar_chart:")
    with side:
        if side.open:
            # the row-SNR profile beside the shift
            shift_ui(ds, stats, mask, threshold, on, report_view=report_view)
            fig = figures.value_histogram(stats, caption_text=cap, dataset_name=ds.name,
                                          bins=histogram_bins(ds.id, on, stats))
            with st.columns(2)[0]:
                _figure(fig, ds, on, "values", mask, threshold, log_color, scale, report_view)


def _figure(fig, ds: Dataset, on: str, which: str, mask: np.ndarray, threshold: float,
            log_color: bool, scale: str, report_view: bool) -> None:
    chart(fig, f"normscope-{ds.name}-{which}", f"chart_{which}")
    if not report_view:
        image_buttons(fig, ds, on, which, mask, threshold, log_color, scale)


def class_maps_ui(ds: Dataset, stats: PixelStats, on: str, mask: np.ndarray, threshold: float,
                  log_color: bool, scale: str, report_view: bool = False) -> None:
    """Per-class mean maps behind a toggle (labelled datasets of two classes or more)."""
    if stats.class_means is None or len(ds.class_names) < 2:
        return
    if not st.toggle(f"Show per-class mean maps ({len(ds.class_names)} classes)", key="class_maps",
                     help="One map per class on a shared colour scale: where each class puts "
                          "its energy."):
        return
    with st.container():
        cap = figures.caption(ds.name, stats.n, ds.n, on, mask)
        fig = figures.class_means(stats, ds.class_names, log_color=log_color, colorscale=scale,
                                  row_label=ds.row_label, col_label=ds.col_label,
                                  row_origin=ds.row_origin, caption_text=cap,
                                  dataset_name=ds.name, mask=mask)
        chart(fig, f"normscope-{ds.name}-class-means", "chart_class_means")
        if not report_view:
            image_buttons(fig, ds, on, "class_means", mask, threshold, log_color, scale)


def statistics_page(ds: Dataset, stats: PixelStats, on: str, mask: np.ndarray, threshold: float,
                    log_color: bool, scale: str, report_view: bool) -> None:
    summary_ui(ds, stats, mask, threshold)
    findings_ui(stats, threshold, ds)
    heatmaps_ui(ds, stats, mask, threshold, log_color, scale, on, report_view)
    if not report_view:  # a toggle is a control: report view leaves it out
        class_maps_ui(ds, stats, on, mask, threshold, log_color, scale, report_view)
    if not report_view:
        report_download_ui(ds, stats, threshold, on, log_color, scale, mask)
