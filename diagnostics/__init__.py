"""NormScope diagnostics: datasets, per-pixel statistics, findings, normalizations, figures.

NumPy at import time; this package never imports streamlit or torch.  Heavier libraries are
imported inside the functions that need them, so ``python -m diagnostics stats`` loads none:
librosa and soundfile (audio features), scikit-learn (the digits built-in), plotly (figures,
reports), scipy (comparison statistics), numba (the statistics engine's compiled kernels,
only where they pay for themselves).
"""

from .errors import NormScopeError

__all__ = ["NormScopeError"]
