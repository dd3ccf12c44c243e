"""Shared fixtures: a seeded ``rng``, small spectrogram-like arrays, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# `pytest` (not only `python -m pytest`) must find the packages of the checkout.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed: every test sees the same numbers every run."""
    return np.random.default_rng(20240611)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty NORMSCOPE_HOME (registry, cache, run store) for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("NORMSCOPE_HOME", str(h))
    return h


@pytest.fixture
def spectro(rng) -> np.ndarray:
    """(240, 12, 17) float32 linear-power-like values: exponential noise times a band profile.

    Rows 0-8 carry signal of falling strength; rows 9-11 a faint floor, as in the demo.
    """
    n, h, w = 240, 12, 17
    level = np.r_[np.geomspace(40.0, 0.5, 9), np.full(3, 0.002)][:, None]
    X = rng.exponential(1.0, (n, h, w)) * level
    return X.astype(np.float32)


@pytest.fixture
def labels(rng) -> np.ndarray:
    """Labels 0..3 for the 240 examples of ``spectro``, every class present."""
    y = np.repeat(np.arange(4), 60)
    return rng.permutation(y).astype(np.int64)


def run_cli(*args: str, python_flags: tuple[str, ...] = (), env: dict | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python [FLAGS] -m diagnostics ARGS`` from the repository root, capturing text."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "diagnostics", *args],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def cli():
    """The :func:`run_cli` helper as a fixture."""
    return run_cli


def run_main(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the CLI's ``main(ARGS)`` in this process, capturing text, with ``env`` set for the
    call only.  For calls whose output (not the process: its exit status, imports, tracebacks)
    is what a test checks; it saves a fresh interpreter's imports, a second or two a call."""
    import contextlib
    import io

    from diagnostics.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["diagnostics", *args], code, out.getvalue(),
                                       err.getvalue())


@pytest.fixture
def cli_main():
    """The :func:`run_main` helper (the CLI in this process) as a fixture."""
    return run_main


def pytest_collection_modifyitems(config, items):
    """Mark each test with its layer (unit, integration, browser) from its folder, and keep the
    tests that start a Streamlit server or a training pool on one xdist worker each: two such
    groups at once already fill two cores, and a browser server per worker would double the load.
    """
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        layer = parts[0] if len(parts) > 1 else "unit"
        item.add_marker(getattr(pytest.mark, layer))
        if layer == "browser":
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.get_closest_marker("pool"):
            item.add_marker(pytest.mark.xdist_group("pool"))
