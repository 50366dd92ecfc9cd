"""Candidate and active side by side: /api/stats/ and the Prometheus metrics
count every request under the route that answered it, and shadow rows stay
out of what clients were served."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from monitoring.requestlog import LogEntry, writer
from registry import rollouts
from registry.models import MLModel
from registry.rollouts import PolicySpec
from tests.api.dataplane.test_predict import post
from tests.servers import IRIS_ROW


def stats(staff_client) -> dict:
    response = staff_client.get("/api/stats/", {"since": "1h"})
    assert response.status_code == 200, response.content
    return response.json()


def version_stats(document: dict, slug: str, number: int) -> dict:
    (model,) = [m for m in document["models"] if m["slug"] == slug]
    (found,) = [v for v in model["versions"] if v["version"] == number]
    return found


def counted(route: str, version: str) -> float:
    labels = {"model": "iris", "version": version, "route": route, "status": "200"}
    return REGISTRY.get_sample_value("modelhub_predictions_total", labels) or 0.0


def test_stats_and_metrics_count_candidate_and_active_apart(
    client, staff_client, iris_versions
):
    model = MLModel.objects.get(slug="iris")
    before = counted("candidate", "2"), counted("active", "1")
    rollouts.set_policy(
        model, PolicySpec(candidate=model.versions.get(number=2), weight=1.0)
    )
    for _ in range(6):
        assert post(client, "iris", {"data": IRIS_ROW}).status_code == 200
    rollouts.set_policy(
        model, PolicySpec(candidate=model.versions.get(number=2), weight=0.0)
    )
    for _ in range(4):
        assert post(client, "iris", {"data": IRIS_ROW}).status_code == 200

    document = stats(staff_client)
    two, one = version_stats(document, "iris", 2), version_stats(document, "iris", 1)
    assert two["requests"] == 6 and list(two["routes"]) == ["candidate"]
    assert two["routes"]["candidate"]["requests"] == 6
    assert one["routes"]["active"]["requests"] == 4
    assert two["routes"]["candidate"]["p95_ms"] is not None
    assert (counted("candidate", "2"), counted("active", "1")) == (
        before[0] + 6,
        before[1] + 4,
    )


@pytest.mark.django_db
def test_shadow_rows_are_a_route_of_their_own_outside_client_counts(staff_client):
    now = timezone.now()
    for route, status in [("active", 200), ("active", 200), ("shadow", 422)]:
        writer.submit(
            LogEntry(
                created_at=now - timedelta(seconds=5),
                slug="iris",
                version=1 if route == "active" else 2,
                status=status,
                error_code="" if status == 200 else "model_error",
                rows=1,
                latency_ms=3.0,
                model_ms=1.0,
                request_id="r1",
                route=route,
            ),
            now=True,
        )
    document = stats(staff_client)
    assert document["totals"]["requests"] == 2
    assert document["totals"]["errors"] == 0
    (model,) = document["models"]
    assert model["requests"] == 2
    shadow = version_stats(document, "iris", 2)
    assert shadow["requests"] == 0
    assert shadow["routes"]["shadow"]["requests"] == 1
    assert shadow["routes"]["shadow"]["errors"] == 1
