"""Which Dask scheduler to use, and connecting to it with one clear error.

``--cluster tcp://HOST:PORT`` (CLI) or ``$NORMSCOPE_DASK_SCHEDULER`` (app and CLI) name it;
without either, everything runs in this process and the local process pool.  ``distributed``
is imported only when a scheduler is named.
"""

from __future__ import annotations

import os
import re

from .errors import NormScopeError

#: Environment variable naming the scheduler (``tcp://HOST:PORT``) for the app and the CLI.
SCHEDULER_ENV = "NORMSCOPE_DASK_SCHEDULER"
#: Seconds to wait for the scheduler before giving up with one sentence.
CONNECT_TIMEOUT_S = 5.0
#: Environment variable: other seconds to wait (a slow network; tests of a dead port).
CONNECT_ENV = "NORMSCOPE_DASK_CONNECT_S"

_ADDRESS = re.compile(r"(tcp|tls|ucx|inproc)://[^\s/]+(:\d+)?|[A-Za-z0-9_.\-\[\]:]+:\d+")


def scheduler_address(cluster: str | None = None) -> str | None:
    """The scheduler to use: ``cluster`` (the CLI's ``--cluster``) if given, else
    ``$NORMSCOPE_DASK_SCHEDULER``, else None (local).  ``cluster=""`` forces local."""
    text = (cluster if cluster is not None else os.environ.get(SCHEDULER_ENV, "")).strip()
    if not text:
        return None
    if not _ADDRESS.fullmatch(text):
        where = "--cluster" if cluster is not None else SCHEDULER_ENV
        raise NormScopeError(f"{where}={text!r} is not a Dask scheduler address; give "
                             "tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786")
    return text if "://" in text else f"tcp://{text}"


def connect_timeout() -> float:
    """Seconds to wait for the scheduler: ``$NORMSCOPE_DASK_CONNECT_S``, else
    :data:`CONNECT_TIMEOUT_S`; NormScopeError for a value that is not in (0, 600]."""
    text = os.environ.get(CONNECT_ENV, "").strip()
    if not text:
        return CONNECT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 600:  # NaN fails too
        raise NormScopeError(f"{CONNECT_ENV}={text!r} must be a number of seconds in (0, 600]; "
                             f"unset it for the default {CONNECT_TIMEOUT_S:g} s")
    return seconds


def connect(address: str, *, timeout: float | None = None):
    """A ``distributed.Client`` on ``address``; NormScopeError if nothing answers within
    ``timeout`` seconds (default :func:`connect_timeout`)."""
    import logging

    from distributed import Client

    timeout = connect_timeout() if timeout is None else timeout
    logging.getLogger("distributed").setLevel(logging.ERROR)  # no tracebacks for a dead port
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise NormScopeError(
            f"no Dask scheduler answers at {address} (within {timeout:g} s: "
            f"{type(exc).__name__}); start one (dask scheduler --host 127.0.0.1) or fix "
            f"--cluster / {SCHEDULER_ENV}"
        ) from None
