"""The real gunicorn, configured as in production, serving a fresh install."""

from __future__ import annotations

import json
import re

import pytest

from tests.servers import clean_env, manage, start_gunicorn


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    env = clean_env(tmp, MODELHUB_GRACEFUL_TIMEOUT="5")
    assert "DJANGO_DEBUG" not in env
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    server = start_gunicorn(env, tmp, workers=1)
    try:
        yield server
    finally:
        server.stop()


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
