"""Refusals: each logged with its code and the key's name, counted per code in
the stats and the metrics, and requests for made-up slugs folded into one
bucket so they cannot grow the rollup."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from api.access import issuing
from monitoring import rollup
from monitoring.models import RequestLog, RequestStat
from monitoring.rollup import UNKNOWN_MODELS

pytestmark = pytest.mark.django_db

ROW = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}


def predict(client, slug: str, **headers: str):
    return client.post(
        f"/api/predict/{slug}/",
        json.dumps(ROW),
        content_type="application/json",
        **headers,
    )


@pytest.fixture
def anonymous() -> Client:
    """A client of its own: ``staff_client`` logs pytest-django's ``client``
    in, and a staff session may predict on private models."""
    return Client()


def refusals_counted(code: str) -> float:
    return REGISTRY.get_sample_value("modelhub_refusals_total", {"code": code}) or 0


def test_made_up_slugs_are_folded_into_one_rollup_bucket(client, staff_client):
    for index in range(40):
        assert predict(client, f"made-up-{index}").status_code == 404
    rollup.refresh()
    assert set(RequestStat.objects.values_list("slug", flat=True)) == {UNKNOWN_MODELS}
    # One row per period and latency bucket, whatever the number of slugs.
    keys = RequestStat.objects.values_list("resolution", "start", "error", "bucket")
    assert len(set(keys)) == RequestStat.objects.count()
    # The log keeps every slug as sent.
    assert RequestLog.objects.filter(slug__startswith="made-up-").count() == 40
    body = staff_client.get("/api/stats/").json()
    assert [m["slug"] for m in body["models"]] == [UNKNOWN_MODELS]
    assert body["models"][0]["requests"] == 40


def test_private_model_refused_is_counted_as_an_unknown_model(
    anonymous, staff_client, publish, iris_classifier
):
    publish(iris_classifier, "hush", private=True)
    before = refusals_counted("unknown_model")
    assert predict(anonymous, "hush").status_code == 404
    row = RequestLog.objects.get(slug="hush")
    assert (row.status, row.error_code, row.version) == (404, "unknown_model", None)
    assert refusals_counted("unknown_model") == before + 1
    body = staff_client.get("/api/stats/").json()
    assert "hush" not in [m["slug"] for m in body["models"]]
    assert body["totals"]["refusals"]["unknown_model"] == 1


def test_refusal_of_a_key_out_of_scope_is_logged_with_its_name(
    client, staff_client, publish, iris_classifier, django_user_model
):
    publish(iris_classifier, "iris")
    other = publish(iris_classifier, "other")
    owner = django_user_model.objects.create_user("robot")
    _, key = issuing.create_key(
        name="billing-batch", owner=owner, predict="listed", models=[other.model]
    )
    before = refusals_counted("forbidden")
    response = predict(client, "iris", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    row = RequestLog.objects.get(slug="iris")
    assert (row.error_code, row.key_name) == ("forbidden", "billing-batch")
    assert key not in json.dumps(list(RequestLog.objects.values()), default=str)
    assert refusals_counted("forbidden") == before + 1
    assert (
        predict(client, "other", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    )
    assert RequestLog.objects.get(slug="other").key_name == "billing-batch"
    totals = staff_client.get("/api/stats/").json()["totals"]
    assert totals["refusals"]["forbidden"] == 1


def test_missing_token_under_require_token_is_counted_as_not_authenticated(
    anonymous, staff_client, publish, iris_classifier, settings
):
    publish(iris_classifier, "iris")
    settings.MODELHUB_REQUIRE_TOKEN = True
    assert predict(anonymous, "iris").status_code == 401
    assert RequestLog.objects.get().error_code == "not_authenticated"
    totals = staff_client.get("/api/stats/").json()["totals"]
    assert totals["refusals"]["not_authenticated"] == 1
