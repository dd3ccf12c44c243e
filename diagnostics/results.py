"""Statistics of a comparison's test accuracies: intervals, paired differences, a verdict.

Seeds pair the runs: for one seed every configuration had the same initial weights and batch
order, so the difference between two configurations is measured seed by seed (a paired
t-test), which removes the seed-to-seed spread that both share.  With fewer than two seeds
no interval and no p-value exist, and the functions say so (None) instead of inventing one.

A comparison with an evaluation design (cross-validation or holdout, repetitions) is judged
by :func:`verdict_of` (corrected intervals, Shaffer-adjusted sequential pair verdicts, the
answer; :mod:`diagnostics.verdicts`); :func:`comparison_json` carries both.

NumPy and SciPy only: the app and the command line share it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as sps

from diagnostics.verdicts.decide import FIRST_LOOK_FOLDS
from diagnostics.verdicts.models import agreement, answer_lines, model_records, models_of
from diagnostics.verdicts.stored import (complete_cells, complete_repetitions,  # noqa: F401
                                         scores_from_record, verdict_of)

#: Confidence level of the intervals and threshold of "clearly" in verdicts.
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class ConfigSummary:
    """Test accuracy of one configuration over its finished seeds.

    ``std`` has ddof=1; ``ci95`` is ``mean +/- t(0.975, n-1) * std / sqrt(n)`` (None for n<2).
    ``n_failed`` counts runs that did not finish (diverged, failed, cancelled, ...).
    """

    name: str
    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None
    n_failed: int
    statuses: dict

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci95"] = None if self.ci95 is None else list(self.ci95)
        return d


@dataclass(frozen=True)
class PairedDiff:
    """``b - a`` over the seeds where both finished; ``p_value`` of a paired t-test."""

    a: str
    b: str
    n: int
    mean_diff: float | None
    std_diff: float | None
    ci95: tuple[float, float] | None
    p_value: float | None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci95"] = None if self.ci95 is None else list(self.ci95)
        return d


def _ci(mean: float, std: float, n: int) -> tuple[float, float] | None:
    if n < 2:
        return None
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return (mean - half, mean + half)


def summarize(name: str, values: Sequence[float | None], statuses: Sequence[str] = (), *,
              bounds: tuple[float, float] | None = None) -> ConfigSummary:
    """Mean, sample std and 95% t-interval of the finished values (None = not finished).

    ``bounds`` clips the interval to the possible range (accuracies: (0, 1)).
    """
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    failed = len(values) - n
    if n == 0:
        return ConfigSummary(name, 0, None, None, None, failed, counts)
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n >= 2 else None
    ci = _ci(mean, std, n) if std is not None else None
    if ci is not None and bounds is not None:
        ci = (max(ci[0], bounds[0]), min(ci[1], bounds[1]))
    return ConfigSummary(name, n, mean, std, ci, failed, counts)


def paired(a_name: str, a: Mapping[int, float | None], b_name: str,
           b: Mapping[int, float | None]) -> PairedDiff:
    """Paired difference ``b - a`` over the seeds both finished, with a paired t-test.

    With n < 2 pairs the p-value and interval are None.  Identical differences on every seed
    (zero spread, common with small test sets) leave the t-test undefined: p is None then
    too, and :func:`verdict` says what happened instead.
    """
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    d = np.array([b[s] - a[s] for s in seeds], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedDiff(a_name, b_name, 0, None, None, None, None)
    mean = float(d.mean())
    if n < 2:
        return PairedDiff(a_name, b_name, 1, mean, None, None, None)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return PairedDiff(a_name, b_name, n, mean, 0.0, (mean, mean), None)
    p = float(sps.ttest_rel([b[s] for s in seeds], [a[s] for s in seeds]).pvalue)
    return PairedDiff(a_name, b_name, n, mean, sd, _ci(mean, sd, n), p)


def _p_text(p: float) -> str:
    # Three significant digits below 0.1, so that 0.0497 never reads as "0.050".
    return "p<0.001" if p < 0.001 else f"p={p:.3g}" if p < 0.1 else f"p={p:.2f}"


def verdict(d: PairedDiff) -> str:
    """One sentence on ``d.b`` versus ``d.a`` in accuracy points (percentage points)."""
    if d.n == 0 or d.mean_diff is None:
        return f"{d.b} and {d.a} have no seed on which both finished; nothing to compare."
    pts = abs(d.mean_diff) * 100
    seeds = f"{d.n} seed{'s' if d.n != 1 else ''}"
    word = "higher" if d.mean_diff > 0 else "lower"
    if d.p_value is None and d.n >= 2:  # the same difference on every seed
        if pts < 1e-9:
            return f"{d.b} and {d.a} scored the same on each of {seeds}."
        return (f"{d.b} is {pts:.1f} points {word} than {d.a} on each of {seeds} (identical "
                "differences, so no p-value; more seeds or a larger test set would give one).")
    if d.p_value is None:
        return (f"{d.b} is {pts:.1f} points {word} than {d.a} on {seeds}; run 2 or more seeds "
                "for a p-value.")
    if d.p_value < ALPHA and pts > 0:
        word = "better" if d.mean_diff > 0 else "worse"
        return f"{d.b} is {word} than {d.a} by {pts:.1f} points, {_p_text(d.p_value)} over {seeds}."
    sign = "+" if d.mean_diff >= 0 else "-"
    ci = (f"95% CI {d.ci95[0] * 100:+.1f} to {d.ci95[1] * 100:+.1f}, "
          if d.ci95 is not None else "")
    text = (f"{d.b} and {d.a} do not differ clearly ({sign}{pts:.1f} points, {ci}"
            f"{_p_text(d.p_value)} over {seeds})")
    need = seeds_needed(d.mean_diff, d.std_diff) if pts >= 1 and d.std_diff else None
    if need is not None and need > d.n:
        text += (f"; to tell a {pts:.1f}-point difference from this seed-to-seed spread, run "
                 f"about {need} seeds")
    elif pts >= 1 and need is None:
        text += f"; a difference this small against this spread would need over {MAX_SEEDS} seeds"
    return text + "."


#: The most seeds :func:`seeds_needed` will suggest.
MAX_SEEDS = 100


def seeds_needed(mean_diff: float, std_diff: float, *, power: float = 0.8) -> int | None:
    """Seeds a paired t-test needs to detect ``mean_diff`` with ``power`` at ALPHA (two-sided).

    Exact power from the noncentral t distribution, for a true difference equal to the
    observed one and a seed-to-seed std equal to the observed one (a planning figure, not a
    promise).  None if more than :data:`MAX_SEEDS` would be needed.
    """
    if not std_diff or not math.isfinite(std_diff) or not mean_diff:
        return None
    effect = abs(mean_diff) / std_diff
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1
        tcrit = float(sps.t.ppf(1 - ALPHA / 2, df))
        nc = effect * math.sqrt(n)
        if float(sps.nct.sf(tcrit, df, nc) + sps.nct.cdf(-tcrit, df, nc)) >= power:
            return n
    return None


@dataclass(frozen=True)
class Results:
    """Summaries per configuration (in order), paired differences vs the first, verdicts."""

    configs: tuple[ConfigSummary, ...]
    paired: tuple[PairedDiff, ...]
    verdicts: tuple[str, ...]
    summary: str = ""  # which config to use, and how sure that is (see :func:`best_summary`)

    def as_dict(self) -> dict:
        return {"configs": [c.as_dict() for c in self.configs],
                "paired": [p.as_dict() for p in self.paired], "verdicts": list(self.verdicts),
                "summary": self.summary}


def compare(names: Sequence[str], acc: Mapping[str, Mapping[int, float | None]],
            statuses: Mapping[str, Mapping[int, str]] | None = None) -> Results:
    """Summaries (intervals clipped to [0, 1]) and paired differences against the first
    configuration.

    Parameters
    ----------
    names : configuration names, the reference first
    acc : {name: {seed: test accuracy or None}}
    statuses : {name: {seed: status}}, optional (counted in the summaries)
    """
    statuses = statuses or {}
    sums = tuple(summarize(n, list(acc.get(n, {}).values()),
                           list(statuses.get(n, {}).values()), bounds=(0.0, 1.0)) for n in names)
    pairs = tuple(paired(names[0], acc.get(names[0], {}), n, acc.get(n, {})) for n in names[1:])
    return Results(sums, pairs, tuple(verdict(p) for p in pairs), best_summary(sums, acc))


def best_summary(sums: Sequence[ConfigSummary],
                 acc: Mapping[str, Mapping[int, float | None]]) -> str:
    """One sentence: the config with the highest mean test accuracy, and whether that lead is
    clear against the reference (the first config) and against the runner-up (paired tests).
    Empty with fewer than two configs or nothing finished."""
    done = [c for c in sums if c.n and c.mean is not None]
    if len(sums) < 2 or not done:
        return ""
    ref = sums[0]
    ranked = sorted(done, key=lambda c: -c.mean)
    best = ranked[0]
    seeds = f"{best.n} seed{'s' if best.n != 1 else ''}"
    head = f"{best.name} scored highest, {best.mean * 100:.1f}% over {seeds}"
    runner = ranked[1] if len(ranked) > 1 else None
    close = ""
    if runner is not None:
        d = paired(runner.name, acc.get(runner.name, {}), best.name, acc.get(best.name, {}))
        if d.p_value is None or d.p_value >= ALPHA:
            close = (f"; {runner.name} ({runner.mean * 100:.1f}%) is not clearly behind it, so "
                     "either will do")
    if best is ref:
        return f"{head}: no normalization tried here beat the reference{close}."
    d = paired(ref.name, acc.get(ref.name, {}), best.name, acc.get(best.name, {}))
    if d.mean_diff is not None and d.p_value is not None and d.p_value < ALPHA:
        if runner is ref:
            close = ""
        return (f"{head}, {d.mean_diff * 100:.1f} points above {ref.name} "
                f"({_p_text(d.p_value)}){close}.")
    if d.mean_diff is None or d.n < 2:
        test = "not yet tested on 2 or more common seeds"
    elif d.p_value is None:
        test = f"{d.mean_diff * 100:+.1f} points on every seed, so no p-value"
    else:
        test = f"{d.mean_diff * 100:+.1f} points, {_p_text(d.p_value)}"
    return (f"{head}, but not clearly above {ref.name} ({test}); run more seeds before "
            "switching.")


@dataclass(frozen=True)
class Band:
    """A curve summarised across seeds, point by point (for "mean with a band" plots).

    ``x`` counts from 1 (epochs or minibatches); at each point only the runs that reached it
    are used (``n``), so live, ragged curves work.  ``std`` is None where n < 2.
    """

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


def seed_band(curves: Sequence[Sequence[float | None]]) -> Band:
    """Mean, sample std, min and max across seeds of curves that may differ in length."""
    length = max((len(c) for c in curves), default=0)
    a = np.full((len(curves), length), np.nan)
    for i, c in enumerate(curves):
        a[i, : len(c)] = [np.nan if v is None else v for v in c]
    n = np.sum(np.isfinite(a), axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: n says so
        mean = np.nanmean(a, axis=0) if length else np.zeros(0)
        std = np.where(n >= 2, np.nanstd(a, axis=0, ddof=1), np.nan) if length else np.zeros(0)
        lo = np.nanmin(a, axis=0) if length else np.zeros(0)
        hi = np.nanmax(a, axis=0) if length else np.zeros(0)
    return Band(np.arange(1, length + 1), mean, std, lo, hi, n)


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def table_rows(res: Results) -> list[dict]:
    """One row per configuration, in percent, ready for a table (app, report)."""
    diffs = {p.b: p for p in res.paired}
    rows = []
    for c in res.configs:
        d = diffs.get(c.name)
        row = {
            "config": c.name,
            "seeds done": c.n,
            "test acc %": _pct(c.mean),
            "± std": _pct(c.std),
            "95% CI": "–" if c.ci95 is None else f"{_pct(c.ci95[0])} – {_pct(c.ci95[1])}",
            f"Δ vs {res.configs[0].name} (points)": "reference" if d is None else _pct(d.mean_diff, True),
            "p (paired t)": "–" if d is None or d.p_value is None else _p_text(d.p_value).replace("p=", ""),
            "not finished": c.n_failed,
        }
        rows.append(row)
    return rows


# --- the JSON document of a stored comparison (``compare --json``, the app's download) ------

def _json_number(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _ci_points(ci) -> str:
    return "–" if ci is None else f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}"


def pair_rows(pairs: Sequence[Mapping]) -> list[dict]:
    """The pairs of :func:`comparison_json` as table rows in accuracy points (CLI, report)."""
    def p(v):
        return "–" if v is None else ("<0.001" if v < 0.001 else f"{v:.3g}")
    return [{"a": q["a"], "b": q["b"],
             "b − a (points)": "–" if q["diff"] is None else f"{100 * q['diff']:+.1f}",
             "95% CI": _ci_points(q["ci95"]), "p_adjusted": p(q["p_adjusted"]),
             "verdict": q["verdict"]} for q in pairs]


def _no_verdict(rec, predictions) -> str:
    """Why a stored comparison has no decision (one sentence for the answer)."""
    if not (rec.hyper or {}).get("evaluation"):
        return ("This comparison was stored before verdicts; it has no evaluation design, so "
                "only its seed-paired tests below are available.")
    if predictions is None:
        return "No verdict: the per-example predictions were not given."
    if not complete_repetitions(rec.runs) and complete_cells(rec) < FIRST_LOOK_FOLDS:
        return "No verdict yet: too few folds are complete for a first look."
    return "No verdict: a config has no finished run to judge (every one of its runs failed)."


def comparison_json(rec, predictions: Mapping[str, Mapping] | None = None, *,
                    elapsed_s: float | None = None) -> dict:
    """The results of a stored comparison as the JSON document of ``compare --json``.

    ``predictions`` is ``RunStore.predictions(rec.id)``; without it there is no verdict.

    ``{dataset, dataset_id, comparison_id, status, model, epochs, seeds, elapsed_s, hyper,
    evaluation: {kind, folds, repetitions, cells, stopped_because}, configs: [{name, accuracy,
    ci95, n_runs, n_examples, test_acc_mean, test_acc_std, test_acc_ci95, runs: [{seed,
    repetition, fold, run_id, status, test_acc, history: {epoch, train_loss, train_acc,
    val_acc}}]}], pairs: [{a, b, diff, ci95, p_value, p_adjusted, verdict}], answer: {best,
    text}, paired: [{a, b, mean_diff, p_value, n}], verdicts, summary}``.  ``accuracy``,
    ``pairs`` and ``answer`` are those of :func:`verdict_of` (pooled over the tested
    examples, corrected intervals, Shaffer-adjusted sequential tests); ``test_acc_*``, ``paired``
    and ``verdicts`` are the older per-run means and seed-paired t-tests, kept for existing
    readers; ``summary`` is the answer's text as one string.
    """
    if models_of(rec):
        return models_json(rec, predictions, elapsed_s=elapsed_s)
    res = compare(rec.configs, rec.accuracies(), rec.statuses())
    decision = verdict_of(rec, predictions)
    made = decision.as_json() if decision is not None else None
    if elapsed_s is None:
        elapsed_s = (rec.finished or time.time()) - rec.created
    ev = (rec.hyper or {}).get("evaluation") or {}
    by_name = {c["name"]: c for c in made["configs"]} if made else {}
    configs = []
    for summary in res.configs:
        runs = [{"seed": r.seed, "repetition": r.repetition, "fold": r.fold, "run_id": r.id,
                 "status": r.status, "test_acc": _json_number(r.test_acc),
                 "history": {k: [v if k == "epoch" else _json_number(v)
                                 for v in r.history.get(k, [])]
                             for k in ("epoch", "train_loss", "train_acc", "val_acc")}}
                for r in rec.runs if r.config == summary.name]
        new = by_name.get(summary.name) or {
            "name": summary.name, "accuracy": summary.mean,
            "ci95": None if summary.ci95 is None else list(summary.ci95), "n_runs": summary.n,
            "n_examples": None}
        configs.append({**new, "test_acc_mean": summary.mean, "test_acc_std": summary.std,
                        "test_acc_ci95": None if summary.ci95 is None else list(summary.ci95),
                        "runs": runs})
    evaluation = {"kind": ev.get("kind", "holdout"), "folds": ev.get("folds", 1),
                  "repetitions": len(complete_repetitions(rec.runs)) if ev else len(rec.seeds),
                  "stopped_because": ev.get("stopped_because")}
    if ev:
        evaluation["cells"] = complete_cells(rec)
    if made:
        evaluation["repetitions"] = made["evaluation"]["repetitions"]
        evaluation["cells"] = made["evaluation"]["cells"]
        evaluation["stopped_because"] = (ev.get("stopped_because")
                                         or made["evaluation"]["stopped_because"])
    answer = made["answer"] if made else {"best": None, "text": [_no_verdict(rec, predictions)]}
    answer_pairs = made["pairs"] if made else []
    return {
        "dataset": rec.dataset_name, "dataset_id": rec.dataset_id, "comparison_id": rec.id,
        "status": rec.status, "model": rec.model, "epochs": rec.hyper.get("epochs"),
        "seeds": len(rec.seeds), "elapsed_s": round(float(elapsed_s), 3),
        "hyper": rec.hyper, "evaluation": evaluation, "configs": configs,
        "pairs": answer_pairs, "answer": answer,
        "paired": [{"a": p.a, "b": p.b, "mean_diff": p.mean_diff, "p_value": p.p_value,
                    "n": p.n} for p in res.paired],
        # The older sentences only where no design exists: on CV cells their plain paired
        # t-tests could contradict the adjusted verdicts.
        "verdicts": list(res.verdicts) if not ev else [
            f"{q['b']} vs {q['a']}: {q['verdict']}" for q in answer_pairs],
        "summary": " ".join(answer["text"]) if ev else res.summary,
    }


def models_json(rec, predictions: Mapping[str, Mapping] | None = None, *,
                elapsed_s: float | None = None) -> dict:
    """:func:`comparison_json` of a comparison under several models: ``models: [{model,
    answer, configs, pairs, evaluation}]`` (each the one-model document of that model's runs),
    ``agreement`` (:func:`diagnostics.verdicts.models.agreement`) and ``answer.text``, every
    model's lines then the agreement's; ``config_names`` lists the configs.  The one-model
    keys ``configs``, ``pairs``, ``paired`` and ``verdicts`` live in the blocks only."""
    if elapsed_s is None:
        elapsed_s = (rec.finished or time.time()) - rec.created
    blocks = []
    for model, sub in model_records(rec):
        doc = comparison_json(sub, predictions, elapsed_s=elapsed_s)
        blocks.append({"model": model, **{k: doc[k] for k in
                                          ("answer", "configs", "pairs", "evaluation")}})
    agree = agreement(blocks, rec.configs)
    text = answer_lines(blocks, agree)
    ev = dict((rec.hyper or {}).get("evaluation") or {})
    return {
        "dataset": rec.dataset_name, "dataset_id": rec.dataset_id, "comparison_id": rec.id,
        "status": rec.status, "model": rec.model, "epochs": rec.hyper.get("epochs"),
        "seeds": len(rec.seeds), "elapsed_s": round(float(elapsed_s), 3), "hyper": rec.hyper,
        "evaluation": {"kind": ev.get("kind"), "folds": ev.get("folds"),
                       "repetitions": min((b["evaluation"]["repetitions"] for b in blocks),
                                          default=0),
                       "stopped_because": ev.get("stopped_because")},
        "config_names": list(rec.configs), "models": blocks, "agreement": agree,
        "answer": {"best": None, "text": text}, "summary": " ".join(text),
    }
