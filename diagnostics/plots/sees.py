"""Figures of "what the network sees": examples under each config, and the per-band profile.

Pure builders returning ``go.Figure`` (see :mod:`diagnostics.plots.figures` for the house
style: titles with a caption line, labelled axes and colourbars, masked rows washed out).
Traces and the layout are built as plain dicts and validated once: a grid of 40 heatmaps is
redrawn on every change of config.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from diagnostics.plots.figures import MASK_FILL, OKABE_ITO, UNDEFINED_BG, safe_colorscale
from diagnostics.sees import ConfigView

COLOUR_MODES = ("own", "shared")
ROW_PX = 175  # height of one row of panels
GAP = 0.06  # gap between the config panels of a row, as a share of the frame count
COLUMN_TOP, COLUMN_BOTTOM = 62, 48  # a live column's title and frame axis, in px
COLUMN_LEFT = {True: 50, False: 8}  # a live column's left margin: the first has the band axis


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs of a boolean vector as inclusive (start, end) pairs."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    return list(zip(np.r_[idx[0], idx[breaks + 1]].tolist(), np.r_[idx[breaks], idx[-1]].tolist()))


def _range(z: np.ndarray) -> tuple[float, float]:
    fin = z[np.isfinite(z)]
    if not fin.size:
        return 0.0, 1.0
    lo, hi = float(fin.min()), float(fin.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _frame_ticks(W: int) -> list[int]:
    """Two to four round frame numbers inside 0..W-1 (one panel's x ticks)."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if (W - 1) // step <= 3:
            return list(range(0, W, step))
    return [0, W - 1]


def sees_figure(views: list[ConfigView], labels: list[str], *, colour: str = "own",
                colorscale: str = "Viridis", row_label: str = "frequency band",
                col_label: str = "frame", row_origin: str = "lower", caption_text: str = "",
                dataset_name: str = "") -> go.Figure:
    """Examples (rows) under each config (columns), side by side.

    One subplot per example; its configs sit side by side on that subplot's x axis (offset by
    ``W`` plus a gap), so the browser lays out n axes, not n x C: the grid is redrawn on every
    change of config, and axes and colourbars are most of a redraw's cost.

    Parameters
    ----------
    views : list of ConfigView
        One per config, each holding the same examples (n, H, W).
    labels : list of str
        One per example (e.g. ``"dog · #12"``).
    colour : {"own", "shared"}
        Each panel on its own colour range (the range printed above the panel; one colourbar
        reads min to max) or every panel on one range (one colourbar in values): the shared
        one shows how different the scales are.
    """
    if not views:
        raise ValueError("no configs to show")
    ranges = panel_ranges(views, colour)
    n, H, W = views[0].examples.shape
    own = colour == "own"
    gap = max(1, int(np.ceil(GAP * W)))
    offsets = [c * (W + gap) for c in range(len(views))]
    x_range = [-0.5, offsets[-1] + W - 0.5]
    right = 0.93  # the colourbar's room
    gap_y = (0.3 if own else 0.22) / n if n > 1 else 0.0  # own: room for the range labels
    height = (1.0 - gap_y * (n - 1)) / n
    scale = safe_colorscale(colorscale)
    shared = None if own else ranges[0][0]
    yr = [H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]
    top = yr[1]  # a panel's top edge, in band units
    ticks = _frame_ticks(W)
    traces, shapes, notes = [], [], []
    layout: dict = {}
    for r in range(n):
        ax = "" if r == 0 else str(r + 1)
        y1 = 1.0 - r * (height + gap_y)
        last = r == n - 1
        layout[f"xaxis{ax}"] = dict(
            domain=[0.0, right], anchor=f"y{ax}", range=x_range, showgrid=False, zeroline=False,
            tickfont=dict(size=9), showticklabels=last,
            tickvals=[o + t for o in offsets for t in ticks] if last else None,
            ticktext=[str(t) for _ in offsets for t in ticks] if last else None,
            title=dict(text=col_label, font=dict(size=11)) if last else None)
        layout[f"yaxis{ax}"] = dict(
            domain=[max(0.0, y1 - height), min(1.0, y1)], anchor=f"x{ax}", range=yr,
            showgrid=False, zeroline=False, tickfont=dict(size=9),
            title=dict(text=f"{labels[r]}<br>{row_label}", font=dict(size=11)))
        for c, v in enumerate(views):
            z = v.examples[r]
            lo, hi = ranges[c][r]
            x0 = offsets[c]
            panel = f"<br>panel range {lo:.4g} … {hi:.4g}" if own else ""
            trace = dict(
                type="heatmap", z=z.astype(np.float32), x0=x0, dx=1, xaxis=f"x{ax}",
                yaxis=f"y{ax}", zmin=lo, zmax=hi, colorscale=scale, hoverongaps=False,
                showscale=r == 0 and c == 0,
                hovertemplate=(f"{labels[r]} · {v.config}<br>{row_label} %{{y}}<br>"
                               f"value = %{{z:.4g}}{panel}<extra></extra>"),
            )
            if r == 0 and c == 0:
                bar = dict(thickness=14, x=0.945, len=min(1.0, 0.25 + 0.75 / n), y=1.0,
                           yanchor="top")
                if own:  # every panel maps its own min to max onto the same colours
                    bar.update(tickvals=[lo, hi], ticktext=["min", "max"],
                               title=dict(text="each panel: its own min … max", side="right"))
                else:
                    bar["title"] = dict(text="value after normalization", side="right")
                trace["colorbar"] = bar
            traces.append(trace)
            if own:
                notes.append(dict(xref=f"x{ax}", yref=f"y{ax}", x=x0 + W - 0.5, y=top,
                                  xanchor="right", yanchor="bottom", showarrow=False,
                                  text=f"{lo:.3g} … {hi:.3g}", font=dict(size=9, color="#444")))
            for lo_r, hi_r in _runs(~v.kept):
                shapes.append(dict(type="rect", xref=f"x{ax}", yref=f"y{ax}", x0=x0 - 0.5,
                                   x1=x0 + W - 0.5, y0=lo_r - 0.5, y1=hi_r + 0.5,
                                   fillcolor=MASK_FILL, line=dict(color="#333", width=1, dash="dot")))
                notes.append(dict(xref=f"x{ax}", yref=f"y{ax}", x=x0 + W - 1, y=(lo_r + hi_r) / 2,
                                  text="dropped", showarrow=False, xanchor="right",
                                  font=dict(size=10, color="#333")))
    for c in range(1, len(views)):  # the gaps between panels white, not the undefined grey
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=offsets[c] - gap - 0.5,
                           x1=offsets[c] - 0.5, y0=0, y1=1, fillcolor="white", layer="below",
                           line=dict(width=0)))
    for c, v in enumerate(views):
        notes.append(dict(xref="x", yref="paper", x=offsets[c] + (W - 1) / 2, y=1.0,
                          yanchor="bottom", yshift=13 if own else 0, text=f"<b>{v.config}</b>",
                          showarrow=False, font=dict(size=13)))
    title = "What the network sees" + (f" — {dataset_name}" if dataset_name else "")
    scale_text = ("each panel on its own colour scale (its range above it)" if own
                  else f"one colour scale for all panels ({shared[0]:.3g} … {shared[1]:.3g})")
    layout.update(
        title=dict(text=title, subtitle=dict(text=f"{caption_text} · {scale_text}"), x=0.01,
                   font=dict(size=15)),
        height=110 + ROW_PX * n, margin=dict(l=80, r=20, t=105 + (13 if own else 0), b=55),
        plot_bgcolor=UNDEFINED_BG, font=dict(family="Arial, sans-serif"), shapes=shapes,
        annotations=notes, showlegend=False,
        meta={"colour": colour, "configs": [v.config for v in views], "examples": list(labels)},
    )
    return go.Figure(data=traces, layout=layout)


def panel_ranges(views: list[ConfigView], colour: str = "own") -> list[list[tuple[float, float]]]:
    """The colour range of every panel, ``[config][example] -> (lo, hi)``: each panel's own
    finite min..max, or one range over every panel (``colour="shared"``)."""
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour={colour!r}; use one of {COLOUR_MODES}")
    if colour == "shared":
        shared = _range(np.concatenate([v.examples.ravel() for v in views]))
        return [[shared] * len(v.examples) for v in views]
    return [[_range(z) for z in v.examples] for v in views]


def sees_column_figure(view: ConfigView, labels: list[str], ranges: list[tuple[float, float]], *,
                       colorscale: str = "Viridis", row_label: str = "frequency band",
                       col_label: str = "frame", row_origin: str = "lower",
                       own: bool = True, first: bool = True) -> go.Figure:
    """One config's column of the live grid: its examples stacked on one pair of axes.

    The page draws one such chart per config (and :func:`sees_colourbar_figure` beside
    them), so that a change of configs redraws only the columns that changed: Streamlit
    re-parses and re-themes a chart's whole JSON whenever its spec changes, and the panels'
    values are most of it.  Exports use :func:`sees_figure`, the same grid in one figure.

    Parameters
    ----------
    view : ConfigView
    labels : list of str
        One per example, printed above its panel.
    ranges : list of (lo, hi)
        Each example's colour range (:func:`panel_ranges`).
    own : bool
        Each panel on its own range: the range is printed above the panel and in the hover.
    first : bool
        The leftmost column: it alone carries the band axis's tick labels and title
        (``COLUMN_LEFT`` gives every column's left margin, for columns of equal panel widths).
    """
    n, H, W = view.examples.shape
    gap = max(3.0, np.ceil(0.3 * H))  # room above each panel for its label
    upper = row_origin == "upper"
    span = n * H + (n - 1) * gap
    scale = safe_colorscale(colorscale)
    ticks = _frame_ticks(H)
    traces, shapes, notes, tickvals, ticktext = [], [], [], [], []
    for r in range(n):
        # Example r's band 0: with rows counted upwards the first example is the top one.
        base = r * (H + gap) if upper else (n - 1 - r) * (H + gap)
        top = base - 0.5 if upper else base + H - 0.5  # the panel's upper edge
        lo, hi = ranges[r]
        panel = f"<br>panel range {lo:.4g} … {hi:.4g}" if own else ""
        traces.append(dict(
            type="heatmap", z=view.examples[r].astype(np.float32), x0=0, dx=1, y0=base, dy=1,
            zmin=lo, zmax=hi, colorscale=scale, hoverongaps=False, showscale=False,
            hovertemplate=(f"{labels[r]} · {view.config}<br>{col_label} %{{x}}<br>"
                           f"{row_label} %{{y}}<br>value = %{{z:.4g}}{panel}<extra></extra>"),
        ))
        tickvals += [base + t for t in ticks]
        ticktext += [str(t) for t in ticks]
        # The label on the upper line, the panel's range under it (right): never overlapping.
        above = dict(yref="y", xref="x", y=top, yanchor="bottom", showarrow=False)
        notes.append(dict(above, x=-0.5, xanchor="left", text=labels[r], yshift=14 if own else 1,
                          font=dict(size=10, color="#333")))
        if own:
            notes.append(dict(above, x=W - 0.5, xanchor="right", text=f"{lo:.3g} … {hi:.3g}",
                              yshift=1, font=dict(size=9, color="#555")))
        for lo_r, hi_r in _runs(~view.kept):
            shapes.append(dict(type="rect", xref="x", yref="y", x0=-0.5, x1=W - 0.5,
                               y0=base + lo_r - 0.5, y1=base + hi_r + 0.5, fillcolor=MASK_FILL,
                               line=dict(color="#333", width=1, dash="dot")))
            notes.append(dict(xref="x", yref="y", x=W - 1, y=base + (lo_r + hi_r) / 2,
                              text="dropped", showarrow=False, xanchor="right",
                              font=dict(size=10, color="#333")))
        if r < n - 1:  # the gap under this panel white, not the undefined grey
            g0 = base + H - 0.5 if upper else base - gap - 0.5
            shapes.append(dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=g0,
                               y1=g0 + gap, fillcolor="white", layer="below", line=dict(width=0)))
    yr = [span - 0.5, -0.5] if upper else [-0.5, span - 0.5]
    layout = dict(
        title=dict(text=f"<b>{view.config}</b>", x=0.5, xanchor="center", y=1, yref="container",
                   yanchor="top", pad=dict(t=6), font=dict(size=13)),
        xaxis=dict(range=[-0.5, W - 0.5], showgrid=False, zeroline=False, tickfont=dict(size=9),
                   tickvals=_frame_ticks(W), title=dict(text=col_label, font=dict(size=11))),
        yaxis=dict(range=yr, showgrid=False, zeroline=False, tickfont=dict(size=9),
                   tickvals=tickvals, ticktext=ticktext, showticklabels=first,
                   title=dict(text=row_label if first else "", font=dict(size=11))),
        height=COLUMN_TOP + ROW_PX * n + COLUMN_BOTTOM,
        margin=dict(l=COLUMN_LEFT[first], r=6, t=COLUMN_TOP, b=COLUMN_BOTTOM, autoexpand=False),
        plot_bgcolor=UNDEFINED_BG,
        font=dict(family="Arial, sans-serif"), shapes=shapes, annotations=notes,
        showlegend=False,
        meta={"config": view.config, "examples": list(labels), "colour": "own" if own else "shared"},
    )
    return go.Figure(data=traces, layout=layout)


def sees_colourbar_figure(n: int, shared: tuple[float, float] | None, *,
                          colorscale: str = "Viridis") -> go.Figure:
    """The live grid's one colourbar, as a narrow chart of the same height as its columns:
    values for a shared range, else "min" to "max" of each panel."""
    lo, hi = shared if shared else (0.0, 1.0)
    bar = dict(thickness=14, x=0, xanchor="left", len=1.0, y=1.0, yanchor="top")
    if shared:
        bar["title"] = dict(text="value after normalization", side="right")
    else:
        bar.update(tickvals=[lo, hi], ticktext=["min", "max"],
                   title=dict(text="each panel: its own min … max", side="right"))
    trace = dict(type="heatmap", z=[[lo, hi]], zmin=lo, zmax=hi, colorscale=safe_colorscale(colorscale),
                 showscale=True, colorbar=bar, hoverinfo="skip", opacity=0)
    hidden = dict(visible=False, domain=[0, 0.01])
    layout = dict(title=dict(text=""), xaxis=hidden, yaxis=dict(visible=False),
                  height=COLUMN_TOP + ROW_PX * n + COLUMN_BOTTOM,
                  margin=dict(l=0, r=0, t=COLUMN_TOP, b=COLUMN_BOTTOM, autoexpand=False),
                  plot_bgcolor="white", paper_bgcolor="white",
                  font=dict(family="Arial, sans-serif"), showlegend=False,
                  meta={"colourbar": "shared" if shared else "own"})
    return go.Figure(data=[trace], layout=layout)


def band_profile_figure(views: list[ConfigView], *, row_label: str = "frequency band",
                        row_origin: str = "lower", caption_text: str = "",
                        dataset_name: str = "") -> go.Figure:
    """Per-band mean (left) and standard deviation (right) after each normalization, one line
    per config; dropped rows are gaps.  The std axis is logarithmic when every std is positive
    (raw power and z-scored values differ by decades)."""
    H = views[0].band_mean.size
    rows = np.arange(H)
    traces = []
    for i, v in enumerate(views):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        for which, axis, values in (("mean", "x", v.band_mean), ("std", "x2", v.band_std)):
            traces.append(dict(
                type="scatter", x=values, y=rows, xaxis=axis, yaxis="y" if axis == "x" else "y2",
                mode="lines+markers", marker=dict(size=4, color=color), name=v.config,
                line=dict(color=color, width=1.5), legendgroup=v.config,
                showlegend=which == "mean",
                hovertemplate=f"{v.config}<br>{row_label} %{{y}}<br>{which} = %{{x:.4g}}"
                              "<extra></extra>"))
    stds = np.concatenate([v.band_std for v in views])
    fin = stds[np.isfinite(stds)]
    log_std = bool(fin.size) and bool(np.all(fin > 0))
    yr = [H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]
    n_prof = views[0].n_profile
    title = "Per-band mean and std" + (f" — {dataset_name}" if dataset_name else "")
    legend_b = 60 + 25 * -(-len(views) // 2)
    layout = dict(
        # A narrow column beside the grid: the caption one part per line.
        title=dict(text=title, subtitle=dict(text="<br>".join(
            ["after each normalization"] + [p for p in caption_text.split(" · ") if p]
            + [f"over {n_prof:,} test examples and their frames"])), x=0.01, font=dict(size=15)),
        xaxis=dict(domain=[0, 0.47], title=dict(text="per-band mean"), gridcolor="#e5e5e5",
                   zeroline=True, zerolinecolor="#bbb"),
        xaxis2=dict(domain=[0.53, 1.0], anchor="y2", gridcolor="#e5e5e5",
                    type="log" if log_std else "linear",
                    title=dict(text="per-band std" + (" (log)" if log_std else ""))),
        yaxis=dict(title=dict(text=row_label), range=yr, autorange=False),
        yaxis2=dict(anchor="x2", range=yr, autorange=False, matches="y", showticklabels=False),
        legend=dict(orientation="h", y=-0.18, yanchor="top", font=dict(size=11)),
        # Fixed margins (Plotly would otherwise lay the chart out twice, about 50 ms of every
        # redraw): the bottom one holds the axis titles and the legend, two configs a row at
        # the narrowest width.
        height=450 + legend_b, margin=dict(l=60, r=20, t=165, b=legend_b, autoexpand=False),
        plot_bgcolor="white",
        font=dict(family="Arial, sans-serif"),
        meta={"configs": [v.config for v in views], "log_std": log_std},
    )
    return go.Figure(data=traces, layout=layout)
