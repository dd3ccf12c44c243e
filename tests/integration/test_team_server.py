"""Serving a team: the README's network command answers on a non-loopback address, keeps
XSRF protection on, and every session shares one data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lan_address() -> str | None:
    """This machine's address on its network (not loopback), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    ip = _lan_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    home = tmp_path_factory.mktemp("team")
    port = _free_port()
    # The README's command for a team (plus headless for CI).
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0",
         "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, env={**os.environ, "NORMSCOPE_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://{ip}:{port}"
    try:
        for _ in range(150):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not answer on the network address")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_answers_on_the_network_address(team_server):
    page = urllib.request.urlopen(team_server + "/", timeout=5).read()
    assert b"<div id=\"root\">" in page or b"root" in page


def test_uploads_without_the_xsrf_token_are_refused(team_server):
    req = urllib.request.Request(
        team_server + "/_stcore/upload_file/some-session/some-file", method="PUT",
        data=b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.npy\"\r\n\r\n"
             b"abc\r\n--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 403


def test_repo_config_keeps_xsrf_on():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "enableXsrfProtection = true" in text
    assert "enableXsrfProtection = false" not in text


def test_repo_config_hides_tracebacks_from_viewers():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] in ("type", "none")
