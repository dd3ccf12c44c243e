"""Torch side of NormScope: models, training loop, runner and run store.

Nothing here imports streamlit; nothing in ``diagnostics/`` imports this package except the
command line's ``compare`` verb, lazily.
"""
