"""The evaluation design of a comparison: stratified k-fold cross-validation or a fixed holdout.

Cross-validation tests every example once per repetition, so a config's accuracy rests on all
N examples instead of one 15% test set, and a repetition re-shuffles the folds so that the
statistics see how much the answer depends on the split.  For one (repetition, fold) every
config gets the same :class:`Fold`; the caller also gives them the same initial weights and
batch order, so that only the compared thing changes.

NumPy only.  Indices are int64 and sorted; nothing here depends on the data's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import split_indices
from ..errors import NormScopeError

#: Cross-validation up to this many examples, a fixed holdout above.  Why 20,000: above it a
#: 15% holdout test set has 3,000+ examples, whose binomial standard error is at most 0.9
#: points (0.7 at 80% accuracy), below the 1-point equivalence margin; and 5 trainings per
#: repetition start to cost more than they tell.  Below it the one test set is the largest
#: source of error (800 examples: 3.5 points), which is what cross-validation removes.
CV_MAX_EXAMPLES = 20_000

#: Folds of the default cross-validation: 80% of the data trains each model, and the overlap
#: between training sets (3/4) is what the corrected t-test of diagnostics.verdicts.decide assumes.
DEFAULT_FOLDS = 5

#: Repetitions decide mode may add before it gives up (the issue's default budget).
DEFAULT_MAX_REPETITIONS = 5

KINDS = ("cv", "holdout")


@dataclass(frozen=True)
class Design:
    """How a comparison splits its data.

    Attributes
    ----------
    kind : {"cv", "holdout"}
        Stratified k-fold cross-validation, or today's fixed 70/15/15 split.
    folds : int
        k for "cv" (>= 2); 1 for "holdout".
    max_repetitions : int
        Repetitions decide mode may use: re-shuffled folds for "cv", new training seeds on the
        same split for "holdout".
    seed : int
        Seed of the splits (repetition r of "cv" uses a seed derived from (seed, r)).
    val_fraction : float
        Share of the non-test examples held out for validation (early stopping).
    note : str or None
        One sentence for the user when the design differs from what was asked (fewer folds).
    """

    kind: str
    folds: int
    max_repetitions: int = DEFAULT_MAX_REPETITIONS
    seed: int = 0
    val_fraction: float = 0.15
    note: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise NormScopeError(f"evaluation kind {self.kind!r} is unknown; use cv or holdout")
        if self.kind == "cv" and self.folds < 2:
            raise NormScopeError(f"folds={self.folds} is too few for cross-validation; use 2 or more")
        if self.kind == "holdout" and self.folds != 1:
            raise NormScopeError(f"a holdout has one test set, not folds={self.folds}")
        if self.max_repetitions < 1:
            raise NormScopeError(f"max_repetitions={self.max_repetitions} must be 1 or more")
        if not 0.0 <= self.val_fraction < 1.0:
            raise NormScopeError(f"val_fraction={self.val_fraction} must be in [0, 1)")

    @property
    def test_train_ratio(self) -> float:
        """n_test / n_train of one fold, as used by the corrected t-test (1/(k-1) for CV)."""
        return 1.0 / (self.folds - 1) if self.kind == "cv" else 0.15 / 0.85

    def describe(self) -> str:
        """Short words for the answer, e.g. "5-fold CV x 2" or "holdout, 3 seeds"."""
        return f"{self.folds}-fold CV" if self.kind == "cv" else "holdout"


@dataclass(frozen=True, eq=False)
class Fold:
    """The sorted int64 example indices of one (repetition, fold).

    ``train``, ``val`` and ``test`` are disjoint; ``val`` comes out of the training folds.
    """

    repetition: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _class_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    return classes, counts


def feasible_folds(y: np.ndarray | None, k: int) -> tuple[int, str | None]:
    """The number of folds that stratified CV can use, and a note when it is fewer than ``k``.

    Every class needs at least one example in every test fold, so k is at most the size of
    the smallest class.

    Parameters
    ----------
    y : (N,) class labels, or None (no strata: only N limits k)
    k : folds asked for (>= 2)

    Returns
    -------
    (k_used, note)
        ``note`` is one sentence naming the smallest class, or None when ``k_used == k``.

    Raises
    ------
    NormScopeError
        When even 2 folds are impossible (a class with a single example).
    """
    if k < 2:
        raise NormScopeError(f"folds={k} is too few for cross-validation; use 2 or more")
    if y is None:
        return k, None
    classes, counts = _class_counts(y)
    if classes.size == 0:
        raise NormScopeError("there are no labelled examples to cross-validate")
    i = int(np.argmin(counts))
    smallest, m = classes[i].item(), int(counts[i])
    if m < 2:
        raise NormScopeError(
            f"class {smallest!r} has {m} example; cross-validation needs at least 2 per class "
            "(add examples or remove the class)")
    if m >= k:
        return k, None
    return m, (f"class {smallest!r} has only {m} examples, so {m}-fold cross-validation is "
               f"used instead of {k}-fold")


def make_design(y: np.ndarray | None, *, kind: str = "cv", folds: int = DEFAULT_FOLDS,
                max_repetitions: int = DEFAULT_MAX_REPETITIONS, seed: int = 0,
                val_fraction: float = 0.15) -> Design:
    """A :class:`Design` for labels ``y`` (``--eval`` and ``--folds``), with the fold fallback.

    Raises
    ------
    NormScopeError
        For an unknown kind, too few folds, or a class with a single example (CV).
    """
    if kind == "holdout":
        return Design("holdout", 1, max_repetitions, seed, val_fraction)
    if kind != "cv":
        raise NormScopeError(f"evaluation kind {kind!r} is unknown; use cv or holdout")
    k, note = feasible_folds(y, folds)
    return Design("cv", k, max_repetitions, seed, val_fraction, note)


def default_design(n_examples: int, y: np.ndarray | None, *,
                   max_repetitions: int = DEFAULT_MAX_REPETITIONS, seed: int = 0) -> Design:
    """Stratified 5-fold CV up to :data:`CV_MAX_EXAMPLES` examples, the fixed holdout above.

    Parameters
    ----------
    n_examples : N
    y : (N,) labels or None
    """
    kind = "cv" if n_examples <= CV_MAX_EXAMPLES else "holdout"
    return make_design(y, kind=kind, max_repetitions=max_repetitions, seed=seed)


def _take_val(train: np.ndarray, y: np.ndarray | None, fraction: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (train, val), stratified, each class keeping >= 1 to train."""
    groups = [train] if y is None else [train[y[train] == c] for c in np.unique(y[train])]
    keep, val = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_val = min(int(round(idx.size * fraction)), idx.size - 1)
        val.append(idx[:n_val])
        keep.append(idx[n_val:])
    v = np.concatenate(val) if val else np.zeros(0, np.int64)
    t = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    if v.size == 0 and fraction > 0 and t.size >= 2:
        # Rounding left no validation example (tiny classes): early stopping still needs one.
        v, t = t[:1], t[1:]
    return np.sort(t).astype(np.int64), np.sort(v).astype(np.int64)


def folds(y: np.ndarray, *, k: int, repetition: int, seed: int = 0,
          val_fraction: float = 0.15) -> list[Fold]:
    """Stratified k-fold split of one repetition, with an inner validation split per fold.

    Each class is shuffled with a generator seeded from ``(seed, repetition)`` and dealt to
    the folds in turn, continuing the count across classes: per-class counts of any two folds
    differ by at most one, and so do fold sizes.  Every example is in exactly one test part.
    If a class is smaller than ``k`` the largest feasible k is used (see
    :func:`feasible_folds`; :func:`make_design` records the note).

    Parameters
    ----------
    y : (N,) class labels (the strata)
    k : folds asked for
    repetition : >= 0; a new repetition is a new shuffle
    seed : >= 0
    val_fraction : share of each training part (per class) used for validation

    Returns
    -------
    list of Fold
        ``k_used`` folds, in fold order.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise NormScopeError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if repetition < 0 or seed < 0:
        raise NormScopeError(f"repetition={repetition} and seed={seed} must be >= 0")
    k, _ = feasible_folds(y, k)
    rng = np.random.default_rng([seed, repetition])
    assign = np.empty(y.size, np.int64)
    start = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        assign[idx] = (start + np.arange(idx.size)) % k
        start = (start + idx.size) % k
    out = []
    for f in range(k):
        test = np.flatnonzero(assign == f).astype(np.int64)
        rest = np.flatnonzero(assign != f).astype(np.int64)
        # Its own generator per fold: fold f is the same whether or not others were made.
        train, val = _take_val(rest, y, val_fraction, np.random.default_rng([seed, repetition, 1 + f]))
        out.append(Fold(repetition, f, train, val, test))
    return out


def design_folds(design: Design, y: np.ndarray, *, repetition: int) -> list[Fold]:
    """The folds of one repetition under ``design``.

    For "holdout" that is one Fold, the same 70/15/15 stratified split (seed ``design.seed``)
    for every repetition, as today: a repetition there is a new training seed, not a new split.
    """
    y = np.asarray(y)
    if design.kind == "holdout":
        s = split_indices(y.size, y, seed=design.seed)
        return [Fold(repetition, 0, s.train, s.val, s.test)]
    return folds(y, k=design.folds, repetition=repetition, seed=design.seed,
                 val_fraction=design.val_fraction)
