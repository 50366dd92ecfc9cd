"""Try it: the page posts to /api/predict/ with the staff member's session.

The prediction is a real one (logged like any other); the session counts only
with its CSRF token, and a prediction without a session cookie costs what it
did before sessions were read there.
"""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from monitoring.models import RequestLog
from tests.servers import IRIS_ROW

pytestmark = pytest.mark.django_db


@pytest.fixture
def vault(publish, iris_classifier):
    """The iris classifier as a private model."""
    return publish(iris_classifier, "vault", private=True)


def signed_in(user) -> tuple[Client, str]:
    """A browser-like client (CSRF enforced) signed in, and its CSRF token
    as the model page gives it."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/models/vault/").status_code == 200
    return browser, browser.cookies["csrftoken"].value


def try_it(client: Client, slug: str, body, **headers):
    return client.post(
        f"/api/predict/{slug}/",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def test_try_it_predicts_a_private_model_as_the_signed_in_staff_member(
    vault, staff_user
):
    browser, token = signed_in(staff_user)
    response = try_it(browser, "vault", {"data": IRIS_ROW}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == ["virginica"]
    assert response["X-Model-Version"] == "1"
    logged = RequestLog.objects.get(slug="vault")
    assert (logged.status, logged.version) == (200, 1)
    assert logged.request_id == response["X-Request-ID"]


def test_try_it_without_the_csrf_token_is_refused(vault, staff_user):
    browser, _ = signed_in(staff_user)
    response = try_it(browser, "vault", {"data": IRIS_ROW})
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "CSRF" in body["detail"]


def test_a_session_that_may_not_see_the_model_gets_its_404(vault, django_user_model):
    user = django_user_model.objects.create_user("ana", password="ana-pass-123")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    token = browser.get("/admin/login/").cookies["csrftoken"].value
    response = try_it(browser, "vault", {"data": IRIS_ROW}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"


def test_an_anonymous_prediction_costs_no_query_for_sessions(client, iris, settings):
    settings.MODELHUB_LOG_ROLLUP_MS = 60_000  # no fold due during the request
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    body = {"data": IRIS_ROW}
    assert try_it(client, "iris", body).status_code == 200  # warm
    for cookies in ({}, {"csrftoken": "x" * 32}):
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies[name] = value
        with CaptureQueriesContext(connection) as queries:
            response = try_it(client, "iris", body)
        assert response.status_code == 200
        statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
        # As test_warm_predict_costs_one_query_and_no_reload: resolve, log.
        assert len(statements) == 2, statements
        assert not [sql for sql in statements if "session" in sql]


def test_a_session_that_cannot_be_read_leaves_the_caller_anonymous(
    client, staff_user, iris, vault
):
    """The database failing under the session lookup costs the caller their
    session, not the prediction: a public model still answers."""

    def sessions_unavailable(execute, sql, params, many, context):
        if "django_session" in sql:
            raise OperationalError("the database is unavailable")
        return execute(sql, params, many, context)

    client.force_login(staff_user)
    with connection.execute_wrapper(sessions_unavailable):
        public = try_it(client, "iris", {"data": IRIS_ROW})
        private = try_it(client, "vault", {"data": IRIS_ROW})
    assert public.status_code == 200
    assert public.json()["predictions"] == ["virginica"]
    assert private.status_code == 404
    assert private.json()["code"] == "unknown_model"
