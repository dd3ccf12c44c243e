"""URL state: the link's parameters checked on a session's first run, and the share box.

Widgets are bound to query parameters (``bind=BIND``; the key is the parameter's name), so the
URL follows the view; :mod:`webapp.share` parses and writes them (pure python).
"""

from __future__ import annotations

import re
import secrets

import streamlit as st

from diagnostics.config import DEFAULT_MASK_SNR
from diagnostics.errors import NormScopeError
from diagnostics.normalize import parse_config
from diagnostics.plots import figures
from webapp import runs, share
from webapp.cache import dataset_ids

BIND = "query-params"
#: URL parameter of the starter's private token: it lets a reload of the starter's page
#: cancel its comparisons; "Share this view" leaves it out (see webapp.share.PRIVATE).
OWNER = "owner"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
MASK_MAX = 5.0  # slider range for the row-SNR threshold (row SNRs above ~3 are rare)


def config_ok(name: str) -> bool:
    """Whether a config name parses (a link's ``configs`` and the Start button check it)."""
    try:
        parse_config(name)
        return True
    except NormScopeError:
        return False


def url_notices() -> None:
    """On a session's first run, check the link's parameters and keep notices for bad ones."""
    if "url_checked" in st.session_state:
        return
    st.session_state["url_checked"] = True
    token = st.query_params.get(OWNER)
    if token is not None:
        if TOKEN_RE.match(token):
            st.session_state["owner_token"] = token  # a reload of the starter's page
        else:
            del st.query_params[OWNER]
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    # A link's runs must belong to the link's dataset (the Compare tab shows only those).
    linked = (params.get("dataset") or ["demo"])[-1]
    try:
        stored = runs.comparison_ids(linked) if "runs" in params else set()
        advice = ({cid for cid, _, _ in runs.advice_list(linked)} if "advice" in params
                  else set())
    except NormScopeError:  # the run store cannot be opened: the page says why
        stored, advice = set(), set()
    _, notices = share.parse_view(
        params, datasets=set(dataset_ids(st.session_state.get("dataset"))),
        colorscales=figures.COLORSCALES, mask_max=MASK_MAX, runs=stored, config_ok=config_ok,
        advice=advice,
    )
    st.session_state["notices"] = notices


def owner_token(*, create: bool = False) -> str | None:
    """This page's private token (``secrets.token_urlsafe``), made on its first Start when
    ``create``; None before.  It goes into this page's URL (``owner``) once a comparison
    started, so that a reload keeps the right to cancel; a share link never carries it."""
    s = st.session_state
    if s.get("owner_token") is None and create:
        s["owner_token"] = secrets.token_urlsafe(16)
    return s.get("owner_token")


def keep_owner_in_url() -> None:
    """Put this page's token into its URL (after its first comparison started)."""
    token = owner_token()
    if token is not None and st.query_params.get(OWNER) != token:
        st.query_params[OWNER] = token


def notices() -> list[str]:
    """Notices about the link's bad parameters (empty when it had none)."""
    return list(st.session_state.get("notices", []))


def current_view() -> share.View:
    s = st.session_state
    return share.View(
        dataset=s.get("dataset", "demo"), mask_snr=float(s.get("mask_snr", DEFAULT_MASK_SNR)),
        tab=s.get("tab", "Statistics"), on=s.get("on", "train"),
        log_color=bool(s.get("log_color", True)), colorscale=s.get("colorscale", "Viridis"),
        configs=tuple(s.get("configs", ())), runs=tuple(s.get("runs", ())),
        report=bool(s.get("report", False)), profiles=bool(s.get("profiles", False)),
        advice=str(s.get("advice") or ""),
        sees_configs=tuple(s.get("sees_configs") or ()),
        sees_pick=s.get("sees_pick") or share.SEES_PICKS[0],
        sees_index=int(s.get("sees_index") or 0),
        sees_colour=s.get("sees_colour") or share.SEES_COLOURS[0],
        settings=tuple((k, f"{s[k]:g}" if isinstance(s[k], float) else
                        tuple(map(str, s[k])) if isinstance(s[k], (list, tuple)) else str(s[k]))
                       for k, default in {**runs.SETTINGS, **runs.ADVISE_SETTINGS}.items()
                       if k in s and s[k] is not None and s[k] != default),
    )


def share_ui(box) -> None:
    """Fill the sidebar's share box; called last, when every bound widget has its value."""
    # Opening it reruns the app, so the link is built from every widget's value at that
    # moment, including those of a tab that reran alone (a fragment) since the last full run.
    with box.popover("Share this view", icon=":material/link:", width="stretch",
                     key="share_popover", on_change="rerun"):
        base = st.context.url or "http://localhost:8501/"
        st.code(share.view_url(base, current_view()), language=None, wrap_lines=True)
        st.caption("Copy with the button at the code's corner. The link carries the dataset "
                   "id, mask, tab, options and runs — never a file path.")
