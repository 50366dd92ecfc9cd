"""Web-only middleware (sessions, auth, messages, the generic HTTP metrics)
stays off the prediction path and on everywhere else."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.api.test_errors import IRIS_ROW, post


@pytest.fixture
def iris(publish, iris_classifier):
    return publish(iris_classifier, "iris")


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_prediction_skips_session_and_auth_middleware(api, iris, staff_client):
    staff_client.raise_request_exception = False
    response = post(staff_client, "/api/predict/iris/", {"data": IRIS_ROW})

    assert response.status_code == 200
    assert not response.cookies  # no session refresh
    assert not hasattr(response.wsgi_request, "session")
    assert not hasattr(response.wsgi_request, "_messages")
    assert response["X-Request-ID"]


def test_admin_still_runs_the_web_middleware(staff_client):
    response = staff_client.get("/admin/")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response.wsgi_request.user.is_staff


def test_admin_post_without_csrf_token_is_refused(client, staff_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    response = strict.post("/admin/registry/mlmodel/add/", {"slug": "x"})
    assert response.status_code == 403


def test_predictions_are_counted_by_modelhub_metrics_not_generic_ones(api, iris):
    generic = sample("django_http_requests_total_by_method_total", method="POST")
    ours = sample("modelhub_predictions_total", model="iris", version="1", status="200")
    post(api, "/api/predict/iris/", {"data": IRIS_ROW})

    assert sample("django_http_requests_total_by_method_total", method="POST") == (
        generic
    )
    assert (
        sample("modelhub_predictions_total", model="iris", version="1", status="200")
        == ours + 1
    )
    api.get("/api/models/")
    assert sample("django_http_requests_total_by_method_total", method="GET") >= 1
