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


def sees_figure(views: list[ConfigView], labels: list[str], *, colour: str = "own",
                colorscale: str = "Viridis", row_label: str = "frequency band",
                col_label: str = "frame", row_origin: str = "lower", caption_text: str = "",
                dataset_name: str = "") -> go.Figure:
    """Examples (rows) under each config (columns), side by side.

    Parameters
    ----------
    views : list of ConfigView
        One per config, each holding the same examples (n, H, W).
    labels : list of str
        One per example (e.g. ``"dog · #12"``).
    colour : {"own", "shared"}
        Each panel on its own colour range (with its own colourbar), or every panel on one
        range (one colourbar): the shared one shows how different the scales are.
    """
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour={colour!r}; use one of {COLOUR_MODES}")
    if not views:
        raise ValueError("no configs to show")
    n, H, W = views[0].examples.shape
    C = len(views)
    own = colour == "own"
    gap_x = 0.075 if own else 0.02  # own colourbars need room beside each panel
    right = 0.93 if not own else 1.0
    width = (right - gap_x * (C - 1)) / C
    gap_y = 0.25 / max(n, 1) if n > 1 else 0.0
    height = (1.0 - gap_y * (n - 1)) / n
    scale = safe_colorscale(colorscale)
    shared = _range(np.concatenate([v.examples.ravel() for v in views])) if not own else None
    yr = [H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]
    traces, shapes, notes = [], [], []
    layout: dict = {}
    for r in range(n):
        y1 = 1.0 - r * (height + gap_y)
        for c, v in enumerate(views):
            k = r * C + c + 1
            x0 = c * (width + gap_x)
            ax = "" if k == 1 else str(k)
            z = v.examples[r]
            lo, hi = shared if shared else _range(z)
            trace = dict(
                type="heatmap", z=z.astype(np.float32), xaxis=f"x{ax}", yaxis=f"y{ax}",
                zmin=lo, zmax=hi, colorscale=scale, hoverongaps=False,
                hovertemplate=(f"{labels[r]} · {v.config}<br>{row_label} %{{y}}, {col_label} "
                               "%{x}<br>value = %{z:.4g}<extra></extra>"),
            )
            if own:
                trace["colorbar"] = dict(x=x0 + width + 0.004, xanchor="left", y=y1 - height / 2,
                                         len=height, thickness=8, tickfont=dict(size=9),
                                         outlinewidth=0)
            else:
                trace["showscale"] = k == 1
                if k == 1:
                    trace["colorbar"] = dict(title=dict(text="value after normalization",
                                                        side="right"), thickness=14, x=0.945)
            traces.append(trace)
            layout[f"xaxis{ax}"] = dict(
                domain=[max(0.0, x0), min(1.0, x0 + width)], anchor=f"y{ax}", range=[-0.5, W - 0.5], showgrid=False,
                zeroline=False, tickfont=dict(size=9), showticklabels=r == n - 1,
                title=dict(text=col_label, font=dict(size=11)) if r == n - 1 else None)
            layout[f"yaxis{ax}"] = dict(
                domain=[max(0.0, y1 - height), min(1.0, y1)], anchor=f"x{ax}", range=yr, showgrid=False,
                zeroline=False, tickfont=dict(size=9), showticklabels=c == 0,
                title=dict(text=f"{labels[r]}<br>{row_label}", font=dict(size=11)) if c == 0
                else None)
            for lo_r, hi_r in _runs(~v.kept):
                shapes.append(dict(type="rect", xref=f"x{ax}", yref=f"y{ax}", x0=-0.5,
                                   x1=W - 0.5, y0=lo_r - 0.5, y1=hi_r + 0.5, fillcolor=MASK_FILL,
                                   line=dict(color="#333", width=1, dash="dot")))
                notes.append(dict(xref=f"x{ax}", yref=f"y{ax}", x=W - 1, y=(lo_r + hi_r) / 2,
                                  text="dropped", showarrow=False, xanchor="right",
                                  font=dict(size=10, color="#333")))
            if r == 0:
                notes.append(dict(xref="paper", yref="paper", x=x0 + width / 2, y=1.0,
                                  yanchor="bottom", text=f"<b>{v.config}</b>", showarrow=False,
                                  font=dict(size=13)))
    title = "What the network sees" + (f" — {dataset_name}" if dataset_name else "")
    scale_text = ("each panel on its own colour scale" if own
                  else f"one colour scale for all panels ({shared[0]:.3g} … {shared[1]:.3g})")
    layout.update(
        title=dict(text=title, subtitle=dict(text=f"{caption_text} · {scale_text}"), x=0.01,
                   font=dict(size=15)),
        height=110 + ROW_PX * n, margin=dict(l=80, r=40 if own else 20, t=105, b=55),
        plot_bgcolor=UNDEFINED_BG, font=dict(family="Arial, sans-serif"), shapes=shapes,
        annotations=notes, showlegend=False,
        meta={"colour": colour, "configs": [v.config for v in views], "examples": list(labels)},
    )
    return go.Figure(data=traces, layout=layout)


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
        height=560, margin=dict(l=60, r=20, t=165, b=110), plot_bgcolor="white",
        font=dict(family="Arial, sans-serif"),
        meta={"configs": [v.config for v in views], "log_std": log_std},
    )
    return go.Figure(data=traces, layout=layout)
