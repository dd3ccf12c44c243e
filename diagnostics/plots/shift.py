"""Figure of the shift per band: KS D of each band, drawn vertically like the row-SNR profile."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from diagnostics.plots.figures import OKABE_ITO
from diagnostics.stats.shift import BandShift


def shift_profile(res: BandShift, *, row_label: str = "frequency band", row_origin: str = "lower",
                  caption_text: str = "", dataset_name: str = "") -> go.Figure:
    """KS statistic D per band (0: same distribution of per-example band energy, 1: disjoint);
    bands named shifted (Holm-adjusted p < alpha) are marked."""
    H = res.ks.size
    rows = np.arange(H)
    a, b = res.names
    traces = [dict(type="scatter", x=res.ks, y=rows, mode="lines", line=dict(color="#bbb", width=1),
                   hoverinfo="skip", showlegend=False)]
    kinds = np.array([k or "-" for k in res.kind], dtype=object)
    for sel, name, color, symbol in ((~res.shifted, "not shown to shift", OKABE_ITO[0], "circle"),
                                      (res.shifted, "shifted", OKABE_ITO[3], "x")):
        traces.append(dict(
            type="scatter", x=res.ks[sel], y=rows[sel], mode="markers",
            name=f"{name} ({int(sel.sum())})", marker=dict(color=color, symbol=symbol, size=7),
            customdata=np.stack([res.p_holm[sel], kinds[sel]], axis=1) if sel.any() else None,
            hovertemplate=(f"{row_label} %{{y}}<br>KS D = %{{x:.3f}}<br>p (Holm) = "
                           "%{customdata[0]:.2g}<br>%{customdata[1]}<extra></extra>")))
    title = f"Shift per band: {a} vs {b}" + (f" — {dataset_name}" if dataset_name else "")
    sub = (f"{caption_text}<br>" if caption_text else "") + (
        f"KS per band, Holm over {H}, α = {res.alpha:g}; {res.n_a:,} vs {res.n_b:,} examples")
    layout = dict(
        title=dict(text=title, subtitle=dict(text=sub), x=0.01, font=dict(size=15)),
        xaxis=dict(title=dict(text="KS D of per-example band energy"), range=[0, 1.02],
                   gridcolor="#e5e5e5"),
        yaxis=dict(title=dict(text=row_label), autorange=False,
                   range=[H - 0.5, -0.5] if row_origin == "upper" else [-0.5, H - 0.5]),
        legend=dict(orientation="h", y=-0.2, yanchor="top", font=dict(size=11)), height=500,
        margin=dict(l=60, r=20, t=95, b=120), plot_bgcolor="white",
        font=dict(family="Arial, sans-serif"),
        meta={"shifted": res.bands.tolist()},
    )
    return go.Figure(data=traces, layout=layout)
