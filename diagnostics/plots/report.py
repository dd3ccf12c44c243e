"""A self-contained HTML report: summary, heatmaps, row-SNR profile, findings, comparisons.

One file with plotly.js inlined, so it opens offline and can be mailed or archived.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from diagnostics.plots import figures
from diagnostics.data.dataset import Dataset
from diagnostics.stats.findings import find, ranges
from diagnostics.errors import NormScopeError
from diagnostics.stats.accumulate import PixelStats
from diagnostics.stats.moments import energy_share, format_share, row_mask

#: Stored comparisons a report includes when none are named: the newest of the dataset.
NEWEST_COMPARISONS = 3

CSS = """
body { font-family: Arial, Helvetica, sans-serif; margin: 2em auto; max-width: 1250px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f5f5f5; }
.finding { padding: 0.5em 0.8em; margin: 0.4em 0; border-left: 4px solid #E69F00;
           background: #fff8ec; }
.finding.error { border-color: #D55E00; background: #fdeee6; }
.finding.info { border-color: #0072B2; background: #eef5fb; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.verdict { font-size: 1.1em; font-weight: bold; }
.summary { font-size: 1.2em; font-weight: bold; border-left: 4px solid #009E73; padding-left: 8px; }
"""


@dataclass(frozen=True)
class Section:
    """A block of the report: a heading, HTML paragraphs (already escaped) and figures."""

    title: str
    html: str = ""
    figures: tuple[go.Figure, ...] = field(default_factory=tuple)


def table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def statistics_sections(
    ds: Dataset, stats: PixelStats, *, mask_snr: float, on: str = "train",
    log_color: bool = True, colorscale: str | None = None, mask: np.ndarray | None = None,
) -> list[Section]:
    """The dataset summary, the four heatmaps, the row-SNR profile and the findings."""
    mask = row_mask(stats.row_snr, threshold=mask_snr) if mask is None else mask
    H, W = stats.shape
    cap = figures.caption(ds.name, stats.n, ds.n, on, mask)
    common = dict(mask=mask, row_label=ds.row_label, row_origin=ds.row_origin,
                  caption_text=cap, dataset_name=ds.name)
    amp = stats.amplification
    rows = [
        ["dataset", f"{ds.name} (id {ds.id})"],
        ["examples", f"{stats.n:,} {on} of {ds.n:,}"],
        ["shape", f"{H} x {W}"],
        ["classes", ", ".join(ds.class_names) or "none"],
        ["values", f"{np.nanmin(stats.min):.4g} .. {np.nanmax(stats.max):.4g}"],
        ["pixel mean", f"{np.nanmin(stats.mean):.4g} .. {np.nanmax(stats.mean):.4g}"],
        ["pixel std", f"{np.nanmin(stats.std):.4g} .. {np.nanmax(stats.std):.4g}"],
        ["max noise amplification",
         f"{np.nanmax(amp):,.0f}x" if np.isfinite(amp).any() else "n/a"],
        ["constant pixels", f"{stats.n_constant:,}"],
        ["non-finite values", f"{stats.n_nonfinite:,}"],
        ["masked rows", f"{int(mask.sum())} ({ranges(np.flatnonzero(mask))}), row SNR < "
                        f"{mask_snr:g}, {format_share(energy_share(stats, mask))} of the summed |mean|"],
    ]
    finds = "".join(
        f'<div class="finding {f.severity}"><b>{html.escape(f.code)}</b> — '
        f"{html.escape(f.message)}</div>"
        for f in find(stats, mask_snr=mask_snr, row_label=ds.row_noun)
    )
    heat = tuple(
        figures.heatmap(stats, w, log_color=log_color, colorscale=colorscale,
                        col_label=ds.col_label, **common)
        for w in ("mean", "std", "snr", "amplification")
    )
    profile = figures.row_snr_profile(stats, threshold=mask_snr, **common)
    return [
        Section("Dataset", table_html(["property", "value"], rows)),
        Section("Findings", finds),
        Section("Per-pixel statistics", "", heat),
        Section("Row SNR and value distribution", "",
                (profile, figures.value_histogram(stats, caption_text=cap, dataset_name=ds.name))),
    ]


def render(title: str, subtitle: str, sections: list[Section]) -> str:
    """One self-contained HTML page (plotly.js inlined once)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>",
    ]
    first = True
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>{sec.html}")
        if sec.figures:
            parts.append("<div class='grid'>")
            for fig in sec.figures:
                parts.append("<div>" + fig.to_html(
                    full_html=False, include_plotlyjs=first,
                    config={"displaylogo": False,
                            "toImageButtonOptions": {"format": "png", "scale": 3}},
                ) + "</div>")
                first = False
            parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def record_curves(rec, key: str) -> dict:
    """``{config: [curve per seed]}`` of a stored comparison (``batch_acc`` = per minibatch)."""
    out: dict = {c: [] for c in rec.configs}
    src, field_ = ("batches", "train_acc") if key == "batch_acc" else ("history", key)
    for r in rec.runs:
        out.setdefault(r.config, []).append(getattr(r, src).get(field_, []))
    return out


@dataclass(frozen=True, eq=False)
class ComparisonView:
    """What a comparison shows: results (summary, verdicts, table) and its three figures.

    ``val`` and ``batch`` are None until the first minibatch is in (a run just starting).
    """

    res: object  # diagnostics.results.Results
    val: go.Figure | None
    batch: go.Figure | None
    tested: go.Figure


def comparison_view(curves_of, names, acc, statuses=None, *, caption_text: str = "",
                    dataset_name: str = "") -> ComparisonView:
    """Build the figures and results of a comparison, live or stored (app and report alike).

    ``curves_of(key)`` gives ``{config: [curve per seed]}`` for ``val_acc`` and ``batch_acc``.
    """
    from diagnostics.results import compare

    res = compare(names, acc, statuses)
    tested = figures.results_figure(res, caption_text=caption_text, dataset_name=dataset_name)
    batch = curves_of("batch_acc")
    if not any(len(r or ()) for runs in batch.values() for r in runs):
        return ComparisonView(res, None, None, tested)
    longest = max((len(r) for runs in batch.values() for r in runs if r), default=0)
    smooth = max(1, longest // 60)
    val_fig = figures.curves_figure(curves_of("val_acc"), metric="validation accuracy",
                                    caption_text=caption_text, dataset_name=dataset_name)
    batch_fig = figures.curves_figure(
        batch, metric="training accuracy", x_label="minibatch", smooth=smooth,
        title="Training accuracy per minibatch" + (f" (moving mean of {smooth})" if smooth > 1
                                                   else ""),
        caption_text=caption_text, dataset_name=dataset_name)
    return ComparisonView(res, val_fig, batch_fig, tested)


def stored_view(rec, *, caption_text: str = "", dataset_name: str = "") -> ComparisonView:
    """:func:`comparison_view` of a stored :class:`models.store.ComparisonRecord`."""
    return comparison_view(lambda key: record_curves(rec, key), list(rec.configs),
                           rec.accuracies(), rec.statuses(), caption_text=caption_text,
                           dataset_name=dataset_name)


def _design_text(doc: dict) -> str:
    from diagnostics.verdicts.answer import used_words

    ev = doc["evaluation"]
    if ev["kind"] == "cv":
        text = f"{ev['folds']}-fold cross-validation, {used_words(ev)}"
        same = "every config of a (repetition, fold)"
    else:
        text = f"fixed holdout, {used_words(ev)}"
        same = "every config of a seed"
    why = ev.get("stopped_because")
    return (text + (f", stopped: {why.replace('_', ' ')}" if why else "")
            + f". Same split, initial weights and batch order for {same}; only the "
              "normalization changes")


def comparison_section(rec, predictions=None, *, caption_text: str = "") -> Section:
    """The answer, the pairs table (a, b, difference with its 95% interval, adjusted p,
    verdict), the configs' accuracies, curves and interval plot of one stored comparison.

    ``rec`` is a :class:`models.store.ComparisonRecord` and ``predictions`` its
    ``RunStore.predictions`` (duck-typed: this module stays free of torch and of the store);
    without predictions there is no verdict, and the answer says so.
    """
    from diagnostics.results import comparison_json
    from diagnostics.verdicts.models import model_records

    doc = comparison_json(rec, predictions)
    lines = doc["answer"]["text"]
    # The answer's headline: the user's question and what to use; with several models, the
    # agreement lines (each model's own lines come before them).
    strong = (range(len(lines) - len(doc["agreement"]["text"]), len(lines)) if "models" in doc
              else range(2))
    answer = "".join(f"<p class='{'summary' if i in strong else 'verdict'}'>"
                     f"{html.escape(line)}</p>" for i, line in enumerate(lines))
    head = (f"<p>{html.escape(rec.model)}, at most {rec.hyper.get('epochs', '?')} epochs, "
            f"{html.escape(_design_text(doc))}; status {html.escape(rec.status)}; id "
            f"<code>{html.escape(rec.id)}</code>.</p>")
    if "models" not in doc:
        view = stored_view(rec, caption_text=caption_text, dataset_name=rec.dataset_name)
        tables, figs = _block_html(doc), (view.val, view.batch, view.tested)
    else:
        tables, figs = "", ()
        subs = dict(model_records(rec))
        for block in doc["models"]:
            m = block["model"]
            view = stored_view(subs[m], caption_text=f"{caption_text} · {m}",
                               dataset_name=rec.dataset_name)
            tables += (f"<h3>Model {html.escape(m)}</h3><p>{html.escape(_design_text(block))}"
                       f".</p>" + _block_html(block))
            figs += (view.val, view.batch, view.tested)
    return Section(f"Comparison {rec.id}", answer + head + tables,
                   tuple(f for f in figs if f is not None))


def _block_html(doc: dict) -> str:
    """The pairs table and the configs table of one model's results."""
    from diagnostics.results import pair_rows

    rows = pair_rows(doc["pairs"])
    pairs = table_html(list(rows[0]), [list(r.values()) for r in rows]) if rows else ""

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"
    crow = [[c["name"], c["n_runs"], pct(c["accuracy"]),
             "–" if c["ci95"] is None else f"{pct(c['ci95'][0])} – {pct(c['ci95'][1])}",
             "–" if c["n_examples"] is None else f"{c['n_examples']:,}"] for c in doc["configs"]]
    configs = table_html(["config", "runs", "accuracy %", "95% CI", "test predictions"], crow)
    return pairs + configs


def build_report(
    ds: Dataset, stats: PixelStats, *, mask_snr: float, on: str = "train",
    log_color: bool = True, colorscale: str | None = None, mask: np.ndarray | None = None,
    comparisons=(), predictions=None,
) -> str:
    """The whole report of a dataset as one self-contained HTML page (the app and the CLI).

    Parameters
    ----------
    ds, stats : Dataset, PixelStats
        The dataset and the statistics of the examples named by ``on``.
    mask_snr : float
        Row-SNR threshold of the mask; ``mask`` (bool, shape (H,)) overrides the rows masked.
    comparisons : sequence of :class:`models.store.ComparisonRecord`
        Stored comparisons to append (duck-typed: no store or torch here).
    predictions : mapping, optional
        ``{comparison id: RunStore.predictions(id)}``; a comparison without them has no verdict.

    Raises
    ------
    NormScopeError
        If a comparison ran on another dataset.
    """
    sections = statistics_sections(ds, stats, mask_snr=mask_snr, on=on, log_color=log_color,
                                   colorscale=colorscale, mask=mask)
    for rec in comparisons:
        if rec.dataset_id != ds.id:
            raise NormScopeError(f"comparison {rec.id} ran on dataset {rec.dataset_id}, not on "
                                 f"{ds.name} ({ds.id}); give that dataset or leave --runs out")
        sections.append(comparison_section(rec, (predictions or {}).get(rec.id),
                                           caption_text=f"{ds.name} · {rec.model}"))
    return render(f"NormScope report — {ds.name}",
                  f"dataset id {ds.id} · made {time.strftime('%Y-%m-%d %H:%M')}", sections)
