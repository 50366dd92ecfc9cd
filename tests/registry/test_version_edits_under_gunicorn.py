"""A version edited while gunicorn workers hold it loaded (issue #17).

An edit that changes how a version serves — its input schema, its status —
reaches every worker from its next request, as an activation does, whether it
comes from the admin, the management API or ``checkmodels``. Each test warms
both workers of a real gunicorn on 127.0.0.1, makes the edit, checks that a
gunicorn started after the edit (cold workers) answers as expected, then that
the warm workers answer the same.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.servers import (
    IRIS_ROW,
    PROJECT_ROOT,
    Install,
    Response,
    Server,
    corrupt_version_file,
    manage,
    start_gunicorn,
)

# A schema edit the model can serve: iris fitted on a numpy array has
# positional features (f0..f3), so renaming them changes only the names
# clients send. Renaming the features of the DataFrame-fitted iris would make
# scikit-learn refuse every request (422), on a cold worker too.
PLAIN = "plain"
OLD_NAMES = ["f0", "f1", "f2", "f3"]
NEW_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
VALUES = list(IRIS_ROW.values())
PREDICT_PLAIN = f"/api/predict/{PLAIN}/"
PREDICT_IRIS_V2 = "/api/predict/iris/v2/"
STAFF, PASSWORD = "ops", "ops-pass-8f3k2"
# Requests go in batches, each on its own connection, until every worker has
# answered some; which worker accepts is up to the kernel.
BATCH, MAX_REQUESTS, CLIENTS = 20, 200, 4


@dataclass(frozen=True)
class PlainVersion:
    pk: int
    prediction: str  # what the estimator says for VALUES


@pytest.fixture
def plain(install: Install, tmp_path: Path) -> PlainVersion:
    """iris fitted on a numpy array, registered and active as 'plain' v1."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    estimator = LogisticRegression(max_iter=500).fit(
        data.data, data.target_names[data.target]
    )
    path = tmp_path / "plain.joblib"
    joblib.dump(estimator, path)
    registered = manage(install.env, "loadmodel", str(path), "--slug", PLAIN)
    assert registered.strip() == f"{PLAIN} v1"
    pk, schema = version_row(install, PLAIN, 1)
    assert feature_names(schema) == OLD_NAMES
    assert schema["named"] is False
    return PlainVersion(pk, str(estimator.predict([VALUES])[0]))


def version_row(install: Install, slug: str, number: int) -> tuple[int, dict]:
    """The version's primary key and stored input schema."""
    ((pk, schema),) = install.query(
        "SELECT v.id, v.input_schema FROM registry_modelversion v "
        "JOIN registry_mlmodel m ON m.id = v.model_id "
        "WHERE m.slug = %s AND v.number = %s",
        (slug, number),
    )
    return pk, schema if isinstance(schema, dict) else json.loads(schema)


def feature_names(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["features"]]


def start(install: Install, servers: list[Server]) -> Server:
    server = start_gunicorn(install.env, install.run_dir, workers=2)
    servers.append(server)
    return server


def create_superuser(install: Install) -> None:
    env = {**install.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    manage(env, "createsuperuser", "--noinput", "--username", STAFF, "--email", "")


def served_by(server: Server) -> dict[str, str]:
    """Request id -> pid of the worker that answered it, from the access log."""
    lines = re.findall(r"^ACCESS <(\d+)> (\S+) \d+$", server.log_text(), re.M)
    return {request_id: pid for pid, request_id in lines}


def answers_from_every_worker(
    server: Server, prefix: str, path: str, body: Any, headers: dict | None = None
) -> list[tuple[str, Response]]:
    """(request id, response) of POSTs to ``path``, at least BATCH and until
    every booted worker has answered some (at most MAX_REQUESTS)."""
    workers = set(server.booted_workers())
    answers: list[tuple[str, Response]] = []

    def send(request_id: str) -> Response:
        return server.post(
            path, body, headers={"X-Request-ID": request_id, **(headers or {})}
        )

    with ThreadPoolExecutor(CLIENTS) as pool:
        while len(answers) < BATCH or server.pids_that_served(f"{prefix}-") != workers:
            assert len(answers) < MAX_REQUESTS, (
                f"a worker of {sorted(workers)} took none of {len(answers)} "
                f"requests:\n{server.log_text()[-4000:]}"
            )
            ids = [f"{prefix}-{i}" for i in range(len(answers), len(answers) + BATCH)]
            answers += zip(ids, pool.map(send, ids), strict=True)
    return answers


def assert_all(
    server: Server,
    answers: list[tuple[str, Response]],
    expected: Callable[[Response], bool],
    what: str,
) -> None:
    pids = served_by(server)
    wrong = [
        (pids.get(request_id), response.status, response.body[:300])
        for request_id, response in answers
        if not expected(response)
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(answers)} answers are not {what}; wrong answers "
        f"by worker pid: {dict(Counter(pid for pid, _, _ in wrong))}; "
        f"e.g. (pid, status, body) {wrong[:4]}"
    )


def json_body(response: Response) -> dict[str, Any]:
    """The JSON object answered, or {} when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def predicts(number: int, prediction: str) -> Callable[[Response], bool]:
    def expected(response: Response) -> bool:
        body = json_body(response)
        return (
            response.status == 200
            and body.get("version") == number
            and body.get("predictions") == [prediction]
        )

    return expected


def refused_as(status: int, code: str) -> Callable[[Response], bool]:
    def expected(response: Response) -> bool:
        return response.status == status and json_body(response).get("code") == code

    return expected


def assert_serves_renamed_schema(
    server: Server, prefix: str, plain: PlainVersion
) -> None:
    """Every worker predicts from the new names and refuses the old ones."""
    renamed = dict(zip(NEW_NAMES, VALUES, strict=True))
    answers = answers_from_every_worker(
        server, f"{prefix}-new", PREDICT_PLAIN, {"data": renamed}
    )
    assert_all(server, answers, predicts(1, plain.prediction), "predictions")
    old = dict(zip(OLD_NAMES, VALUES, strict=True))
    answers = answers_from_every_worker(
        server, f"{prefix}-old", PREDICT_PLAIN, {"data": old}
    )
    assert_all(server, answers, refused_as(400, "missing_features"), "refusals")
    for _, response in answers:
        assert sorted(response.json()["features"]) == sorted(NEW_NAMES)


def warm_plain(server: Server, plain: PlainVersion) -> None:
    old = dict(zip(OLD_NAMES, VALUES, strict=True))
    answers = answers_from_every_worker(server, "warm", PREDICT_PLAIN, {"data": old})
    assert_all(server, answers, predicts(1, plain.prediction), "predictions")


class _FormFields(HTMLParser):
    """Named fields of an HTML page's forms: inputs (not buttons), textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        name = found.get("name")
        if tag == "input" and name and found.get("type") not in ("submit", "button"):
            self.fields[name] = found.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(page: str) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(page)
    return parser.fields


class AdminSession:
    """A logged-in admin user on one server; cookies kept by hand."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, fields: dict[str, str] | None = None
    ) -> Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = self.server.request(method, path, body, headers=headers)
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if value:
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return response

    def log_in(self, username: str, password: str) -> None:
        page = self.request("GET", "/admin/login/")
        assert page.status == 200, page.text[-2000:]
        assert "csrftoken" in self.cookies
        response = self.request(
            "POST",
            "/admin/login/?next=/admin/",
            {
                "csrfmiddlewaretoken": form_fields(page.text)["csrfmiddlewaretoken"],
                "username": username,
                "password": password,
                "next": "/admin/",
            },
        )
        assert response.status == 302, response.text[-2000:]
        assert response.headers["Location"] == "/admin/"
        assert "sessionid" in self.cookies


def edit_schema_in_the_admin(server: Server, pk: int, schema: dict) -> None:
    """The change form of version ``pk`` posted back with ``schema``."""
    admin = AdminSession(server)
    admin.log_in(STAFF, PASSWORD)
    path = f"/admin/registry/modelversion/{pk}/change/"
    page = admin.request("GET", path)
    assert page.status == 200, page.text[-2000:]
    fields = form_fields(page.text)
    shown = json.loads(fields["input_schema"])
    assert feature_names(shown) == OLD_NAMES
    response = admin.request(
        "POST",
        path,
        {**fields, "input_schema": json.dumps(schema), "_save": "Save"},
    )
    assert response.status == 302, response.text[-3000:]


def renamed(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its features renamed to NEW_NAMES, the rest kept."""
    features = [
        {**feature, "name": name}
        for feature, name in zip(schema["features"], NEW_NAMES, strict=True)
    ]
    return {**schema, "features": features}


def test_schema_edited_in_the_admin_is_served_by_every_warm_worker(
    install, plain, gunicorn_servers
):
    # The admin's pages need the static files manifest, as in production.
    manage(install.env, "collectstatic", "--noinput", "--verbosity", "0")
    create_superuser(install)
    server = start(install, gunicorn_servers)
    warm_plain(server, plain)
    _, schema = version_row(install, PLAIN, 1)

    edit_schema_in_the_admin(server, plain.pk, renamed(schema))

    assert version_row(install, PLAIN, 1)[1] == renamed(schema)
    cold = start(install, gunicorn_servers)
    assert_serves_renamed_schema(cold, "cold", plain)
    cold.stop()
    assert_serves_renamed_schema(server, "after", plain)


@pytest.mark.slow
def test_schema_edited_through_the_management_api_is_served_by_every_warm_worker(
    install, plain, gunicorn_servers
):
    server = start(install, gunicorn_servers)
    warm_plain(server, plain)
    create_superuser(install)
    output = manage(install.env, "drf_create_token", STAFF)
    token = re.fullmatch(r"Generated token (\w+) for user \S+\s*", output).group(1)

    response = server.request(
        "PATCH",
        f"/api/models/{PLAIN}/versions/1/",
        {"input_schema": [{"name": name, "type": "number"} for name in NEW_NAMES]},
        headers={"Authorization": f"Token {token}"},
    )

    assert response.status == 200, response.body[:1000]
    detail = response.json()
    assert (detail["model"], detail["version"]) == (PLAIN, 1)
    assert feature_names(detail["input_schema"]) == NEW_NAMES
    assert feature_names(version_row(install, PLAIN, 1)[1]) == NEW_NAMES
    cold = start(install, gunicorn_servers)
    assert_serves_renamed_schema(cold, "cold", plain)
    cold.stop()
    assert_serves_renamed_schema(server, "after", plain)


def assert_refuses_v2_as_invalid(server: Server, prefix: str) -> None:
    answers = answers_from_every_worker(
        server, prefix, PREDICT_IRIS_V2, {"data": IRIS_ROW}
    )
    assert_all(server, answers, refused_as(503, "model_unavailable"), "refusals")
    for _, response in answers:
        assert "marked invalid" in response.json()["detail"]


@pytest.mark.slow
def test_version_marked_invalid_is_refused_by_every_warm_worker(
    install, gunicorn_servers
):
    server = start(install, gunicorn_servers)
    answers = answers_from_every_worker(
        server, "warm", PREDICT_IRIS_V2, {"data": IRIS_ROW}
    )
    assert_all(server, answers, predicts(2, install.predictions[2]), "predictions")
    corrupt_version_file(install, 2)

    # checkmodels exits 1 when a version fails, which manage() treats as an error.
    result = subprocess.run(
        [sys.executable, "manage.py", "checkmodels", "--model", "iris"]
        + ["--mark-invalid"],
        cwd=PROJECT_ROOT,
        env=install.env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "iris v1: ok" in lines
    assert any(
        line.startswith("iris v2: FAILED:") and line.endswith("(marked invalid)")
        for line in lines
    ), result.stdout
    assert install.query(
        "SELECT v.status FROM registry_modelversion v "
        "JOIN registry_mlmodel m ON m.id = v.model_id "
        "WHERE m.slug = 'iris' AND v.number = 2"
    ) == [("invalid",)]
    cold = start(install, gunicorn_servers)
    assert_refuses_v2_as_invalid(cold, "cold")
    cold.stop()
    assert_refuses_v2_as_invalid(server, "after")
    answers = answers_from_every_worker(
        server, "active", "/api/predict/iris/", {"data": IRIS_ROW}
    )
    assert_all(server, answers, predicts(1, install.predictions[1]), "predictions")
