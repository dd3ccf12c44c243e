"""Real-browser fixtures: a Streamlit server on a free port and Debian's chromium via Playwright.

Never downloads a browser: launches /usr/bin/chromium (or $CHROMIUM) and skips, with the
reason, where it is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server_home(tmp_path_factory):
    """The server's NORMSCOPE_HOME, which is also its data root."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def server(server_home):
    """Start `streamlit run app.py` headless; yield its base URL; stop it by PID."""
    home = server_home
    port = _free_port()
    # One training worker (the operator's limit): the comparison test needs runs going, not
    # speed, and a second worker would only take a core from chromium and the other xdist worker.
    env = {**os.environ, "NORMSCOPE_HOME": str(home), "NORMSCOPE_DATA_ROOT": str(home),
           "NORMSCOPE_MAX_WORKERS": "1"}
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url
    stop(proc)
    log.close()


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1900}, accept_downloads=True)
    pg = ctx.new_page()
    yield pg
    ctx.close()


@pytest.fixture(scope="module")
def demo_page(server, browser):
    """The demo's Statistics page, loaded once and all charts drawn, shared by the tests of a
    module that only read it or download from it (a page load costs seconds of chromium)."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.goto(server)
    wait_idle(pg)
    pg.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 6")
    yield pg
    ctx.close()


def wait_idle(page, timeout=60_000):
    """Wait until the script finished and charts are drawn."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=timeout)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=timeout)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
