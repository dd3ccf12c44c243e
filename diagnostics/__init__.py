"""NormScope diagnostics: datasets, per-pixel statistics, findings, normalizations, figures.

NumPy (and librosa) only: this package never imports streamlit or torch.
"""

from .errors import NormScopeError

__all__ = ["NormScopeError"]
