"""The batch a request rode in: its log row, the rollup, the stats API, the
dashboard and the modelhub_batch_size histogram."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import RequestFactory
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring import metrics, record, rollup, stats
from monitoring.middleware import RequestLogMiddleware
from monitoring.models import RequestLog, RequestStat
from monitoring.requestlog import LogEntry, writer

pytestmark = pytest.mark.django_db

ROW = [5.1, 3.5, 1.4, 0.2]


def logged(slug: str, batch_size: int | None, *, status: int = 200, ago: int = 1):
    writer.submit(
        LogEntry(
            created_at=timezone.now() - timedelta(minutes=ago),
            slug=slug,
            version=1,
            status=status,
            error_code="" if status < 400 else "model_error",
            rows=1,
            latency_ms=2.0,
            model_ms=1.0,
            request_id=f"{slug}-{batch_size}",
            batch_size=batch_size,
        )
    )


@pytest.fixture
def traffic():
    """forest: batches of 8, 8 and 2 plus one request alone; iris: none batched."""
    for size in (8, 8, 2, None):
        logged("forest", size)
    logged("forest", None, status=422)
    for _ in range(3):
        logged("iris", None)


def test_a_request_predicted_unbatched_logs_no_batch_size(
    client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    response = client.post(
        "/api/predict/iris/", {"inputs": [ROW]}, content_type="application/json"
    )
    assert response.status_code == 200
    assert RequestLog.objects.get().batch_size is None


def test_the_batch_size_noted_on_a_requests_record_reaches_its_log_row(settings):
    """The batcher notes the size on the request's record; the middleware logs it."""
    settings.MODELHUB_LOG_MODE = "sync"

    def batched_view(request: HttpRequest) -> JsonResponse:
        noted = record.of(request)
        noted.version, noted.rows, noted.batch_size = 1, 1, 6
        return JsonResponse({"predictions": [0]})

    middleware = RequestLogMiddleware(batched_view)
    middleware(RequestFactory().post("/api/predict/forest/", {}))
    row = RequestLog.objects.get()
    assert (row.slug, row.version, row.batch_size) == ("forest", 1, 6)


def test_the_rollup_counts_batched_requests_and_sums_their_batch_sizes(traffic):
    rollup.refresh()
    minutes = RequestStat.objects.filter(resolution="m", slug="forest")
    assert sum(s.count for s in minutes) == 5
    assert sum(s.batched for s in minutes) == 3
    assert sum(s.batch_size_sum for s in minutes) == 18
    days = RequestStat.objects.filter(resolution="d")
    assert sum(s.batched for s in days) == 3
    assert sum(s.batch_size_sum for s in days) == 18


def test_stats_api_gives_the_mean_batch_size_of_batched_requests_only(
    staff_client, traffic
):
    body = staff_client.get("/api/stats/", {"since": "1h"}).json()
    models = {m["slug"]: m for m in body["models"]}
    assert models["forest"]["mean_batch_size"] == 6.0  # (8 + 8 + 2) / 3
    assert models["forest"]["versions"][0]["mean_batch_size"] == 6.0
    assert models["iris"]["mean_batch_size"] is None
    assert body["totals"]["mean_batch_size"] == 6.0


def test_stats_summary_reads_the_rollup_in_as_many_queries_with_batches(
    traffic, django_assert_num_queries
):
    """Batching adds two sums to the rollup query, not a query."""
    rollup.refresh()
    now = timezone.now()
    # the rollup, refusals, gaps, quality, drift (counts, references, baselines
    # being collected), every version's last request
    with django_assert_num_queries(8):
        summary = stats.summary(now - timedelta(hours=1), now)
    assert [m["mean_batch_size"] for m in summary["models"]] == [6.0, None]


def test_dashboard_shows_the_mean_batch_size_or_a_dash(staff_client, traffic):
    page = staff_client.get("/dashboard/", {"since": "1h"}).content.decode()
    assert "Mean batch" in page
    forest = page[page.index('data-slug="forest"') :]
    iris = page[page.index('data-slug="iris"') :]
    assert forest.split("</tr>")[0].count('<td class="num batch">6.0</td>') == 1
    assert iris.split("</tr>")[0].count('<td class="num batch">—</td>') == 1


def batch_histogram(client, model: str) -> dict[str, float]:
    """modelhub_batch_size's samples for ``model``, from GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        if family.name != "modelhub_batch_size":
            continue
        for sample in family.samples:
            if sample.labels.get("model") == model:
                name = sample.name.removeprefix("modelhub_batch_size")
                found[name + sample.labels.get("le", "")] = sample.value
    return found


def test_each_batch_is_observed_once_in_the_batch_size_histogram(client):
    before = batch_histogram(client, "hist-forest")
    for size in (1, 3, 8, 200):
        metrics.observe_batch("hist-forest", False, size)
    after = batch_histogram(client, "hist-forest")

    def grew(key: str) -> float:
        return after[key] - before.get(key, 0.0)

    assert grew("_count") == 4
    assert grew("_sum") == 212
    assert [grew(f"_bucket{le}") for le in ("1.0", "2.0", "4.0", "8.0", "16.0")] == [
        1,
        1,
        2,
        3,
        3,
    ]
    assert grew("_bucket256.0") == 4 and grew("_bucket1024.0") == 4


def test_a_private_models_batches_are_labelled_by_its_opaque_id(client, settings):
    settings.MODELHUB_METRICS_TOKEN = ""
    metrics.observe_batch("hist-secret", True, 4)
    assert batch_histogram(client, "hist-secret") == {}
    opaque = metrics.opaque_label("hist-secret")
    assert batch_histogram(client, opaque)["_count"] >= 1
    assert b"hist-secret" not in client.get("/metrics").content


def test_the_batch_size_column_holds_any_batch_the_settings_allow():
    logged("wide", 1024)
    assert RequestLog.objects.get().batch_size == 1024
