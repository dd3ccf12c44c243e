"""The words of a comparison's answer, written from the pair verdicts and nothing else.

Line 1 answers the user's question (does per-pixel z-scoring hurt against no normalization,
or the first pair when those two are not both compared); line 2 says what to use, naming a
best config only when all its adjusted tests are decided; then, when the budget ran out
undecided, a plain line with the intervals; last, the design's note (fewer folds).

Every clause about a pair is chosen by that pair's verdict, so the text cannot contradict
the verdicts: "equivalent" and "either will do" appear only for pairs whose verdict is
``equivalent``.  Pure strings; :mod:`diagnostics.verdicts.decide` builds the inputs.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

# Annotations name decide's ConfigResult and Pair and design's Design as strings only:
# decide imports this module, so importing them back would make a cycle.

#: How the answer names the configs of the user's question.
LABELS = {"none": "no normalization", "per_pixel": "per-pixel z-scoring"}


def label(name: str, *, start: bool = False) -> str:
    """A config's name in a sentence (capitalised at the start only when it is ours)."""
    text = LABELS.get(name, name)
    return text[0].upper() + text[1:] if start and name in LABELS else text


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    """Signed points; -0.04 points reads +0.0, not -0.0."""
    v = round(100 * x, 1)
    return f"{v if v != 0 else 0.0:+.1f}"


def _ci(ci: tuple[float, float] | None, *, sign: float = 1.0) -> str:
    if ci is None:
        return "no interval from a single run"
    lo, hi = sorted((sign * ci[0], sign * ci[1]))
    return f"95% CI {_pts(lo)} to {_pts(hi)}"


def _p(p: float | None) -> str:
    if p is None:
        return "no test"
    return "p_adj<0.001" if p < 0.001 else f"p_adj={p:.3g}" if p < 0.1 else f"p_adj={p:.2f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def design_words(design: "Design", cells: int) -> str:
    """The look in words: "5-fold CV x 2", "3 folds of 5-fold CV", "5-fold CV x 1 + 2 folds"
    or "holdout, 3 seeds" (``cells``: folds per config, or seeds)."""
    if design.kind != "cv":
        return f"holdout, {_plural(cells, 'seed')}"
    k = design.folds
    whole, part = divmod(cells, k)
    if not part:
        return f"{k}-fold CV x {whole}"
    if not whole:
        return f"{_plural(part, 'fold')} of {k}-fold CV"
    return f"{k}-fold CV x {whole} + {_plural(part, 'fold')}"


def used_words(evaluation: Mapping) -> str:
    """What an evaluation used, from its JSON (``kind``, ``folds``, ``repetitions``,
    ``cells``): "2 repetitions", "1 repetition and 3 folds", "3 folds" or "2 seeds"."""
    reps, cells = int(evaluation.get("repetitions") or 0), evaluation.get("cells")
    if evaluation.get("kind") != "cv":
        return _plural(reps, "seed")
    k = int(evaluation.get("folds") or 1)
    if cells is None or not int(cells) % k:
        return _plural(reps, "repetition")
    whole, part = divmod(int(cells), k)
    return (f"{_plural(whole, 'repetition')} and " if whole else "") + _plural(part, "fold")


def question(q: "Pair", design: "Design", cells: int, margin: float) -> str:
    """Line 1: ``q.b`` (the normalization) against ``q.a`` (the baseline)."""
    a, b, how = label(q.a), label(q.b, start=True), design_words(design, cells)
    if q.verdict == "worse":
        return (f"{b} costs {_pts(-q.diff)} points against {a} ({_ci(q.ci95, sign=-1)}, "
                f"{_p(q.p_adjusted)}, {how}).")
    if q.verdict == "better":
        return f"{b} gains {_pts(q.diff)} points over {a} ({_ci(q.ci95)}, {_p(q.p_adjusted)}, {how})."
    if q.verdict == "equivalent":
        return (f"{b} and {a} are equivalent within ±{_pts(margin)} points ({_signed(q.diff)} "
                f"points, {_ci(q.ci95)}, {how}): this choice neither helps nor hurts by more.")
    if q.n_runs == 0:
        return f"{b} against {a}: no run finished for both yet ({how}); nothing is shown either way."
    if q.n_runs < 2:
        return (f"{b} against {a}: {_signed(q.diff)} points from a single run each ({how}); "
                "nothing is shown either way yet.")
    lo, hi = q.ci95 if q.ci95 is not None else (-math.inf, math.inf)
    if lo > 0 or hi < 0:
        return (f"{b} against {a}: {_signed(q.diff)} points ({_ci(q.ci95)} unadjusted), but no "
                f"difference is shown yet once adjusted for the other pairs and the looks "
                f"({_p(q.p_adjusted)}, {how}); it is not shown to be harmless either.")
    return (f"{b} against {a}: no difference shown yet ({_signed(q.diff)} points, "
            f"{_ci(q.ci95)}, {_p(q.p_adjusted)}, {how}); it is not shown to be harmless either.")


def _diff(p: "Pair") -> str:
    if p.n_runs == 0:
        return "no run in common"
    return f"{_signed(p.diff)} points, {_ci(p.ci95)}"


def _list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def use(best: "ConfigResult", mine: Sequence["Pair"], settled: bool, margin: float) -> str:
    """Line 2: what to use.  ``mine`` are the pairs ``(other, best)``, read as best - other."""
    score = f"{_pts(best.accuracy)}% ({_ci(best.ci95)})"
    ahead = [f"{label(p.a)} by {_pts(p.diff)} points ({_p(p.p_adjusted)})"
             for p in mine if p.verdict == "better"]
    eq = [label(p.a) for p in mine if p.verdict == "equivalent"]
    open_ = [f"{label(p.a)} ({_diff(p)})" for p in mine if p.verdict == "unclear"]
    behind = [f"{label(p.a)} is ahead of it by {_pts(-p.diff)} points ({_p(p.p_adjusted)})"
              for p in mine if p.verdict == "worse"]
    if settled:
        text = f"Use {label(best.name)}: {score}"
        if ahead:
            text += f"; it is ahead of {_list(ahead)}"
        if eq:
            text += (f"; {_list(eq)} {'is' if len(eq) == 1 else 'are'} equivalent to it within "
                     f"±{_pts(margin)} points, so either will do")
        return text + "."
    text = f"No config is named best yet: {label(best.name)} leads with {score}"
    if open_:
        text += f"; it is not yet shown ahead of {_list(open_)}, still undecided"
    if ahead:
        text += f"; it is ahead of {_list(ahead)}"
    if eq:
        text += f"; it is equivalent within ±{_pts(margin)} points to {_list(eq)}"
    if behind:
        text += "; " + "; ".join(behind)
    return text + "."


def budget(best: str, open_pairs: Sequence["Pair"], design: "Design", cells: int,
           because: str) -> str:
    """The plain line when the budget ran out with pairs of the best still undecided."""
    what = "time budget" if because == "budget" else "repetition budget"
    items = [f"{label(p.a)} ({_diff(p)})" for p in open_pairs]
    return (f"The {what} ran out after {design_words(design, cells)} with {label(best)} still "
            f"undecided against {_list(items)}.")


def answer(*, names: Sequence[str], table: Mapping, configs: Sequence["ConfigResult"],
           best: str, settled: bool, design: "Design", cells: int, margin: float,
           stopped_because: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(best if named, lines) for :class:`diagnostics.verdicts.decide.Answer`."""
    note = () if not design.note else (design.note[0].upper() + design.note[1:] + ".",)
    by_name = {c.name: c for c in configs}
    if len(names) == 1:
        c = configs[0]
        return c.name, (f"Only {label(c.name)} was run: {_pts(c.accuracy)}% ({_ci(c.ci95)}); "
                        "add a config to compare.",) + note
    q = ("none", "per_pixel") if "none" in names and "per_pixel" in names else tuple(names[:2])
    lines = [question(table[q], design, cells, margin)]
    mine = [table[(n, best)] for n in names if n != best]
    lines.append(use(by_name[best], mine, settled, margin))
    open_pairs = [p for p in mine if p.verdict == "unclear"]
    if stopped_because in ("budget", "max_repetitions") and open_pairs:
        lines.append(budget(best, open_pairs, design, cells, stopped_because))
    return (best if settled else None), tuple(lines) + note
