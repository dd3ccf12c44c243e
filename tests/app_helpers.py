"""Set-up shared by the AppTests of the Compare tab that run real comparisons."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.store import RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh NORMSCOPE_HOME, the test's folder as data root, and only the built-in models."""
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("NORMSCOPE_MODELS", raising=False)
    return tmp_path / "home"


def wait_done(cid: str, timeout: float = 240) -> None:
    """Poll the run store until comparison ``cid`` has finished (done, failed or cancelled)."""
    end = time.time() + timeout
    while time.time() < end:
        rec = RunStore().load_comparison(cid, batches=False)
        if rec is not None and rec.status in ("done", "failed", "cancelled"):
            return
        time.sleep(0.5)
    pytest.fail(f"comparison {cid} did not finish")
