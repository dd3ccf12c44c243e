"""Shift per band on the Statistics page: train vs test, or against another dataset of the same
number of bands, beside the row-SNR profile, with its finding."""

from __future__ import annotations

import numpy as np
import streamlit as st

from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.plots import figures
from diagnostics.plots.shift import shift_profile
from diagnostics.stats import shift
from diagnostics.stats.accumulate import PixelStats
from webapp.cache import dataset_ids, get_dataset
from webapp.charts import chart, image_buttons
from webapp.text import md

SPLITS = "its own test split (vs train)"
SEVERITY_BOX = {"error": st.error, "warning": st.warning, "info": st.info}


@st.cache_resource(show_spinner="Comparing band energies…", max_entries=16)
def band_shift(id_a: str, id_b: str, _a: Dataset, _b: Dataset) -> shift.BandShift:
    # Keyed by ids: one read of each dataset's band energies per pair, shared by sessions.
    if id_a == id_b:
        split = split_indices(_a.n, _a.y)
        return shift.band_shift(_a.X, _a.X, indices_a=split.train, indices_b=split.test,
                                names=("train", "test"))
    names = (_a.name, _b.name) if _a.name != _b.name else (id_a, id_b)
    return shift.band_shift(_a.X, _b.X, names=names)


def _same_rows(ds: Dataset) -> dict[str, str]:
    """Other datasets on this server a shift can be measured against (same number of rows)."""
    out = {}
    for ident, label in dataset_ids(ds.id).items():
        if ident == ds.id:
            continue
        if " · " in label:  # registered: "name · n × HxW · id"
            shape = label.split(" · ")[1].split(" × ")[-1]
            if shape.split("x")[0] == str(ds.shape[0]):
                out[ident] = label
        elif ident == "demo" and ds.shape[0] == 60 or ident == "digits" and ds.shape[0] == 8:
            out[ident] = ident
    return out


def shift_caption(ds: Dataset, other: Dataset, res: shift.BandShift) -> str:
    """The shift profile's caption line: what was compared with what (every band: the mask,
    which only the statistics and the @mask configs use, does not apply)."""
    bands = f"all {res.ks.size} {ds.row_noun}s compared (the mask does not apply)"
    if other.id == ds.id:
        return (f"{ds.name} · N = {res.n_a:,} train vs {res.n_b:,} test examples of "
                f"{ds.n:,} · {bands}")
    return f"{ds.name} (N = {res.n_a:,}) vs {other.name} (N = {res.n_b:,}) · {bands}"


def shift_ui(ds: Dataset, stats: PixelStats, mask: np.ndarray, threshold: float,
             on: str = "train", *, report_view: bool = False) -> None:
    """The row-SNR profile, the shift profile beside it (each with its caption and PNG/SVG
    downloads, unless in report view), and the finding."""
    st.subheader(f"Shift per {ds.row_noun}")
    others = _same_rows(ds)
    options = [SPLITS, *others]
    against = st.selectbox(
        "Compare this dataset with", options, key="shift_against",
        format_func=lambda k: k if k == SPLITS else others.get(k, k),
        help="Per-example band energy (mean over frames) compared band by band with a two-sample "
             "KS test, Holm-adjusted over the bands: the chance of naming any band when nothing "
             "shifts is at most 5%. Other datasets must have the same number of bands.")
    try:
        other = ds if against == SPLITS else get_dataset(against)
        if other.shape[0] != ds.shape[0]:
            raise NormScopeError(f"{other.name} has {other.shape[0]} x {other.shape[1]} examples "
                                 f"and {ds.name} {ds.shape[0]} x {ds.shape[1]}: the shift per "
                                 "band needs the same number of bands")
        res = band_shift(ds.id, other.id, ds, other)
    except NormScopeError as exc:
        st.error(md(exc))
        return
    cap = figures.caption(ds.name, stats.n, ds.n, on if on == "train" else "(all)", mask)
    common = dict(row_label=ds.row_label, row_origin=ds.row_origin, dataset_name=ds.name)
    c = st.columns([2, 2, 3])
    # The shift figure's image cache is keyed by what it compares (mask and colours do not
    # change it): ``which`` names the other dataset.
    which = "shift" if other.id == ds.id else f"shift-vs-{other.id}"
    for col, fig, name, key in (
            (c[0], figures.row_snr_profile(stats, mask=mask, threshold=threshold,
                                           caption_text=cap, **common), "row_snr", "chart_shift_snr"),
            (c[1], shift_profile(res, caption_text=shift_caption(ds, other, res), **common),
             which, "chart_shift")):
        with col:
            chart(fig, f"normscope-{ds.name}-{name.replace('_', '-')}", key)
            if not report_view:
                image_buttons(fig, ds, on, name, mask, threshold, False, "")
    with c[2]:
        f = shift.shift_finding(res, row_noun=ds.row_noun)
        SEVERITY_BOX[f.severity](f"**{f.code}** — {md(f.message)}")
