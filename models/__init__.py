"""Torch side of NormScope: models, training loop, jobs, executors, comparisons and run store.

Nothing here imports streamlit; nothing in ``diagnostics/`` imports this package except the
command line's ``compare`` verb, lazily.
"""
