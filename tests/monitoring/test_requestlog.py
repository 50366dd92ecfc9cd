"""Every prediction request leaves exactly one row, whatever its outcome."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from monitoring import rollup
from monitoring.management.commands import prunelogs
from monitoring.models import LogGap, RequestLog, RequestStat, RollupMark
from monitoring.requestlog import writer

pytestmark = pytest.mark.django_db

ROW = [5.1, 3.5, 1.4, 0.2]


def post(client, path: str, body, content_type: str = "application/json", **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type=content_type, **extra)


@pytest.fixture
def iris(publish, iris_classifier):
    return publish(iris_classifier, "iris")


def test_mixed_outcomes_leave_exactly_one_row_each(client, iris):
    outcomes = [
        ("/api/predict/iris/", {"inputs": [ROW, ROW]}, 200, "", 1, 2),
        ("/api/predict/iris/", {"inputs": [[1, 2]]}, 400, "invalid_shape", 1, 0),
        ("/api/predict/iris/", "{oops", 400, "malformed_json", 1, 0),
        ("/api/predict/iris/v7/", {"inputs": [ROW]}, 404, "unknown_version", None, 0),
        ("/api/predict/ghost/", {"inputs": [ROW]}, 404, "unknown_model", None, 0),
        ("/api/predict/iris/", b"x", 415, "unsupported_media_type", 1, 0),
        ("/api/predict/iris", {"inputs": [ROW]}, 404, "not_found", None, 0),
    ]
    request_ids = []
    for index, (path, body, status, *_rest) in enumerate(outcomes):
        content_type = "text/plain" if body == b"x" else "application/json"
        response = post(client, path, body, content_type, HTTP_X_REQUEST_ID=f"r{index}")
        assert response.status_code == status, (path, response.content)
        request_ids.append(response["X-Request-ID"])
    rows = list(RequestLog.objects.order_by("id"))
    assert len(rows) == len(outcomes)
    for row, (path, _, status, code, version, n_rows), request_id in zip(
        rows, outcomes, request_ids, strict=True
    ):
        assert row.status == status
        assert row.error_code == code
        assert row.version == version
        assert row.rows == n_rows
        assert row.request_id == request_id
        assert row.slug == path.split("/")[3]
        assert row.latency_ms > 0
        assert row.payload is None
    assert rows[0].model_ms is not None and rows[0].model_ms <= rows[0].latency_ms


def test_get_on_predict_endpoint_is_logged_as_405(client, iris):
    assert client.get("/api/predict/iris/").status_code == 405
    row = RequestLog.objects.get()
    assert (row.status, row.error_code) == (405, "method_not_allowed")


def rollup_counts() -> dict[str, int]:
    return {
        resolution: sum(
            RequestStat.objects.filter(resolution=resolution).values_list(
                "count", flat=True
            )
        )
        for resolution in ("m", "h", "d")
    }


def test_rollup_counts_match_log_rows_at_every_resolution(client, iris):
    for _ in range(3):
        post(client, "/api/predict/iris/", {"inputs": [ROW]})
    post(client, "/api/predict/iris/", {"inputs": [[1]]})
    rollup.catch_up()
    for resolution in ("m", "h", "d"):
        stats = RequestStat.objects.filter(slug="iris", resolution=resolution)
        assert sum(s.count for s in stats) == 4
        assert sum(s.count for s in stats if s.error) == 1
        assert sum(s.rows for s in stats) == 3


def test_deleting_a_version_keeps_its_log_rows(
    client, publish, iris_classifier, django_capture_on_commit_callbacks
):
    from registry import actions

    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    post(client, "/api/predict/iris/v1/", {"inputs": [ROW]})
    with django_capture_on_commit_callbacks(execute=True):
        actions.delete_version(v1)
        actions.delete_models([v1.model])
    assert RequestLog.objects.get().version == 1


def test_payload_capture_is_off_by_default_and_capped_when_on(client, iris, settings):
    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert RequestLog.objects.get().payload is None
    settings.MODELHUB_LOG_PAYLOADS = True
    settings.MODELHUB_LOG_PAYLOAD_BYTES = 40
    body = json.dumps({"inputs": [ROW], "params": {"note": "a\u0000b" + "x" * 100}})
    post(client, "/api/predict/iris/", body)
    stored = RequestLog.objects.order_by("-id").first().payload
    assert stored.startswith('{"inputs"')
    assert stored.endswith("…")
    assert "\x00" not in stored
    post(client, "/api/predict/iris/", b'{"a": "\x00\xff"}')
    assert "\x00" not in RequestLog.objects.order_by("-id").first().payload


def rename_log_table(to_broken: bool) -> None:
    """A real database failure: the log table disappears, then comes back."""
    table = RequestLog._meta.db_table
    names = (table, f"{table}_away") if to_broken else (f"{table}_away", table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {connection.ops.quote_name(names[0])} "
            f"RENAME TO {connection.ops.quote_name(names[1])}"
        )


@pytest.mark.django_db(transaction=True)
def test_database_failure_buffers_rows_without_failing_predictions(
    client, iris, settings
):
    """In autocommit, as in a worker: the direct write path fails and recovers."""
    from monitoring import metrics

    settings.MODELHUB_LOG_BUFFER_SIZE = 3
    dropped_before = metrics.LOG_ROWS_DROPPED._value.get()
    rename_log_table(to_broken=True)
    try:
        for _ in range(5):
            response = post(client, "/api/predict/iris/", {"inputs": [ROW]})
            assert response.status_code == 200
        assert writer.pending() == 3
        assert metrics.LOG_ROWS_BUFFERED._value.get() == 3
    finally:
        rename_log_table(to_broken=False)
    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert writer.pending() == 0
    assert RequestLog.objects.count() == 4
    assert LogGap.objects.get().dropped == 2
    assert metrics.LOG_ROWS_DROPPED._value.get() - dropped_before == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["sync", "after_response"])
def test_both_log_modes_commit_the_row_before_the_next_request(
    client, iris, settings, mode
):
    settings.MODELHUB_LOG_MODE = mode
    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    post(client, "/api/predict/iris/", {"inputs": [[1]]})
    assert list(RequestLog.objects.order_by("id").values_list("status", flat=True)) == [
        200,
        400,
    ]


def test_a_request_commits_only_its_row_until_the_rollup_interval_has_passed(
    client, iris, settings
):
    settings.MODELHUB_LOG_ROLLUP_MS = 60_000
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    for _ in range(3):
        post(client, "/api/predict/iris/", {"inputs": [ROW]})
    # The worker's first write folds; the next two wait for the interval.
    assert RequestLog.objects.count() == 3
    assert rollup_counts() == {"m": 1, "h": 1, "d": 1}
    assert rollup.catch_up() == 2
    assert rollup_counts() == {"m": 3, "h": 3, "d": 3}


def test_the_worker_folds_new_rows_once_the_interval_has_passed(client, iris, settings):
    settings.MODELHUB_LOG_ROLLUP_MS = 0
    for _ in range(3):
        post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert rollup_counts() == {"m": 3, "h": 3, "d": 3}
    assert RollupMark.objects.get().last_id == RequestLog.objects.latest("id").id


def test_catch_up_counts_each_row_once(client, iris, settings):
    settings.MODELHUB_LOG_ROLLUP_MS = 60_000
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    for _ in range(4):
        post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert rollup.catch_up(limit=2) == 2
    assert rollup_counts()["m"] == 3
    assert rollup.catch_up_all() == 1
    assert rollup.catch_up() == 0
    assert rollup_counts() == {"m": 4, "h": 4, "d": 4}


def test_rollup_keeps_latency_buckets_errors_and_rows_per_version(
    client, iris, settings
):
    from monitoring.latency import bucket_of

    settings.MODELHUB_LOG_ROLLUP_MS = 60_000
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    post(client, "/api/predict/iris/", {"inputs": [ROW, ROW]})
    post(client, "/api/predict/iris/", {"inputs": [[1]]})
    post(client, "/api/predict/ghost/", {"inputs": [ROW]})
    RequestStat.objects.all().delete()
    RollupMark.objects.update(last_id=0)
    rollup.catch_up()
    expected = sorted(
        (
            rollup.UNKNOWN_MODELS if r.error_code == "unknown_model" else r.slug,
            r.version or 0,
            r.status >= 400,
            bucket_of(r.latency_ms),
            r.rows,
        )
        for r in RequestLog.objects.all()
    )
    minutes = RequestStat.objects.filter(resolution="m")
    assert sorted((s.slug, s.version, s.error, s.bucket, s.rows) for s in minutes) == (
        expected
    )
    assert all(s.count == 1 for s in minutes)


def test_stats_api_and_dashboard_count_rows_not_yet_folded(
    client, admin_client, iris, settings
):
    settings.MODELHUB_LOG_ROLLUP_MS = 60_000
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    for _ in range(3):
        post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert rollup_counts()["m"] == 1
    assert admin_client.get("/api/stats/").json()["totals"]["requests"] == 3
    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    assert admin_client.get("/dashboard/").status_code == 200
    assert rollup_counts() == {"m": 4, "h": 4, "d": 4}


def test_prunelogs_deletes_rows_older_than_the_window(client, iris):
    from datetime import timedelta

    from django.utils import timezone

    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    post(client, "/api/predict/iris/", {"inputs": [ROW]})
    old = timezone.now() - timedelta(days=40)
    RequestLog.objects.filter(pk=RequestLog.objects.first().pk).update(created_at=old)
    RequestStat.objects.update(start=old)
    out = StringIO()
    call_command("prunelogs", "--older-than", "30d", stdout=out)
    assert "deleted 1 request-log rows" in out.getvalue()
    assert RequestLog.objects.count() == 1
    assert not RequestStat.objects.exists()


def log_rows_aged(*days: float) -> None:
    """Log rows written in this order, each ``days`` old."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    RequestLog.objects.bulk_create(
        RequestLog(
            created_at=now - timedelta(days=age),
            slug="iris",
            version=1,
            status=200,
            latency_ms=1.0,
            request_id=f"aged-{i}",
        )
        for i, age in enumerate(days)
    )


def remaining_ages() -> list[int]:
    from django.utils import timezone

    now = timezone.now()
    return [(now - row.created_at).days for row in RequestLog.objects.order_by("pk")]


def test_prunelogs_deletes_old_rows_written_among_newer_ones(db, monkeypatch):
    monkeypatch.setattr(prunelogs, "_BATCH", 2)
    log_rows_aged(40, 1, 40, 2, 40)

    call_command("prunelogs", "--older-than", "30d", stdout=StringIO())

    assert remaining_ages() == [1, 2]


def test_prunelogs_reads_the_old_rows_and_one_batch_more(db, monkeypatch):
    """No index on time alone: the walk by id stops at a batch of new rows."""
    from datetime import timedelta

    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    monkeypatch.setattr(prunelogs, "_BATCH", 2)
    log_rows_aged(40, 40, 35, 3, 2, 1, 1, 1)

    with CaptureQueriesContext(connection) as queries:
        deleted = prunelogs.prune_log(timezone.now() - timedelta(days=30))

    reads = [q for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert deleted == 3
    assert len(reads) == 3  # [40, 40], [35, 3], then [2, 1]: nothing old, stop
    assert remaining_ages() == [3, 2, 1, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_upgrading_marks_rows_logged_before_as_already_folded():
    """Rows written before the rollup mark existed were rolled up as they were
    written; the upgrade must not count them again."""
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before, after = [("api", "0001_request_log")], [("api", "0002_rollupmark")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old_log = executor.loader.project_state(before).apps.get_model(
            "api", "RequestLog"
        )
        rows = [
            old_log.objects.create(
                created_at=timezone.now(), slug="iris", status=200, latency_ms=1.0
            )
            for _ in range(2)
        ]
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        assert RollupMark.objects.get().last_id == rows[-1].id
    finally:
        MigrationExecutor(connection).migrate(latest)  # for the tests after
    assert rollup.catch_up() == 0
