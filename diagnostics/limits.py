"""What one server lets a comparison ask for: the operator's limits, read in one place.

The command line (``python -m diagnostics compare``) and the app (its Start button and its
queue of comparisons) both check a request against :func:`load` before anything starts, and a
request over a limit gets one sentence that names the limit and the setting that raises it.
:class:`models.comparison.Comparison` itself stays unlimited: a Python caller chooses for
itself.

The operator sets a limit in the environment (``NORMSCOPE_MAX_EPOCHS=50``), or in
``$NORMSCOPE_HOME/limits.toml`` (``max_epochs = 50``, one line per setting); the environment
wins.  Not ``.streamlit/config.toml``: Streamlit warns at every start that a ``[normscope]``
key "is not a valid config option ... it may have been removed", and the command line never
reads that file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import NormScopeError

#: The file in the data directory that holds an operator's limits (TOML, top-level keys).
FILE_NAME = "limits.toml"
ENV_PREFIX = "NORMSCOPE_"


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Limits:
    """One server's limits on a comparison (each a most, at least 1)."""

    #: Epochs of one run (``--epochs``; the app's "Epochs (most)").
    max_epochs: int = 100
    #: Seeds of a holdout comparison (``--seeds``).
    max_seeds: int = 10
    #: Repetitions of cross-validation (``--max-repetitions``; the app's "Most repetitions").
    max_repetitions: int = 10
    #: Configs of one comparison (``--configs``).
    max_configs: int = 12
    #: k of cross-validation (``--folds``).
    max_folds: int = 10
    #: Training worker processes of one comparison (``--workers``): default the machine's cores,
    #: since more workers than cores only slow every run down.
    max_workers: int = field(default_factory=_cores)
    #: Comparisons the app runs or queues at once, for everyone together.
    max_queued: int = 3
    #: Comparisons one browser session (one starter page) may have running or queued.
    max_queued_per_session: int = 1
    #: Whether anyone who sees a running comparison may cancel it (default: its starter only).
    anyone_can_cancel: bool = False

    def check(self, *, epochs: int | None = None, configs: int | None = None,
              seeds: int | None = None, repetitions: int | None = None,
              folds: int | None = None, workers: int | None = None) -> None:
        """Raise NormScopeError (one sentence) for the first request over a limit.

        Parameters are what was asked (None: not asked, e.g. seeds of a cross-validation).
        """
        asked = (("epochs", epochs, "max_epochs"), ("configs", configs, "max_configs"),
                 ("seeds", seeds, "max_seeds"),
                 ("repetitions", repetitions, "max_repetitions"),
                 ("folds", folds, "max_folds"), ("workers", workers, "max_workers"))
        for what, value, name in asked:
            most = getattr(self, name)
            if value is not None and value > most:
                raise NormScopeError(
                    f"{value} {what} is over this server's limit of {most}; ask for at most "
                    f"{most}, or have its operator raise {env_name(name)}")

    def check_queue(self, *, queued: int, of_session: int) -> None:
        """Raise NormScopeError when another comparison would exceed a queue limit
        (``queued``: running or waiting now on this server; ``of_session``: those of the
        session that asks)."""
        if of_session >= self.max_queued_per_session:
            raise NormScopeError(
                f"you have {of_session} comparison{'s' if of_session != 1 else ''} running or "
                f"waiting, this server's limit per page ({env_name('max_queued_per_session')}); "
                "wait for it to finish or cancel it")
        if queued >= self.max_queued:
            raise NormScopeError(
                f"this server already runs or queues {queued} comparisons, its limit "
                f"({env_name('max_queued')}); try again when one has finished")


def env_name(setting: str) -> str:
    """``max_epochs`` -> ``NORMSCOPE_MAX_EPOCHS``."""
    return ENV_PREFIX + setting.upper()


def _parse(name: str, raw, where: str):
    kind = {f.name: f for f in fields(Limits)}[name]
    if kind.type in (bool, "bool"):
        text = str(raw).strip().lower()
        if isinstance(raw, bool):
            return raw
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise NormScopeError(f"{where}={raw!r} must be true or false")
    if isinstance(raw, bool):
        raise NormScopeError(f"{where}={raw!r} must be a whole number of at least 1")
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise NormScopeError(f"{where}={raw!r} must be a whole number of at least 1") from None
    if value < 1:
        raise NormScopeError(f"{where}={raw!r} must be a whole number of at least 1")
    return value


def load(environ: dict | None = None, home: str | os.PathLike | None = None) -> Limits:
    """This server's limits: the defaults, then ``$NORMSCOPE_HOME/limits.toml``, then the
    ``NORMSCOPE_MAX_*`` / ``NORMSCOPE_ANYONE_CAN_CANCEL`` environment variables.

    Raises
    ------
    NormScopeError
        An unreadable file, an unknown setting or a value that is not a whole number >= 1
        (a flag: true or false), named with where it was set.
    """
    from .config import home as default_home

    env = os.environ if environ is None else environ
    path = Path(home if home is not None else default_home()) / FILE_NAME
    names = [f.name for f in fields(Limits)]
    values: dict = {}
    if path.is_file():
        import tomllib

        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise NormScopeError(f"{path} cannot be read as TOML ({exc}); fix or remove it") \
                from None
        for key, raw in table.items():
            if key not in names:
                raise NormScopeError(f"{path}: {key!r} is no limit; use {', '.join(names)}")
            values[key] = _parse(key, raw, f"{path}: {key}")
    for key in names:
        raw = env.get(env_name(key))
        if raw is not None and str(raw).strip():
            values[key] = _parse(key, raw, env_name(key))
    return Limits(**values)
