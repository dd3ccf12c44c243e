"""The README's reverse-proxy set-up, for real: nginx with basic auth in front of the app.

Runs ``docs/nginx-normscope.conf`` (the file the README points to) in a private nginx, then
drives chromium through it.  Skips, with the reason, where nginx is not installed
(``apt-get install -y nginx-light``; ``.ci/run`` does).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, stop, wait_idle

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
USER, PASSWORD = "alice", "correct horse"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx not installed: apt-get install -y nginx-light")


#: The proxy's address: not 127.0.0.1 or localhost, which Streamlit always trusts, so the
#: WebSocket origin check is really exercised (as for a team's hostname and port).
PROXY_HOST = "127.0.0.2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((PROXY_HOST, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def proxy(server, tmp_path_factory):
    d = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    sha = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (d / "htpasswd").write_text(f"{USER}:{{SHA}}{sha}\n")
    upstream = server.removeprefix("http://")
    site = (ROOT / "docs" / "nginx-normscope.conf").read_text()
    site = (site.replace("listen LISTEN;", f"listen {PROXY_HOST}:{port};")
            .replace("http://UPSTREAM;", f"http://{upstream};")
            .replace("auth_basic_user_file HTPASSWD;", f"auth_basic_user_file {d / 'htpasswd'};"))
    (d / "normscope.conf").write_text(site)
    # A private nginx: its own pid, logs and temp folders, in the foreground.
    # As root, nginx's workers would switch to "nobody", who cannot write our temp folders.
    user = "user root;" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/normscope.conf;
}}
""")
    err_file = open(d / "stderr.log", "wb")
    proc = subprocess.Popen([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d)],
                            stdout=subprocess.DEVNULL, stderr=err_file)
    url = f"http://{PROXY_HOST}:{port}"
    deadline = time.time() + 20
    status = None
    while status != 401:  # the password prompt: our nginx is the one answering
        try:
            status = urllib.request.urlopen(url + "/", timeout=1).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        if status != 401 and (proc.poll() is not None or time.time() > deadline):
            proc.kill()
            err_file.close()
            log = (d / "error.log").read_text() if (d / "error.log").exists() else ""
            pytest.fail(f"nginx did not start (last status {status}): "
                        f"{(d / 'stderr.log').read_text()[-1500:]} {log[-1500:]}")
        if status != 401:
            time.sleep(0.1)
    yield url
    stop(proc)
    err_file.close()


def _get(url: str, auth: tuple[str, str] | None = None, **headers):
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("mallory", PASSWORD)])
def test_without_the_password_nothing_gets_through(proxy, auth):
    for path in ("/", "/_stcore/health", "/_stcore/stream"):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(proxy + path, auth)
        assert err.value.code == 401


def test_scripts_are_compressed_through_the_proxy(proxy):
    page = _get(proxy + "/", (USER, PASSWORD)).read().decode()
    script = re.search(r'src="\.?/?(static/js/index\.[^"]+\.js)"', page).group(1)
    plain = _get(f"{proxy}/{script}", (USER, PASSWORD))
    packed = _get(f"{proxy}/{script}", (USER, PASSWORD), **{"Accept-Encoding": "gzip"})
    assert packed.headers.get("Content-Encoding") == "gzip"
    assert len(packed.read()) < len(plain.read()) / 2


@pytest.mark.slow
def test_the_app_works_through_the_proxy(proxy, browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1900},
                              http_credentials={"username": USER, "password": PASSWORD})
    page = ctx.new_page()
    try:
        page.goto(proxy + "/")
        wait_idle(page)  # the WebSocket came up through nginx: the script ran, charts drawn
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 6")
        assert page.locator('[data-testid="stException"]').count() == 0
        # A widget change goes up the socket and the rerun comes back down.
        slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
        slider.focus()
        assert "12 of 60 bands masked" in page.inner_text("body")
        for _ in range(16):  # 0.20 -> 0.36, which masks a 13th band (SNR 0.355 on train)
            slider.press("ArrowRight")
        page.wait_for_function("location.search.includes('mask_snr=0.36')", timeout=15_000)
        page.wait_for_function(  # the rerun came back: more bands masked, heatmaps redrawn
            "!document.body.innerText.includes('12 of 60 bands masked') && "
            "Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"]'))"
            ".filter(e => /· (1[3-9]|[2-5][0-9]) masked rows/.test(e.textContent)).length >= 4",
            timeout=30_000)
        # The share link names the proxy's address, which is what a teammate can reach.
        page.get_by_role("button", name="Share this view").click()
        code = page.locator('[data-testid="stCode"]').first
        code.wait_for(timeout=15_000)
        assert code.inner_text().strip().startswith(proxy + "/?")
    finally:
        ctx.close()
