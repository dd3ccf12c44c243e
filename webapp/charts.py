"""Drawing a figure in the page, and its PNG/SVG downloads (every tab uses these)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import streamlit as st

from diagnostics.data.dataset import Dataset
from diagnostics.plots import figures
from webapp.cache import figure_image

PLOT_CONFIG = {"displaylogo": False}


def chart(fig, name: str, key: str) -> None:
    """A plotly figure whose modebar camera saves a 3x PNG named ``name``."""
    config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 3, "filename": name}}
    st.plotly_chart(fig, key=key, config=config, theme=None)  # same look as exports


def kaleido_browser() -> str | None:
    """The chromium kaleido would use, or None (static export is then unavailable)."""
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


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
    row = st.container(horizontal=True)  # side by side, under the figure's left edge
    for fmt in ("png", "svg"):
        row.download_button(
            f"{fmt.upper()}", key=f"dl_{which}_{fmt}", file_name=f"{name}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml", on_click="ignore",
            data=lambda fmt=fmt: figure_image(ds.id, on, which, fmt, key, *colour, fig),
            help=f"Download this figure as {fmt.upper()} (rendered on the server).",
        )
