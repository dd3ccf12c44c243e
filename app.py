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

import numpy as np
import streamlit as st

from diagnostics import config

from diagnostics.plots import figures

from diagnostics.plots import report

from webapp import share

from diagnostics.data import store

from diagnostics.data import uploads
from diagnostics.data.audio.features import FEATURES, FeatureParams
from diagnostics.data.builtin import BUILTINS
from diagnostics.data.dataset import Dataset
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.stats.findings import find, ranges, suggested_configs
from diagnostics.stats.moments import PixelStats, energy_share, format_share, row_mask
from diagnostics.stats.summary import dataset_stats

SEVERITY_BOX = {"error": st.error, "warning": st.warning, "info": st.info}
PLOT_CONFIG = {"displaylogo": False}
MASK_MAX = 5.0  # slider range for the row-SNR threshold (row SNRs above ~3 are rare)
BIND = "query-params"


# --- cached loaders: keyed by small strings, never by arrays -------------------------------

@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def get_dataset(ident: str) -> Dataset:
    # A built-in name or a registered content id; the Dataset holds a read-only array (a
    # memmap for registered ones): safe to share between sessions.
    return load_dataset(ident)


@st.cache_resource(show_spinner="Computing per-pixel statistics…", max_entries=32)
def get_stats(dataset_id: str, on: str, _ds: Dataset) -> PixelStats:
    # cache_resource: shared, not copied on every rerun (cache_data would unpickle megabytes);
    # PixelStats is a frozen dataclass that nothing writes to.
    return dataset_stats(_ds, on=on)


@st.cache_data(show_spinner=False, max_entries=64)
def figure_image(dataset_id: str, on: str, which: str, fmt: str, mask_key: tuple, log_color: bool,
                 colorscale: str, _fig) -> bytes:
    # kaleido drives the system chromium; ~1-2 s an image, so only on click and cached.
    return _fig.to_image(format=fmt, scale=3 if fmt == "png" else 1, width=900, height=560)


@st.cache_resource(show_spinner=False, max_entries=32)
def histogram_bins(dataset_id: str, on: str, _stats: PixelStats) -> figures.Histogram:
    # Binning a million sampled values costs more than every other chart: once per dataset
    # and split; the figure around it (caption, mask) is cheap and drawn on each rerun.
    return figures.histogram_bins(_stats)


def kaleido_browser() -> str | None:
    """The chromium kaleido would use, or None (static export is then unavailable)."""
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


# --- URL state --------------------------------------------------------------------------------

def dataset_ids() -> dict[str, str]:
    """Datasets a link may name: id -> display name (built-ins and registered ones).

    The registry lives in NORMSCOPE_HOME, shared by every session of this server, so a
    teammate's link finds what another session opened or uploaded.  Listing reads every
    dataset's meta, so it is cached until the datasets folder changes (registering or deleting
    renames a folder in it, which updates its mtime).
    """
    folder = config.home() / "datasets"
    try:
        # mtime ticks are coarse (milliseconds): the entry count catches a change in one tick.
        stamp = (folder.stat().st_mtime_ns, len(os.listdir(folder)))
    except OSError:
        stamp = (0, 0)
    ids = dict(_dataset_ids(str(folder), stamp))
    wanted = st.session_state.get("dataset")
    if wanted and wanted not in ids and store.is_registered(wanted):
        _dataset_ids.clear()  # registered after the listing was cached: list again
        ids = dict(_dataset_ids(str(folder), stamp))
    return ids


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset_ids(folder: str, stamp: tuple[int, int]) -> dict[str, str]:
    ids = {b: b for b in BUILTINS}
    for r in store.list_datasets():
        shape = "x".join(str(v) for v in (r.get("shape") or []))
        ids[r["id"]] = f"{r.get('name')} · {r.get('n') or 0:,} × {shape} · {r['id']}"
    return ids


def url_notices() -> None:
    """On a session's first run, check the link's parameters and keep notices for bad ones."""
    if "url_checked" in st.session_state:
        return
    st.session_state["url_checked"] = True
    from models.store import RunStore

    params = {k: st.query_params.get_all(k) for k in st.query_params}
    # A link's runs must belong to the link's dataset (the Compare tab shows only those).
    linked = (params.get("dataset") or ["demo"])[-1]
    runs = ({rec.id for rec in RunStore().list_comparisons(linked, limit=10_000)}
            if "runs" in params else set())
    _, notices = share.parse_view(
        params, datasets=set(dataset_ids()), colorscales=figures.COLORSCALES, mask_max=MASK_MAX,
        runs=runs, config_ok=config_ok,
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


def share_ui(box) -> None:
    """Fill the sidebar's share box; called last, when every bound widget has its value."""
    with box.popover("Share this view", icon=":material/link:", width="stretch"):
        base = st.context.url or "http://localhost:8501/"
        st.code(share.view_url(base, current_view()), language=None, wrap_lines=True)
        st.caption("Copy with the button at the code's corner. The link carries the dataset "
                   "id, mask, tab, options and runs — never a file path.")


# --- UI pieces -------------------------------------------------------------------------------

def dataset_ui() -> tuple[Dataset, str]:
    """Sidebar: choose a dataset; on bad input show the error and keep the previous one."""
    st.sidebar.header("Dataset")
    ids = dataset_ids()
    # No format_func: a bound widget writes its *displayed* option into the URL, and links
    # must carry the plain id.
    choice = st.sidebar.selectbox(
        "Dataset", list(ids), key="dataset", bind=BIND,
        help="demo: synthetic linear-power spectrograms that show the problem; digits: "
             "scikit-learn's 8x8 handwritten digits; then every dataset opened or uploaded on "
             "this server (by content id).",
    )
    if ids.get(choice, choice) != choice:
        st.sidebar.caption(ids[choice])
    open_ui()
    if st.session_state.get("load_error"):
        st.sidebar.error(st.session_state["load_error"])
    try:
        ds = get_dataset(choice)
    except NormScopeError as exc:  # e.g. the registry was cleaned under us
        st.error(f"{exc}. Showing demo instead.")
        ds = get_dataset("demo")
    on = st.sidebar.radio("Statistics over", share.ON, horizontal=True, key="on", bind=BIND,
                          help="The training split (70%, stratified, seed 0) or every example.")
    return ds, on


def feature_params_ui(prefix: str) -> None:
    """Audio feature settings inside a form; read back by :func:`feature_params`."""
    d = FeatureParams()
    c = st.columns(2)
    c[0].selectbox("Feature", FEATURES, key=f"{prefix}_feature",
                   help="mel = linear power (the classic problem case); logmel = dB; mfcc.")
    c[1].number_input("Sample rate (Hz)", 1000, 384000, d.sr, key=f"{prefix}_sr")
    c[0].number_input("Mel bands", 1, 1024, d.n_mels, key=f"{prefix}_n_mels")
    c[1].number_input("FFT size", 16, 65536, d.n_fft, key=f"{prefix}_n_fft")
    c[0].number_input("Hop", 1, 65536, d.hop, key=f"{prefix}_hop")
    c[1].number_input("Duration (s)", 0.01, 3600.0, d.duration, key=f"{prefix}_duration")
    c[0].number_input("MFCCs", 1, 1024, d.n_mfcc, key=f"{prefix}_n_mfcc")


def feature_params(prefix: str) -> FeatureParams:
    s = st.session_state
    return FeatureParams(
        feature=s.get(f"{prefix}_feature", "mel"), sr=int(s.get(f"{prefix}_sr", 22050)),
        n_mels=int(s.get(f"{prefix}_n_mels", 60)), n_fft=int(s.get(f"{prefix}_n_fft", 2048)),
        hop=int(s.get(f"{prefix}_hop", 512)), duration=float(s.get(f"{prefix}_duration", 3.0)),
        n_mfcc=int(s.get(f"{prefix}_n_mfcc", 20)),
    )


def open_ui() -> None:
    """Open a server-side source or upload a file; the work happens in :func:`pending_open`."""
    limit = st.get_option("server.maxUploadSize")
    with st.sidebar.expander("Open data on the server"):
        with st.form("open_path", border=False):
            st.text_input("Path under the data root", key="server_path",
                          help=f"A .npy/.npz file, a folder with one sub-folder of audio clips "
                               f"per class, or a .csv manifest (path,label). Data root: "
                               f"{config.data_root()}")
            st.text_input("Labels (.npy, optional, for a .npy file)", key="server_labels")
            with st.expander("Audio feature settings"):
                feature_params_ui("path")
            st.form_submit_button("Open", on_click=lambda: request_open("path"))
    with st.sidebar.expander("Upload a file"):
        with st.form("upload", border=False, clear_on_submit=True):
            st.file_uploader("Arrays (.npy/.npz) or a zip of class folders of audio",
                             type=["npy", "npz", "zip"], key="upload_data",
                             help=f"Up to {limit} MB (the server's upload limit). For bigger "
                                  "data, put it under the data root and open it by path.")
            st.file_uploader("Labels (.npy, optional, for a .npy upload)", type=["npy"],
                             key="upload_labels")
            with st.expander("Audio feature settings (zip)"):
                feature_params_ui("upload")
            st.form_submit_button("Upload", on_click=lambda: request_open("upload"))


def request_open(kind: str) -> None:
    """Form callback: remember what to open; it runs in the next script run, with progress."""
    s = st.session_state
    s["load_error"] = None
    if kind == "path":
        s["pending_open"] = {"kind": "path", "path": s.get("server_path", ""),
                             "labels": s.get("server_labels", "")}
    else:
        data, labels = s.get("upload_data"), s.get("upload_labels")
        if data is None:
            s["load_error"] = "Choose a file to upload first."
            return
        s["pending_open"] = {"kind": "upload", "name": data.name, "data": data.getvalue(),
                             "labels": labels.getvalue() if labels is not None else None}


def pending_open() -> None:
    """Open what a form asked for, before the dataset widget is drawn, with a progress bar.

    On success the new dataset is registered (its content id can go into a link) and selected;
    on failure the previous dataset stays and the error is shown in the sidebar.
    """
    if st.session_state.get("cancel_open"):
        st.sidebar.info("Opening cancelled: nothing was registered, and the previous dataset "
                        "stays open.")
    req = st.session_state.pop("pending_open", None)
    if not req:
        return
    holder = st.empty()
    with holder.container():
        bar = st.progress(0.0, text="Opening…")
        # Any click starts a new script run, which stops this one at its next progress update
        # (the worker pool is shut down with its queued clips cancelled); the request was
        # popped above, so the new run does not start it again.
        st.button("Cancel", key="cancel_open", help="Stop extracting; nothing is registered.")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Extracting features: {done:,} of {total:,} clips")

    try:
        if req["kind"] == "path":
            if not req["path"].strip():
                raise NormScopeError("type the path of a file or folder under the data root first")
            ds = load_dataset(req["path"], labels=req["labels"] or None,
                              params=feature_params("path"), progress=progress,
                              root=config.data_root())
            ident = ds.id if store.is_registered(ds.id) else store.register_dataset(
                ds, source=f"server file {ds.name}")
        elif req["name"].lower().endswith(".zip"):
            ident = uploads.register_upload_zip(req["name"], req["data"],
                                                 feature_params("upload"), progress=progress)
        else:
            ident = uploads.register_upload_npy_npz(req["name"], req["data"], req["labels"])
        ds = get_dataset(ident)
        get_stats(ds.id, st.session_state.get("on", "train"), ds)  # e.g. every value NaN: refuse now
    except NormScopeError as exc:
        st.session_state["load_error"] = str(exc)
    else:
        st.session_state["dataset"] = ident
    finally:
        holder.empty()


def mask_ui(stats: PixelStats, ds: Dataset) -> tuple[np.ndarray, float]:
    st.sidebar.header("Row mask")
    threshold = st.sidebar.slider(
        "Mask rows with SNR below", min_value=0.0, max_value=MASK_MAX, value=DEFAULT_MASK_SNR,
        step=0.01, key="mask_snr", bind=BIND,
        help="Row SNR = median over the row of |mean| / std. Rows under the threshold are "
             "held out (drawn washed out). 0 masks nothing.",
    )
    rows = None
    if ds.shape[0] > 1 and st.sidebar.checkbox(f"Also mask a range of {ds.row_label}s",
                                               key="mask_range_on"):
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
    amp = np.nanmax(stats.amplification) if np.isfinite(stats.amplification).any() else None
    c[4].metric("Max noise amplification", "n/a" if amp is None else f"{amp:,.0f}×",
                help="How much per-pixel z-scoring inflates the quietest pixel relative to "
                     "one global scale.")
    share_ = energy_share(stats, mask)
    label = "band" if ds.row_label == "frequency band" else ds.row_label
    if mask.any():
        st.markdown(
            f"**{int(mask.sum())} of {H} {label}s masked** ({label}s {ranges(np.flatnonzero(mask))}), "
            f"holding **{format_share(share_)}** of the signal energy (sum of per-pixel mean)."
        )
    else:
        st.markdown(f"**No {label}s masked** at SNR threshold {threshold:g}.")
    for note in ds.notes:
        st.warning(note)
    skipped = store.dataset_meta(ds.id).get("skipped", []) if store.is_registered(ds.id) else []
    if skipped:
        with st.expander(f"{len(skipped)} clip(s) could not be read and were skipped"):
            st.dataframe([{"file": f, "reason": r} for f, r in skipped], hide_index=True)


def findings_ui(stats: PixelStats, threshold: float, ds: Dataset) -> None:
    st.subheader("Findings")
    label = "band" if ds.row_label == "frequency band" else ds.row_label
    for f in find(stats, mask_snr=threshold, row_label=label):
        SEVERITY_BOX[f.severity](f"**{f.code}** — {f.message}")


def chart(fig, name: str, key: str) -> None:
    config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 3, "filename": name}}
    st.plotly_chart(fig, key=key, config=config, theme=None)  # same look as exports


def image_buttons(fig, ds: Dataset, on: str, which: str, mask: np.ndarray, threshold: float,
                  log_color: bool, scale: str) -> None:
    """PNG and SVG downloads of one figure, rendered by kaleido only when clicked."""
    name = f"normscope-{ds.name}-{which}"
    if kaleido_browser() is None:
        st.caption("PNG/SVG files need chromium on the server (apt-get install chromium); "
                   "the camera icon above the chart still saves a 3x PNG.")
        return
    # The mask and the threshold (caption, threshold line) both change the picture.
    key = (tuple(np.flatnonzero(mask).tolist()), threshold)
    # Colour options change only the heatmaps: the side figures are not re-rendered for them.
    colour = (log_color, scale) if which in figures.MAPS else (False, "")
    cols = st.columns(2)
    for col, fmt in zip(cols, ("png", "svg")):
        col.download_button(
            f"{fmt.upper()}", key=f"dl_{which}_{fmt}", file_name=f"{name}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml", on_click="ignore",
            data=lambda fmt=fmt: figure_image(ds.id, on, which, fmt, key, *colour, fig),
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
        "values": figures.value_histogram(stats, caption_text=cap, dataset_name=ds.name,
                                          bins=histogram_bins(ds.id, on, stats)),
    }
    layout = [("mean", "std", "row_snr"), ("snr", "amplification", "values")]
    for row in layout:
        grid = st.columns([3, 3, 2])
        for col, which in zip(grid, row):
            fig = maps.get(which) or side[which]
            with col:
                chart(fig, f"normscope-{ds.name}-{which}", f"chart_{which}")
                if not report_view:
                    image_buttons(fig, ds, on, which, mask, threshold, log_color, scale)


def report_download_ui(ds: Dataset, stats: PixelStats, threshold: float, on: str,
                       log_color: bool, scale: str, mask: np.ndarray) -> None:
    # Read now: the download callable runs in a thread without this session's state.
    selected = list(st.session_state.get("runs") or [])

    def build() -> bytes:
        from models.store import RunStore

        sections = report.statistics_sections(ds, stats, mask_snr=threshold, on=on,
                                              log_color=log_color, colorscale=scale, mask=mask)
        store = RunStore()
        # The comparisons shown in the Compare tab, else the newest stored ones of the dataset.
        ids = selected or [rec.id for rec in store.list_comparisons(ds.id, limit=3)]
        for cid in ids:
            rec = store.load_comparison(cid)
            if rec is not None and rec.dataset_id == ds.id:
                sections.append(report.comparison_section(rec, caption_text=f"{ds.name} · {rec.model}"))
        return report.render(f"NormScope report — {ds.name}",
                             f"dataset id {ds.id}", sections).encode()

    st.download_button("Download HTML report", data=build, key="dl_report", on_click="ignore",
                       file_name=f"normscope-{ds.name}-report.html", mime="text/html",
                       help="One self-contained file (plotly.js inlined): opens offline.")


def statistics_page(ds, stats, on, mask, threshold, log_color, scale, report_view) -> None:
    summary_ui(ds, stats, mask, threshold)
    findings_ui(stats, threshold, ds)
    heatmaps_ui(ds, stats, mask, threshold, log_color, scale, on, report_view)
    if stats.class_means is not None and len(ds.class_names) > 1 and st.toggle(
            f"Show per-class mean maps ({len(ds.class_names)} classes)", key="class_maps",
            help="One map per class on a shared colour scale: where each class puts its energy."):
        with st.container():
            cap = figures.caption(ds.name, stats.n, ds.n, on, mask, threshold)
            chart(figures.class_means(stats, ds.class_names, log_color=log_color, colorscale=scale,
                                      row_label=ds.row_label, col_label=ds.col_label,
                                      row_origin=ds.row_origin, caption_text=cap,
                                      dataset_name=ds.name),
                  f"normscope-{ds.name}-class-means", "chart_class_means")
    if not report_view:
        report_download_ui(ds, stats, threshold, on, log_color, scale, mask)


# --- Compare tab ----------------------------------------------------------------------------

def config_choices() -> list[str]:
    """Every config name the grammar allows (3 compressions x 6 scalers x mask or not)."""
    from diagnostics.normalize import COMPRESSIONS, SCALERS

    heads = [""] + [f"{c}+" for c in COMPRESSIONS if c != "none"]
    return [f"{h}{s}{m}" for m in ("", "@mask") for h in heads for s in SCALERS]


@st.cache_resource
def comparisons():
    """The process-wide set of running comparisons (threads + worker pools), created once
    per server (stale runs were marked by :func:`mark_interrupted` at the first script run)."""
    from models.comparison import RunningComparisons

    return RunningComparisons()


def config_ok(name: str) -> bool:
    from diagnostics.normalize import parse_config

    try:
        parse_config(name)
        return True
    except NormScopeError:
        return False


def start_comparison(ds_id: str, threshold: float) -> None:
    """Start button callback: launch in the background, put its id in the URL."""
    from models.train import TrainConfig

    s = st.session_state
    s["cmp_error"] = None
    configs = list(s.get("configs") or [])
    bad = [c for c in configs if not config_ok(c)]
    try:
        if bad:
            from diagnostics.normalize import parse_config
            parse_config(bad[0])  # raises with the list of valid parts
        if len(configs) < 2:
            raise NormScopeError("choose at least two configs to compare (the first is the reference)")
        comp = comparisons().start(
            ds_id, configs, seeds=int(s.get("cmp_seeds", 3)), model=s.get("cmp_model", "cnn"),
            train=TrainConfig(epochs=int(s.get("cmp_epochs", TrainConfig().epochs))),
            mask_snr=threshold,
        )
    except NormScopeError as exc:
        s["cmp_error"] = str(exc)
        return
    s["runs"] = [comp.id]


def stored_comparisons(ds_id: str) -> dict[str, str]:
    """Comparison id -> one-line description, newest first, for this dataset."""
    import time as _time

    from models.store import RunStore

    out = {}
    for rec in RunStore().list_comparisons(ds_id):
        when = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(rec.created))
        out[rec.id] = (f"{when} · {', '.join(rec.configs)} · {len(rec.seeds)} seeds · "
                       f"{rec.model} {rec.hyper.get('epochs', '?')} epochs · {rec.status}")
    return out


def compare_controls_ui(ds: Dataset, stats: PixelStats, threshold: float) -> None:
    from models.nets import MODEL_NAMES
    from models.train import TrainConfig

    defaults = suggested_configs(stats, threshold)
    c = st.columns([4, 1, 1, 1])
    c[0].multiselect(
        "Configs to compare (the first is the reference)", config_choices(), default=defaults,
        key="configs", bind=BIND,
        help="[compression+]scaler[@mask]: compression log1p or db; scalers none, global, "
             "per_pixel, per_row, minmax, robust; @mask drops rows under the SNR threshold "
             f"(now {threshold:g}). Only the normalization changes between configs.",
    )
    c[1].selectbox("Model", MODEL_NAMES, key="cmp_model",
                   help="cnn: small plain CNN (no batch norm); mlp; linear (logistic).")
    c[2].number_input("Epochs", 1, 200, TrainConfig().epochs, key="cmp_epochs")
    c[3].number_input("Seeds", 1, 20, 3, key="cmp_seeds",
                      help="Each seed: same split, initial weights and batch order for every config.")
    st.button("Start comparison", key="start", type="primary",
              on_click=start_comparison, args=(ds.id, threshold))
    if st.session_state.get("cmp_error"):
        st.error(st.session_state["cmp_error"])


def draw_comparison(view: report.ComparisonView, key: str) -> None:
    """Curves side by side, then the one-line answer, verdicts, table and intervals."""
    if view.val is None:
        st.caption("Curves appear after the first minibatches (workers start in a few seconds).")
    else:
        c = st.columns(2)
        with c[0]:
            chart(view.val, f"normscope-{key}-val", f"val_{key}")
        with c[1]:
            chart(view.batch, f"normscope-{key}-batches", f"batch_{key}")
    res = view.res
    if any(c.n for c in res.configs):
        from diagnostics.results import table_rows

        if res.summary:
            st.markdown(f"**{res.summary}**")
        for v in res.verdicts:
            (st.success if " better " in v else st.warning if " worse " in v else st.info)(v)
        st.dataframe(table_rows(res), hide_index=True, key=f"table_{key}")
        chart(view.tested, f"normscope-{key}-test-accuracy", f"res_{key}")


class _NotFinal(Exception):
    """Raised inside a cached function so that nothing is cached (the record may change)."""

    def __init__(self, rec):
        self.rec = rec


@st.cache_resource(show_spinner=False, max_entries=32)
def _final_view(home: str, cid: str, caption_text: str, name: str):
    # Loading every minibatch point and building three figures costs ~50-250 ms a rerun; a
    # finished comparison never changes, so once per server.  Shared: nothing modifies it.
    from models.store import FINISHED, RunStore

    rec = RunStore().load_comparison(cid)
    if rec is None or rec.status not in FINISHED:
        raise _NotFinal(rec)
    return rec, report.stored_view(rec, caption_text=caption_text, dataset_name=name)


def stored_comparison(cid: str, caption_text: str, name: str):
    """``(record, view)`` of a stored comparison (view None if it is not in the store)."""
    try:
        return _final_view(str(config.home()), cid, caption_text, name)
    except _NotFinal as exc:
        rec = exc.rec
        if rec is None:
            return None, None
        return rec, report.stored_view(rec, caption_text=caption_text, dataset_name=name)


def live_ui(cid: str, caption_text: str, name: str) -> None:
    """Progress, live curves and Cancel of a running comparison; redrawn every second."""

    @st.fragment(run_every=1.0)
    def monitor() -> None:
        comp = comparisons().get(cid)
        p = comp.snapshot()
        if p.finished:
            st.rerun(scope="app")  # draw the final results from the store
        eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
        st.progress(min(p.fraction, 1.0),
                    text=f"{p.status}: {p.fraction:.0%} after {p.elapsed_s:.0f} s{eta} · "
                         + ", ".join(f"{k} {v}" for k, v in sorted(p.counts.items())))
        st.button("Cancel", key=f"cancel_{cid}", on_click=comp.cancel,
                  help="Stops every run within a second or two; finished runs are kept.")
        draw_comparison(report.comparison_view(
            p.curves, list(dict.fromkeys(r.config for r in p.runs)), p.accuracies(),
            caption_text=caption_text, dataset_name=name), cid)

    monitor()


def stored_ui(cid: str, caption_text: str, name: str) -> None:
    import json

    from diagnostics.cli.compare import comparison_json

    rec, view = stored_comparison(cid, caption_text, name)
    if rec is None:
        st.warning(f"Comparison {cid} is not in the run store.")
        return
    status = f"**{rec.status}**"
    if rec.counts:
        status += " · " + ", ".join(f"{k} {v}" for k, v in sorted(rec.counts.items()))
    st.markdown(f"{status} · {rec.model}, {rec.hyper.get('epochs')} epochs, seeds "
                f"{', '.join(map(str, rec.seeds))} · id `{rec.id}`")
    draw_comparison(view, cid)
    st.download_button("Download results (JSON)", key=f"json_{cid}", on_click="ignore",
                       data=lambda: json.dumps(comparison_json(rec), indent=1),
                       file_name=f"normscope-compare-{cid}.json", mime="application/json")


def compare_page(ds: Dataset, stats: PixelStats, threshold: float, report_view: bool) -> None:
    if ds.y is None:
        st.info("Comparisons train classifiers, so they need labels: open the data with a "
                "labels file (or an .npz holding y, or class folders of audio).")
        return
    if not report_view:
        compare_controls_ui(ds, stats, threshold)
    stored = stored_comparisons(ds.id)  # running ones are stored from their start
    live = {c.id for c in comparisons().active()}
    options = list(stored)
    # Comparisons of another dataset (after switching datasets) are not shown here.
    if "runs" in st.session_state:
        st.session_state["runs"] = [r for r in st.session_state["runs"] if r in stored]
    st.multiselect("Comparisons to show", options, key="runs", bind=BIND,
                   help="Past comparisons of this dataset from the run store; the newest "
                        "started is selected. The ids go into the share link.")
    if stored:
        with st.expander(f"{len(stored)} stored comparison(s) of {ds.name}"):
            st.dataframe([{"id": k, "comparison": v} for k, v in stored.items()], hide_index=True)
    cap = f"{ds.name} · train {stats.n:,} / val / test split (seed 0) · mask row SNR < {threshold:g}"
    for cid in st.session_state.get("runs", []):
        st.subheader(f"Comparison {cid}")
        comp = comparisons().get(cid)
        if comp is not None and cid in live and not comp.snapshot().finished:
            live_ui(cid, cap, ds.name)
        else:
            stored_ui(cid, cap, ds.name)


@st.cache_resource(show_spinner=False)
def mark_interrupted(home: str) -> int:
    """Once per server and data directory, before anything reads the run store: runs left
    'running' by a server that died become 'interrupted' (torch is not imported for this)."""
    from models.store import RunStore

    return RunStore().mark_interrupted()


def main() -> None:
    st.set_page_config(page_title="NormScope", layout="wide")
    mark_interrupted(str(config.home()))
    url_notices()
    pending_open()
    ds, on = dataset_ui()
    try:
        stats = get_stats(ds.id, on, ds)
    except NormScopeError as exc:  # a link to a dataset that cannot be summarised
        st.error(f"{ds.name}: {exc}. Showing demo instead.")
        ds = get_dataset("demo")
        stats = get_stats(ds.id, on, ds)
    mask, threshold = mask_ui(stats, ds)
    log_color, scale, report_view = options_ui()
    share_box = st.sidebar.container()
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
            # Comparisons fit on the training split: its statistics pick the default configs
            # and describe the runs, whatever "Statistics over" shows.
            train = stats if on == "train" else get_stats(ds.id, "train", ds)
            compare_page(ds, train, threshold, report_view)
    share_ui(share_box)


main()
