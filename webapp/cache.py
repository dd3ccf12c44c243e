"""Cached loaders of the app, keyed by small strings (dataset id, split), never by arrays.

``st.cache_resource`` for objects that nothing modifies (datasets, statistics, bins): shared by
every session, not copied on each rerun; ``st.cache_data`` for image bytes.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from diagnostics.data import store
from diagnostics.data.builtin import BUILTINS
from diagnostics.data.dataset import Dataset
from diagnostics.data.ingest import load_dataset
from diagnostics.plots import figures
from diagnostics.stats import summary
from diagnostics.stats.accumulate import PixelStats


@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def get_dataset(ident: str) -> Dataset:
    # A built-in name or a registered content id; the Dataset holds a read-only array (a
    # memmap for registered ones): safe to share between sessions.
    return load_dataset(ident)


@st.cache_resource(show_spinner="Computing per-pixel statistics…", max_entries=32)
def get_stats(dataset_id: str, on: str, _ds: Dataset) -> PixelStats:
    # cache_resource: shared, not copied on every rerun (cache_data would unpickle megabytes);
    # PixelStats is a frozen dataclass that nothing writes to.  Looked up on the module at
    # call time, so a test can count the calls.
    return summary.dataset_stats(_ds, on=on)


@st.cache_data(show_spinner=False, max_entries=64)
def figure_image(dataset_id: str, on: str, which: str, fmt: str, mask_key: tuple, log_color: bool,
                 colorscale: str, _fig) -> bytes:
    # kaleido drives the system chromium; ~1-2 s an image, so only on click and cached.
    return _fig.to_image(format=fmt, scale=3 if fmt == "png" else 1, width=900, height=560)


@st.cache_resource(show_spinner=False, max_entries=64)
def heatmap_figure(dataset_id: str, on: str, which: str, masked_rows: tuple[int, ...],
                   log_color: bool, colorscale: str, caption_text: str, labels: tuple[str, ...],
                   _stats: PixelStats) -> figures.go.Figure:
    # Building a figure runs plotly's validation of every property, the larger part of a
    # rerun's own time: a slider move back to a mask seen before, a tab switch or another
    # visitor reuses the figure.  Keyed by everything the picture depends on (``labels``:
    # dataset name, row and column labels, row origin); nothing modifies a built figure
    # (st.plotly_chart and kaleido copy it).
    name, row_label, col_label, row_origin = labels
    mask = np.zeros(_stats.shape[0], bool)
    mask[list(masked_rows)] = True
    return figures.heatmap(_stats, which, mask=mask, log_color=log_color, colorscale=colorscale,
                           row_label=row_label, col_label=col_label, row_origin=row_origin,
                           caption_text=caption_text, dataset_name=name)


@st.cache_resource(show_spinner=False, max_entries=32)
def histogram_bins(dataset_id: str, on: str, _stats: PixelStats) -> figures.Histogram:
    # Binning a million sampled values costs more than every other chart: once per dataset
    # and split; the figure around it (caption, mask) is cheap and drawn on each rerun.
    return figures.histogram_bins(_stats)


def dataset_ids(wanted: str | None = None) -> dict[str, str]:
    """Datasets a link may name: id -> display name (built-ins and registered ones).

    The registry lives in NORMSCOPE_HOME, shared by every session of this server, so a
    teammate's link finds what another session opened or uploaded.  Listing reads every
    dataset's meta, so it is cached under :func:`diagnostics.data.store.listing_signature`;
    ``wanted`` (the selected id) registered after the listing was cached lists again.
    """
    ids = dict(_dataset_ids(store.listing_signature()))
    if wanted and wanted not in ids and store.is_registered(wanted):
        _dataset_ids.clear()
        ids = dict(_dataset_ids(store.listing_signature()))
    return ids


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset_ids(signature: tuple[str, int, int]) -> dict[str, str]:
    ids = {b: b for b in BUILTINS}
    for r in store.list_datasets():
        shape = "x".join(str(v) for v in (r.get("shape") or []))
        ids[r["id"]] = f"{r.get('name')} · {r.get('n') or 0:,} × {shape} · {r['id']}"
    return ids
