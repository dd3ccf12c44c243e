"""Share links: the view's state as URL query parameters, parsed and validated.

Values in a URL are strings from strangers.  Every parameter is checked against what exists
(datasets, runs, options); a bad one yields a notice and the default, never an exception.
Parameters only ever name ids and options, never filesystem paths, so a link cannot read files.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

TABS = ("Statistics", "Compare", "What the network sees", "Advise")
#: URL parameters that belong to one page and never go into a share link: ``owner`` is the
#: private token that lets the starter of a comparison cancel it.
PRIVATE = ("owner",)
ON = ("train", "all")
#: The "What the network sees" tab's choices, as its bound radios show them (and the URL carries).
SEES_PICKS = ("One per class (test split)", "A chosen example")
SEES_COLOURS = ("Own scale per panel", "One shared scale")
ID_RE = re.compile(r"^[A-Za-z0-9_.+@-]{1,64}$")


@dataclass(frozen=True)
class View:
    """What a link reproduces. Defaults are what a fresh page shows."""

    dataset: str = "demo"
    mask_snr: float = 0.2
    tab: str = "Statistics"
    on: str = "train"
    log_color: bool = True
    colorscale: str = "Viridis"
    configs: tuple[str, ...] = field(default_factory=tuple)
    runs: tuple[str, ...] = field(default_factory=tuple)
    report: bool = False
    profiles: bool = False  # the Statistics tab's row-SNR profile and value distribution shown
    #: The advisor's comparison id whose advice the Advise tab shows ("" for none).
    advice: str = ""
    #: Compare-tab settings that differ from their defaults, ``((key, value), ...)`` (a
    #: multiselect's value is a tuple); their bound widgets parse and check them when a link
    #: is opened.
    settings: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    #: The "What the network sees" tab: its configs (empty: the tab's defaults), one example
    #: per class or a chosen index, and the colour option.
    sees_configs: tuple[str, ...] = field(default_factory=tuple)
    sees_pick: str = SEES_PICKS[0]
    sees_index: int = 0
    sees_colour: str = SEES_COLOURS[0]


def _one(value) -> str:
    # st.query_params gives the last value of a repeated key; lists come from tests.
    return str(value[-1] if isinstance(value, (list, tuple)) and value else value)


def _many(value) -> list[str]:
    # Repeated parameters, one name each, exactly as Streamlit's bound multiselects read them
    # (a comma-joined value is one unknown name to them, so it is one here too).
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _bool(text: str) -> bool | None:
    # Only what Streamlit's bound checkboxes read: anything else would be ignored silently.
    t = text.strip().lower()
    return True if t == "true" else False if t == "false" else None


def parse_view(
    params: dict,
    *,
    datasets: set[str] | frozenset[str],
    colorscales: tuple[str, ...],
    runs: set[str] | frozenset[str] = frozenset(),
    config_ok=None,
    mask_max: float = math.inf,
    advice: set[str] | frozenset[str] = frozenset(),
) -> tuple[View, list[str]]:
    """Validate URL parameters into a :class:`View` and a list of notices.

    Parameters
    ----------
    params : mapping of str to str (or list of str)
        The raw query parameters.
    datasets : set of str
        Ids (and built-in names) that exist.
    colorscales : tuple of str
    runs : set of str
        Comparison/run ids that exist.
    config_ok : callable(str) -> bool, optional
        Whether a config name parses.
    mask_max : float
        Largest accepted mask threshold.
    advice : set of str
        Ids of the stored advice of the link's dataset.

    Returns
    -------
    view : View
        Valid parameters taken, bad ones replaced by defaults.
    notices : list of str
        One sentence per rejected parameter.
    """
    d = View()
    out: dict = {}
    notices: list[str] = []

    def bad(key, value, why, default):
        shown = value if len(value) <= 40 else value[:37] + "..."
        notices.append(f"The link's {key}={shown!r} {why}; showing {default} instead.")

    if "dataset" in params:
        v = _one(params["dataset"])
        if not ID_RE.match(v) or v not in datasets:
            bad("dataset", v, "names no dataset on this server (links carry ids, never paths)",
                d.dataset)
        else:
            out["dataset"] = v
    if "mask_snr" in params:
        v = _one(params["mask_snr"])
        try:
            x = float(v)
            if not (math.isfinite(x) and 0 <= x <= mask_max):
                raise ValueError
            out["mask_snr"] = x
        except ValueError:
            bad("mask_snr", v, f"is not a number between 0 and {mask_max:g}", d.mask_snr)
    for key, allowed in (("tab", TABS), ("on", ON), ("colorscale", colorscales)):
        if key in params:
            v = _one(params[key])
            if v in allowed:
                out[key] = v
            else:
                bad(key, v, f"is not one of {', '.join(allowed)}", getattr(d, key))
    for key in ("log_color", "report", "profiles"):
        if key in params:
            v = _one(params[key])
            b = _bool(v)
            if b is None:
                bad(key, v, "is not true or false", getattr(d, key))
            else:
                out[key] = b
    for key in ("configs", "sees_configs"):  # the Compare tab's and the sees tab's
        if key in params:
            vals = _many(params[key])
            good = [c for c in vals if config_ok is None or config_ok(c)]
            for c in vals:
                if c not in good:
                    bad(key, c, "is not a valid normalization config", "the other configs")
            out[key] = tuple(dict.fromkeys(good))
    for key, allowed in (("sees_pick", SEES_PICKS), ("sees_colour", SEES_COLOURS)):
        if key in params:
            v = _one(params[key])
            if v in allowed:
                out[key] = v
            else:
                bad(key, v, f"is not one of {', '.join(allowed)}", repr(getattr(d, key)))
    if "sees_index" in params:
        v = _one(params["sees_index"])
        if re.fullmatch(r"\d{1,12}", v.strip()):
            out["sees_index"] = int(v)
        else:
            bad("sees_index", v, "is not an example index (a whole number, 0 or more)",
                f"example {d.sees_index}")
    if "runs" in params:
        vals = _many(params["runs"])
        good = [r for r in vals if ID_RE.match(r) and r in runs]
        for r in vals:
            if r not in good:
                bad("runs", r, "names no stored comparison or run", "the others")
        out["runs"] = tuple(dict.fromkeys(good))
    if "advice" in params:
        v = _one(params["advice"])
        if ID_RE.match(v) and v in advice:
            out["advice"] = v
        else:
            bad("advice", v, "names no stored advice of this dataset", "none")
    return View(**{**d.__dict__, **out}), notices


def view_params(view: View, *, default_configs: tuple[str, ...] = ()) -> dict[str, str | list[str]]:
    """Query parameters of a view, leaving out values equal to the defaults.

    Lists are repeated parameters (``?configs=none&configs=per_pixel``), as Streamlit's
    bound multiselects write them.
    """
    d = View()
    p: dict[str, str | list[str]] = {}
    if view.dataset != d.dataset:
        p["dataset"] = view.dataset
    if view.mask_snr != d.mask_snr:
        p["mask_snr"] = f"{view.mask_snr:g}"
    for key in ("tab", "on", "colorscale"):
        if getattr(view, key) != getattr(d, key):
            p[key] = getattr(view, key)
    for key in ("log_color", "report", "profiles"):
        if getattr(view, key) != getattr(d, key):
            p[key] = str(getattr(view, key)).lower()
    if view.configs and tuple(view.configs) != tuple(default_configs):
        p["configs"] = list(view.configs)
    if view.runs:
        p["runs"] = list(view.runs)
    if view.sees_configs:
        p["sees_configs"] = list(view.sees_configs)
    for key in ("sees_pick", "sees_colour"):
        if getattr(view, key) != getattr(d, key):
            p[key] = getattr(view, key)
    if view.sees_pick != d.sees_pick and view.sees_index != d.sees_index:
        p["sees_index"] = str(view.sees_index)  # read only for a chosen example
    if view.advice:
        p["advice"] = view.advice
    for key, value in view.settings:
        if key not in PRIVATE:
            p[key] = list(value) if isinstance(value, tuple) else value  # multiselect: repeated
    return p


def view_url(base: str, view: View, **kwargs) -> str:
    """The full share link of a view."""
    query = urlencode(view_params(view, **kwargs), doseq=True, safe="@")  # "+" must be %2B: a bare + reads as a space
    base = base.split("?")[0].split("#")[0]
    if urlsplit(base).path == "":
        base += "/"  # http://host:8501 -> http://host:8501/ (the page a browser would show)
    return f"{base}?{query}" if query else base
