"""Imported only by the forkserver (see ``diagnostics.data.audio.features.PRELOAD``): one feature pass on
silence, so every worker forked from it starts with librosa's lazy imports, audioread's backend
list and the BLAS thread limit already in place (about 50 ms less per worker and pool)."""

from .features import warm_up

warm_up()
