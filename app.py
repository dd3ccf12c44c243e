"""NormScope dashboard: ``streamlit run app.py``.

Wiring only: widgets in ``*_ui()`` functions that return plain values, cached loaders keyed by
small ids, and calls into ``diagnostics`` (numpy) and ``models`` (torch).  No math here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import streamlit as st

from diagnostics import figures
from diagnostics.datasets import BUILTINS, Dataset, load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.findings import DEFAULT_MASK_SNR, find, ranges
from diagnostics.stats import PixelStats, energy_share, row_mask
from diagnostics.summary import dataset_stats

SEVERITY_BOX = {"error": st.error, "warning": st.warning, "info": st.info}
PLOT_CONFIG = {"displaylogo": False}


def data_root() -> Path:
    """Server-side files may only come from under this folder (never from a URL)."""
    return Path(os.environ.get("NORMSCOPE_DATA_ROOT", os.getcwd())).resolve()


def resolve_server_path(text: str) -> Path:
    """A path typed by the user, checked to lie under the data root."""
    root = data_root()
    p = (root / text.strip()).resolve()
    if not p.is_relative_to(root):
        raise NormScopeError(
            f"{text!r} lies outside the data root {root}; put the file under it or start the "
            "server with NORMSCOPE_DATA_ROOT set to its folder"
        )
    return p


# --- cached loaders: keyed by small strings, never by arrays -------------------------------

@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def get_dataset(spec: str, labels: str | None = None) -> Dataset:
    # A Dataset holds a read-only array (often a memmap): safe to share between sessions.
    return load_dataset(spec, labels=labels)


@st.cache_data(show_spinner="Computing per-pixel statistics…", max_entries=32)
def get_stats(dataset_id: str, on: str, _ds: Dataset) -> PixelStats:
    return dataset_stats(_ds, on=on)


# --- UI pieces -------------------------------------------------------------------------------

def dataset_ui() -> tuple[Dataset, str]:
    """Sidebar: choose a dataset; on bad input show the error and keep the previous one."""
    st.sidebar.header("Dataset")
    choice = st.sidebar.selectbox(
        "Source", [*BUILTINS, "file on the server"], key="source",
        help="demo: synthetic linear-power spectrograms that show the problem; "
             "digits: scikit-learn's 8x8 handwritten digits.",
    )
    if choice == "file on the server":
        path = st.sidebar.text_input(
            "Array file (.npy or .npz)", key="server_path",
            help=f"A path under the data root {data_root()}.",
        )
        labels = st.sidebar.text_input("Labels (.npy, optional)", key="server_labels")
        if path:
            try:
                p = resolve_server_path(path)
                lab = str(resolve_server_path(labels)) if labels else None
                ds = get_dataset(str(p), lab)
                st.session_state["spec"] = (str(p), lab)
            except NormScopeError as exc:
                st.sidebar.error(str(exc))
    elif choice in BUILTINS:
        st.session_state["spec"] = (choice, None)
    spec, lab = st.session_state.get("spec", ("demo", None))
    try:
        ds = get_dataset(spec, lab)
    except NormScopeError as exc:  # the file changed under us: fall back to the demo
        st.error(str(exc))
        st.session_state["spec"] = ("demo", None)
        ds = get_dataset("demo")
    on = st.sidebar.radio("Statistics over", ["train", "all"], horizontal=True, key="on",
                          help="The training split (70%, stratified, seed 0) or every example.")
    return ds, on


def mask_ui(stats: PixelStats, ds: Dataset) -> tuple[np.ndarray, float]:
    st.sidebar.header("Row mask")
    top = float(np.nanmax(stats.row_snr)) if np.isfinite(stats.row_snr).any() else 1.0
    top = max(round(top * 1.05 + 0.005, 2), DEFAULT_MASK_SNR + 0.01)
    threshold = st.sidebar.slider(
        "Mask rows with SNR below", min_value=0.0, max_value=top, value=DEFAULT_MASK_SNR,
        step=0.01, key="mask_snr",
        help="Row SNR = median over the row of |mean| / std. Rows under the threshold are "
             "held out (drawn washed out). 0 masks nothing.",
    )
    rows = None
    if st.sidebar.checkbox(f"Also mask a range of {ds.row_label}s", key="mask_range_on"):
        H = ds.shape[0]
        rows = st.sidebar.slider(f"{ds.row_label}s to mask", 0, H - 1, (H - 1, H - 1), key="mask_range")
    return row_mask(stats.row_snr, threshold=threshold, rows=rows), threshold


def options_ui() -> tuple[bool, str]:
    st.sidebar.header("Heatmaps")
    log_color = st.sidebar.checkbox("Log colour scale", value=True, key="log_color",
                                    help="Colour by log10: linear power spans decades.")
    scale = st.sidebar.selectbox("Colour scale", figures.COLORSCALES, key="colorscale")
    return log_color, scale


def summary_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float) -> None:
    H, W = stats.shape
    c = st.columns(5)
    c[0].metric("Examples", f"{stats.n:,}", help=f"of {ds.n:,} in all")
    c[1].metric("Shape", f"{H} × {W}")
    c[2].metric("Classes", len(ds.class_names) or "none")
    lo, hi = float(np.nanmin(stats.min)), float(np.nanmax(stats.max))
    lo_text = "0" if lo >= 0 and lo < 1e-6 * max(hi, 1e-300) else f"{lo:.3g}"
    c[3].metric("Value range", f"{lo_text} … {hi:.4g}", help=f"exact minimum {lo:.6g}")
    amp = np.nanmax(stats.amplification) if np.isfinite(stats.amplification).any() else float("nan")
    c[4].metric("Max noise amplification", f"{amp:,.0f}×",
                help="How much per-pixel z-scoring inflates the quietest pixel relative to "
                     "one global scale.")
    share = energy_share(stats, mask)
    label = "band" if ds.row_label == "frequency band" else ds.row_label
    if mask.any():
        st.markdown(
            f"**{int(mask.sum())} of {H} {label}s masked** ({label}s {ranges(np.flatnonzero(mask))}), "
            f"holding **{share:.1%}** of the signal energy (sum of per-pixel mean)."
        )
    else:
        st.markdown(f"**No {label}s masked** at SNR threshold {threshold:g}.")
    for note in ds.notes:
        st.warning(note)


def findings_ui(stats: PixelStats, threshold: float, ds: Dataset) -> None:
    st.subheader("Findings")
    label = "band" if ds.row_label == "frequency band" else ds.row_label
    for f in find(stats, mask_snr=threshold, row_label=label):
        SEVERITY_BOX[f.severity](f"**{f.code}** — {f.message}")


def chart(fig, name: str, key: str) -> None:
    config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 3, "filename": name}}
    st.plotly_chart(fig, key=key, config=config)


def heatmaps_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float,
                log_color: bool, scale: str, on: str) -> None:
    cap = figures.caption(ds.name, stats.n, ds.n, on if on == "train" else "(all)", mask, threshold)
    common = dict(mask=mask, row_label=ds.row_label, row_origin=ds.row_origin,
                  caption_text=cap, dataset_name=ds.name)
    grid = st.columns([3, 3, 2])
    for col, which in zip(grid[:2], ("mean", "std")):
        with col:
            fig = figures.heatmap(stats, which, log_color=log_color, colorscale=scale,
                                  col_label=ds.col_label, **common)
            chart(fig, f"{ds.name}-{which}", f"heat_{which}")
    with grid[2]:
        chart(figures.row_snr_profile(stats, threshold=threshold, **common),
              f"{ds.name}-row-snr", "row_snr")
    grid = st.columns([3, 3, 2])
    for col, which in zip(grid[:2], ("snr", "amplification")):
        with col:
            fig = figures.heatmap(stats, which, log_color=log_color, colorscale=scale,
                                  col_label=ds.col_label, **common)
            chart(fig, f"{ds.name}-{which}", f"heat_{which}")
    with grid[2]:
        chart(figures.value_histogram(stats, caption_text=cap, dataset_name=ds.name),
              f"{ds.name}-values", "values")


def statistics_page(ds: Dataset, stats: PixelStats, on: str, mask, threshold, log_color, scale) -> None:
    summary_ui(ds, stats, mask, threshold)
    findings_ui(stats, threshold, ds)
    heatmaps_ui(ds, stats, mask, threshold, log_color, scale, on)


def main() -> None:
    st.set_page_config(page_title="NormScope", layout="wide")
    st.title("NormScope")
    st.caption("Why does normalizing my inputs make training worse? Per-pixel statistics, "
               "noise amplification and low-SNR rows of your training split.")
    ds, on = dataset_ui()
    stats = get_stats(ds.id, on, ds)
    mask, threshold = mask_ui(stats, ds)
    log_color, scale = options_ui()
    statistics_page(ds, stats, on, mask, threshold, log_color, scale)


main()
