"""Rollout guards: a candidate whose errors or latency break a guard over
its window goes to weight 0 by itself, recorded with channel auto and the
reason, counted in a metric, decided from the request log's rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from sklearn.tree import DecisionTreeClassifier

from monitoring import guards
from monitoring.requestlog import LogEntry, writer
from registry import rollouts
from registry.models import MLModel, PolicyChange, TrafficPolicy
from registry.rollouts import Guards, PolicySpec
from tests.api.dataplane.test_predict import post, records


class FailsLiveTraffic(DecisionTreeClassifier):
    """Passes the preflight's one-row test, refuses the live requests."""

    def predict(self, x):
        if len(x) > 1:
            raise ValueError("this candidate refuses live traffic")
        return super().predict(x)


def rollbacks(guard: str) -> float:
    labels = {"model": "iris", "guard": guard}
    return REGISTRY.get_sample_value("modelhub_rollout_rollbacks_total", labels) or 0.0


def guarded(number: int = 2, weight: float = 0.5, **guard) -> None:
    model = MLModel.objects.get(slug="iris")
    rollouts.set_policy(
        model,
        PolicySpec(
            candidate=model.versions.get(number=number),
            weight=weight,
            guards=Guards(**guard),
        ),
    )


def weight() -> float:
    return TrafficPolicy.objects.get(model__slug="iris").weight


def log(version: int, route: str, *, status: int = 200, ms: float = 5.0, ago=0.0):
    writer.submit(
        LogEntry(
            created_at=timezone.now() - timedelta(seconds=ago),
            slug="iris",
            version=version,
            status=status,
            error_code="" if status == 200 else "model_error",
            rows=1,
            latency_ms=ms,
            model_ms=ms / 2,
            request_id="x",
            route=route,
        ),
        now=True,
    )


@pytest.fixture
def failing_candidate(iris, publish, iris_frame):
    x, y = iris_frame
    return publish(FailsLiveTraffic(max_depth=2).fit(x, y), "iris", activate=False)


def test_a_candidate_failing_every_request_is_rolled_back_with_its_reason(
    client, failing_candidate, iris_sample, settings
):
    settings.MODELHUB_GUARD_CHECK_MS = 0  # check after every row
    before = rollbacks("error_rate")
    guarded(weight=1.0, error_rate=0.1, last_requests=20, min_requests=5)
    body = {"data": records(iris_sample)}
    statuses = [post(client, "iris", body).status_code for _ in range(30)]

    assert statuses[:5] == [422] * 5, "the candidate answers until the window fills"
    assert statuses[5:] == [200] * 25, "then the active version answers everything"
    assert weight() == 0.0
    change = PolicyChange.objects.order_by("id").last()
    assert (change.action, change.channel, change.user) == ("trip", "auto", None)
    assert "failed 5 of its last 5 requests" in change.reason
    assert "error-rate guard of 10.0%" in change.reason
    assert rollbacks("error_rate") == before + 1


def test_the_active_versions_callers_see_no_failure_while_a_guard_trips(
    client, failing_candidate, iris_sample, settings
):
    settings.MODELHUB_GUARD_CHECK_MS = 0
    guarded(weight=0.5, error_rate=0.2, last_requests=10, min_requests=5)
    answers = [post(client, "iris", {"data": records(iris_sample)}) for _ in range(80)]
    by_route = {
        (r["X-Model-Route"] if r.status_code == 200 else "failed") for r in answers
    }
    assert all(
        r.status_code == 200 for r in answers if r.get("X-Model-Route") == "active"
    )
    assert weight() == 0.0
    assert by_route >= {"active"}
    failed = sum(r.status_code == 422 for r in answers)
    assert 5 <= failed <= 6  # the window's minimum, give or take one


def test_no_guard_trips_before_the_window_holds_min_requests(iris_versions):
    guarded(error_rate=0.1, min_requests=10)
    for _ in range(9):
        log(2, "candidate", status=422)
    assert guards.check_all() == []
    log(2, "candidate", status=422)
    (trip,) = guards.check_all()
    assert trip.guard == "error_rate"
    assert weight() == 0.0


def test_a_callers_malformed_request_is_no_error_of_the_candidate(iris_versions):
    guarded(error_rate=0.1, min_requests=5)
    for _ in range(10):
        log(2, "candidate", status=400)
    assert guards.check_all() == []
    assert weight() == 0.5


def test_rows_from_before_the_policy_was_set_do_not_count(iris_versions):
    for _ in range(10):
        log(2, "candidate", status=500, ago=60)
    guarded(error_rate=0.1, min_requests=5)
    assert guards.check_all() == []


def test_a_candidate_slower_than_the_p95_guard_is_rolled_back(iris_versions):
    guarded(p95_ms=40.0, min_requests=20)
    for index in range(20):
        log(2, "candidate", ms=30.0 if index < 19 else 90.0)
    assert guards.check_all() == []  # the 19th of 20 rows: 30 ms
    log(2, "candidate", ms=90.0)  # the 20th of 21: 90 ms
    (trip,) = guards.check_all()
    assert trip.guard == "p95_ms"
    assert "above the guard of 40 ms" in trip.reason


def test_a_candidate_slower_than_the_active_by_the_ratio_is_rolled_back(
    iris_versions,
):
    guarded(p95_ratio=2.0, min_requests=10, last_requests=50)
    for _ in range(20):
        log(1, "active", ms=10.0)
        log(2, "candidate", ms=15.0)
    assert guards.check_all() == []
    for _ in range(20):
        log(2, "candidate", ms=35.0)
    (trip,) = guards.check_all()
    assert trip.guard == "p95_ratio"
    assert "3.5x the active v1's 10.0 ms" in trip.reason
    assert PolicyChange.objects.order_by("id").last().channel == "auto"


def test_a_minutes_window_forgets_older_failures(iris_versions):
    guarded(error_rate=0.1, minutes=1.0, min_requests=5)
    assert guards.check_all() == []
    for _ in range(5):
        log(2, "candidate", status=500)
    assert len(guards.check_all()) == 1


def test_an_unguarded_policy_is_never_tripped(iris_versions):
    guarded()
    for _ in range(50):
        log(2, "candidate", status=500)
    assert guards.check_all() == []
    assert weight() == 0.5
