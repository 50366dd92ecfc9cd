"""The dashboard's errors by code: each code's count, its latest error and a
link to those rows in the request-log admin, read on the errors index."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import error_codes, stats
from tests.monitoring.test_dashboard_rollouts import cells
from tests.monitoring.test_stats_focus import log

pytestmark = pytest.mark.django_db


@pytest.fixture
def errors():
    """iris v1: 3 missing_features (the latest a minute ago) and a
    model_error; iris v2: a model_error (500) two minutes ago; forest: an
    error without a code; ghost: unknown_model."""
    for minutes in (30, 20, 1):
        log(
            "iris",
            1,
            status=400,
            code="missing_features",
            ago=timedelta(minutes=minutes),
        )
    log("iris", 1, status=422, code="model_error", ago=timedelta(minutes=10))
    log("iris", 2, status=500, code="model_error", ago=timedelta(minutes=2))
    log("iris", 1)  # a success
    log("forest", 1, status=503, code="", ago=timedelta(minutes=3))
    log("ghost", None, status=404, code="unknown_model", ago=timedelta(minutes=4))
    log("iris", 1, status=400, code="missing_features", ago=timedelta(hours=3))


def errors_by_code(client, **params):
    response = client.get("/dashboard/", {"since": "1h", **params})
    assert response.status_code == 200
    html = response.content.decode()
    table = html[html.index('id="error-codes"') :]
    return response.context["error_codes"], table[: table.index("</div>")]


def test_errors_by_code_count_each_code_with_its_latest_error(staff_client, errors):
    now = timezone.now()
    found, table = errors_by_code(staff_client)
    assert [(e["code"], e["count"], e["status"]) for e in found] == [
        ("missing_features", 3, 400),
        ("model_error", 2, 500),
        ("", 1, 503),
        ("unknown_model", 1, 404),
    ]
    latest = found[1]
    assert latest["request_id"] == "iris-2-500-120.0"
    assert now - timedelta(minutes=3) < latest["latest_at"] < now
    row = cells(table, "error-code", code="model_error")
    assert row[:2] == ["model_error", "2"]
    assert row[2] == f"{timezone.localtime(latest['latest_at']):%Y-%m-%d %H:%M:%S}"
    assert row[3:] == ["500", "iris-2-500-120.0", "2 in the log"]
    assert "not its message" in table


def test_errors_by_code_follow_the_chosen_model_and_version(staff_client, errors):
    iris = errors_by_code(staff_client, model="iris", version="1")[0]
    assert [(e["code"], e["count"]) for e in iris] == [
        ("missing_features", 3),
        ("model_error", 1),
    ]
    unknown = errors_by_code(staff_client, model="(unknown)")[0]
    assert [(e["code"], e["count"]) for e in unknown] == [("unknown_model", 1)]
    assert "<code>—</code>" in errors_by_code(staff_client, model="forest")[1]


def test_no_errors_says_so(staff_client):
    log("iris", 1)
    found, table = errors_by_code(staff_client)
    assert found == []
    assert "No errors in this window." in table


def links(table: str) -> dict[str, str]:
    return {
        code: url.replace("&amp;", "&")
        for code, url in re.findall(
            r'data-code="([^"]*)">.*?<a href="([^"]+)" class="log-link"', table, re.S
        )
    }


def test_each_code_links_to_its_rows_in_the_request_log(
    staff_client, admin_client, errors
):
    url = links(errors_by_code(staff_client, model="iris", version="1")[1])[
        "missing_features"
    ]
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    assert path == "/admin/monitoring/requestlog/"
    assert query == {
        "error_code": ["missing_features"],
        "since": ["1h"],
        "model": ["iris"],
        "version": ["1"],
    }
    listed = admin_client.get(url)
    assert listed.status_code == 200
    rows = listed.context["cl"].result_list
    assert len(rows) == 3  # not the one three hours ago
    assert {(r.slug, r.version, r.error_code) for r in rows} == {
        ("iris", 1, "missing_features")
    }
    blank = links(errors_by_code(staff_client, model="forest")[1])[""]
    assert [r.status for r in admin_client.get(blank).context["cl"].result_list] == [
        503
    ]


def test_a_custom_ranges_link_carries_both_ends_with_their_offset(staff_client, errors):
    now = timezone.now()
    since = f"{now - timedelta(minutes=45):%Y-%m-%dT%H:%M}"
    until = f"{now - timedelta(minutes=15):%Y-%m-%dT%H:%M}"
    found, table = errors_by_code(staff_client, since=since, until=until)
    assert [(e["code"], e["count"]) for e in found] == [("missing_features", 2)]
    query = parse_qs(urlsplit(links(table)["missing_features"]).query)
    assert query["since"] == [since + ":00+00:00"]
    assert query["until"] == [until + ":00+00:00"]


def sqlite_plans(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    plans = []
    for query in captured.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
            plans.append(" | ".join(row[-1] for row in cursor.fetchall()))
    return plans


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plans")
@pytest.mark.parametrize(
    "focus",
    [{}, {"slug": "iris"}, {"slug": "iris", "version": 1}, {"slug": "(unknown)"}],
    ids=["all", "model", "version", "unknown"],
)
def test_errors_are_read_on_the_errors_index_whatever_the_focus(errors, focus):
    """Not on the (slug, version, time) index, where SQLite (no ANALYZE)
    would read every row of a model, of any time, to find its errors."""
    now = timezone.now()
    since = now - timedelta(hours=1)
    plans = sqlite_plans(lambda: error_codes.by_code(since, now, **focus))
    plans += sqlite_plans(lambda: stats.recent_errors(since, until=now, **focus))
    plans += sqlite_plans(lambda: stats.refusals(since, now, **focus))
    assert len(plans) == 4
    for plan in plans:
        assert "USING INDEX requestlog_errors_time (created_at" in plan, plan
        assert "requestlog_slug_time" not in plan and "SCAN" not in plan, plan
