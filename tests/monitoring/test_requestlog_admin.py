"""The request log in the admin: read-only, staff only, filtered on indexes,
searched by exact request id, and paged without ever counting the log."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import log_window
from monitoring.models import Feedback, RequestLog
from registry.models import MLModel

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:monitoring_requestlog_changelist")
PER_PAGE = 100  # the admin's list_per_page


def detail_url(row: RequestLog) -> str:
    return reverse("admin:monitoring_requestlog_change", args=[row.pk])


def log_rows(*rows: dict[str, Any], start: datetime | None = None) -> list[RequestLog]:
    """Log rows in id order, one second apart from ``start`` unless a row
    says its own ``created_at``."""
    start = start or timezone.now() - timedelta(hours=1)
    defaults = {
        "slug": "iris",
        "version": 1,
        "status": 200,
        "error_code": "",
        "rows": 1,
        "latency_ms": 2.5,
        "route": "active",
    }
    made = RequestLog.objects.bulk_create(
        RequestLog(
            **{
                "created_at": start + timedelta(seconds=i),
                "request_id": f"req-{i:06d}",
                **defaults,
                **row,
            }
        )
        for i, row in enumerate(rows)
    )
    return list(RequestLog.objects.filter(pk__in=[r.pk for r in made]).order_by("pk"))


def listed(client, params: dict[str, str] | None = None) -> list[str]:
    """The request ids on the list's page, top to bottom."""
    response = client.get(LIST_URL, params or {})
    assert response.status_code == 200, response
    return [row.request_id for row in response.context["cl"].result_list]


def ids(rows: list[RequestLog]) -> list[str]:
    """Request ids as the list shows them: newest id first."""
    return [row.request_id for row in sorted(rows, key=lambda r: -r.pk)]


@pytest.fixture
def log_viewer(db):
    """Staff allowed to view the log, and nothing else."""
    user = get_user_model().objects.create_user(
        "log-viewer", password="viewer-pass-123", is_staff=True
    )
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="monitoring", codename="view_requestlog"
        )
    )
    return user


@pytest.fixture
def viewer_client(client, log_viewer):
    client.force_login(log_viewer)
    return client


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_superuser("root", password="root-pass-123")
    )
    return client


# --- never counting -----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"p": "2"},
        {"model": "iris"},
        {"model": "iris", "version": "1"},
        {"status": "errors"},
        {"error_code": "missing_features"},
        {"route": "shadow"},
        {"since": "24h"},
        {"q": "req-000003"},
        {"model": "iris", "status": "5xx", "since": "7d", "until": "1m"},
    ],
    ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()) or "none",
)
def test_the_log_changelist_never_counts_the_table(viewer_client, params):
    log_rows(
        *({"status": 400, "error_code": "missing_features"} for _ in range(30)),
        *({} for _ in range(PER_PAGE * 2)),
    )
    with CaptureQueriesContext(connection) as queries:
        response = viewer_client.get(LIST_URL, params)
        response.render()
    assert response.status_code == 200
    counting = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counting == []


def test_the_log_changelist_lists_the_newest_rows_first_by_id(viewer_client):
    rows = log_rows({}, {}, {})
    # Written last, stamped earliest: the id order is the list's order.
    late = log_rows({"created_at": timezone.now() - timedelta(days=3)})
    assert listed(viewer_client) == ids(rows + late)


def test_the_log_changelist_shows_a_rows_columns(viewer_client):
    at = datetime(2026, 11, 30, 9, 15, 42, tzinfo=UTC)
    log_rows(
        {
            "created_at": at,
            "slug": "churn",
            "version": 4,
            "route": "candidate",
            "status": 422,
            "error_code": "model_error",
            "rows": 7,
            "latency_ms": 12.345,
            "request_id": "req-shown",
        },
        {"version": None, "request_id": "req-unversioned"},
    )
    page = viewer_client.get(LIST_URL).text
    cells = re.findall(r'<t[dh] class="field-(\w+)[^"]*">(?:<a [^>]*>)?([^<]*)<', page)
    newer, older = cells[:9], cells[9:]  # newest id first
    shown = dict(older)
    assert shown == {
        "time": "2026-11-30 09:15:42",
        "model_slug": "churn",
        "version_shown": "v4",
        "route": "candidate",
        "status": "422",
        "error_code": "model_error",
        "rows": "7",
        "latency": "12.3 ms",
        "request_id": "req-shown",
    }
    assert ("version_shown", "—") in newer


def test_the_log_changelist_ignores_a_requested_sort(viewer_client):
    rows = log_rows({"latency_ms": 9.0}, {"latency_ms": 1.0}, {"latency_ms": 5.0})
    assert listed(viewer_client, {"o": "8"}) == ids(rows)


def test_the_log_changelist_pages_by_newer_and_older_links(viewer_client):
    rows = log_rows(*({} for _ in range(PER_PAGE + 20)))
    newest_first = ids(rows)

    first = viewer_client.get(LIST_URL)
    assert [r.request_id for r in first.context["cl"].result_list] == newest_first[
        :PER_PAGE
    ]
    assert "older ›" in first.text and "‹ newer" not in first.text

    second = viewer_client.get(LIST_URL, {"p": "2"})
    assert [r.request_id for r in second.context["cl"].result_list] == newest_first[
        PER_PAGE:
    ]
    assert "‹ newer" in second.text and "older ›" not in second.text


def test_a_log_page_past_the_last_redirects_as_the_admin_does(viewer_client):
    log_rows({}, {})
    response = viewer_client.get(LIST_URL, {"p": "3"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- filters -------------------------------------------------------------------


def test_the_model_filter_keeps_only_that_models_rows(viewer_client):
    iris = log_rows({"slug": "iris"}, {"slug": "churn"}, {"slug": "iris"})
    assert listed(viewer_client, {"model": "iris"}) == ids(
        [r for r in iris if r.slug == "iris"]
    )


def test_the_model_filter_offers_the_registry_slugs_not_the_logged_ones(
    viewer_client,
):
    MLModel.objects.create(slug="churn", name="Churn")
    log_rows({"slug": "typo-slug"})
    response = viewer_client.get(LIST_URL)
    model_filter = next(
        spec for spec in response.context["cl"].filter_specs if spec.title == "model"
    )
    assert model_filter.lookup_choices == [("churn", "churn")]


def test_the_version_filter_offers_the_chosen_models_versions(viewer_client, iris):
    response = viewer_client.get(LIST_URL, {"model": "iris"})
    version_filter = next(
        spec for spec in response.context["cl"].filter_specs if spec.title == "version"
    )
    assert version_filter.lookup_choices == [("1", "v1"), ("none", "none resolved")]


def test_the_version_filter_keeps_only_that_version(viewer_client):
    rows = log_rows({"version": 1}, {"version": 2}, {"version": None}, {"version": 2})
    assert listed(viewer_client, {"model": "iris", "version": "2"}) == ids(
        [r for r in rows if r.version == 2]
    )
    assert listed(viewer_client, {"model": "iris", "version": "none"}) == ids(
        [r for r in rows if r.version is None]
    )


@pytest.mark.parametrize(
    ("status_class", "kept"),
    [
        ("ok", {200}),
        ("errors", {400, 404, 422, 503, 504}),
        ("4xx", {400, 404, 422}),
        ("5xx", {503, 504}),
    ],
)
def test_the_status_filter_keeps_that_class_of_status(
    viewer_client, status_class, kept
):
    rows = log_rows(*({"status": s} for s in (200, 400, 404, 422, 503, 504, 200)))
    assert listed(viewer_client, {"status": status_class}) == ids(
        [r for r in rows if r.status in kept]
    )


def test_the_error_code_filter_keeps_only_that_code(viewer_client):
    rows = log_rows(
        {"status": 400, "error_code": "missing_features"},
        {"status": 400, "error_code": "wrong_type"},
        {"status": 422, "error_code": "model_error"},
        {"status": 400, "error_code": "missing_features"},
    )
    assert listed(viewer_client, {"error_code": "missing_features"}) == ids(
        [r for r in rows if r.error_code == "missing_features"]
    )


def test_the_error_code_filter_offers_the_codes_of_recent_errors(viewer_client):
    log_rows(
        {"status": 400, "error_code": "wrong_type"},
        {"status": 504, "error_code": "prediction_timeout"},
        {"status": 200},
    )
    response = viewer_client.get(LIST_URL)
    code_filter = next(
        spec
        for spec in response.context["cl"].filter_specs
        if spec.title == "error code"
    )
    assert code_filter.lookup_choices == [
        ("prediction_timeout", "prediction_timeout"),
        ("wrong_type", "wrong_type"),
    ]


@pytest.mark.parametrize("route", ["active", "candidate", "pinned", "alias", "shadow"])
def test_the_route_filter_keeps_only_that_route(viewer_client, route):
    rows = log_rows(
        *(
            {"route": r}
            for r in ("active", "candidate", "pinned", "alias", "shadow", "active")
        )
    )
    assert listed(viewer_client, {"route": route}) == ids(
        [r for r in rows if r.route == route]
    )


@pytest.mark.parametrize(
    "params",
    [{"status": "teapot"}, {"route": "sideways"}, {"version": "two"}],
    ids=lambda params: next(iter(params)),
)
def test_an_unknown_filter_value_redirects_as_the_admin_does(viewer_client, params):
    response = viewer_client.get(LIST_URL, params)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- time ---------------------------------------------------------------------


def test_the_time_filter_keeps_rows_of_a_relative_window(viewer_client):
    now = timezone.now()
    rows = log_rows(
        *(
            {"created_at": now - age}
            for age in (
                timedelta(days=2),
                timedelta(hours=3),
                timedelta(minutes=50),
                timedelta(minutes=10),
            )
        )
    )
    assert listed(viewer_client, {"since": "1h"}) == ids(rows[2:])
    assert listed(viewer_client, {"since": "15m"}) == ids(rows[3:])
    assert listed(viewer_client, {"since": "24h"}) == ids(rows[1:])
    assert listed(viewer_client, {"since": "7d"}) == ids(rows)


def test_the_time_filter_keeps_since_and_drops_until_at_the_boundaries(
    viewer_client,
):
    since = (timezone.now() - timedelta(days=2)).replace(microsecond=0)
    until = since + timedelta(hours=1)
    tick = timedelta(microseconds=1)
    rows = log_rows(
        *(
            {"created_at": moment}
            for moment in (since - tick, since, until - tick, until)
        )
    )
    window = {"since": since.isoformat(), "until": until.isoformat()}
    assert listed(viewer_client, window) == ids(rows[1:3])


def written_late(edge: datetime, *offsets: float) -> list[RequestLog]:
    """Rows with ids 1, 2, ... logged ``offsets`` seconds from ``edge``, in
    that order: a row whose time is earlier than its predecessor's was
    written late."""
    return log_rows(
        *(
            {"pk": pk, "created_at": edge + timedelta(seconds=offset)}
            for pk, offset in enumerate(offsets, start=1)
        )
    )


def test_the_time_filter_keeps_a_row_written_late_after_since(viewer_client):
    """Without the slack, the id search lands on the late row (id 4) and
    leaves out the row before it (id 3), logged after ``since``."""
    since = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    rows = written_late(since, -3600, -1800, 1, -1, 300, 301, 302, 303)
    assert listed(viewer_client, {"since": since.isoformat()}) == ids(
        [rows[2], *rows[4:]]
    )


def test_the_time_filter_keeps_a_row_written_late_before_until(viewer_client):
    """Without the slack, the id search stops at the row logged just after
    ``until`` (id 3) and leaves out the late row after it (id 4)."""
    until = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    rows = written_late(until, -1800, -300, 1, -1, *range(300, 308))
    assert listed(viewer_client, {"until": until.isoformat()}) == ids(
        [rows[0], rows[1], rows[3]]
    )


def test_the_time_filter_bounds_the_page_query_by_id(viewer_client):
    log_rows(*({} for _ in range(5)))
    with CaptureQueriesContext(connection) as queries:
        listed(viewer_client, {"since": "24h"})
    page = [
        q["sql"] for q in queries if "ORDER BY" in q["sql"] and "LIMIT 101" in q["sql"]
    ]
    assert len(page) == 1
    assert re.search(r'"api_requestlog"\."id" >= \d+', page[0])


@pytest.mark.parametrize("since", ["yesterday", "2999-01-01T00:00:00Z"])
def test_an_invalid_time_is_refused_with_its_reason(viewer_client, since):
    response = viewer_client.get(LIST_URL, {"since": since}, follow=True)
    assert response.redirect_chain[0][1] == 302
    messages = [str(m) for m in response.context["messages"]]
    assert any("'since'" in m for m in messages), messages


def test_first_id_from_splits_the_log_at_a_moment_despite_gaps_in_ids():
    start = timezone.now() - timedelta(hours=1)
    rows = log_rows(*({} for _ in range(10)), start=start)
    RequestLog.objects.filter(pk__in=[rows[4].pk, rows[5].pk]).delete()
    kept = rows[:4] + rows[6:]
    for second in range(-1, 12):
        moment = start + timedelta(seconds=second)
        split = log_window.first_id_from(moment)
        assert all(r.created_at < moment for r in kept if r.pk < split), second
        assert all(r.created_at >= moment for r in kept if r.pk >= split), second
    assert log_window.first_id_from(start + timedelta(days=1)) == rows[-1].pk + 1


def test_first_id_from_an_empty_log_is_zero():
    assert log_window.first_id_from(timezone.now()) == 0


def test_first_id_from_looks_up_about_twenty_rows_for_a_million_ids():
    start = timezone.now() - timedelta(days=7)
    RequestLog.objects.bulk_create(
        RequestLog(
            pk=pk,
            created_at=start + timedelta(seconds=pk / 2),
            slug="iris",
            status=200,
            latency_ms=1.0,
            request_id=f"sparse-{pk}",
        )
        for pk in range(1, 1_000_001, 50_000)
    )
    with CaptureQueriesContext(connection) as queries:
        found = log_window.first_id_from(start + timedelta(seconds=300_000))
    assert found in range(550_001, 600_002)
    assert len(queries) <= 22


def sqlite_plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return " | ".join(row[-1] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plans")
@pytest.mark.parametrize(
    ("params", "served_by"),
    [
        ({}, "SCAN api_requestlog"),  # the primary key's own order
        ({"since": "24h"}, "USING INTEGER PRIMARY KEY (rowid>?)"),
        ({"q": "req-000001"}, "INDEX requestlog_request_id (request_id=?)"),
        ({"model": "iris"}, "USING COVERING INDEX requestlog_slug_time (slug=?)"),
        (
            {"model": "iris", "version": "1", "since": "1h"},
            "USING COVERING INDEX requestlog_slug_time (slug=? AND version=? AND "
            "created_at>?)",
        ),
    ],
    ids=["none", "time", "search", "model", "model-version-time"],
)
def test_the_log_page_finds_its_ids_on_an_index_then_its_rows_by_id(
    viewer_client, params, served_by
):
    log_rows(*({} for _ in range(5)))
    with CaptureQueriesContext(connection) as queries:
        listed(viewer_client, params)
    page = [q["sql"] for q in queries if "LIMIT 101" in q["sql"]]
    assert len(page) == 1
    assert served_by in sqlite_plan(page[0])
    (rows,) = [q["sql"] for q in queries if re.search(r'"id" IN \(', q["sql"])]
    assert (
        sqlite_plan(rows) == "SEARCH api_requestlog USING INTEGER PRIMARY KEY (rowid=?)"
    )


# --- search ---------------------------------------------------------------------


def test_search_finds_the_row_of_that_exact_request_id(viewer_client):
    rows = log_rows(
        {"request_id": "abc-123"}, {"request_id": "abc-1234"}, {"request_id": "x"}
    )
    assert listed(viewer_client, {"q": "abc-123"}) == ids(rows[:1])
    assert listed(viewer_client, {"q": "  abc-123 "}) == ids(rows[:1])
    assert listed(viewer_client, {"q": "abc"}) == []
    assert "1 result (" in viewer_client.get(LIST_URL, {"q": "abc-123"}).text


def test_search_says_more_matched_than_a_page_shows(viewer_client):
    log_rows(*({"request_id": "retried"} for _ in range(PER_PAGE + 1)))
    page = viewer_client.get(LIST_URL, {"q": "retried"}).text
    assert f"more than {PER_PAGE} results (" in page


def test_search_finds_a_shadow_row_beside_the_served_one(viewer_client):
    rows = log_rows(
        {"request_id": "same"}, {"request_id": "same", "route": "shadow"}, {}
    )
    assert listed(viewer_client, {"q": "same"}) == ids(rows[:2])


# --- who may do what ---------------------------------------------------------


def test_a_non_staff_user_is_sent_to_the_admin_login(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_view_permission_is_refused(staff_client):
    (row,) = log_rows({})
    assert staff_client.get(LIST_URL).status_code == 403
    assert staff_client.get(detail_url(row)).status_code == 403


def test_nobody_may_add_change_or_delete_log_rows(superuser_client):
    (row,) = log_rows({})
    add = reverse("admin:monitoring_requestlog_add")
    delete = reverse("admin:monitoring_requestlog_delete", args=[row.pk])
    assert superuser_client.get(add).status_code == 403
    assert superuser_client.get(delete).status_code == 403
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    changed = superuser_client.post(detail_url(row), {"status": "500"})
    assert changed.status_code == 403
    row.refresh_from_db()
    assert row.status == 200

    listing = superuser_client.get(LIST_URL).text
    assert add not in listing
    assert 'name="action"' not in listing
    page = superuser_client.get(detail_url(row)).text
    assert 'name="_save"' not in page
    assert delete not in page


# --- the row's page -------------------------------------------------------------


def test_the_detail_page_shows_the_captured_payload_in_a_pre(viewer_client):
    (row,) = log_rows({"payload": json.dumps({"data": {"petal width": 0.2}})})
    page = viewer_client.get(detail_url(row)).text
    assert '<pre class="log-text">{\n  &quot;data&quot;: {\n' in page
    assert "petal width" in page


def test_the_detail_page_shows_a_cut_payload_as_it_was_kept(viewer_client):
    (row,) = log_rows({"payload": '{"data": [1, 2, <3>…'})
    page = viewer_client.get(detail_url(row)).text
    assert '<pre class="log-text">{&quot;data&quot;: [1, 2, &lt;3&gt;…</pre>' in page


def test_the_detail_page_shows_kept_predictions_and_row_ids(viewer_client):
    (row,) = log_rows(
        {
            "rows": 5,
            "predictions": json.dumps(["setosa", "virginica"]),
            "row_ids": json.dumps(["a-1", "a-2"]),
            "unjoinable": 3,
        }
    )
    page = viewer_client.get(detail_url(row)).text
    assert (
        '<pre class="log-text">[\n  &quot;setosa&quot;,\n  &quot;virginica&quot;'
        in page
    )
    assert "&quot;a-2&quot;" in page
    assert "predictions past the cap: 3" in page


def test_the_detail_page_shows_the_feedback_rows(viewer_client):
    (row,) = log_rows({"rows": 2, "predictions": '["setosa", "virginica"]'})
    (other,) = log_rows({"request_id": "other"})
    now = timezone.now()
    common = {
        "slug": "iris",
        "version": 1,
        "route": "active",
        "predicted_at": row.created_at,
        "received_at": now,
    }
    Feedback.objects.bulk_create(
        [
            Feedback(
                log_id=row.pk,
                row=0,
                label="setosa",
                predicted="setosa",
                request_id=row.request_id,
                **common,
            ),
            Feedback(
                log_id=row.pk,
                row=1,
                label="versicolor",
                predicted="virginica",
                request_id=row.request_id,
                **common,
            ),
            Feedback(
                log_id=other.pk,
                row=0,
                label="elsewhere",
                predicted="x",
                request_id="other",
                **common,
            ),
        ]
    )
    page = viewer_client.get(detail_url(row)).text
    cells = re.findall(
        r"<tr><td>(\d+)</td><td>(\w+)</td><td>(\w+)</td><td>(\w+)</td>", page
    )
    assert cells == [
        ("0", "setosa", "setosa", "correct"),
        ("1", "versicolor", "virginica", "wrong"),
    ]
    assert "elsewhere" not in page


def test_the_detail_page_shows_a_regressors_feedback_error(viewer_client):
    (row,) = log_rows({"slug": "diabetes"})
    Feedback.objects.create(
        log_id=row.pk,
        row=0,
        label="150.0",
        predicted="162.5",
        error=12.5,
        slug="diabetes",
        version=1,
        route="active",
        request_id=row.request_id,
        predicted_at=row.created_at,
        received_at=timezone.now(),
    )
    assert "error +12.5" in viewer_client.get(detail_url(row)).text


def test_the_detail_page_shows_the_time_to_the_microsecond(viewer_client):
    (row,) = log_rows({"created_at": datetime(2026, 11, 30, 9, 15, 42, 123456, UTC)})
    assert "2026-11-30 09:15:42.123456 UTC" in viewer_client.get(detail_url(row)).text


def test_the_detail_page_says_what_was_not_kept(viewer_client):
    (row,) = log_rows({})
    page = viewer_client.get(detail_url(row)).text
    assert "— (not captured)" in page
    assert "— (not kept)" in page
    assert "— (no label received)" in page
    assert "predictions past the cap" not in page
