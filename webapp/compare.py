# Over 450 lines: the Compare tab's form, its live progress and the stored results share one session state.
"""The Compare tab: choose configs and start a comparison, follow it live, reopen stored ones.

A comparison runs in the server's background (:mod:`webapp.runs`); its id goes into the URL
(``runs``), so a reload or a teammate's link finds it, live or from the run store.
"""

from __future__ import annotations

import dataclasses
import json
import time

import streamlit as st

from diagnostics import config
from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import parse_config, valid_config_names
from diagnostics.plots import report
from diagnostics.stats.findings import suggested_configs
from diagnostics.stats.accumulate import PixelStats
from diagnostics.verdicts.answer import used_words
from diagnostics.verdicts.models import model_records
from webapp import runs, state
from webapp.charts import chart
from webapp.state import BIND, config_ok
from webapp.text import md


def start_comparison(ds_id: str, threshold: float) -> None:
    """Start button callback: launch in the background, put its id in the URL."""
    s = st.session_state
    s["cmp_error"] = None
    configs = list(s.get("configs") or [])
    bad = [c for c in configs if not config_ok(c)]
    try:
        if bad:
            parse_config(bad[0])  # raises with the list of valid parts
        if len(configs) < 2:
            raise NormScopeError("choose at least two configs to compare (the first is the reference)")
        d = runs.SETTINGS
        token = state.owner_token(create=True)
        first = s.get("cmp_model", d["cmp_model"])
        models = list(dict.fromkeys([first, *(s.get("cmp_more") or [])]))
        cid = runs.start(ds_id, configs, owner=token, seeds=int(s.get("cmp_seeds", d["cmp_seeds"])),
                         model=models if len(models) > 1 else first,
                         epochs=int(s.get("cmp_epochs", d["cmp_epochs"])), mask_snr=threshold,
                         optimizer=s.get("cmp_opt", d["cmp_opt"]),
                         lr=float(s.get("cmp_lr", d["cmp_lr"])),
                         weight_decay=float(s.get("cmp_wd", d["cmp_wd"])),
                         batch_size=int(s.get("cmp_bs", d["cmp_bs"])),
                         patience=int(s.get("cmp_patience", d["cmp_patience"])),
                         evaluation=s.get("cmp_eval", d["cmp_eval"]),
                         folds=int(s.get("cmp_folds", d["cmp_folds"])),
                         max_repetitions=int(s.get("cmp_reps", d["cmp_reps"])),
                         decide=bool(s.get("cmp_decide", d["cmp_decide"])),
                         budget_min=float(s.get("cmp_budget", d["cmp_budget"])),
                         margin_points=float(s.get("cmp_margin", d["cmp_margin"])))
    except NormScopeError as exc:
        s["cmp_error"] = str(exc)
        return
    s["runs"] = [cid]
    state.keep_owner_in_url()


def _session_running() -> bool:
    """Whether a comparison this page started still runs: Start waits for it (another's,
    opened from a link, does not count: the server's queue limits bound those)."""
    token = state.owner_token()
    return any(runs.running(cid) is not None and runs.owns(cid, token)
               for cid in st.session_state.get("runs", []))


def stored_comparisons(ds_id: str) -> dict[str, str]:
    """Comparison id -> one-line description, newest first, for this dataset."""
    out = {}
    for rec in runs.store().list_comparisons(ds_id):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.created))
        ev = rec.hyper.get("evaluation") or {}
        design = (f"{ev.get('folds')}-fold CV" if ev.get("kind") == "cv"
                  else f"{len(rec.seeds)} seed{'s' if len(rec.seeds) != 1 else ''}")
        out[rec.id] = (f"{when} · {', '.join(rec.configs)} · {design} · "
                       f"{rec.model} {rec.hyper.get('epochs', '?')} epochs · {rec.status}")
    return out


def compare_controls_ui(ds: Dataset, stats: PixelStats, threshold: float) -> None:
    defaults = suggested_configs(stats, threshold)
    c = st.columns([4, 1, 1, 1])
    c[0].multiselect(
        "Configs to compare (the first is the reference)", valid_config_names(stats),
        default=defaults,
        key="configs", bind=BIND,
        help="[compression+]scaler[@mask]: compression log1p or db; scalers none, global, "
             "per_pixel, per_row, minmax, robust; @mask drops rows under the SNR threshold "
             f"(now {threshold:g}). Only the normalization changes between configs.",
    )
    d = runs.SETTINGS
    lim = server_limits()
    c[1].selectbox("Model", runs.model_names(), key="cmp_model", bind=BIND,
                   help=runs.model_help())
    c[2].number_input("Epochs (most)", 1, lim.max_epochs, min(d["cmp_epochs"], lim.max_epochs),
                      key="cmp_epochs", bind=BIND,
                      help="The most epochs a run trains; it stops earlier when validation "
                           "accuracy has not improved for the patience below, and the best "
                           "epoch's weights are tested.")
    c[3].selectbox("Evaluation", runs.EVALUATIONS, key="cmp_eval", bind=BIND,
                   help="cv: stratified k-fold cross-validation, every example tested once per "
                        "repetition, repeated with reshuffled folds; holdout: one 70/15/15 "
                        "split, repeated over seeds (for big datasets); auto: cv up to 20,000 "
                        "examples. Every config shares each split, initial weights and batch "
                        "order.")
    st.multiselect("Does the verdict hold for other models? Also run under",
                   runs.model_names(), default=d["cmp_more"], key="cmp_more", bind=BIND,
                   help="Each model chosen here (besides the Model above) trains every config "
                        "on the same folds as its own block of runs; the answer says per model "
                        "whether normalizing hurts and what is best, and whether the models "
                        "agree. Only models this server offers can be chosen.")
    e = st.columns(5)
    e[0].toggle("Decide", value=d["cmp_decide"], key="cmp_decide", bind=BIND,
                help="Stop when the answer is clear. Start with one repetition and add repetitions until every pair "
                     "involving the best config is decided (better, worse or equivalent), "
                     "within the most repetitions and the time budget. The tests account for "
                     "stopping early (alpha spending), so deciding early does not inflate "
                     "false verdicts.")
    # The most each widget offers is this server's limit (a link asking for more gets the
    # default); Start checks again (runs.start).
    folds = max(2, lim.max_folds)
    e[1].number_input("Folds (cv)", 2, folds, min(d["cmp_folds"], folds), key="cmp_folds",
                      bind=BIND)
    e[2].number_input("Most repetitions", 1, lim.max_repetitions,
                      min(d["cmp_reps"], lim.max_repetitions), key="cmp_reps", bind=BIND,
                      help="CV repetitions at most (decide mode may stop sooner).")
    e[3].number_input("Seeds (holdout)", 1, lim.max_seeds, min(d["cmp_seeds"], lim.max_seeds),
                      key="cmp_seeds", bind=BIND,
                      help="Holdout repetitions: each seed gives every config the same initial "
                           "weights and batch order.")
    e[4].number_input("Time budget (min)", 0, 600, d["cmp_budget"], key="cmp_budget",
                      bind=BIND, help="0: none. No repetition starts that would not finish in time; an "
                                      "undecided answer then says so, with its interval.")
    with st.expander("Training settings (shared by every config)"):
        t = st.columns(5)
        t[0].selectbox("Optimiser", runs.OPTIMIZERS, key="cmp_opt", bind=BIND,
                       help="adam (default), adamw (decoupled weight decay), sgd (momentum 0.9). "
                            "With Adam the input scale interacts with the learning rate.")
        t[1].number_input("Learning rate", 1e-6, 1.0, d["cmp_lr"], step=1e-4, format="%g",
                          key="cmp_lr", bind=BIND)
        t[2].number_input("Weight decay", 0.0, 1.0, d["cmp_wd"], step=1e-4, format="%g",
                          key="cmp_wd", bind=BIND)
        t[3].number_input("Batch size", 1, 4096, d["cmp_bs"], key="cmp_bs", bind=BIND)
        t[4].number_input("Patience (epochs)", 0, 200, d["cmp_patience"], key="cmp_patience",
                          bind=BIND, help="0 trains every epoch (still testing the best one).")
        st.number_input("Equivalence margin (accuracy points)", 0.1, 20.0, d["cmp_margin"],
                        step=0.5, key="cmp_margin", bind=BIND,
                        help="'equivalent' means the whole interval of a difference lies "
                             "within ± this margin (TOST); failing to find a difference is "
                             "never called equivalence.")
    busy = _session_running()
    st.button("Start comparison", key="start", type="primary", disabled=busy,
              on_click=start_comparison, args=(ds.id, threshold),
              help="A comparison of yours is running: wait for it or cancel it." if busy else None)
    if st.session_state.get("cmp_error"):
        st.error(md(st.session_state["cmp_error"]))


def server_limits():
    """This server's limits; a bad setting is shown once as an error and the defaults apply
    to the widgets (Start refuses with the same sentence until it is fixed)."""
    from diagnostics.limits import Limits

    try:
        return runs.limits()
    except NormScopeError as exc:
        st.error(md(exc))
        return Limits()


def _cancel(cid: str) -> None:
    """Cancel button callback: checked again here, not only by drawing the button."""
    if runs.may_cancel(cid, state.owner_token()):
        comp = runs.registry().get(cid)
        if comp is not None:
            comp.cancel()


VERDICT_BOX = {"better": st.success, "worse": st.error, "equivalent": st.info,
               "unclear": st.warning}


def _pts(x, signed: bool = False) -> str:
    return "n/a" if x is None else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def answer_ui(doc: dict) -> None:
    """The answer's lines, the user's question first (with several models: each model's,
    then whether they agree): the same text as the CLI, the JSON and the report."""
    lines = doc["answer"]["text"]
    if "models" in doc:
        n = len(doc["agreement"]["text"])
        for line in lines[:-n]:
            st.markdown(md(line))
        for line in lines[-n:]:
            st.markdown(f"**{md(line)}**")
        return
    if lines:
        st.markdown(f"**{md(lines[0])}**")
        for line in lines[1:]:
            st.markdown(md(line))


def verdict_ui(doc: dict, key: str, *, answer: bool = True) -> None:
    """The answer (unless ``answer`` is False), then every config's accuracy with its
    interval and every pair's adjusted verdict."""
    if answer:
        answer_ui(doc)
    ev = doc.get("evaluation") or {}
    if ev:
        kind = ("stratified " + str(ev.get("folds")) + "-fold cross-validation"
                if ev.get("kind") == "cv" else "holdout")
        used = used_words(ev)
        why = {"decided": "every pair of the best is decided", "max_repetitions":
               "the most repetitions were run", "budget": "the time budget ran out"}.get(
            ev.get("stopped_because") or "", "")
        st.caption(f"{kind}, {used}" + (f"; stopped because {why}" if why else ""))
    rows = [{"config": c["name"], "accuracy (%)": _pts(c["accuracy"]),
             "95% interval": "n/a" if not c.get("ci95") else
             f"{_pts(c['ci95'][0])} to {_pts(c['ci95'][1])}",
             "runs": c.get("n_runs"), "tested examples": c.get("n_examples")}
            for c in doc["configs"]]
    st.dataframe(rows, hide_index=True, key=f"cfg_{key}")
    pairs = doc.get("pairs") or []
    if pairs:
        st.dataframe([{"b vs a": f"{p['b']} vs {p['a']}", "verdict": p["verdict"],
                       "difference (points)": _pts(p["diff"], signed=True),
                       "95% interval": "n/a" if not p.get("ci95") else
                       f"{_pts(p['ci95'][0], True)} to {_pts(p['ci95'][1], True)}",
                       "p (adjusted, sequential)": "n/a" if p.get("p_adjusted") is None
                       else f"{p['p_adjusted']:.3g}"} for p in pairs],
                     hide_index=True, key=f"pairs_{key}")


def draw_models(views: dict, key: str, doc: dict | None) -> None:
    """A comparison under several models: the whole answer first, then each model's block
    (curves, accuracies, pair verdicts) under its name.  ``views``: model -> ComparisonView;
    ``doc``: :func:`diagnostics.results.models_json` (None while no decision exists)."""
    if doc is not None:
        answer_ui(doc)
    blocks = {b["model"]: b for b in (doc or {}).get("models", [])}
    for i, (model, view) in enumerate(views.items()):
        st.markdown(f"#### Model {md(model)}")
        block = blocks.get(model)
        draw_comparison(view, f"{key}_m{i}", block, answer=False)


def draw_comparison(view: report.ComparisonView, key: str, doc: dict | None = None, *,
                    answer: bool = True) -> None:
    """Curves side by side, then the answer with intervals and verdicts (``doc``: the
    comparison's verdict as JSON; without one, the older per-seed summary)."""
    if view.val is None:
        st.caption("Curves appear after the first minibatches (workers start in a few seconds).")
    else:
        c = st.columns(2)
        with c[0]:
            chart(view.val, f"normscope-{key}-val", f"val_{key}")
        with c[1]:
            chart(view.batch, f"normscope-{key}-batches", f"batch_{key}")
    res = view.res
    if doc is not None and doc.get("configs"):
        verdict_ui(doc, key, answer=answer)
        chart(view.tested, f"normscope-{key}-test-accuracy", f"res_{key}")
    elif any(c.n for c in res.configs):
        from diagnostics.results import table_rows

        if res.summary:
            st.markdown(f"**{res.summary}**")
        for v in res.verdicts:
            (st.success if " better " in v else st.warning if " worse " in v else st.info)(v)
        st.dataframe(table_rows(res), hide_index=True, key=f"table_{key}")
        chart(view.tested, f"normscope-{key}-test-accuracy", f"res_{key}")


class _NotFinished(Exception):
    """Raised inside a cached function so that nothing is cached (the record may change)."""

    def __init__(self, rec):
        self.rec = rec


@st.cache_resource(show_spinner=False, max_entries=32)
def _finished_view(home: str, cid: str, caption_text: str, name: str):
    # Loading every minibatch point and building three figures costs ~50-250 ms a rerun; a
    # finished comparison never changes, so once per server.  Shared: nothing modifies it.
    rec = runs.store().load_comparison(cid)
    if rec is None or rec.status not in runs.FINISHED:
        raise _NotFinished(rec)
    return rec, _views(rec, caption_text, name)


def _views(rec, caption_text: str, name: str):
    """A stored comparison's view, or ``{model: view}`` of one under several models."""
    blocks = model_records(rec)
    if not blocks:
        return report.stored_view(rec, caption_text=caption_text, dataset_name=name)
    return {m: report.stored_view(sub, caption_text=f"{caption_text} · {m}", dataset_name=name)
            for m, sub in blocks}


def stored_comparison(cid: str, caption_text: str, name: str):
    """``(record, view)`` of a stored comparison (``(None, None)`` if it is not in the store)."""
    try:
        return _finished_view(str(config.home()), cid, caption_text, name)
    except _NotFinished as exc:
        rec = exc.rec
        if rec is None:
            return None, None
        return rec, _views(rec, caption_text, name)


@st.cache_data(show_spinner=False, max_entries=32)
def _stored_json(home: str, cid: str) -> dict:
    # A finished comparison's verdict never changes: computed once per server (cache_data:
    # each session gets its own copy of the dict).
    from diagnostics.results import comparison_json

    rec = runs.store().load_comparison(cid, batches=False)
    return comparison_json(rec, runs.predictions(cid))


def live_ui(cid: str, caption_text: str, name: str) -> None:
    """Progress, live curves and Cancel of a running comparison; redrawn every second."""

    @st.fragment(run_every=1.0)
    def monitor() -> None:
        comp = runs.registry().get(cid)
        p = comp.snapshot()
        if p.finished:
            st.rerun(scope="app")  # draw the final results from the store
        st.progress(min(p.fraction, 1.0),
                    text=f"{p.progress_line()} · "
                         + ", ".join(f"{k} {v}" for k, v in sorted(p.counts.items())))
        decisions = p.decisions or {"": p.decision}
        for model, d in decisions.items():
            if d is None:
                continue
            pairs = d.as_json()["pairs"]
            decided = [f"{q['b']} vs {q['a']}: {q['verdict']}" for q in pairs
                       if q["verdict"] != "unclear"]
            open_ = [f"{q['b']} vs {q['a']}" for q in pairs if q["verdict"] == "unclear"]
            st.caption(md(f"{model + ': ' if model else ''}Decided so far: "
                          f"{'; '.join(decided) or 'none'}. Undecided: "
                          f"{', '.join(open_) or 'none'}."))
        if runs.may_cancel(cid, state.owner_token()):
            st.button("Cancel", key=f"cancel_{cid}", on_click=_cancel, args=(cid,),
                      help="Stops every run within a second or two; finished runs are kept.")
        else:
            st.caption("Read-only: only the page that started this comparison can cancel it.")
        if not p.decisions:
            doc = p.decision.as_json() if p.decision is not None else None
            draw_comparison(report.comparison_view(
                p.curves, list(dict.fromkeys(r.config for r in p.runs)), p.accuracies(),
                caption_text=caption_text, dataset_name=name), cid, doc)
            return
        views = {}
        for model in p.decisions:
            sub = dataclasses.replace(p, runs=tuple(r for r in p.runs if r.model == model))
            views[model] = report.comparison_view(
                sub.curves, list(dict.fromkeys(r.config for r in p.runs)), sub.accuracies(),
                caption_text=f"{caption_text} · {model}", dataset_name=name)
        for i, (model, view) in enumerate(views.items()):
            st.markdown(f"#### Model {md(model)}")
            d = p.decisions.get(model)
            draw_comparison(view, f"{cid}_m{i}", d.as_json() if d is not None else None)

    monitor()


def stored_ui(cid: str, caption_text: str, name: str) -> None:
    from diagnostics.results import comparison_json

    rec, view = stored_comparison(cid, caption_text, name)
    if rec is None:
        st.warning(f"Comparison {cid} is not in the run store.")
        return
    status = f"**{rec.status}**"
    if rec.counts:
        early = (rec.hyper.get("evaluation") or {}).get("stopped_because") not in (None,
                                                                                  "cancelled")
        status += " · " + ", ".join(
            f"{k} {v}" + (" (not needed)" if early and k == "cancelled" else "")
            for k, v in sorted(rec.counts.items()))
    h = rec.hyper
    st.markdown(f"{status} · {md(rec.model)}, at most {h.get('epochs')} epochs (patience "
                f"{h.get('patience', 'none')}), {h.get('optimizer', 'adam')} lr {h.get('lr', 1e-3):g}, "
                f"weight decay {h.get('weight_decay', 0):g}, batch {h.get('batch_size')}, seeds "
                f"{', '.join(map(str, rec.seeds))} · id `{rec.id}`")
    doc = _stored_json(str(config.home()), cid) if rec.status in runs.FINISHED else \
        comparison_json(rec, runs.predictions(cid))
    if isinstance(view, dict):
        draw_models(view, cid, doc)
    else:
        draw_comparison(view, cid, doc)
    st.download_button("Download results (JSON)", key=f"json_{cid}", on_click="ignore",
                       data=lambda: json.dumps(doc, indent=1),
                       file_name=f"normscope-compare-{cid}.json", mime="application/json")


def run_caption(ds: Dataset, mask_snr: float | None, evaluation: dict | None = None) -> str:
    """What a comparison ran on, from the comparison itself (never from today's sidebar): its
    evaluation design (the split's three counts for a holdout) and its mask threshold."""
    from diagnostics.data.dataset import split_indices

    ev = evaluation or {}
    if ev.get("kind") == "cv":
        k = int(ev.get("folds") or 5)
        text = f"{ds.name} · {ds.n:,} examples · stratified {k}-fold CV"
    else:
        split = split_indices(ds.n, ds.y, seed=config.SPLIT_SEED)
        text = (f"{ds.name} · train {len(split.train):,} / val {len(split.val):,} / test "
                f"{len(split.test):,} split (seed {config.SPLIT_SEED})")
    if mask_snr is not None:
        text += f" · @mask: row SNR < {float(mask_snr):g}"
    return text


def runs_picker_ui(ds: Dataset) -> None:
    """The comparisons to show, in the sidebar: drawn on every run of the script, so the
    ``runs`` of a link survive a switch to the Statistics tab, and hidden with the sidebar in
    report view (the results stay, the picker goes)."""
    stored = stored_comparisons(ds.id) if ds.y is not None else {}
    # Comparisons of another dataset (after switching datasets) are not shown here.
    if "runs" in st.session_state:
        st.session_state["runs"] = [r for r in st.session_state["runs"] if r in stored]
    st.sidebar.multiselect("Comparisons to show", list(stored), key="runs", bind=BIND,
                           help="Past comparisons of this dataset from the run store; the "
                                "newest started is selected. The ids go into the share link.")


def compare_page(ds: Dataset, stats: PixelStats, threshold: float, report_view: bool) -> None:
    if ds.y is None:
        st.info("Comparisons train classifiers, so they need labels: open the data with a "
                "labels file (or an .npz holding y, or class folders of audio).")
        return
    if not report_view:
        compare_controls_ui(ds, stats, threshold)
    stored = stored_comparisons(ds.id)  # running ones are stored from their start
    if stored and not report_view:  # report view: the results only
        with st.expander(f"{len(stored)} stored comparison(s) of {md(ds.name)}"):
            st.dataframe([{"id": k, "comparison": v} for k, v in stored.items()], hide_index=True)
    for cid in st.session_state.get("runs", []):
        st.subheader(f"Comparison {cid}")
        live = runs.running(cid)
        if live is not None:
            live_ui(cid, run_caption(ds, live.mask_snr, live.evaluation()), ds.name)
        else:
            rec = runs.store().load_comparison(cid, batches=False)
            hyper = rec.hyper if rec is not None else {}
            stored_ui(cid, run_caption(ds, hyper.get("mask_snr"), hyper.get("evaluation")),
                      ds.name)
