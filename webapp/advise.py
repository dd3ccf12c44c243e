"""The Advise tab: candidates with their reasons, the *Advise* button, the recommendation.

The candidates come from the training split's statistics (:func:`diagnostics.advise.propose`);
*Advise* runs them as one decide-mode comparison within the budget (:mod:`webapp.runs`), and
the recommendation is stored with that comparison's id.  The id goes into the URL
(``advice``), so a reload or a teammate's link reopens it, live or from the run store.
"""

from __future__ import annotations

import json
import time

import streamlit as st

from diagnostics.advise import Proposal, Recommendation, propose, recommendation_lines
from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError
from diagnostics.stats.accumulate import PixelStats
from webapp import runs
from webapp.state import BIND
from webapp.text import md

SETTINGS = runs.ADVISE_SETTINGS  # widget key (and URL parameter) -> default


def start_advice(ds: Dataset, proposal: Proposal, threshold: float) -> None:
    """Advise button callback: start in the background, put its id in the URL."""
    s = st.session_state
    s["adv_error"] = None
    try:
        cid = runs.start_advice(ds, proposal,
                                budget_min=float(s.get("adv_budget", SETTINGS["adv_budget"])),
                                epochs=int(s.get("adv_epochs", SETTINGS["adv_epochs"])),
                                model=s.get("adv_model", SETTINGS["adv_model"]),
                                mask_snr=threshold)
    except NormScopeError as exc:
        s["adv_error"] = str(exc)  # the previous advice stays shown
        return
    s["advice"] = cid


def advice_choices(ds_id: str) -> dict[str, str]:
    """Advice id -> one line (when, recommended config or state), newest first."""
    out = {}
    for cid, created, doc in runs.advice_list(ds_id):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
        rec = doc.get("recommendation")
        what = (f"{rec['config']}{'' if rec.get('settled') else ' (leading, undecided)'}"
                if rec else "running or without a verdict")
        out[cid] = f"{when} · {what} · {cid}"
    return out


def candidates_ui(proposal: Proposal) -> None:
    st.markdown(md(proposal.kind.text))
    # A table, not a dataframe: the reasons are sentences and must wrap, not be cut off.
    st.table([{"candidate": c.config, "why it is in": c.reason} for c in proposal.candidates])
    if proposal.left_out:
        st.caption(md("Not run: " + " ".join(f"{c.config}: {c.reason}"
                                              for c in proposal.left_out)))


def controls_ui(ds: Dataset, proposal: Proposal, threshold: float) -> None:
    c = st.columns([1, 1, 1, 2])
    c[0].number_input("Time budget (min)", 0.1, 600.0, SETTINGS["adv_budget"], step=1.0,
                      key="adv_budget", bind=BIND,
                      help="Decide mode adds repetitions of 5-fold CV while the pairs of the "
                           "best are undecided and the next repetition fits in the budget; a "
                           "budget too small for one repetition is refused.")
    c[1].number_input("Epochs (most)", 1, 200, SETTINGS["adv_epochs"], key="adv_epochs",
                      bind=BIND)
    c[2].selectbox("Model", runs.model_names(), key="adv_model", bind=BIND,
                   help=runs.model_help())
    busy = any(runs.running(cid) is not None for cid in [st.session_state.get("advice")] if cid)
    c[3].button("Advise", key="advise_start", type="primary", disabled=busy,
                on_click=start_advice, args=(ds, proposal, threshold),
                help="Runs the candidates as one comparison in decide mode, then recommends "
                     "the best with its gains over no normalization and per-pixel z-scoring.")
    if st.session_state.get("adv_error"):
        st.error(md(st.session_state["adv_error"]))


def _gain_text(g: dict) -> tuple[str, str]:
    """A gain as the metric's value (the difference) and its caption (interval and verdict):
    the interval does not fit a metric's width at 1280 px, and a cut one reads as wrong."""
    if g.get("verdict") == "same config":
        return "same config", ""
    if g.get("diff") is None:
        return "n/a", ""
    ci = g.get("ci95")
    note = "" if not ci else f"95% CI {100 * ci[0]:+.1f} to {100 * ci[1]:+.1f} points"
    if g.get("verdict"):
        note = f"{note} · {g['verdict']}" if note else g["verdict"]
    return f"{100 * g['diff']:+.1f} points", note


def recommendation_ui(doc: dict, ds: Dataset, mask_snr: float) -> None:
    """The stored recommendation: the config, its gains with intervals, what is undecided."""
    rec = Recommendation.from_json(doc["recommendation"])
    lines = recommendation_lines(rec)
    (st.success if rec.settled else st.warning)(md(lines[0]))
    m = st.columns(3)
    m[0].metric("Recommended" if rec.settled else "Leading", rec.config)
    for col, label, key in ((m[1], "Gain over no normalization", "gain_vs_none"),
                            (m[2], "Gain over per-pixel z-scoring", "gain_vs_per_pixel")):
        value, note = _gain_text(doc["recommendation"][key])
        col.metric(label, value)
        if note:
            col.caption(md(note))
    for line in lines[1:]:
        st.markdown(md(line))
    with st.expander("The comparison's answer", expanded=False):
        for line in (doc.get("answer") or {}).get("text", []):
            st.markdown(md(line))
        st.caption("Intervals are plain 95% intervals of the differences; verdicts come from "
                   "sequential tests adjusted over every pair of candidates (Shaffer's "
                   "step-down), so picking "
                   "the best after the fact does not inflate them.")
    cid = doc["comparison_id"]
    d = st.columns(2)
    d[0].download_button("Download advice (JSON)", key=f"adv_json_{cid}", on_click="ignore",
                         data=json.dumps(doc, indent=1), mime="application/json",
                         file_name=f"normscope-advice-{cid}.json")
    # The export download (models.export.export_zip through runs.export_zip).
    if not runs.export_available():
        d[1].caption(md(f"The export of {rec.config} (normalizer.npz, a torch module, "
                        "USAGE.md) is not available in this build."))
    else:
        d[1].download_button(f"Download {rec.config} for your training code (zip)",
                             key=f"adv_export_{cid}", on_click="ignore",
                             data=lambda: runs.export_zip(ds.id, rec.config, mask_snr),
                             mime="application/zip",
                             file_name=f"normscope-{cid}-normalizer.zip",
                             help="normalizer.npz (fitted on all training data), the torch "
                                  "module and USAGE.md, as `python -m diagnostics export` "
                                  "writes them; the mask threshold is the advice's.")


def advice_ui(cid: str, ds: Dataset, threshold: float) -> None:
    from webapp.compare import live_ui, run_caption

    doc = runs.advice(cid)
    if doc is None:
        st.warning(f"Advice {cid} is not in the run store.")
        return
    st.subheader(f"Advice {cid}")
    live = runs.running(cid)
    if live is not None:
        st.caption(md("Candidates: " + ", ".join(c["config"] for c in doc["candidates"])))
        live_ui(cid, run_caption(ds, live.mask_snr, live.evaluation()), ds.name)
        return
    if doc.get("recommendation") is None:
        st.warning(md(doc.get("error") or "This advice has no recommendation yet."))
        return
    rec = runs.store().load_comparison(cid, batches=False)
    mask_snr = float((rec.hyper if rec is not None else {}).get("mask_snr", threshold))
    recommendation_ui(doc, ds, mask_snr)  # the export uses the advice's own mask threshold
    with st.expander("Candidates and why they were in"):
        st.table([{"candidate": c["config"], "why it is in": c["reason"]}
                  for c in doc["candidates"]])


def advise_page(ds: Dataset, stats: PixelStats, threshold: float, report_view: bool) -> None:
    """The tab: candidates from ``stats`` (training split), the button, the advice shown."""
    if ds.y is None:
        st.info("The advisor trains classifiers, so it needs labels: open the data with a "
                "labels file (or an .npz holding y, or class folders of audio).")
        return
    if not report_view:
        proposal = propose(stats, mask_snr=threshold)
        candidates_ui(proposal)
        controls_ui(ds, proposal, threshold)
    choices = advice_choices(ds.id)
    if st.session_state.get("advice") not in choices:
        st.session_state.pop("advice", None)  # another dataset's advice, or a bad link
    # Plain ids as options: a bound selectbox writes the option's label into the URL.
    st.selectbox("Advice to show", list(choices), index=None, key="advice", bind=BIND,
                 placeholder="none yet",
                 help="Stored advice of this dataset, newest first: "
                      + "; ".join(choices.values()) if choices else "None stored yet.")
    cid = st.session_state.get("advice")
    if cid:
        st.caption(md(choices.get(cid, cid)))
        advice_ui(cid, ds, threshold)
