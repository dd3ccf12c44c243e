"""NormScope dashboard: ``streamlit run app.py``.

Wiring only: widgets in ``*_ui()`` functions that return plain values, cached loaders keyed by
small ids, and calls into ``diagnostics`` (numpy) and ``models`` (torch).  No math here.

The view lives in the URL: widgets are bound to query parameters (``dataset``, ``mask_snr``,
``tab``, ``on``, ``log_color``, ``colorscale``, ``report``, ``configs``, ``runs``), so a link
reproduces what its sender saw.  Parameters are validated before the widgets read them; a bad
one gives a notice and the default.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import streamlit as st

from diagnostics import figures, report, share
from diagnostics.datasets import BUILTINS, Dataset, load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.findings import DEFAULT_MASK_SNR, find, ranges
from diagnostics.stats import PixelStats, energy_share, row_mask
from diagnostics.summary import dataset_stats

SEVERITY_BOX = {"error": st.error, "warning": st.warning, "info": st.info}
PLOT_CONFIG = {"displaylogo": False}
MASK_MAX = 5.0  # slider range for the row-SNR threshold (row SNRs above ~3 are rare)
BIND = "query-params"


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


@st.cache_data(show_spinner=False, max_entries=64)
def figure_image(dataset_id: str, on: str, which: str, fmt: str, mask_key: tuple, log_color: bool,
                 colorscale: str, _fig) -> bytes:
    # kaleido drives the system chromium; ~1-2 s an image, so only on click and cached.
    return _fig.to_image(format=fmt, scale=3 if fmt == "png" else 1, width=900, height=560)


def kaleido_browser() -> str | None:
    """The chromium kaleido would use, or None (static export is then unavailable)."""
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


# --- URL state --------------------------------------------------------------------------------

def dataset_ids() -> dict[str, str]:
    """Datasets a link may name: id -> display name (built-ins and registered ones)."""
    ids = {b: b for b in BUILTINS}
    ids.update(st.session_state.get("opened", {}))
    return ids


def url_notices() -> None:
    """On a session's first run, check the link's parameters and keep notices for bad ones."""
    if "url_checked" in st.session_state:
        return
    st.session_state["url_checked"] = True
    _, notices = share.parse_view(
        dict(st.query_params.to_dict()), datasets=set(dataset_ids()),
        colorscales=figures.COLORSCALES, mask_max=MASK_MAX,
    )
    st.session_state["notices"] = notices


def current_view() -> share.View:
    s = st.session_state
    return share.View(
        dataset=s.get("dataset", "demo"), mask_snr=float(s.get("mask_snr", DEFAULT_MASK_SNR)),
        tab=s.get("tab", "Statistics"), on=s.get("on", "train"),
        log_color=bool(s.get("log_color", True)), colorscale=s.get("colorscale", "Viridis"),
        configs=tuple(s.get("configs", ())), runs=tuple(s.get("runs", ())),
        report=bool(s.get("report", False)),
    )


def share_ui() -> None:
    with st.sidebar.expander("Share this view"):
        base = st.context.url or "http://localhost:8501/"
        st.code(share.view_url(base, current_view()), language=None, wrap_lines=True)
        st.caption("Copy with the button at the code's corner. The link carries the dataset "
                   "id, mask, tab, options and runs — never a file path.")


# --- UI pieces -------------------------------------------------------------------------------

def dataset_ui() -> tuple[Dataset, str]:
    """Sidebar: choose a dataset; on bad input show the error and keep the previous one."""
    st.sidebar.header("Dataset")
    ids = dataset_ids()
    choice = st.sidebar.selectbox(
        "Dataset", list(ids), format_func=lambda i: ids.get(i, i), key="dataset", bind=BIND,
        help="demo: synthetic linear-power spectrograms that show the problem; digits: "
             "scikit-learn's 8x8 handwritten digits; or a file you opened below.",
    )
    with st.sidebar.expander("Open an array file on the server"):
        with st.form("open_file", border=False):
            st.text_input("Array file (.npy or .npz)", key="server_path",
                                 help=f"A path under the data root {data_root()}.")
            st.text_input("Labels (.npy, optional)", key="server_labels")
            st.form_submit_button("Open", on_click=open_file)
    if st.session_state.get("load_error"):
        st.sidebar.error(st.session_state["load_error"])
    try:
        ds = get_dataset(*st.session_state.get("specs", {}).get(choice, (choice, None)))
    except NormScopeError as exc:  # the file changed under us: say so, show the demo
        st.error(str(exc))
        ds = get_dataset("demo")
    on = st.sidebar.radio("Statistics over", share.ON, horizontal=True, key="on", bind=BIND,
                          help="The training split (70%, stratified, seed 0) or every example.")
    return ds, on


def open_file() -> None:
    """Open a server-side file (form callback, so it runs before the widgets are drawn).

    On failure the current dataset stays and the error is kept to show.
    """
    path = st.session_state.get("server_path", "")
    labels = st.session_state.get("server_labels", "")
    st.session_state["load_error"] = None
    if not path.strip():
        st.session_state["load_error"] = "Type the path of a .npy or .npz file first."
        return
    try:
        p = resolve_server_path(path)
        lab = str(resolve_server_path(labels)) if labels.strip() else None
        ds = get_dataset(str(p), lab)
    except NormScopeError as exc:
        st.session_state["load_error"] = str(exc)
        return
    st.session_state.setdefault("opened", {})[ds.id] = ds.name
    st.session_state.setdefault("specs", {})[ds.id] = (str(p), lab)
    st.session_state["dataset"] = ds.id


def mask_ui(stats: PixelStats, ds: Dataset) -> tuple[np.ndarray, float]:
    st.sidebar.header("Row mask")
    threshold = st.sidebar.slider(
        "Mask rows with SNR below", min_value=0.0, max_value=MASK_MAX, value=DEFAULT_MASK_SNR,
        step=0.01, key="mask_snr", bind=BIND,
        help="Row SNR = median over the row of |mean| / std. Rows under the threshold are "
             "held out (drawn washed out). 0 masks nothing.",
    )
    rows = None
    if st.sidebar.checkbox(f"Also mask a range of {ds.row_label}s", key="mask_range_on"):
        H = ds.shape[0]
        rows = st.sidebar.slider(f"{ds.row_label}s to mask", 0, H - 1, (H - 1, H - 1), key="mask_range")
    return row_mask(stats.row_snr, threshold=threshold, rows=rows), threshold


def options_ui() -> tuple[bool, str, bool]:
    st.sidebar.header("Heatmaps")
    log_color = st.sidebar.checkbox("Log colour scale", value=True, key="log_color", bind=BIND,
                                    help="Colour by log10: linear power spans decades.")
    scale = st.sidebar.selectbox("Colour scale", figures.COLORSCALES, key="colorscale", bind=BIND,
                                 help="All are perceptually uniform and colour-blind safe.")
    report_view = st.sidebar.toggle("Report view", key="report", bind=BIND,
                                    help="Hide the controls and lay the figures out for "
                                         "screenshots.")
    return log_color, scale, report_view


def summary_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float) -> None:
    H, W = stats.shape
    c = st.columns(5)
    c[0].metric("Examples", f"{stats.n:,}", help=f"of {ds.n:,} in all")
    c[1].metric("Shape", f"{H} × {W}")
    c[2].metric("Classes", len(ds.class_names) or "none")
    lo, hi = float(np.nanmin(stats.min)), float(np.nanmax(stats.max))
    lo_text = "0" if 0 <= lo < 1e-6 * max(hi, 1e-300) else f"{lo:.3g}"
    c[3].metric("Value range", f"{lo_text} … {hi:.4g}", help=f"exact minimum {lo:.6g}")
    amp = np.nanmax(stats.amplification) if np.isfinite(stats.amplification).any() else float("nan")
    c[4].metric("Max noise amplification", f"{amp:,.0f}×",
                help="How much per-pixel z-scoring inflates the quietest pixel relative to "
                     "one global scale.")
    share_ = energy_share(stats, mask)
    label = "band" if ds.row_label == "frequency band" else ds.row_label
    if mask.any():
        st.markdown(
            f"**{int(mask.sum())} of {H} {label}s masked** ({label}s {ranges(np.flatnonzero(mask))}), "
            f"holding **{share_:.1%}** of the signal energy (sum of per-pixel mean)."
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
    st.plotly_chart(fig, key=key, config=config, theme=None)  # same look as exports


def image_buttons(fig, ds: Dataset, on: str, which: str, mask: np.ndarray, log_color: bool,
                  scale: str) -> None:
    """PNG and SVG downloads of one figure, rendered by kaleido only when clicked."""
    name = f"normscope-{ds.name}-{which}"
    if kaleido_browser() is None:
        st.caption("PNG/SVG files need chromium on the server (apt-get install chromium); "
                   "the camera icon above the chart still saves a 3x PNG.")
        return
    key = tuple(np.flatnonzero(mask).tolist())
    cols = st.columns(2)
    for col, fmt in zip(cols, ("png", "svg")):
        col.download_button(
            f"{fmt.upper()}", key=f"dl_{which}_{fmt}", file_name=f"{name}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml", on_click="ignore",
            data=lambda fmt=fmt: figure_image(ds.id, on, which, fmt, key, log_color, scale, fig),
            help=f"Download this figure as {fmt.upper()} (rendered on the server).",
        )


def heatmaps_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float,
                log_color: bool, scale: str, on: str, report_view: bool) -> None:
    cap = figures.caption(ds.name, stats.n, ds.n, on if on == "train" else "(all)", mask, threshold)
    common = dict(mask=mask, row_label=ds.row_label, row_origin=ds.row_origin,
                  caption_text=cap, dataset_name=ds.name)
    maps = {w: figures.heatmap(stats, w, log_color=log_color, colorscale=scale,
                               col_label=ds.col_label, **common)
            for w in ("mean", "std", "snr", "amplification")}
    side = {
        "row_snr": figures.row_snr_profile(stats, threshold=threshold, **common),
        "values": figures.value_histogram(stats, caption_text=cap, dataset_name=ds.name),
    }
    layout = [("mean", "std", "row_snr"), ("snr", "amplification", "values")]
    for row in layout:
        grid = st.columns([3, 3, 2])
        for col, which in zip(grid, row):
            fig = maps.get(which) or side[which]
            if report_view:
                fig.update_layout(height=420)
            with col:
                chart(fig, f"normscope-{ds.name}-{which}", f"chart_{which}")
                if not report_view:
                    image_buttons(fig, ds, on, which, mask, log_color, scale)


def report_download_ui(ds: Dataset, stats: PixelStats, threshold: float, on: str,
                       log_color: bool, scale: str, mask: np.ndarray) -> None:
    def build() -> bytes:
        sections = report.statistics_sections(ds, stats, mask_snr=threshold, on=on,
                                              log_color=log_color, colorscale=scale, mask=mask)
        return report.render(f"NormScope report — {ds.name}",
                             f"dataset id {ds.id}", sections).encode()

    st.download_button("Download HTML report", data=build, key="dl_report", on_click="ignore",
                       file_name=f"normscope-{ds.name}-report.html", mime="text/html",
                       help="One self-contained file (plotly.js inlined): opens offline.")


def statistics_page(ds, stats, on, mask, threshold, log_color, scale, report_view) -> None:
    summary_ui(ds, stats, mask, threshold)
    findings_ui(stats, threshold, ds)
    heatmaps_ui(ds, stats, mask, threshold, log_color, scale, on, report_view)
    if stats.class_means is not None and len(ds.class_names) > 1:
        with st.expander(f"Per-class mean maps ({len(ds.class_names)} classes)"):
            cap = figures.caption(ds.name, stats.n, ds.n, on, mask, threshold)
            chart(figures.class_means(stats, ds.class_names, log_color=log_color, colorscale=scale,
                                      row_label=ds.row_label, col_label=ds.col_label,
                                      row_origin=ds.row_origin, caption_text=cap,
                                      dataset_name=ds.name),
                  f"normscope-{ds.name}-class-means", "chart_class_means")
    if not report_view:
        report_download_ui(ds, stats, threshold, on, log_color, scale, mask)


def main() -> None:
    st.set_page_config(page_title="NormScope", layout="wide")
    url_notices()
    ds, on = dataset_ui()
    stats = get_stats(ds.id, on, ds)
    mask, threshold = mask_ui(stats, ds)
    log_color, scale, report_view = options_ui()
    share_ui()
    if report_view:  # hide the sidebar and chrome for clean screenshots
        st.html("<style>[data-testid='stSidebar'],[data-testid='stSidebarCollapsedControl'],"
                "header{display:none !important}</style>")
    st.title("NormScope" if not report_view else f"NormScope — {ds.name}")
    if report_view:
        st.button("Leave report view", key="leave_report",
                  on_click=lambda: st.session_state.update(report=False))
    else:
        st.caption("Why does normalizing my inputs make training worse? Per-pixel statistics, "
                   "noise amplification and low-SNR rows of your training split.")
    for notice in st.session_state.get("notices", []):
        st.warning(notice, icon="🔗")
    tabs = st.tabs(list(share.TABS), key="tab", bind=BIND)
    with tabs[0]:
        if tabs[0].open:
            statistics_page(ds, stats, on, mask, threshold, log_color, scale, report_view)
    with tabs[1]:
        if tabs[1].open:
            st.info("Training comparisons arrive with the run store.")


main()
