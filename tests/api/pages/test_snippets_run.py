"""The snippets on the pages work as pasted: taken from the HTML a real
gunicorn serves, run with curl and the venv's Python, they predict.

One server for the lot (starting gunicorn is the slow part): iris is private
(so the snippets carry the auth header, filled with a real key), v1 active,
v2 pinned on its admin page; both have an input example, and each version says
something different for it, so a snippet that called the wrong one shows.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    copy_install,
    manage,
    start_gunicorn,
)

SNIPPET = re.compile(
    r'<pre class="pages-snippet" data-snippet="(\w+)"><code>(.*?)</code></pre>', re.S
)
STAFF_PASSWORD = "staff-pass-123"
RUN_TIMEOUT = 120


class Browser:
    """Cookies kept between requests, as a browser keeps them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body=None, headers=None):
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.server.request(
            method, path, body, headers={"Cookie": cookie, **(headers or {})}
        )
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response

    def log_in(self, username: str, password: str) -> None:
        form = self.request("GET", "/admin/login/").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token is not None
        fields = {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
        }
        response = self.request(
            "POST",
            "/admin/login/?next=/admin/",
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == 302, response.text[:2000]
        assert "sessionid" in self.cookies


def snippets_on(page: str) -> dict[str, str]:
    return {name: html.unescape(code) for name, code in SNIPPET.findall(page)}


def run(command: list[str]) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Site:
    """A private iris served by gunicorn; a staff member and an iris key."""

    install: Install
    server: Server
    v2_pk: str
    key: str


@pytest.fixture(scope="module")
def site(
    iris_install: Install, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """iris made private, both versions given IRIS_ROW as input example. The
    tests only read, so they share one copy and one server."""
    run_dir = tmp_path_factory.mktemp("pages") / "install"
    with copy_install(iris_install, run_dir) as install:
        out = install.shell(
            "from django.contrib.auth.models import User\n"
            "from api.access import issuing\n"
            f"row = {IRIS_ROW!r}\n"
            "for v in model.versions.all():\n"
            "    example = {**v.metadata, 'input_example': row}\n"
            "    actions.edit_version(v, metadata=example)\n"
            "actions.update_model(model, name=model.name,"
            " description=model.description, private=True)\n"
            f"User.objects.create_superuser('staff', password={STAFF_PASSWORD!r})\n"
            "staff = User.objects.get(username='staff')\n"
            "key = issuing.create_key(name='snippets', owner=staff, predict='listed',"
            " models=[model])[1]\n"
            "print(model.versions.get(number=2).pk, key)\n"
        )
        v2_pk, key = out.split()[-2:]
        # The pages need the static files manifest, as in production.
        manage(install.env, "collectstatic", "--noinput", "--verbosity", "0")
        server = start_gunicorn(install.env, install.run_dir, workers=1)
        try:
            yield Site(install, server, v2_pk, key)
        finally:
            server.stop()


def run_all(snippets: dict[str, str], key: str) -> dict[str, str]:
    """Each snippet's output, its key placeholder filled in."""
    assert set(snippets) == {"curl", "requests", "tritonclient"}
    code = {name: text.replace("<your key>", key) for name, text in snippets.items()}
    return {
        "curl": run(["bash", "-c", code["curl"]]),
        "requests": run([sys.executable, "-c", code["requests"]]),
        "tritonclient": run([sys.executable, "-c", code["tritonclient"]]),
    }


def test_model_page_snippets_predict_as_pasted(site: Site) -> None:
    server = site.server
    assert server.get("/models/iris/").status == 404  # private: not to anonymous
    browser = Browser(server)
    browser.log_in("staff", STAFF_PASSWORD)
    page = browser.request("GET", "/models/iris/")
    assert page.status == 200
    snippets = snippets_on(page.text)
    assert f"{server.base_url}/api/predict/iris/" in snippets["curl"]
    assert "Authorization: Api-Key <your key>" in snippets["curl"]

    out = run_all(snippets, site.key)
    active = site.install.predictions[1]
    assert json.loads(out["curl"])["predictions"] == [active]
    status, _, rest = out["requests"].partition(" ")
    assert (status, rest.splitlines()[0]) == ("200", "1")
    assert f"'predictions': ['{active}']" in out["requests"]
    assert out["tritonclient"].strip() == f"[b'{active}']"


def test_version_admin_page_snippets_call_that_version(site: Site) -> None:
    server = site.server
    browser = Browser(server)
    browser.log_in("staff", STAFF_PASSWORD)
    page = browser.request("GET", f"/admin/registry/modelversion/{site.v2_pk}/change/")
    assert page.status == 200
    snippets = snippets_on(page.text)
    assert f"{server.base_url}/api/predict/iris/v2/" in snippets["curl"]

    out = run_all(snippets, site.key)
    pinned = site.install.predictions[2]
    assert json.loads(out["curl"])["predictions"] == [pinned]
    assert f"'predictions': ['{pinned}']" in out["requests"]
    assert out["tritonclient"].strip() == f"[b'{pinned}']"


def test_try_it_under_gunicorn_needs_the_session_and_its_csrf_token(
    site: Site,
) -> None:
    server = site.server
    browser = Browser(server)
    browser.log_in("staff", STAFF_PASSWORD)
    browser.request("GET", "/models/iris/")  # what the form is rendered from
    body = json.dumps({"data": IRIS_ROW}).encode()
    refused = browser.request("POST", "/api/predict/iris/", body)
    assert refused.status == 403
    assert refused.json()["code"] == "permission_denied"
    sent = browser.request(
        "POST",
        "/api/predict/iris/",
        body,
        {"X-CSRFToken": browser.cookies["csrftoken"], "X-Request-ID": "try-it-1"},
    )
    assert sent.status == 200, sent.text
    assert sent.json()["predictions"] == [site.install.predictions[1]]
    assert sent.headers["X-Model-Version"] == "1"
    assert server.post("/api/predict/iris/", {"data": IRIS_ROW}).status == 404
