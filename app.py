"""NormScope dashboard: ``streamlit run app.py``.

Wiring only: the page, the sidebar and the tabs.  The views live in ``webapp/`` (each
``*_ui()`` draws widgets and returns plain values), the cached loaders in
:mod:`webapp.cache`, everything else in ``diagnostics`` (numpy) and ``models`` (torch, reached
through :mod:`webapp.runs` only).

The view lives in the URL: widgets are bound to query parameters (``dataset``, ``mask_snr``,
``tab``, ``on``, ``log_color``, ``colorscale``, ``report``, ``configs``, ``runs``,
``advice``, and the sees tab's ``sees_configs``, ``sees_pick``, ``sees_index``,
``sees_colour``), so a link
reproduces what its sender saw.  Parameters are validated before the widgets read them; a bad
one gives a notice and the default.
"""

from __future__ import annotations

import streamlit as st

from diagnostics.errors import NormScopeError
from webapp.text import grouped, md
from webapp import runs, share, sidebar, state
from webapp.advise import advise_page
from webapp.cache import get_dataset, get_stats
from webapp.compare import compare_page, runs_picker_ui
from webapp.report_view import header_ui
from webapp.sees import sees_page
from webapp.statistics import statistics_page


def main() -> None:
    st.set_page_config(page_title="NormScope", layout="wide")
    try:
        runs.mark_interrupted()
        store_error = None
    except NormScopeError as exc:  # a full disk or a read-only data directory: say so once
        store_error = str(exc)
    state.url_notices()
    sidebar.pending_open()
    ds, on = sidebar.dataset_ui()
    try:
        stats = get_stats(ds.id, on, ds)
    except NormScopeError as exc:  # a link to a dataset that cannot be summarised
        st.error(f"{md(ds.name)}: {md(exc)}. Showing demo instead.")
        ds = get_dataset("demo")
        stats = get_stats(ds.id, on, ds)
    mask, threshold = sidebar.mask_ui(stats, ds)
    log_color, scale, report_view = sidebar.options_ui()
    if store_error is None:
        runs_picker_ui(ds)
    share_box = st.sidebar.container()
    header_ui(ds, report_view)
    grouped_notices = grouped(state.notices())
    if grouped_notices:
        st.warning(grouped_notices, icon=":material/link:")
    if store_error is not None:
        st.error(md(store_error), icon=":material/database:")
    elif runs.store_notice():
        st.warning(md(runs.store_notice()), icon=":material/database:")
    tabs = st.tabs(list(share.TABS), key="tab", bind=state.BIND)
    with tabs[0]:
        if tabs[0].open:
            statistics_page(ds, stats, on, mask, threshold, log_color, scale, report_view)
    with tabs[1]:
        if tabs[1].open and store_error is None:
            # Comparisons fit on the training split: its statistics pick the default configs
            # and describe the runs, whatever "Statistics over" shows.
            train = stats if on == "train" else get_stats(ds.id, "train", ds)
            compare_page(ds, train, threshold, report_view)
    with tabs[2]:
        if tabs[2].open:
            train = stats if on == "train" else get_stats(ds.id, "train", ds)
            sees_page(ds, train, threshold, report_view)
    with tabs[3]:
        if tabs[3].open and store_error is None:
            train = stats if on == "train" else get_stats(ds.id, "train", ds)
            advise_page(ds, train, threshold, report_view)
    state.share_ui(share_box)


main()
