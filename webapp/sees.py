"""The "What the network sees" tab: examples as the classifier receives them under each config.

Each config is fitted on the training split once per dataset, config and mask threshold
(``st.cache_resource``, shared by every session), so changing the configs only fits the new
ones and redraws.  Audio datasets play each example's source clip from the server.
"""

from __future__ import annotations

import streamlit as st

from diagnostics import config as ns_config
from diagnostics import sees
from diagnostics.data.audio import playback
from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import valid_config_names
from diagnostics.plots import figures
from diagnostics.plots.sees import (COLUMN_LEFT, band_profile_figure, panel_ranges,
                                    sees_colourbar_figure, sees_column_figure, sees_figure)
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.findings import suggested_configs
from webapp import share
from webapp.charts import chart, kaleido_browser
from webapp.state import BIND, config_ok
from webapp.text import md

PICKS = share.SEES_PICKS
COLOURS = dict(zip(share.SEES_COLOURS, ("own", "shared")))
SLOTS = 4  # config columns the grid is laid out for (more configs make the columns narrower)


@st.cache_resource(show_spinner="Fitting the normalization on the training split…", max_entries=96)
def fitted_config(dataset_id: str, config: str, mask_snr: float, _ds: Dataset) -> sees.Fitted:
    # Keyed by ids and the config (never by arrays); a Fitted is read-only once made.
    return sees.fit_config(_ds, config, mask_snr=mask_snr)


@st.cache_resource(show_spinner=False, max_entries=96)
def column_figure(dataset_id: str, config: str, mask_snr: float, examples: tuple[int, ...],
                  labels: tuple[str, ...], ranges: tuple, colorscale: str, axes: tuple,
                  own: bool, first: bool, _view: sees.ConfigView):
    # One config's column, built once per everything its picture depends on (``axes``: row
    # label, column label, row origin): a change of configs rebuilds only the new column,
    # and plotly's validation is most of a column's build.  Nothing modifies a built figure.
    row_label, col_label, row_origin = axes
    return sees_column_figure(_view, list(labels), list(ranges), colorscale=colorscale,
                              row_label=row_label, col_label=col_label, row_origin=row_origin,
                              own=own, first=first)


@st.cache_data(show_spinner=False, max_entries=32)
def _image(dataset_id: str, key: tuple, fmt: str, _fig) -> bytes:
    # kaleido drives the system chromium (1-2 s an image): only on click, and cached.  ``_fig``
    # may be a builder: the grid's one-figure export is made only when it is asked for.
    fig = _fig() if callable(_fig) else _fig
    height = int(fig.layout.height or 560)
    return fig.to_image(format=fmt, scale=2 if fmt == "png" else 1, width=1400, height=height)


def default_configs(stats: PixelStats, threshold: float) -> list[str]:
    """The open comparison's configs (the Compare tab's choice, or the link's), else the
    configs the statistics suggest."""
    valid = set(valid_config_names(stats))
    chosen = st.session_state.get("configs") or st.query_params.get_all("configs")
    picked = [c for c in chosen if c in valid]
    return picked or suggested_configs(stats, threshold)


def _mask_key(config: str, threshold: float) -> float:
    # The threshold matters only to @mask configs: the others stay cached when it moves.
    return float(threshold) if "@" in config else 0.0


def _widths(n: int, grid_px: float = 850.0) -> list[float]:
    """Column weights that give every config column about the same panel width, although the
    first one also holds the band axis (for a grid about ``grid_px`` wide, the page's width at
    1280 to 1600 px; each column also has a 6 px right margin and a 16 px gap)."""
    panel = max(grid_px / n - COLUMN_LEFT[False] - 6 - 16, 40.0)
    return [panel + COLUMN_LEFT[k == 0] + 6 for k in range(n)]


def grid_ui(views: list[sees.ConfigView], examples: list[tuple[int, str]], colour: str,
            colorscale: str, ds: Dataset, caption_text: str, mask_snr: float) -> None:
    """The grid as one chart per config and a colourbar beside them.

    A change of configs then redraws only the columns that changed: Streamlit re-parses and
    re-themes a chart's whole JSON (mostly the panels' values) whenever its spec changes.
    """
    ranges = panel_ranges(views, colour)
    own = colour == "own"
    labels = [label for _, label in examples]
    scale_text = ("each panel on its own colour scale (its range above it)" if own else
                  "one colour scale for all panels ({:.3g} … {:.3g})".format(*ranges[0][0]))
    st.markdown(f"**What the network sees — {md(ds.name)}**")
    st.caption(md(f"{caption_text} · {scale_text}"))
    # The colourbar has its own outer column: a config column added or removed inside the
    # grid never moves it, and a chart that keeps its place and spec is not redrawn.  Up to
    # SLOTS configs the columns keep their widths (empty slots stay blank), so adding or
    # removing one does not resize, and so redraw, the others.
    slots = max(len(views), SLOTS)
    outer = st.columns([slots, 0.6], gap="small")  # the bar's ticks and title: ~70 px at 1280
    with outer[1]:
        chart(sees_colourbar_figure(len(labels), None if own else ranges[0][0],
                                    colorscale=colorscale),
              f"normscope-{ds.name}-sees-colourbar", "chart_sees_colourbar")
    with outer[0]:
        grid = st.container(key="sees_grid")
        for k, (col, view, rng) in enumerate(zip(grid.columns(_widths(slots), gap="small"),
                                                 views, ranges)):
            with col:
                chart(column_figure(ds.id, view.config, _mask_key(view.config, mask_snr),
                                    tuple(i for i, _ in examples), tuple(labels), tuple(rng),
                                    colorscale, (ds.row_label, ds.col_label, ds.row_origin),
                                    own, k == 0, view),
                      f"normscope-{ds.name}-sees-{view.config}", f"chart_sees_{view.config}")


def _buttons(fig, ds: Dataset, which: str, key: tuple) -> None:
    if kaleido_browser() is None:
        st.caption("PNG/SVG files need chromium on the server; the camera icon above the chart "
                   "still saves a 3x PNG.")
        return
    row = st.container(horizontal=True)  # side by side, under the figure's left edge
    for fmt in ("png", "svg"):
        row.download_button(
            fmt.upper(), key=f"sees_dl_{which}_{fmt}", file_name=f"normscope-{ds.name}-{which}.{fmt}",
            mime="image/png" if fmt == "png" else "image/svg+xml", on_click="ignore",
            data=lambda fmt=fmt: _image(ds.id, key, fmt, fig),
            help=f"Download this figure as {fmt.upper()} (rendered on the server).")


def link_notices(ds: Dataset, options: list[str], link: dict, index: int | None) -> list[str]:
    """What a link asks of this tab that this dataset cannot show (once per session).

    The bound widgets drop such values silently (Streamlit keeps only known options and
    in-range numbers), so the tab says what was dropped; values that do not parse at all are
    reported with the link's other parameters (:func:`webapp.state.url_notices`).
    """
    if st.session_state.get("sees_link_checked") == ds.id:
        return []
    st.session_state["sees_link_checked"] = ds.id
    notes = []
    valid = set(options)
    for c in link["sees_configs"]:
        if c not in valid and config_ok(c):  # unparsable: url_notices says so
            notes.append(f"The link's sees_configs={c!r} does not apply to {ds.name}; "
                         "showing the other configs instead.")
    raw = (link["sees_index"] or [None])[-1]
    if raw is not None and raw.strip().isdigit() and int(raw) >= ds.n and index is not None:
        notes.append(f"The link's sees_index={raw!r} is past {ds.name}'s last example "
                     f"({ds.n - 1}); showing example {index} instead.")
    return notes


def controls_ui(ds: Dataset, stats: PixelStats, threshold: float) -> tuple[list[str], int | None, str]:
    """Configs, the example (None: one per class) and the colour mode, each bound to the URL
    (``sees_configs``, ``sees_pick``, ``sees_index``, ``sees_colour``) so a link reopens them."""
    options = valid_config_names(stats)
    notices = st.container()  # filled once the widgets have read (and cleaned) the link
    link = {k: st.query_params.get_all(k) for k in ("sees_configs", "sees_index")}
    c = st.columns([4, 2, 2])
    configs = c[0].multiselect(
        "Configs (columns)", options, default=default_configs(stats, threshold),
        key="sees_configs", bind=BIND,
        help="Each is fitted on the training split only, as in a comparison; the examples come "
             "from the test split. Defaults: the Compare tab's configs.")
    pick = c[1].radio("Examples (rows)", PICKS, key="sees_pick", bind=BIND)
    index = None
    if pick == PICKS[1]:
        index = int(c[1].number_input(f"Example index (0-{ds.n - 1})", 0, ds.n - 1, 0,
                                      key="sees_index", bind=BIND))
    colour = c[2].radio("Colour", tuple(COLOURS), key="sees_colour", bind=BIND,
                        help="Own: every panel spans its own values (shapes compare). Shared: "
                             "one range for all (scales compare).")
    for note in link_notices(ds, options, link, index):
        notices.warning(md(note), icon=":material/link:")
    return configs, index, COLOURS[colour]


def listen_ui(ds: Dataset, examples: list[tuple[int, str]], per_row: int = 4) -> None:
    """A player for each example whose source clip is on this server."""
    clips, why = [], ""
    for i, label in examples:
        clip, reason = playback.read_clip(ds.id, i, root=ns_config.data_root())
        if clip is None:
            why = why or reason
            continue
        clips.append((label, clip))
    if not clips:
        if why and "not made from audio" not in why and "registered" not in why:
            st.caption(f"No clip to play: {md(why)}.")
        return
    st.markdown("**Listen** (the source clips, from this server)")
    cols = st.columns(min(len(clips), per_row))
    for k, (label, clip) in enumerate(clips):
        with cols[k % len(cols)]:
            st.caption(md(f"{label} — {clip.name}"))
            st.audio(clip.data, format=clip.mime)


@st.fragment
def sees_page(ds: Dataset, stats: PixelStats, threshold: float, report_view: bool) -> None:
    """The tab, as a fragment: a change of its own controls reruns only the tab, so the
    browser re-renders the tab's elements and not the whole page (the sidebar's widgets, the
    header) as well: about 0.15 s of each config change on 2 cores.  Whatever it reads from
    outside (the dataset, the mask) changes only through a full rerun, which reruns it too."""
    configs, index, colour = controls_ui(ds, stats, threshold)
    if not configs:
        st.info("Choose at least one config.")
        return
    try:
        examples = sees.pick_examples(ds, index=index)
    except NormScopeError as exc:
        st.error(md(exc))
        return
    views, failed = [], []
    for name in configs:
        try:
            fit = fitted_config(ds.id, name, _mask_key(name, threshold), ds)
        except NormScopeError as exc:
            failed.append(f"{name}: {exc}")
            continue
        views.append(sees.network_view(ds, fit, [i for i, _ in examples]))
    for msg in failed:
        st.error(md(msg))
    if not views:
        return
    split = sees.parts(ds)
    mask = next((~v.kept for v in views if "@" in v.config), None)
    cap = figures.caption(ds.name, int(split.train.size), ds.n, "train", mask)
    cap = cap.replace("train examples", "train examples (fit)")
    labels = [label for _, label in examples]
    common = dict(row_label=ds.row_label, row_origin=ds.row_origin, caption_text=cap,
                  dataset_name=ds.name)
    colorscale = st.session_state.get("colorscale", "Viridis")
    prof = band_profile_figure(views, **common)
    key = (tuple(configs), tuple(labels), colour, _mask_key("@", threshold))
    # The grid takes the page's width (at 1280 px, four columns beside the profile would be
    # narrower than the 150 px a chart can be); the profile and the clips sit under it.
    grid_ui(views, examples, colour, colorscale, ds, cap, threshold)
    if not report_view:  # the export is the same grid as one figure, built only on click
        _buttons(lambda: sees_figure(views, labels, colour=colour, col_label=ds.col_label,
                                     colorscale=colorscale, **common), ds, "sees", key)
    left, right = st.columns([3, 2], gap="large")
    with left:
        chart(prof, f"normscope-{ds.name}-sees-bands", "chart_sees_bands")
        if not report_view:
            _buttons(prof, ds, "sees-bands", key[:1] + key[3:])
    with right:
        listen_ui(ds, examples, per_row=2)
