"""Evaluation design: stratified, disjoint, complete folds; fallback and errors for small classes."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.errors import NormScopeError
from diagnostics.verdicts.design import (CV_MAX_EXAMPLES, Design, default_design, design_folds,
                                    feasible_folds, folds, make_design)
from diagnostics.data.dataset import split_indices


@pytest.fixture
def y(rng) -> np.ndarray:
    """Imbalanced labels: 4 classes of 53, 31, 17 and 9 examples, shuffled."""
    return rng.permutation(np.repeat(np.arange(4), [53, 31, 17, 9]))


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("rep", [0, 3])
def test_folds_partition_every_example_once_and_are_stratified(y, k, rep):
    fs = folds(y, k=k, repetition=rep, seed=7)
    assert [f.fold for f in fs] == list(range(k)) and all(f.repetition == rep for f in fs)
    tests = np.concatenate([f.test for f in fs])
    assert np.array_equal(np.sort(tests), np.arange(y.size))  # each example tested exactly once
    for f in fs:
        for part in (f.train, f.val, f.test):
            assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
        # disjoint, and train + val is exactly the complement of the test part
        assert np.array_equal(np.sort(np.r_[f.train, f.val]), np.setdiff1d(np.arange(y.size), f.test))
        assert f.val.size > 0
    per_class = np.array([[np.sum(y[f.test] == c) for c in range(4)] for f in fs])
    assert np.all(per_class.max(0) - per_class.min(0) <= 1)
    sizes = np.array([f.test.size for f in fs])
    assert sizes.max() - sizes.min() <= 1


def test_inner_validation_is_stratified_from_the_training_folds(y):
    for f in folds(y, k=5, repetition=0, val_fraction=0.2):
        rest = np.r_[f.train, f.val]
        for c in range(4):
            m = np.sum(y[rest] == c)
            assert np.sum(y[f.val] == c) == min(round(0.2 * m), m - 1)
            assert np.sum(y[f.train] == c) >= 1


def test_folds_are_deterministic_and_repetitions_differ(y):
    a = folds(y, k=5, repetition=1, seed=3)
    b = folds(y, k=5, repetition=1, seed=3)
    for fa, fb in zip(a, b):
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(fa, part), getattr(fb, part))
    c = folds(y, k=5, repetition=2, seed=3)
    d = folds(y, k=5, repetition=1, seed=4)
    assert not np.array_equal(a[0].test, c[0].test)
    assert not np.array_equal(a[0].test, d[0].test)


def test_small_class_falls_back_to_fewer_folds_with_a_note():
    y = np.r_[np.zeros(40, int), np.ones(3, int)]
    k, note = feasible_folds(y, 5)
    assert k == 3 and "class 1" in note and "3-fold" in note
    assert len(folds(y, k=5, repetition=0)) == 3
    d = make_design(y)
    assert d.kind == "cv" and d.folds == 3 and d.note == note
    assert feasible_folds(np.r_[np.zeros(40, int), np.ones(5, int)], 5) == (5, None)


def test_a_class_with_one_example_is_an_error_naming_it():
    y = np.array(["yes"] * 10 + ["maybe"])
    with pytest.raises(NormScopeError, match=r"class 'maybe' has 1 example"):
        folds(y, k=5, repetition=0)
    with pytest.raises(NormScopeError, match="class 'maybe'"):
        default_design(y.size, y)


def test_default_design_is_cv_up_to_the_threshold_then_holdout():
    y = np.arange(CV_MAX_EXAMPLES + 1) % 10
    assert default_design(CV_MAX_EXAMPLES, y[:-1]) == Design("cv", 5)
    assert default_design(CV_MAX_EXAMPLES + 1, y) == Design("holdout", 1)


def test_holdout_keeps_todays_split_for_every_repetition(y):
    d = make_design(y, kind="holdout")
    s = split_indices(y.size, y, seed=0)
    for rep in (0, 2):
        (f,) = design_folds(d, y, repetition=rep)
        assert f.repetition == rep
        assert np.array_equal(f.train, s.train) and np.array_equal(f.test, s.test)
        assert np.array_equal(f.val, s.val)


@pytest.mark.parametrize("kw, msg", [
    (dict(kind="cv", folds=1), "folds=1 is too few"),
    (dict(kind="holdout", folds=5), "one test set"),
    (dict(kind="loo", folds=5), "unknown"),
    (dict(kind="cv", folds=5, max_repetitions=0), "max_repetitions=0"),
])
def test_bad_designs_are_refused(kw, msg):
    with pytest.raises(NormScopeError, match=msg):
        Design(**kw)
