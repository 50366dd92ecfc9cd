"""GET /api/stats/: numbers checked against a hand computation on fixed data."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from monitoring.requestlog import LogEntry, writer

pytestmark = pytest.mark.django_db


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@pytest.fixture
def fixed_traffic():
    """100 iris v2 requests (10 errors), 20 iris v1, 5 for an unknown slug."""
    now = timezone.now()
    iris_v2 = [float(ms) for ms in range(1, 101)]
    entries = []
    for i, ms in enumerate(iris_v2):
        failed = i % 10 == 0
        entries.append(
            LogEntry(
                created_at=now - timedelta(minutes=i % 50),
                slug="iris",
                version=2,
                status=422 if failed else 200,
                error_code="model_error" if failed else "",
                rows=0 if failed else 3,
                latency_ms=ms,
                model_ms=ms / 2,
                request_id=f"a{i}",
            )
        )
    for i in range(20):
        entries.append(
            LogEntry(
                created_at=now - timedelta(hours=3),
                slug="iris",
                version=1,
                status=200,
                error_code="",
                rows=1,
                latency_ms=500.0,
                model_ms=1.0,
                request_id=f"b{i}",
            )
        )
    for i in range(5):
        entries.append(
            LogEntry(
                created_at=now - timedelta(minutes=5),
                slug="ghost",
                version=None,
                status=404,
                error_code="unknown_model",
                rows=0,
                latency_ms=0.5,
                model_ms=None,
                request_id=f"c{i}",
            )
        )
    for entry in entries:
        writer.submit(entry)
    return {"iris_v2": iris_v2, "now": now}


def stats(client, since: str = "24h"):
    return client.get("/api/stats/", {"since": since})


def test_stats_match_hand_computed_counts_and_percentiles(staff_client, fixed_traffic):
    response = stats(staff_client)
    assert response.status_code == 200
    body = response.json()
    assert body["totals"]["requests"] == 125
    assert body["totals"]["errors"] == 15
    assert body["totals"]["error_rate"] == round(15 / 125, 4)
    assert body["totals"]["rows"] == 90 * 3 + 20
    assert body["totals"]["dropped_log_rows"] == 0

    models = {m["slug"]: m for m in body["models"]}
    assert list(models) == ["(unknown)", "iris"]
    iris = models["iris"]
    assert (iris["requests"], iris["errors"], iris["rows"]) == (120, 10, 290)
    v2, v1 = iris["versions"]
    assert (v2["version"], v2["requests"], v2["errors"]) == (2, 100, 10)
    assert v2["error_rate"] == 0.1
    latencies = fixed_traffic["iris_v2"]
    for p in (50, 95, 99):
        exact = nearest_rank(latencies, p)
        assert v2[f"p{p}_ms"] == pytest.approx(exact, rel=0.07)
    assert (v1["version"], v1["requests"], v1["p50_ms"]) == (
        1,
        20,
        pytest.approx(500, rel=0.07),
    )
    assert models["(unknown)"]["versions"][0]["version"] is None
    assert models["(unknown)"]["errors"] == 5
    assert body["totals"]["refusals"]["unknown_model"] == 5
    assert iris["last_request_at"] is not None


def test_stats_window_excludes_older_traffic(staff_client, fixed_traffic):
    body = stats(staff_client, "1h").json()
    iris = next(m for m in body["models"] if m["slug"] == "iris")
    assert [v["version"] for v in iris["versions"]] == [2]
    assert body["totals"]["requests"] == 105
    iso = (fixed_traffic["now"] - timedelta(hours=4)).isoformat()
    assert stats(staff_client, iso).json()["totals"]["requests"] == 125


def test_stats_see_a_request_right_after_its_response(
    staff_client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    staff_client.post(
        "/api/predict/iris/",
        json.dumps({"inputs": [[1, 2, 3, 4]]}),
        content_type="application/json",
    )
    assert stats(staff_client, "15m").json()["totals"]["requests"] == 1


@pytest.mark.parametrize("since", ["yesterday", "15x", "-5m", "2026-13-45"])
def test_stats_reject_a_bad_since(staff_client, since):
    response = stats(staff_client, since)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_since"


# Over a century in every unit that can reach one (six digits of s or m
# cannot), the future, and ISO dates at datetime's edges, where rounding to
# the minute or shifting by the offset overflowed.
OUT_OF_RANGE = [
    "999999h",
    "999999d",
    "999999w",
    "36526d",
    "5219w",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31",
    "2999-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "1900-01-01",
]
NOT_A_WINDOW = ["-1d", "-0s", "-5", "0", "9999", "1e9d", "9999999s", "1.5d"]


@pytest.mark.parametrize("since", OUT_OF_RANGE + NOT_A_WINDOW)
def test_stats_answer_400_for_a_since_out_of_range(staff_client, since):
    response = stats(staff_client, since)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "invalid_since"


@pytest.mark.parametrize(
    "since",
    ["0s", "0m", "0h", "0d", "0w", "999999s", "999999m", "876000h", "9999d"]
    + ["36525d", "5217w", "2026-01-01", "2026-01-01T00:00:00"],
)
def test_stats_answer_200_for_windows_from_zero_to_a_century(staff_client, since):
    """0 is the current minute; a naive ISO date is UTC."""
    response = stats(staff_client, since)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["totals"]["requests"] == 0


def test_stats_need_staff(client, django_user_model):
    anonymous = stats(client)
    assert anonymous.status_code in (401, 403)
    assert "code" in anonymous.json()
    user = django_user_model.objects.create_user("plain", password="x-pass-123")
    token = Token.objects.create(user=user)
    refused = client.get("/api/stats/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert refused.status_code == 403
    staff = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    staff_token = Token.objects.create(user=staff)
    allowed = client.get("/api/stats/", HTTP_AUTHORIZATION=f"Token {staff_token.key}")
    assert allowed.status_code == 200


@pytest.mark.parametrize("since", ["7m", "90m", "5h", "30h", "3d", "8d"])
def test_windows_of_any_length_count_exactly_the_requests_inside(staff_client, since):
    """Days, hours and minutes of the rollup add up to the log rows in the window."""
    from monitoring.models import RequestLog
    from monitoring.stats import parse_since

    now = timezone.now()
    for i in range(0, 7 * 24 * 60, 37):
        writer.submit(
            LogEntry(
                created_at=now - timedelta(minutes=i),
                slug="iris",
                version=1 + i % 2,
                status=500 if i % 5 == 0 else 200,
                error_code="",
                rows=1,
                latency_ms=1.0 + i % 7,
                model_ms=None,
                request_id=f"w{i}",
            )
        )
    body = stats(staff_client, since).json()
    start = parse_since(since, now).replace(second=0, microsecond=0)
    inside = RequestLog.objects.filter(created_at__gte=start)
    assert body["totals"]["requests"] == inside.count()
    assert body["totals"]["errors"] == inside.filter(status__gte=400).count()
    series = staff_client.get("/dashboard/", {"since": since})
    assert series.status_code == 200
