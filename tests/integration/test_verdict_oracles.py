"""The verdicts' multiplicity adjustment against an independent implementation.

Kept out of tests/unit because importing statsmodels costs several seconds; the unit layer
checks Holm and Shaffer against hand-computed tables (tests/unit/test_verdict.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.verdicts.sequential import holm


def test_holm_matches_statsmodels(rng):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    for m in (1, 2, 3, 7, 20):
        for _ in range(3):  # multipletests costs ~60 ms a call
            p = rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 3)
            p[rng.random(m) < 0.2] = p[0]  # ties
            expected = multitest.multipletests(p, method="holm")[1]
            assert np.allclose(holm(p), expected, atol=1e-12)
