"""Upgrading a database whose request log still belongs to the api app.

The models moved from api to monitoring with state-only migrations: the
tables (api_requestlog, api_requeststat, api_rollupmark, api_loggap) keep
their names, so every row logged before the upgrade is still there, read by
the new models, and counted by the stats and the dashboard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from monitoring import rollup, stats
from monitoring.latency import bucket_of
from monitoring.models import LogGap, RequestLog, RequestStat, RollupMark
from monitoring.requestlog import LogEntry, writer
from monitoring.rollup import UNKNOWN_MODELS

# The migration state of the last release with the log in the api app.
API_APP_LOG = ("api", "0003_requestlog_without_time_index")
TABLES = ("api_requestlog", "api_requeststat", "api_rollupmark", "api_loggap")
LOG_FIELDS = (
    "id",
    "created_at",
    "slug",
    "version",
    "status",
    "error_code",
    "rows",
    "latency_ms",
    "model_ms",
    "request_id",
    "client",
    "payload",
)


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)  # reads what is applied now
    executor.migrate(targets)
    return MigrationExecutor(connection)


def latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        described = connection.introspection.get_table_description(cursor, table)
    return [column.name for column in described]


def dump(table: str, names: list[str]) -> list[tuple[Any, ...]]:
    """Every row of a table as the database holds it, in id order (the columns
    it had before: later migrations may add some)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(quote, names))} FROM {quote(table)} "
            f"ORDER BY {quote('id')}"
        )
        return cursor.fetchall()


@pytest.fixture
def api_app_database(transactional_db) -> Iterator[MigrationExecutor]:
    """The test database at the api app's last log migration, with monitoring
    not yet installed; brought back to the latest migrations afterwards."""
    registry_latest = [n for n in latest() if n[0] == "registry"]
    try:
        yield migrate([("monitoring", None), API_APP_LOG, *registry_latest])
    finally:
        migrate(latest())


def old_log_rows(now: datetime) -> list[dict[str, Any]]:
    """Three hours of traffic: two versions of iris, errors, an unknown slug."""
    rows = []
    for i in range(30):
        row = {
            "created_at": now - timedelta(minutes=7 * i + 1, microseconds=i),
            "slug": "iris",
            "version": 1 + i % 2,
            "status": 200,
            "error_code": "",
            "rows": 1 + i % 3,
            "latency_ms": 0.5 + i * 3.25,
            "model_ms": 0.25 + i,
            "request_id": f"req-{i}",
            "client": "10.0.0.7" if i % 4 == 0 else "",
            "payload": '{"inputs": [[1, 2, 3, 4]]}' if i % 5 == 0 else None,
        }
        if i % 6 == 0:
            row |= {"status": 422, "error_code": "model_error", "rows": 0}
        if i % 10 == 9:
            row |= {"slug": "ghost", "version": None, "status": 404, "rows": 0}
            row |= {"error_code": "unknown_model", "model_ms": None}
        rows.append(row)
    return rows


def rollup_rows(log: list[Any]) -> list[dict[str, Any]]:
    """The minute, hour and day rows the api app's rollup kept for ``log``."""
    totals: dict[tuple[Any, ...], list[float]] = {}
    for row in log:
        minute = row.created_at.replace(second=0, microsecond=0)
        hour = minute.replace(minute=0)
        for resolution, start in (
            ("m", minute),
            ("h", hour),
            ("d", hour.replace(hour=0)),
        ):
            key = (
                resolution,
                start,
                row.slug,
                row.version or 0,
                row.status >= 400,
                bucket_of(row.latency_ms),
            )
            total = totals.setdefault(key, [0, 0, 0.0])
            total[0] += 1
            total[1] += row.rows
            total[2] += row.latency_ms
    fields = ("resolution", "start", "slug", "version", "error", "bucket")
    return [
        {
            **dict(zip(fields, key, strict=True)),
            "count": count,
            "rows": rows,
            "latency_sum_ms": latency,
        }
        for key, (count, rows, latency) in totals.items()
    ]


def test_moving_the_log_to_monitoring_keeps_every_row_and_count(
    api_app_database, client, django_user_model
):
    applied = api_app_database.loader.applied_migrations
    assert API_APP_LOG in applied and ("monitoring", "0001_initial") not in applied
    old = api_app_database.loader.project_state([API_APP_LOG]).apps
    old_log = old.get_model("api", "RequestLog")
    now = timezone.now()
    log = [old_log.objects.create(**row) for row in old_log_rows(now)]
    # The api app's rollup had folded the first 20 rows when it was upgraded.
    folded = log[:20]
    for row in rollup_rows(folded):
        old.get_model("api", "RequestStat").objects.create(**row)
    old.get_model("api", "RollupMark").objects.update_or_create(
        pk=1, defaults={"last_id": folded[-1].pk}
    )
    old.get_model("api", "LogGap").objects.create(
        dropped=4, since=now - timedelta(hours=2)
    )
    names = {table: columns(table) for table in TABLES}
    before = {table: dump(table, names[table]) for table in TABLES}
    before_log = list(old_log.objects.order_by("pk").values_list(*LOG_FIELDS))

    migrate(latest())

    assert {table: dump(table, names[table]) for table in TABLES} == before
    assert list(RequestLog.objects.order_by("pk").values_list(*LOG_FIELDS)) == (
        before_log
    )
    assert RollupMark.objects.get().last_id == folded[-1].pk
    assert RequestStat.objects.count() == len(before["api_requeststat"])
    assert LogGap.objects.get().dropped == 4

    # The stats fold the 10 rows the api app had not folded, and count all 30.
    rollup.refresh()
    summary = stats.summary(now - timedelta(hours=24), timezone.now())
    errors = sum(row.status >= 400 for row in log)
    expected_totals = {
        "requests": 30,
        "errors": errors,
        "rows": sum(row.rows for row in log),
        "dropped_log_rows": 4,
    }
    assert {k: summary["totals"][k] for k in expected_totals} == expected_totals
    # Rows folded before the upgrade keep the slug they were folded under;
    # an unknown model's rows folded after it count under one name.
    per_slug = Counter(
        UNKNOWN_MODELS
        if row.error_code == "unknown_model" and row.pk > folded[-1].pk
        else row.slug
        for row in log
    )
    assert {m["slug"]: m["requests"] for m in summary["models"]} == per_slug

    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    response = client.get("/dashboard/", {"since": "24h"})
    assert response.status_code == 200
    totals = response.context["totals"]
    assert (totals["requests"], totals["errors"], totals["dropped_log_rows"]) == (
        30,
        errors,
        4,
    )
    assert {m["slug"]: m["requests"] for m in response.context["models"]} == per_slug

    # A request logged after the upgrade takes the next id in the same table.
    writer.submit(
        LogEntry(
            created_at=timezone.now(),
            slug="iris",
            version=2,
            status=200,
            error_code="",
            rows=1,
            latency_ms=1.0,
            model_ms=0.5,
            request_id="after-upgrade",
        )
    )
    newest = RequestLog.objects.latest("pk")
    assert (newest.request_id, newest.pk > log[-1].pk) == ("after-upgrade", True)
    assert RequestLog.objects.count() == 31
