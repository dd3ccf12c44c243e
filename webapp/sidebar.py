"""The sidebar: dataset picker, open and upload forms, row mask, heatmap options.

Each ``*_ui()`` draws its widgets and returns plain values.  Opening data is two steps: a form
callback (:func:`request_open`) remembers the request, and :func:`pending_open` carries it out
at the start of the next script run through :func:`diagnostics.data.ingest.open_request`, with
a progress bar and a Cancel button.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from diagnostics import config
from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.data.audio.features import FEATURES, FeatureParams
from diagnostics.data.dataset import Dataset
from diagnostics.data.ingest import delete_dataset, open_request
from diagnostics.errors import NormScopeError
from diagnostics.plots import figures
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.moments import row_mask
from webapp import share
from webapp.cache import dataset_ids, get_dataset, get_stats
from webapp.text import md
from webapp.state import BIND, MASK_MAX


def dataset_ui() -> tuple[Dataset, str]:
    """Choose a dataset; on bad input show the error and keep the previous one.

    Returns the dataset and the examples its statistics are over (``"train"`` or ``"all"``).
    """
    st.sidebar.header("Dataset")
    ids = dataset_ids(st.session_state.get("dataset"))
    # No format_func: a bound widget writes its *displayed* option into the URL, and links
    # must carry the plain id.
    choice = st.sidebar.selectbox(
        "Dataset", list(ids), key="dataset", bind=BIND,
        help="demo: synthetic linear-power spectrograms that show the problem; digits: "
             "scikit-learn's 8x8 handwritten digits; then every dataset opened or uploaded on "
             "this server (by content id).",
    )
    if ids.get(choice, choice) != choice:
        st.sidebar.caption(md(ids[choice]))
    open_ui()
    if st.session_state.get("load_error"):
        st.sidebar.error(md(st.session_state["load_error"]))
    try:
        ds = get_dataset(choice)
    except NormScopeError as exc:  # e.g. the registry was cleaned under us
        st.error(f"{md(exc)}. Showing demo instead.")
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

    ident = None
    known = set(dataset_ids())
    try:
        kind = req.pop("kind")
        ident = open_request(kind, **req, params=feature_params(kind), progress=progress,
                             root=config.data_root())
        ds = get_dataset(ident)
        get_stats(ds.id, st.session_state.get("on", "train"), ds)  # e.g. every value NaN: refuse now
    except NormScopeError as exc:
        st.session_state["load_error"] = str(exc)
        if ident is not None and ident not in known:  # refused: it must not stay listed
            try:
                delete_dataset(ident)
            except NormScopeError:
                pass  # opened by another session meanwhile: theirs now
    else:
        st.session_state["dataset"] = ident
    finally:
        holder.empty()


def slider_top(row_snr: np.ndarray, current: float = 0.0) -> float:
    """The mask slider's end: a round number just above the data's highest row SNR (the demo's
    tops out near 1.3: a 0-5 slider masked every row over 75% of its travel), never below the
    value a link asks for, and at most MASK_MAX."""
    fin = row_snr[np.isfinite(row_snr)]
    hi = float(fin.max()) * 1.05 if fin.size else MASK_MAX
    top = next((s for s in (0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0) if s >= hi), MASK_MAX)
    return float(min(MASK_MAX, max(top, current if 0 <= current <= MASK_MAX else 0.0)))


def mask_ui(stats: PixelStats, ds: Dataset) -> tuple[np.ndarray, float]:
    """The row mask: rows under an SNR threshold, optionally a range of rows too."""
    st.sidebar.header("Row mask")
    top = slider_top(stats.row_snr, float(st.session_state.get("mask_snr", DEFAULT_MASK_SNR)))
    threshold = st.sidebar.slider(
        "Mask rows with SNR below", min_value=0.0, max_value=top,
        value=min(DEFAULT_MASK_SNR, top), step=0.01, key="mask_snr", bind=BIND,
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
    """Heatmap colouring and report view: ``(log_color, colorscale, report_view)``."""
    st.sidebar.header("Heatmaps")
    log_color = st.sidebar.checkbox("Log colour scale", value=True, key="log_color", bind=BIND,
                                    help="Colour by log10: linear power spans decades.")
    scale = st.sidebar.selectbox("Colour scale", figures.COLORSCALES, key="colorscale", bind=BIND,
                                 help="All are perceptually uniform and colour-blind safe.")
    report_view = st.sidebar.toggle("Report view", key="report", bind=BIND,
                                    help="Hide the controls and lay the figures out for "
                                         "screenshots.")
    return log_color, scale, report_view
