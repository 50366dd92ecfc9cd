"""The Host header is checked against ALLOWED_HOSTS on every path, the
prediction paths included, and a refusal is a JSON 400 ``bad_host``."""

from __future__ import annotations

import json

import pytest
from django.http import HttpRequest

from api import hosts
from monitoring.models import RequestLog
from monitoring.requestlog import writer
from tests.api.dataplane.test_errors import IRIS_ROW

pytestmark = pytest.mark.django_db

EVIL = "evil.example"
V2_BODY = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5, 3, 1, 0]}
    ]
}


@pytest.fixture
def iris(publish, iris_classifier):
    return publish(iris_classifier, "iris")


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def post(client, path: str, body: object, **headers: str):
    data = json.dumps(body)
    return client.post(path, data, content_type="application/json", **headers)


def test_predict_refuses_a_host_not_in_allowed_hosts(api, iris):
    response = post(
        api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_X_REQUEST_ID="evil-1"
    )  # the allowed host first: the verdict must not stick to the path
    assert response.status_code == 200

    response = post(
        api,
        "/api/predict/iris/",
        {"data": IRIS_ROW},
        HTTP_HOST=EVIL,
        HTTP_X_REQUEST_ID="evil-2",
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Host not allowed.", "code": "bad_host"}
    writer.flush()
    row = RequestLog.objects.get(request_id="evil-2")
    assert (row.slug, row.status, row.error_code) == ("iris", 400, "bad_host")


def test_v2_infer_refuses_a_host_not_in_allowed_hosts(api, iris):
    response = post(api, "/v2/models/iris/infer", V2_BODY, HTTP_HOST=EVIL)

    assert response.status_code == 400
    assert response.json() == {"error": "Host not allowed."}


@pytest.mark.parametrize(
    "path", ["/v2/health/ready", "/api/models/", "/healthz", "/admin/login/"]
)
def test_every_path_refuses_a_host_not_in_allowed_hosts_as_json(api, path):
    response = api.get(path, HTTP_HOST=EVIL)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    if path.startswith("/v2/"):
        assert response.json() == {"error": "Host not allowed."}
    else:
        assert response.json() == {"detail": "Host not allowed.", "code": "bad_host"}


@pytest.mark.parametrize(
    "host",
    ["evil.example:80", "localhost.evil.example", "local host", "[::1", "a." * 150],
    ids=["other-host-with-port", "lookalike", "space", "unclosed-ipv6", "long"],
)
def test_predict_refuses_malformed_and_lookalike_hosts(api, iris, host):
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_HOST=host)

    assert response.status_code == 400
    assert response.json()["code"] == "bad_host"


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:80"])
def test_predict_serves_allowed_hosts_with_or_without_port(api, iris, host):
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_HOST=host)

    assert response.status_code == 200


def test_predict_refuses_a_forwarded_host_only_when_django_reads_it(
    api, iris, settings
):
    forwarded = {"HTTP_HOST": "localhost", "HTTP_X_FORWARDED_HOST": EVIL}
    body = {"data": IRIS_ROW}
    assert post(api, "/api/predict/iris/", body, **forwarded).status_code == 200

    settings.USE_X_FORWARDED_HOST = True

    assert post(api, "/api/predict/iris/", body, **forwarded).status_code == 400


def test_allowed_hosts_changes_are_seen_at_once(api, iris, settings):
    assert post(api, "/api/predict/iris/", {"data": IRIS_ROW}).status_code == 200

    settings.ALLOWED_HOSTS = ["models.example.com"]

    assert post(api, "/api/predict/iris/", {"data": IRIS_ROW}).status_code == 400
    response = post(
        api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_HOST="models.example.com"
    )
    assert response.status_code == 200


def test_host_verdicts_are_checked_once_per_host_and_remembered_within_a_bound(
    api, iris, monkeypatch
):
    checked: list[str] = []
    get_host = HttpRequest.get_host

    def counting_get_host(request: HttpRequest) -> str:
        checked.append(request.META.get("HTTP_HOST", ""))
        return get_host(request)

    hosts._verdicts.clear()
    monkeypatch.setattr(HttpRequest, "get_host", counting_get_host)
    for _ in range(3):
        post(api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_HOST="localhost")
        post(api, "/api/predict/iris/", {"data": IRIS_ROW}, HTTP_HOST=EVIL)
    assert checked == ["localhost", EVIL]

    for index in range(hosts.MAX_REMEMBERED * 3):
        post(api, "/api/predict/iris/", {}, HTTP_HOST=f"h{index}.evil.example")
    assert len(hosts._verdicts) <= hosts.MAX_REMEMBERED
