"""Verdicts a user can act on: the evaluation design (k-fold CV x repetitions, or holdout),
corrected paired tests with Shaffer's (pairs) and Holm's (equivalence) adjustment, TOST
equivalence, a group-sequential decide mode, and the answer text.  NumPy and SciPy only.

Layers: ``design``, ``sequential`` <- ``decide`` <-> ``answer`` (answer reads decide's types for
annotations only) <- ``stored`` (scores and the decision of a comparison's runs, live or
stored); ``answer`` <- ``models`` (a comparison under several models: one record per model, and
whether their verdicts agree)."""
