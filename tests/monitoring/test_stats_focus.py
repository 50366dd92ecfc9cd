"""One model, or one version: stats.summary, series, recent_errors and
has_requests read only its rows, filtered in SQL, in as many queries
whatever the number of models and versions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import feedback_rollup, rollup, stats
from monitoring.models import Feedback
from monitoring.requestlog import LogEntry, writer

pytestmark = pytest.mark.django_db


def log(
    slug: str,
    version: int | None,
    *,
    status: int = 200,
    ago: timedelta = timedelta(minutes=2),
    route: str = "active",
    code: str | None = None,  # model_error for an error status
    ms: float = 4.0,
) -> None:
    writer.submit(
        LogEntry(
            created_at=timezone.now() - ago,
            slug=slug,
            version=version,
            status=status,
            error_code=code if code is not None else "model_error" * (status >= 400),
            rows=1 if status < 400 else 0,
            latency_ms=ms,
            model_ms=None,
            request_id=f"{slug}-{version}-{status}-{ago.total_seconds()}",
            route=route,
        )
    )


def label(slug: str, version: int, right: bool, *, ago: timedelta) -> None:
    stored = Feedback.objects.create(
        log_id=Feedback.objects.count() + 1,
        row=0,
        slug=slug,
        version=version,
        route="active",
        request_id="r",
        predicted_at=timezone.now() - ago,
        received_at=timezone.now(),
        label="setosa",
        predicted="setosa" if right else "virginica",
    )
    # as the write path (monitoring.feedback) stores it: with its rollup
    feedback_rollup.add([stored])


@pytest.fixture
def two_models():
    """iris v1: 3 ok; iris v2: 2 ok and 1 error; forest v1: 4 ok and 2 errors;
    an unknown slug refused; iris v1 labelled twice, one right."""
    for _ in range(3):
        log("iris", 1, ms=2.0)
    for _ in range(2):
        log("iris", 2, ms=40.0)
    log("iris", 2, status=500)
    for _ in range(4):
        log("forest", 1)
    log("forest", 1, status=422)
    log("forest", None, status=404, code="unknown_version")
    log("ghost", None, status=404, code="unknown_model")
    label("iris", 1, True, ago=timedelta(minutes=2))
    label("iris", 1, False, ago=timedelta(minutes=2))
    label("forest", 1, True, ago=timedelta(minutes=2))
    rollup.refresh()
    now = timezone.now()
    return now - timedelta(hours=1), now


def test_summary_of_one_model_counts_only_its_requests_in_every_total(two_models):
    since, until = two_models
    summary = stats.summary(since, until, slug="forest")
    assert [m["slug"] for m in summary["models"]] == ["forest"]
    totals = summary["totals"]
    assert (totals["requests"], totals["errors"], totals["rows"]) == (6, 2, 4)
    assert totals["refusals"]["unknown_model"] == 0
    assert stats.summary(since, until)["totals"]["refusals"]["unknown_model"] == 1
    (forest,) = summary["models"]
    assert [v["version"] for v in forest["versions"]] == [1, None]
    assert forest["versions"][0]["quality"]["labelled"] == 1


def test_summary_of_one_version_counts_only_that_version(two_models):
    since, until = two_models
    summary = stats.summary(since, until, slug="iris", version=2)
    (iris,) = summary["models"]
    assert [v["version"] for v in iris["versions"]] == [2]
    assert (summary["totals"]["requests"], summary["totals"]["errors"]) == (3, 1)
    assert summary["totals"]["p50_ms"] == pytest.approx(40.0, rel=0.07)
    assert iris["versions"][0]["quality"] == {
        "labelled": 0,
        "coverage": 0.0,
        "unjoinable": 0,
    }
    v1 = stats.summary(since, until, slug="iris", version=1)["models"][0]
    assert v1["versions"][0]["quality"]["accuracy"] == 0.5


def test_summary_of_a_model_without_requests_is_empty(two_models):
    since, until = two_models
    summary = stats.summary(since, until, slug="nothing-here")
    assert summary["models"] == []
    assert summary["totals"]["requests"] == 0
    assert summary["totals"]["p50_ms"] is None


def test_series_of_one_model_or_version_charts_only_its_requests(two_models):
    since, until = two_models

    def charted(**focus) -> tuple[int, int]:
        points = stats.series(since, until, **focus)["points"]
        return sum(p["requests"] for p in points), sum(p["errors"] for p in points)

    assert charted() == (13, 4)
    assert charted(slug="iris") == (6, 1)
    assert charted(slug="iris", version=1) == (3, 0)
    assert list(stats.series(since, until, slug="iris")["models"]) == ["iris"]


def test_recent_errors_of_one_version_inside_the_window(two_models):
    since, until = two_models
    assert {e["slug"] for e in stats.recent_errors(since)} == {
        "iris",
        "forest",
        "ghost",
    }
    found = stats.recent_errors(since, until=until, slug="forest", version=1)
    assert [(e["slug"], e["version"], e["status"]) for e in found] == [
        ("forest", 1, 422)
    ]
    earlier = until - timedelta(minutes=30)
    assert stats.recent_errors(since, until=earlier, slug="forest") == []


def test_last_request_of_each_version_including_none_resolved(two_models):
    since, until = two_models
    log("iris", 1, ago=timedelta(minutes=40))
    log("iris", 3, route="shadow", ago=timedelta(seconds=5))
    rollup.refresh()
    (iris,) = stats.summary(since, until, slug="iris")["models"]
    last = {v["version"]: v["last_request_at"] for v in iris["versions"]}
    assert set(last) == {3, 2, 1}
    assert last[3] is None, "a shadow's rows answered no one"
    assert timezone.now() - last[1] < timedelta(minutes=3)
    assert iris["last_request_at"] == max(last[1], last[2])
    (forest,) = stats.summary(since, until, slug="forest")["models"]
    unresolved = forest["versions"][-1]
    assert unresolved["version"] is None
    assert isinstance(unresolved["last_request_at"], datetime)


def test_has_requests_sees_only_client_requests_of_that_model(two_models):
    since, until = two_models
    log("shadowed", 2, route="shadow")
    rollup.refresh()
    assert stats.has_requests(since, until)
    assert stats.has_requests(since, until, slug="iris", version=2)
    assert not stats.has_requests(since, until, slug="iris", version=9)
    assert not stats.has_requests(since, until, slug="shadowed")
    assert not stats.has_requests(until - timedelta(seconds=30), until, slug="iris")


def queries_of(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries]


def test_a_focused_summary_filters_every_read_of_the_log_and_rollup_in_sql(
    two_models,
):
    since, until = two_models
    tables = (
        "api_requeststat",
        "api_requestlog",
        "monitoring_feedbackstat",
        "monitoring_driftcount",
    )
    read = [
        sql
        for sql in queries_of(lambda: stats.summary(since, until, slug="iris"))
        if any(f'FROM "{table}"' in sql for table in tables)
    ]
    # the rollup, quality, drift counts, last requests, refusals
    assert len(read) == 5
    for sql in read:  # slug = 'iris', or an expression of it (the errors index)
        assert re.search(r"\"slug\"[^=]{0,30}(= 'iris'|IN \('iris'\))", sql), sql


def many_versions(models: int, versions: int) -> tuple[datetime, datetime]:
    for m in range(models):
        for v in range(1, versions + 1):
            log(f"model-{m}", v)
            log(f"model-{m}", v, status=500)
            label(f"model-{m}", v, True, ago=timedelta(minutes=2))
    rollup.refresh()
    now = timezone.now()
    return now - timedelta(hours=1), now


@pytest.mark.parametrize("focus", [{}, {"slug": "model-0"}])
def test_summary_and_series_take_as_many_queries_for_nine_versions_as_for_one(
    focus,
):
    since, until = many_versions(1, 1)
    one = queries_of(lambda: stats.summary(since, until, **focus))
    one += queries_of(lambda: stats.series(since, until, **focus))
    since, until = many_versions(3, 3)
    nine = queries_of(lambda: stats.summary(since, until, **focus))
    nine += queries_of(lambda: stats.series(since, until, **focus))
    # summary: the rollup, refusals, gaps, quality, drift's counts, references
    # and baselines, the last requests; series: two
    assert len(nine) == len(one) == 10
