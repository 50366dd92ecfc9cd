"""Two ModelHub instances (two gunicorn masters, as two machines would run)
sharing one PostgreSQL database and one media directory.

What one instance's admin does — activating a version, uploading a new one —
is what the other serves from its very next request, and the stats either
one reports count the requests of both.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    make_install,
    manage,
    postgres_available,
    postgres_database,
    report_gate,
    start_gunicorn,
    suite_uses_postgres,
)

pytestmark = pytest.mark.skipif(
    not postgres_available(),
    reason="two instances share a PostgreSQL database: none answers on "
    "127.0.0.1:5432 (user postgres)",
)
STAFF, PASSWORD = "ops", "ops-pass-8f3k2"
ROWS_TIMEOUT = 15.0


@pytest.fixture
def shared_install(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Install]:
    """A registry in a fresh PostgreSQL database, whatever the suite runs on."""
    if suite_uses_postgres():
        yield request.getfixturevalue("install")
        return
    with postgres_database() as url:
        yield make_install(tmp_path / "install", url)


class AdminSession:
    """A browser-like session (cookies, CSRF token) on one instance's admin."""

    def __init__(self, server: Server) -> None:
        self.base = server.base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.status, response.read().decode()

    def csrf_token(self, path: str) -> str:
        _, page = self.get(path)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post(
        self, path: str, fields: dict[str, str], files: dict[str, Path] | None = None
    ) -> tuple[int, str, str]:
        """POST a form (multipart when files are given); follows the redirect."""
        fields = {"csrfmiddlewaretoken": self.csrf_token(path), **fields}
        if files:
            boundary = uuid.uuid4().hex
            body, content_type = (
                _multipart(fields, files, boundary),
                f"multipart/form-data; boundary={boundary}",
            )
        else:
            body = urllib.parse.urlencode(fields).encode()
            content_type = "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Content-Type": content_type}
        )
        with self.opener.open(request, timeout=120) as response:
            return response.status, response.geturl(), response.read().decode()

    def log_in(self, username: str, password: str) -> None:
        _, url, page = self.post(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "next": "/admin/"},
        )
        assert url == self.base + "/admin/", page[-2000:]

    def json(self, server: Server, path: str) -> Any:
        """A GET on ``server`` (any instance) with this session's cookies."""
        import json

        with self.opener.open(server.base_url + path, timeout=30) as response:
            return json.loads(response.read())


def _multipart(fields: dict[str, str], files: dict[str, Path], boundary: str) -> bytes:
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, path in files.items():
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def predict(server: Server, request_id: str) -> tuple[int, int, list[Any]]:
    response = server.post(
        "/api/predict/iris/", {"data": IRIS_ROW}, headers={"X-Request-ID": request_id}
    )
    assert response.status == 200, response.body
    body = response.json()
    return response.status, body["version"], body["predictions"]


def version_pk(install: Install, number: int) -> str:
    out = install.shell(f"print('pk=%s' % model.versions.get(number={number}).pk)")
    return re.search(r"pk=(\d+)", out).group(1)


def create_staff_user(install: Install) -> None:
    install.shell(
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.models import Permission\n"
        f"user = get_user_model().objects.create_user({STAFF!r}, "
        f"password={PASSWORD!r}, is_staff=True)\n"
        "user.user_permissions.set("
        "Permission.objects.filter(content_type__app_label='registry'))"
    )


def train_third_version(directory: Path) -> tuple[Path, str]:
    """A depth-2 tree: a different file from v1 and v2, and what it predicts."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(data.data, labels)
    path = directory / "iris-v3.joblib"
    joblib.dump(tree, path)
    return path, str(tree.predict(pd.DataFrame([IRIS_ROW]))[0])


@pytest.mark.slow
def test_two_instances_on_one_database_serve_each_others_activations_and_count_both(
    shared_install: Install, tmp_path: Path, gunicorn_servers
) -> None:
    install = shared_install
    create_staff_user(install)
    # The admin's pages need the static files manifest, as in a deployment.
    manage(install.env, "collectstatic", "--noinput", "--verbosity", "0")
    a_dir, b_dir = tmp_path / "instance-a", tmp_path / "instance-b"
    a_dir.mkdir()
    b_dir.mkdir()
    # Same DATABASE_URL, media root and secret key; own port and metrics dir.
    a = start_gunicorn(install.env, a_dir, workers=2, wait=False)
    gunicorn_servers.append(a)
    b = start_gunicorn(install.env, b_dir, workers=2, wait=False)
    gunicorn_servers.append(b)
    for server in (a, b):
        server.wait_for(
            lambda s=server: s.get("/healthz").status == 200,
            "/healthz",
        )
        server.wait_until_booted(2)
    v1, v2 = install.predictions[1], install.predictions[2]
    sent = {"a": 0, "b": 0}

    def on(name: str, server: Server) -> tuple[int, list[Any]]:
        _, version, predictions = predict(server, f"{name}-{sent[name]}")
        sent[name] += 1
        return version, predictions

    assert on("a", a) == on("b", b) == (1, [v1])

    admin = AdminSession(a)
    admin.log_in(STAFF, PASSWORD)
    _, _, page = admin.post(
        "/admin/registry/modelversion/",
        {
            "action": "activate_version",
            "select_across": "0",
            "index": "0",
            "_selected_action": version_pk(install, 2),
        },
    )
    assert "Activated iris v2" in page, page[-3000:]
    assert on("b", b) == (2, [v2]), "B's very next request serves v2"
    assert on("a", a) == (2, [v2])

    # A new file uploaded through A's admin lands in the shared media root.
    v3_file, v3 = train_third_version(tmp_path)
    _, url, page = admin.post(
        "/admin/registry/modelversion/add/",
        {"model": install.shell("print(model.pk)").split()[-1], "activate": "on"},
        files={"file": v3_file},
    )
    assert "Registered iris v3 and activated it" in page, page[-3000:]
    assert url.startswith(a.base_url + "/admin/registry/modelversion/")
    assert on("b", b) == (3, [v3])
    assert on("a", a) == (3, [v3])

    # Stats on B count what both instances served, A's requests included.
    for _ in range(23):
        on("a", a)
    for _ in range(17):
        on("b", b)
    total = sent["a"] + sent["b"]
    deadline = time.monotonic() + ROWS_TIMEOUT
    while True:
        stats = admin.json(b, "/api/stats/?since=1h")
        if stats["totals"]["requests"] >= total or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (iris,) = stats["models"]
    assert iris["slug"] == "iris"
    assert (stats["totals"]["requests"], iris["requests"], iris["errors"]) == (
        total,
        total,
        0,
    )
    by_version = {v["version"]: v["requests"] for v in iris["versions"]}
    assert by_version == {1: 2, 2: 2, 3: total - 4}
    assert stats["totals"]["dropped_log_rows"] == 0
    assert len(a.pids_that_served("a-")) >= 1
    assert len(b.pids_that_served("b-")) >= 1
    for server in (a, b):
        assert "Traceback" not in server.log_text()
    report_gate(
        "two instances on one PostgreSQL and one media directory",
        requests_to_a=sent["a"],
        requests_to_b=sent["b"],
        counted_by_stats_on_b=stats["totals"]["requests"],
        errors=0,
    )
