"""The real gunicorn, configured as in production, serving a fresh install."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from tests.test_settings import PROJECT_ROOT, clean_env

GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, base_url: str, log: Path) -> None:
        self.base_url = base_url
        self.log = log

    def get(self, path: str) -> Response:
        """GETs ``path`` without following redirects; error statuses are returned."""
        try:
            with _opener.open(self.base_url + path, timeout=REQUEST_TIMEOUT) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())


def _run(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr}"


def _wait_until_serving(proc: subprocess.Popen, server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"gunicorn exited with {proc.returncode}:\n{server.log.read_text()}"
            )
        try:
            if server.get("/healthz").status == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(
        f"gunicorn not serving after {START_TIMEOUT}s:\n{server.log.read_text()}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    port = free_port()
    env = clean_env(
        tmp,
        MODELHUB_BIND=f"127.0.0.1:{port}",
        MODELHUB_WORKERS="1",
        MODELHUB_GRACEFUL_TIMEOUT="5",
    )
    assert "DJANGO_DEBUG" not in env
    _run(env, "migrate", "--noinput", "--verbosity", "0")
    _run(env, "collectstatic", "--noinput", "--verbosity", "0")

    log = tmp / "gunicorn.log"
    server = Server(f"http://127.0.0.1:{port}", log)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(GUNICORN), "--config", "modelhub/gunicorn.conf.py"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(proc, server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_healthz_reports_alive(server):
    response = server.get("/healthz")
    assert response.status == 200
    assert response.headers.get_content_type() == "application/json"
    assert json.loads(response.body) == {"status": "alive"}


def test_admin_login_page_renders(server):
    response = server.get("/admin/login/")
    assert response.status == 200
    assert response.headers.get_content_type() == "text/html"
    assert "ModelHub" in response.text
    assert 'name="csrfmiddlewaretoken"' in response.text


def test_admin_css_is_served_hashed_with_debug_off(server):
    page = server.get("/admin/login/").text
    match = re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css", page)
    assert match, "login page does not link a manifest-hashed admin base.css"
    response = server.get(match.group(0))
    assert response.status == 200
    assert response.headers.get_content_type() == "text/css"
    assert b"body" in response.body
    # Hashed names never change content, so they can be cached forever.
    assert "immutable" in response.headers.get("Cache-Control", "")


def test_unknown_path_gets_plain_404_without_debug_page(server):
    response = server.get("/no-such-page/")
    assert response.status == 404
    assert "URLconf" not in response.text
    assert "Traceback" not in response.text


def test_admin_index_redirects_anonymous_user_to_login(server):
    response = server.get("/admin/")
    assert response.status == 302
    assert response.headers["Location"] == "/admin/login/?next=/admin/"
