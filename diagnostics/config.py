"""Where NormScope keeps things, and the defaults shared by every layer (one place each).

``NORMSCOPE_HOME`` (default ``~/.normscope``) holds registered datasets, caches, the run store
and temporary uploads; ``NORMSCOPE_DATA_ROOT`` (default: the current directory) confines paths
typed in the app.  Both are read at call time, so a test or a worker can point them elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import NormScopeError

#: Rows with a row SNR below this are masked by default (the sidebar slider's start value).
DEFAULT_MASK_SNR = 0.2
#: Seed of the holdout split (the Statistics page and holdout comparisons use the same one).
SPLIT_SEED = 0


def home() -> Path:
    """The data directory: ``$NORMSCOPE_HOME`` or ``~/.normscope`` (read at call time)."""
    return Path(os.environ.get("NORMSCOPE_HOME") or "~/.normscope").expanduser()


def data_root() -> Path:
    """Folder that server-side paths typed in the app must lie under (``$NORMSCOPE_DATA_ROOT``)."""
    return Path(os.environ.get("NORMSCOPE_DATA_ROOT") or os.getcwd()).resolve()


def resolve_under_root(text: str | os.PathLike, *, root: str | os.PathLike | None = None) -> Path:
    """Resolve a path typed by a user and check that it lies under the data root.

    Relative paths are taken from the root; symbolic links are followed before the check, so a
    link pointing out of the root is refused too.

    Parameters
    ----------
    text : str or path-like
        The path as typed.
    root : path-like, optional
        The allowed folder; default :func:`data_root`.

    Returns
    -------
    Path
        The resolved path (it may not exist).

    Raises
    ------
    NormScopeError
        If the path is empty or lies outside the root.
    """
    root = Path(root).resolve() if root is not None else data_root()
    raw = os.fspath(text).strip()
    if not raw or "\x00" in raw:
        raise NormScopeError("the path is empty or contains a NUL character; type a path to a file "
                             f"or folder under {root}")
    p = (root / raw).resolve()
    if not p.is_relative_to(root):
        raise NormScopeError(
            f"{raw!r} lies outside the data root {root}; put the file under it or start the "
            "server with NORMSCOPE_DATA_ROOT set to its folder"
        )
    return p


def subdir(*parts: str) -> Path:
    """``home()/parts``, created if missing; an unwritable home is a NormScopeError."""
    d = home().joinpath(*parts)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NormScopeError(
            f"cannot create {d} ({exc.strerror}); set NORMSCOPE_HOME to a writable folder"
        ) from None
    return d


