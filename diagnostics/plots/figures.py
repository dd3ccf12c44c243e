"""Figure builders: pure functions from statistics to ``plotly.graph_objects.Figure``.

Nothing here shows a figure or knows about Streamlit; callers customise with
``update_layout``.  Colours are colour-blind safe (viridis-family maps, Okabe-Ito lines).

Over 450 lines on purpose: every figure builder in one module, as librosa.display keeps all
plotting in one place (nothing else imports plotly's graph objects).
"""

from __future__ import annotations

import html
import re

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from diagnostics.stats.accumulate import PixelStats

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MASK_FILL = "rgba(255,255,255,0.72)"  # masked rows are washed out, not hidden
UNDEFINED_BG = "#9e9e9e"  # constant / undefined pixels (NaN) show this background
COLORSCALES = ("Viridis", "Cividis", "Magma", "Plasma", "Inferno")


def safe_colorscale(name: str) -> list[list]:
    """Plotly's named sequential scale as explicit stops, safe for Streamlit's front end.

    Streamlit swaps the placeholder colours ``#000001``-``#0000ff`` anywhere in a figure for its
    theme colours, even with ``theme=None``; Magma and Inferno start at ``#000004``, so their
    zero turned lavender in the browser.  Such stops are nudged to ``#010005``-like colours
    (one step of red and blue: invisible) so every scale reaches the browser as drawn.
    """
    import re

    from plotly.colors import sequential

    colors = getattr(sequential, name)
    out = []
    for i, c in enumerate(colors):
        if re.fullmatch(r"#0000[0-9a-fA-F]{2}", c):
            c = f"#01{c[3:5]}{min(255, int(c[5:], 16) + 1):02x}"
        out.append([i / (len(colors) - 1), c])
    return out


@dataclass(frozen=True)
class MapSpec:
    key: str
    title: str
    unit: str
    colorscale: str


MAPS = {
    "mean": MapSpec("mean", "Per-pixel mean", "value", "Viridis"),
    "std": MapSpec("std", "Per-pixel std", "value", "Viridis"),
    "snr": MapSpec("snr", "Per-pixel SNR (|mean| / std)", "ratio", "Viridis"),
    "amplification": MapSpec(
        "amplification", "Noise amplification by per-pixel z-scoring",
        "x", "Magma",
    ),
}


_TAG_OR_ENTITY = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")


def _text(s: object) -> str:
    """User text (dataset, class and file names) for plotly, which reads ``<a href=...>``,
    ``<b>`` and the like in titles and hover text as markup: a ``<`` that could open a tag and
    an ``&`` that could start an entity become entities (``row SNR < 0.6`` stays as it is),
    and ``%{`` (a hover template's field) loses its meaning."""
    return _TAG_OR_ENTITY.sub(lambda m: html.escape(m.group()), str(s)).replace(
        "%{", "%&#123;")


def caption(dataset_name: str, n: int, n_total: int, split: str,
            mask: np.ndarray | None, threshold: float | None = None) -> str:
    """One line saying what a figure shows: dataset, N, split and the masked rows.

    The mask is named by its rows, not by the threshold that chose them (``threshold`` is
    accepted and not shown): a manual range can add rows, and a figure whose rows did not
    change stays the same picture, so the browser need not redraw it when the slider moves
    without changing the mask.
    """
    text = f"{dataset_name} · N = {n:,} {split} examples of {n_total:,}"
    if mask is not None and mask.any():
        text += f" · {int(mask.sum())} masked rows ({row_ranges(np.flatnonzero(mask))})"
    else:
        text += " · no rows masked"
    return text


def row_ranges(idx: np.ndarray, *, most: int = 3) -> str:
    """Sorted row indices as at most ``most`` ranges: ``[0, 1, 2, 5]`` -> ``"0-2, 5"``; more
    are counted (``"0-2, 5, 7, and 4 more"``), so the caption stays one line."""
    runs = _runs(np.isin(np.arange(int(idx.max()) + 1), idx)) if len(idx) else []
    parts = [f"{lo}-{hi}" if hi > lo else f"{lo}" for lo, hi in runs]
    if len(parts) > most:
        parts = parts[:most] + [f"and {len(parts) - most} more"]
    return ", ".join(parts)


def _two_lines(caption_text: str) -> str:
    """The caption broken before its last part, for figures in a narrow column."""
    head, sep, tail = caption_text.rpartition(" · ")
    return f"{head}<br>{tail}" if sep else caption_text


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs of a boolean vector as inclusive (start, end) pairs."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def _nice_step(x: float) -> float:
    """The 1-2-5 step at or above ``x`` (0.11 -> 0.2)."""
    if not x > 0:
        return 1.0
    e = 10.0 ** np.floor(np.log10(x))
    return float(next(m * e for m in (1, 2, 5, 10) if m * e >= x * (1 - 1e-9)))


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    ks = list(range(int(np.floor(lo)), int(np.ceil(hi)) + 1))
    return [float(k) for k in ks], [f"{10.0 ** k:g}" for k in ks]


def heatmap(
    stats: PixelStats,
    which: str,
    *,
    mask: np.ndarray | None = None,
    log_color: bool = False,
    colorscale: str | None = None,
    row_label: str = "frequency band",
    col_label: str = "frame",
    row_origin: str = "lower",
    caption_text: str = "",
    dataset_name: str = "",
    range_from: str = "kept",
) -> go.Figure:
    """Heatmap of one per-pixel map, rows at the bottom, masked rows washed out.

    Parameters
    ----------
    stats : PixelStats
    which : {"mean", "std", "snr", "amplification"}
    mask : bool array, shape (H,), optional
        Masked rows (drawn washed out and labelled).
    log_color : bool
        Colour by log10 of the value (non-positive values show as undefined).
    range_from : {"kept", "all"}
        Where the colour range comes from: the kept rows (default; masked rows, often far
        quieter, would otherwise squeeze every kept row into a few colours) or every row.
    """
    spec = MAPS[which]
    values = getattr(stats, which).astype(np.float64)
    H, W = values.shape
    if log_color and (np.nanmin(values) < 0 if np.isfinite(values).any() else True):
        log_color = False  # signed maps (the mean of dB or MFCC features) are coloured linearly
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(values > 0, np.log10(values), np.nan) if log_color else values
    colorbar = dict(title=dict(text=f"{spec.key} ({spec.unit})", side="right"), thickness=14)
    kept = z if mask is None or range_from == "all" or mask.all() else z[~mask]
    finite = kept[np.isfinite(kept)]
    if log_color and finite.size:
        tv, tt = _log_ticks(float(finite.min()), float(finite.max()))
        colorbar.update(tickvals=tv, ticktext=tt, title=dict(text=f"{spec.key} ({spec.unit}, log scale)", side="right"))
    # float32 halves what travels to the browser; hover shows 4 significant digits anyway.
    trace = go.Heatmap(
        z=z.astype(np.float32), x=np.arange(W), y=np.arange(H), customdata=values.astype(np.float32),
        colorscale=safe_colorscale(colorscale or spec.colorscale), colorbar=colorbar,
        zmin=float(finite.min()) if finite.size else None,
        zmax=float(finite.max()) if finite.size else None,
        hovertemplate=(f"{row_label} %{{y}}, {col_label} %{{x}}<br>{spec.key} = "
                       "%{customdata:.4g}<extra></extra>"),
        hoverongaps=False,
    )
    shapes, notes = [], []
    for lo, hi in _runs(mask if mask is not None else np.zeros(H, bool)):
        shapes.append(dict(type="rect", xref="x", yref="y", x0=-0.5, x1=W - 0.5, y0=lo - 0.5,
                           y1=hi + 0.5, fillcolor=MASK_FILL,
                           line=dict(color="#333", width=1, dash="dot")))
        notes.append(dict(x=W - 1, y=(lo + hi) / 2, text="masked", showarrow=False,
                          xanchor="right", font=dict(size=11, color="#333")))
    title = spec.title + (f" — {_text(dataset_name)}" if dataset_name else "")
    if kept is not z:  # said on the colourbar: the caption line is full in a narrow column
        trace.colorbar.title.text += ", kept rows"
    # One layout dict: plotly validates once instead of once per update call (reruns are hot).
    layout = dict(
        title=dict(text=title, subtitle=dict(text=_text(caption_text)), x=0.01, font=dict(size=15)),
        xaxis=dict(title=dict(text=col_label), showgrid=False, zeroline=False,
                   range=[-0.5, W - 0.5]),
        yaxis=dict(title=dict(text=row_label), showgrid=False, zeroline=False,
                   range=[H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]),
        plot_bgcolor=UNDEFINED_BG, margin=fixed_margin(H, colorbar, finite), height=420,
        font=dict(family="Arial, sans-serif"), shapes=shapes, annotations=notes,
        meta={"which": which, "log_color": log_color},
    )
    return go.Figure(data=[trace], layout=layout)


def fixed_margin(H: int, colorbar: dict, finite: np.ndarray) -> dict:
    """Margins wide enough for a map's band ticks, its colourbar and their titles, with
    plotly's automatic expansion off.

    Left on, plotly lays a chart out, finds that the colourbar and axis titles push the
    margins, and lays it out again: half of a map's drawing time in the browser, paid on
    every first visit and every mask change.  The right margin is sized from the colourbar's
    longest tick label (given ticks, or the range's ends to 3 significant digits); a browser
    test checks that nothing is cut off."""
    if colorbar.get("ticktext"):
        labels = colorbar["ticktext"]
    else:
        labels = [f"{v:.3g}" for v in (finite.min(), finite.max())] if finite.size else ["0"]
    chars = max(len(str(t)) for t in labels)
    return dict(l=max(60, 40 + 7 * len(str(H - 1))), r=int(max(100, 64 + 7 * chars)), t=70, b=56,
                autoexpand=False)


def row_snr_profile(
    stats: PixelStats,
    *,
    mask: np.ndarray | None = None,
    threshold: float = 0.0,
    log_x: bool = False,
    row_label: str = "frequency band",
    row_origin: str = "lower",
    caption_text: str = "",
    dataset_name: str = "",
) -> go.Figure:
    """Median SNR of each row, drawn vertically so it lines up with the heatmaps' rows."""
    H = stats.row_snr.size
    rows = np.arange(H)
    mask = np.zeros(H, bool) if mask is None else mask
    # Traces and one layout dict, validated once (this figure is rebuilt on every rerun).
    traces = [go.Scatter(
        x=stats.row_snr, y=rows, mode="lines", line=dict(color="#bbb", width=1),
        hoverinfo="skip", showlegend=False,
    )]
    for sel, name, color, symbol in ((~mask, "kept", OKABE_ITO[0], "circle"),
                                      (mask, "masked", OKABE_ITO[3], "x")):
        traces.append(go.Scatter(
            x=stats.row_snr[sel], y=rows[sel], mode="markers", name=f"{name} ({int(sel.sum())})",
            marker=dict(color=color, symbol=symbol, size=6),
            hovertemplate=f"{row_label} %{{y}}<br>row SNR = %{{x:.3g}}<extra>{name}</extra>",
        ))
    title = "Row SNR" + (f" — {_text(dataset_name)}" if dataset_name else "")
    layout = dict(
        title=dict(text=title, subtitle=dict(text=_two_lines(_text(caption_text))), x=0.01,
                   font=dict(size=15)),
        xaxis=dict(title=dict(text="row SNR: median |mean| / std" + (" (log)" if log_x else "")),
                   type="log" if log_x else "linear", showgrid=True, gridcolor="#e5e5e5"),
        # The heatmaps' exact row range (an explicit autorange would override it and pad).
        yaxis=dict(title=dict(text=row_label), autorange=False,
                   range=[H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]),
        # The legend at the foot of the figure, under the x-axis title, whatever the height.
        legend=dict(orientation="h", yref="container", y=0.01, yanchor="bottom", x=0,
                    font=dict(size=11)), height=560,
        margin=dict(l=60, r=20, t=150 if stats.band_info is not None else 85, b=125),
        plot_bgcolor="white", font=dict(family="Arial, sans-serif"), shapes=[], annotations=[],
    )
    info = stats.band_info
    if info is not None:
        # Class information on its own top axis: low SNR with high eta^2 is signal, not noise.
        traces.append(go.Scatter(
            x=info.eta2, y=rows, mode="lines", xaxis="x2", name="class information η² (top axis)",
            line=dict(color=OKABE_ITO[2], width=2, dash="dot"),
            hovertemplate=f"{row_label} %{{y}}<br>band-energy η² = %{{x:.3f}}"
                          f" (chance {info.chance:.3f})<extra></extra>",
        ))
        top = max(0.05, float(np.nanmax(info.eta2)) * 1.1) if np.isfinite(info.eta2).any() else 1
        step = _nice_step(top / 3)  # round ticks (0.1, 0.2, ...), not 0.165, 0.338
        layout["xaxis2"] = dict(overlaying="x", side="top", range=[0, top], showgrid=False,
                                tickfont=dict(color=OKABE_ITO[2], size=10), tick0=0, dtick=step,
                                title=dict(text="class information η²", standoff=4,
                                           font=dict(color=OKABE_ITO[2], size=11)))
    if threshold > 0:
        # The threshold is a legend entry, not a label: a label inside the plot sat on the data.
        traces.append(go.Scatter(
            x=[threshold, threshold], y=[-0.5, H - 0.5], mode="lines", name=f"mask < {threshold:g}",
            line=dict(color=OKABE_ITO[3], dash="dash", width=1.5), hoverinfo="skip"))
    return go.Figure(data=traces, layout=layout)


@dataclass(frozen=True)
class Histogram:
    """Bins of the statistics' value sample: centres, counts, and whether they are log-spaced."""

    centres: np.ndarray
    counts: np.ndarray
    log: bool


def histogram_bins(stats: PixelStats) -> Histogram:
    """60 bins of the value sample, log-spaced when the values are positive and span decades."""
    s = stats.sample.astype(np.float64)
    pos = s[s > 0]
    use_log = s.size > 0 and pos.size > 0.9 * s.size and pos.max() / max(pos.min(), 1e-300) > 100
    if use_log:
        edges = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 60)
        edges[[0, -1]] = pos.min(), pos.max()  # 10**log10(v) can miss v: keep both ends in
        counts, _ = np.histogram(pos, edges)
    else:
        counts, edges = np.histogram(s, 60) if s.size else (np.zeros(1), np.array([0.0, 1.0]))
    centres = np.sqrt(edges[:-1] * edges[1:]) if use_log else (edges[:-1] + edges[1:]) / 2
    return Histogram(centres, counts, bool(use_log))


def value_histogram(stats: PixelStats, *, caption_text: str = "", dataset_name: str = "",
                    bins: Histogram | None = None) -> go.Figure:
    """Distribution of the values (from the statistics' sample), log-spaced when positive.

    ``bins`` from :func:`histogram_bins` (e.g. cached per dataset) skips the binning.
    """
    b = bins if bins is not None else histogram_bins(stats)
    centres, counts, use_log = b.centres, b.counts, b.log
    title = "Value distribution (sample)" + (f" — {_text(dataset_name)}" if dataset_name else "")
    # One trace and one layout dict, validated once (this figure is rebuilt on every rerun).
    return go.Figure(data=[go.Scatter(
        x=centres, y=counts, mode="lines", line=dict(color=OKABE_ITO[0], shape="hvh"),
        fill="tozeroy", hovertemplate="value ≈ %{x:.3g}<br>count %{y}<extra></extra>")],
        layout=dict(
            title=dict(text=title, subtitle=dict(text=_two_lines(_text(caption_text))), x=0.01,
                       font=dict(size=15)),
            xaxis=dict(title=dict(text="value (log scale)" if use_log else "value"),
                       type="log" if use_log else "linear"),
            yaxis=dict(title=dict(text="values in the sample")), height=360,
            margin=dict(l=60, r=20, t=85, b=50), plot_bgcolor="white",
        ))


def class_means(
    stats: PixelStats,
    class_names: tuple[str, ...],
    *,
    log_color: bool = True,
    colorscale: str = "Viridis",
    row_label: str = "frequency band",
    col_label: str = "frame",
    row_origin: str = "lower",
    caption_text: str = "",
    dataset_name: str = "",
    max_classes: int = 12,
    mask: np.ndarray | None = None,
) -> go.Figure:
    """Small multiples of the per-class mean maps on one shared colour scale; masked rows are
    washed out as on the heatmaps, and the colour range comes from the kept rows."""
    from plotly.subplots import make_subplots

    if stats.class_means is None:
        raise ValueError("these statistics have no per-class means (no labels)")
    C = min(len(class_names), max_classes)
    cols = min(C, 3)
    nrows = -(-C // cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[_text(c) for c in class_names[:C]],
                        horizontal_spacing=0.04, vertical_spacing=0.12)
    maps = stats.class_means[:C]
    with np.errstate(divide="ignore", invalid="ignore"):
        z_all = np.where(maps > 0, np.log10(maps), np.nan) if log_color else maps
    H, W = maps.shape[1:]
    mask = np.zeros(H, bool) if mask is None else np.asarray(mask, bool)
    kept = z_all[:, ~mask] if not mask.all() else z_all
    fin = kept[np.isfinite(kept)]
    zmin, zmax = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
    for c in range(C):
        r, k = divmod(c, cols)
        fig.add_trace(go.Heatmap(
            z=z_all[c].astype(np.float32), customdata=maps[c].astype(np.float32), zmin=zmin,
            zmax=zmax, colorscale=safe_colorscale(colorscale),
            showscale=c == 0, coloraxis=None,
            colorbar=dict(title=dict(text="mean" + (" (log scale)" if log_color else ""), side="right"),
                          thickness=12),
            hovertemplate=(f"{_text(class_names[c])}<br>{row_label} %{{y}}, {col_label} %{{x}}"
                           "<br>mean = %{customdata:.4g}<extra></extra>"),
        ), row=r + 1, col=k + 1)
    if log_color and fin.size:
        tv, tt = _log_ticks(zmin, zmax)
        fig.data[0].colorbar.update(tickvals=tv, ticktext=tt)
    yr = [H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]
    fig.update_yaxes(range=yr, showgrid=False, zeroline=False)
    fig.update_xaxes(range=[-0.5, W - 0.5], showgrid=False, zeroline=False)
    for c in range(C):  # axis titles on the outer edge only: the panels share their axes
        r, k = divmod(c, cols)
        if k == 0:
            fig.update_yaxes(title_text=row_label, row=r + 1, col=1)
        if r == nrows - 1 or c + cols >= C:
            fig.update_xaxes(title_text=col_label, title_standoff=6, automargin=True,
                             row=r + 1, col=k + 1)
        for lo, hi in _runs(mask):
            fig.add_shape(type="rect", x0=-0.5, x1=W - 0.5, y0=lo - 0.5, y1=hi + 0.5,
                          fillcolor=MASK_FILL, line=dict(color="#333", width=1, dash="dot"),
                          row=r + 1, col=k + 1)
    title = "Per-class mean maps" + (f" — {_text(dataset_name)}" if dataset_name else "")
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=_text(caption_text)), x=0.01, font=dict(size=15)),
        # b: room for the x-axis title under the tick labels (at 30 it sat on them).
        height=230 * nrows + 120, margin=dict(l=50, r=20, t=90, b=60),
        plot_bgcolor=UNDEFINED_BG, font=dict(family="Arial, sans-serif"),
    )
    return fig


def curves_figure(
    curves: dict,
    *,
    metric: str = "validation accuracy",
    x_label: str = "epoch",
    percent: bool = True,
    title: str = "",
    caption_text: str = "",
    smooth: int = 1,
    dataset_name: str = "",
) -> go.Figure:
    """Mean across runs of each configuration's curve, with a min-max band.

    Parameters
    ----------
    curves : {config: [curve of each seed]}
        Curves may differ in length (live runs); missing points are None.
    smooth : int
        Moving-average window (e.g. for per-minibatch accuracy); 1 = none.
    """
    from diagnostics.results import seed_band

    fig = go.Figure()
    k = 100.0 if percent else 1.0
    for i, (name, runs) in enumerate(curves.items()):
        runs = [list(r) for r in runs if r is not None and len(r)]
        if not runs:
            continue
        if smooth > 1:
            kernel = np.ones(smooth) / smooth
            # Runs shorter than the window would be convolved the other way round: wait.
            runs = [np.convolve(np.array([np.nan if v is None else v for v in r], float),
                                kernel, mode="valid").tolist() for r in runs if len(r) >= smooth]
            if not runs:
                continue
        band = seed_band(runs)
        color = OKABE_ITO[i % len(OKABE_ITO)]
        fill = _rgba(color, 0.18)
        x = band.x.tolist()
        n_seeds = int(band.n.max()) if band.n.size else 0
        fig.add_trace(go.Scatter(
            x=x + x[::-1], y=(k * band.hi).tolist() + (k * band.lo)[::-1].tolist(),
            mode="lines", fill="toself", fillcolor=fill, line=dict(width=0), hoverinfo="skip",
            showlegend=False, legendgroup=name,
        ))
        fig.add_trace(go.Scatter(
            x=x, y=(k * band.mean).tolist(), mode="lines", name=f"{name} ({n_seeds} run{'s' if n_seeds != 1 else ''})",
            line=dict(color=color, width=2), legendgroup=name,
            hovertemplate=f"{name}<br>{x_label} %{{x}}<br>{metric} %{{y:.1f}}" + ("%" if percent else "")
                          + "<extra>mean of runs</extra>",
        ))
    fig.update_layout(
        title=dict(text=(title or metric.capitalize()) + (f" — {_text(dataset_name)}" if dataset_name
                                                           else ""),
                   subtitle=dict(text=_text(caption_text)), x=0.01,
                   font=dict(size=15)),
        xaxis=dict(title=dict(text=x_label), gridcolor="#e5e5e5"),
        yaxis=dict(title=dict(text=metric + (" (%)" if percent else "")), gridcolor="#e5e5e5"),
        # Legend at the foot of the figure (container coordinates: under the axis title however
        # many rows the configs need); to the right it took a third of a narrow column.
        legend=dict(orientation="h", yref="container", y=0.01, yanchor="bottom", x=0,
                    font=dict(size=11)), height=460, plot_bgcolor="white",
        margin=dict(l=60, r=20, t=70, b=130), font=dict(family="Arial, sans-serif"),
    )
    return fig


def results_figure(res, *, title: str = "Test accuracy", caption_text: str = "",
                   dataset_name: str = "") -> go.Figure:
    """Mean test accuracy of each configuration with its 95% interval (one marker and error bar
    per configuration; the single runs are in the table, not drawn)."""
    fig = go.Figure()
    names = [c.name for c in res.configs]
    for i, c in enumerate(res.configs):
        if c.mean is None:
            continue
        color = OKABE_ITO[i % len(OKABE_ITO)]
        err = None
        if c.ci95 is not None:
            err = dict(type="data", symmetric=False, array=[100 * (c.ci95[1] - c.mean)],
                       arrayminus=[100 * (c.mean - c.ci95[0])], color=color, thickness=2, width=8)
        fig.add_trace(go.Scatter(
            x=[100 * c.mean], y=[c.name], mode="markers", error_x=err, name=c.name,
            marker=dict(color=color, size=12), showlegend=False,
            hovertemplate=(f"{c.name}: %{{x:.1f}}% over {c.n} run{'s' if c.n != 1 else ''}"
                           "<extra>mean, 95% CI</extra>"),
        ))
    title += f" — {_text(dataset_name)}" if dataset_name else ""
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=_text(caption_text)), x=0.01, font=dict(size=15)),
        xaxis=dict(title=dict(text="test accuracy (%), mean and 95% CI over runs"),
                   gridcolor="#e5e5e5"),
        yaxis=dict(categoryorder="array", categoryarray=names[::-1]),
        height=120 + 45 * len(names), plot_bgcolor="white",
        margin=dict(l=140, r=20, t=80, b=50), font=dict(family="Arial, sans-serif"),
    )
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
