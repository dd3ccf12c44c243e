"""One comparison, several models: each model's block of runs, and whether the models agree.

A comparison run under two or more models (``compare --models cnn,cnn_bn0``) stores every
run with its model and lists the models in ``hyper["models"]``.  Each model is its own block:
every config trained on the same (repetition, fold) cells, paired within the model, with its
own decide loop, its own multiplicity adjustment and its own answer.  :func:`model_records` splits a
stored comparison into one record per model (the shape a one-model comparison has), and
:func:`agreement` compares the per-model verdicts in words that follow from them alone: the
models "agree" only when every model's verdict is decided and the same; a model still
undecided is named as such, never counted as agreeing.

Multiplicity: each model's tests are adjusted within that model only (Shaffer over its pairs,
alpha spent over its looks); nothing is adjusted across models, and :func:`multiplicity`
says so with the bound that follows (up to K x 5% for K models).

Pure Python on duck-typed records (``rec.hyper``, ``rec.runs`` with ``model``); no numpy.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from .answer import label

#: A pair verdict read for b against a; the same verdict read for a against b.
FLIP = {"worse": "better", "better": "worse", "equivalent": "equivalent", "unclear": "unclear"}
WORDS = {"worse": "worse than", "better": "better than", "equivalent": "equivalent to"}


def joint_stop(reasons: Sequence[str | None]) -> str | None:
    """Why a comparison of several models stopped: None while any model may go on;
    "decided" when every model decided; otherwise the first other reason (budget,
    max_repetitions, cancelled, failed), so it never says decided for an undecided model."""
    if any(r is None for r in reasons):
        return None
    return next((r for r in reasons if r != "decided"), "decided")


def models_of(rec) -> list[str]:
    """The models of a stored comparison with several (``hyper["models"]``); [] with one."""
    models = (rec.hyper or {}).get("models") or []
    return [str(m) for m in models] if len(models) > 1 else []


def model_records(rec) -> list[tuple[str, object]]:
    """``[(model, record)]``: the comparison as one record per model, each with only that
    model's runs and, in ``hyper["evaluation"]``, that model's own ``stopped_because``."""
    out = []
    hyper = {k: v for k, v in (rec.hyper or {}).items() if k != "models"}
    ev = dict(hyper.get("evaluation") or {})
    by_model = ev.pop("stopped_by_model", None) or {}
    for m in models_of(rec):
        sub_ev = {**ev, "stopped_because": by_model.get(m, ev.get("stopped_because"))}
        runs = tuple(r for r in rec.runs if r.model == m)
        out.append((m, dataclasses.replace(rec, model=m, runs=runs,
                                           hyper={**hyper, "evaluation": sub_ev})))
    return out


def question_pair(configs: Sequence[str]) -> tuple[str, str] | None:
    """The pair of the user's question (as :func:`diagnostics.verdicts.answer.answer` picks
    it): none against per_pixel when both ran, else the first two configs; None for one."""
    if "none" in configs and "per_pixel" in configs:
        return ("none", "per_pixel")
    return tuple(configs[:2]) if len(configs) >= 2 else None


def pair_verdict(pairs: Sequence[Mapping], a: str, b: str) -> str | None:
    """The verdict of ``b`` against ``a`` among JSON pairs (either orientation); None if the
    pair has no verdict (no decision yet)."""
    for p in pairs:
        if (p["a"], p["b"]) == (a, b):
            return p["verdict"]
        if (p["a"], p["b"]) == (b, a):
            return FLIP.get(p["verdict"], p["verdict"])
    return None


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _who(models: Sequence[str]) -> str:
    return "both models" if len(models) == 2 else f"all {len(models)} models"


def agreement(blocks: Sequence[Mapping], configs: Sequence[str]) -> dict:
    """Whether the models agree, from each block's pairs and answer alone.

    ``blocks`` are ``{model, answer: {best, text}, pairs}``; ``configs`` the comparison's.
    Returns ``{question: {a, b, verdicts, agree}, best: {names, agree}, text}`` where
    ``agree`` is True (every model decided the same way), False (two decided models differ)
    or None (not shown: some model is undecided, and the decided ones do not differ).
    """
    models = [b["model"] for b in blocks]
    lines: list[str] = []
    out: dict = {}
    q = question_pair(configs)
    if q is not None:
        a, b = q
        verdicts = {bl["model"]: pair_verdict(bl.get("pairs") or [], a, b) for bl in blocks}
        decided = {m: v for m, v in verdicts.items() if v in WORDS}
        open_ = [m for m in models if m not in decided]
        what = f"{label(b)} against {label(a)}"
        said = [f"{WORDS[v]} {label(a)} under {m}" for m, v in decided.items()]
        if len(set(decided.values())) > 1:
            agree = False
            text = f"The models reach different verdicts on {what}: {label(b)} is {_and(said)}"
            text += f"; still undecided under {_and(open_)}." if open_ else "."
        elif not open_:
            agree = True
            v = next(iter(decided.values()))
            text = (f"The models agree on {what}: under {_who(models)} {label(b)} is "
                    f"{WORDS[v]} {label(a)}.")
        else:
            agree = None
            text = (f"Whether the models agree on {what} is not shown: still undecided under "
                    f"{_and(open_)}" + (f"; {label(b)} is {_and(said)}." if said else "."))
        lines.append(text)
        out["question"] = {"a": a, "b": b, "verdicts": verdicts, "agree": agree}
    names = {bl["model"]: (bl.get("answer") or {}).get("best") for bl in blocks}
    named = {m: n for m, n in names.items() if n}
    open_ = [m for m in models if m not in named]
    if len(set(named.values())) > 1:
        agree = False
        text = ("The models name different best configs: "
                + _and([f"{label(n)} under {m}" for m, n in named.items()]))
        text += f"; none is named yet under {_and(open_)}." if open_ else "."
    elif not open_:
        agree = True
        text = (f"The models agree on what is best: {label(next(iter(named.values())))} "
                f"under {_who(models)}.")
    else:
        agree = None
        text = (f"Whether the models agree on what is best is not shown: no best is named yet "
                f"under {_and(open_)}"
                + (f"; {_and([f'{m} names {label(n)}' for m, n in named.items()])}."
                   if named else "."))
    lines.append(text)
    out["best"] = {"names": names, "agree": agree}
    lines.append(multiplicity(len(models)))
    out["text"] = lines
    return out


def multiplicity(k: int) -> str:
    """How the tests of ``k`` models are adjusted, in one sentence."""
    return (f"Each model's tests are adjusted for all its pairs within that model (5% family-wise error per "
            f"model); nothing is adjusted across the {k} models, so the chance that at least "
            f"one model's decided verdict is wrong is up to {5 * k}%.")


def answer_lines(blocks: Sequence[Mapping], agree: Mapping) -> list[str]:
    """The answer of a comparison of several models: each model's lines, prefixed by its
    name, then the agreement's."""
    lines = [f"{b['model']}: {line}" for b in blocks for line in (b.get("answer") or {})
             .get("text", [])]
    return lines + list(agree["text"])
