"""What the command line prints and writes: text made safe for a terminal, one-line errors, and a
log file for the traceback of a true bug."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from diagnostics.config import home


def plain(text) -> str:
    """``text`` with every control or invisible formatting character written as an escape.

    File and class names come from users: an ESC sequence would recolour or rewrite the
    terminal, a newline would forge a line such as ``error: ...``, a right-to-left override
    would reorder what is shown.  ``str.isprintable`` keeps letters of every script.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def error_line(message: str) -> None:
    """Print ``error: message`` as exactly one line on stderr."""
    print(f"error: {plain(message)}", file=sys.stderr, flush=True)


def write_crash_log(argv: list[str] | None) -> Path | None:
    """Write the current exception's traceback to a log file; return its path (None if no
    folder would take it).  ``NORMSCOPE_HOME/logs`` first, the system's temporary folder
    otherwise."""
    text = (f"normscope {time.strftime('%Y-%m-%dT%H:%M:%S%z')} pid {os.getpid()}\n"
            f"argv: {argv if argv is not None else sys.argv[1:]!r}\n\n{traceback.format_exc()}")
    name = f"cli-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (lambda: home() / "logs", lambda: Path(tempfile.gettempdir()) / "normscope-logs"):
        try:
            d = folder()
            d.mkdir(parents=True, exist_ok=True)
            path = d / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None
