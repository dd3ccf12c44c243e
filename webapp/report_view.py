"""Report view (a clean page for screenshots) and the HTML report download.

The report itself is built by :func:`diagnostics.plots.report.build_report`, as on the command
line (``python -m diagnostics report``).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from diagnostics.data.dataset import Dataset
from diagnostics.plots.report import build_report
from diagnostics.stats.accumulate import PixelStats
from webapp import runs
from webapp.text import md

HIDE_CHROME = ("<style>[data-testid='stSidebar'],[data-testid='stSidebarCollapsedControl'],"
               "header{display:none !important}</style>")


def header_ui(ds: Dataset, report_view: bool) -> None:
    """The page title; in report view the sidebar and chrome are hidden and a button leaves."""
    if report_view:
        st.html(HIDE_CHROME)
    st.title("NormScope" if not report_view else f"NormScope — {md(ds.name)}")
    if report_view:
        st.button("Leave report view", key="leave_report",
                  on_click=lambda: st.session_state.update(report=False))
    else:
        st.caption("Why does normalizing my inputs make training worse? Per-pixel statistics, "
                   "noise amplification and low-SNR rows of your training split.")


def report_download_ui(ds: Dataset, stats: PixelStats, threshold: float, on: str,
                       log_color: bool, scale: str, mask: np.ndarray) -> None:
    """Download of the whole report: statistics as shown, and the comparisons shown in the
    Compare tab (else the newest stored ones of the dataset)."""
    # Read now: the download callable runs in a thread without this session's state.
    selected = list(st.session_state.get("runs") or [])

    def build() -> bytes:
        return build_report(ds, stats, mask_snr=threshold, on=on, log_color=log_color,
                            colorscale=scale, mask=mask,
                            comparisons=runs.report_records(ds.id, selected)).encode()

    st.download_button("Download HTML report", data=build, key="dl_report", on_click="ignore",
                       file_name=f"normscope-{ds.name}-report.html", mime="text/html",
                       help="One self-contained file (plotly.js inlined): opens offline.")
