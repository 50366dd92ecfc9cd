"""quality.quality_series: each version's accuracy (or MAE) per step of the
traffic chart, from the labels of the rows predicted in each step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import feedback_rollup, windows
from monitoring.models import Feedback
from monitoring.quality import quality_series

pytestmark = pytest.mark.django_db
NOW = timezone.now()  # every label and window of a test from one moment


def labelled(
    version: int,
    minutes_ago: float,
    *,
    right: bool = True,
    error: float | None = None,
    slug: str = "iris",
    route: str = "active",
) -> None:
    now = NOW
    stored = Feedback.objects.create(
        log_id=Feedback.objects.count() + 1,
        row=0,
        slug=slug,
        version=version,
        route=route,
        request_id="r",
        predicted_at=now - timedelta(minutes=minutes_ago),
        received_at=now,
        label="setosa",
        predicted="setosa" if right else "virginica",
        error=error,
    )
    # as the write path (monitoring.feedback) stores it: with its rollup
    feedback_rollup.add([stored])


def by_version(found) -> dict[int, dict]:
    return {v["version"]: v for v in found["versions"]}


def test_accuracy_per_minute_step_of_each_version():
    now = NOW
    # v1: 2 of 3 right three minutes ago, 1 of 1 right ten minutes ago
    labelled(1, 3.0)
    labelled(1, 3.0)
    labelled(1, 3.0, right=False)
    labelled(1, 10.0)
    labelled(2, 3.0, right=False)
    found = quality_series(now - timedelta(minutes=30), now, slug="iris")
    assert found["step_seconds"] == 60
    starts = found["starts"]
    assert len(starts) == 31
    versions = by_version(found)
    assert versions[1]["metric"] == versions[2]["metric"] == "accuracy"
    three = starts.index(windows.minute(now - timedelta(minutes=3)))
    ten = starts.index(windows.minute(now - timedelta(minutes=10)))
    assert versions[1]["points"][three] == {"labelled": 3, "value": 0.6667}
    assert versions[1]["points"][ten] == {"labelled": 1, "value": 1.0}
    assert versions[2]["points"][three] == {"labelled": 1, "value": 0.0}
    empty = [p for i, p in enumerate(versions[1]["points"]) if i not in (three, ten)]
    assert all(p == {"labelled": 0, "value": None} for p in empty)


def test_mae_per_hour_step_for_a_regressor_over_a_day():
    now = NOW
    labelled(1, 125, error=2.0)
    labelled(1, 125, error=-4.0)
    labelled(1, 600, error=1.5)
    found = quality_series(now - timedelta(hours=24), now, slug="iris")
    assert found["step_seconds"] == 3600
    (version,) = found["versions"]
    assert version["metric"] == "mae"
    values = {
        found["starts"][i]: p["value"]
        for i, p in enumerate(version["points"])
        if p["labelled"]
    }
    hour = windows.floor(now - timedelta(minutes=125), windows.HOUR)
    earlier = windows.floor(now - timedelta(minutes=600), windows.HOUR)
    assert values == {hour: 3.0, earlier: 1.5}


def test_only_the_chosen_model_and_version_and_never_a_shadow():
    now = NOW
    labelled(1, 2)
    labelled(2, 2, right=False)
    labelled(2, 2, route="shadow")
    labelled(1, 2, slug="forest", right=False)
    since = now - timedelta(hours=1)
    assert list(by_version(quality_series(since, now, slug="iris"))) == [1, 2]
    (two,) = quality_series(since, now, slug="iris", version=2)["versions"]
    assert sum(p["labelled"] for p in two["points"]) == 1
    assert {p["value"] for p in two["points"]} == {None, 0.0}


def test_no_labels_in_the_window_is_no_version():
    now = NOW
    labelled(1, 90)
    found = quality_series(now - timedelta(hours=1), now, slug="iris")
    assert found["versions"] == []
    assert len(found["starts"]) == 61
