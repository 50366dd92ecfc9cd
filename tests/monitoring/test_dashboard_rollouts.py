"""The dashboard's rollouts: each policy beside what its routes served, the
shadows against what was served, and the guards that rolled a candidate back."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from sklearn.linear_model import LinearRegression

from monitoring.requestlog import LogEntry, writer
from registry import rollouts
from registry.models import MLModel
from registry.rollouts import Guards, PolicySpec


def log(
    slug: str,
    version: int,
    route: str,
    *,
    status: int = 200,
    ms: float = 5.0,
    rows: int = 1,
    comparison: tuple[float, float, float] | None = None,
) -> None:
    """One request-log row as the data plane writes it, committed at once."""
    diff, served_sum, served_sq_sum = comparison or (None, None, None)
    writer.submit(
        LogEntry(
            created_at=timezone.now() - timedelta(seconds=2),
            slug=slug,
            version=version,
            status=status,
            error_code="" if status == 200 else "model_error",
            rows=rows if status == 200 else 0,
            latency_ms=ms,
            model_ms=ms / 2,
            request_id=f"{slug}-{route}-{version}",
            route=route,
            shadow_diff=diff,
            served_sum=served_sum,
            served_sq_sum=served_sq_sum,
        ),
        now=True,
    )


def policy(slug: str, **spec) -> MLModel:
    model = MLModel.objects.get(slug=slug)
    for role in ("candidate", "shadow"):
        if role in spec:
            spec[role] = model.versions.get(number=spec[role])
    rollouts.set_policy(model, PolicySpec(**spec))
    return model


def dashboard(client, **params):
    response = client.get("/dashboard/", {"since": "1h", **params})
    assert response.status_code == 200
    return response, response.content.decode()


def cells(html: str, row_class: str, **data: object) -> list[str]:
    """The text of each cell of the row with that class and data attributes."""
    attributes = "".join(rf'[^>]*data-{k}="{v}"' for k, v in data.items())
    match = re.search(
        rf'<tr class="[^"]*\b{row_class}\b[^"]*"{attributes}[^>]*>(.*?)</tr>',
        html,
        re.S,
    )
    assert match, f"no {row_class} row with {data}"
    found = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in found]


def test_rollouts_panel_shows_active_and_candidate_side_by_side(
    staff_client, iris_versions
):
    policy("iris", candidate=2, weight=0.25, sticky_header="X-User")
    for status in (200, 200, 200, 200, 200, 500):
        log("iris", 1, "active", status=status, ms=5.0)
    for status in (200, 422):
        log("iris", 2, "candidate", status=status, ms=40.0)

    response, html = dashboard(staff_client)
    (rollout,) = response.context["rollouts"]
    assert rollout["slug"] == "iris"
    assert (rollout["active"], rollout["candidate"], rollout["weight"]) == (1, 2, "25%")
    assert (rollout["sticky"], rollout["shadow"]) == ("header X-User", None)
    active, candidate = rollout["routes"]
    assert (active["route"], active["version"]) == ("active", 1)
    assert (candidate["route"], candidate["version"]) == ("candidate", 2)
    assert (active["requests"], active["errors"]) == (6, 1)
    assert (candidate["requests"], candidate["errors"]) == (2, 1)
    assert active["p95_ms"] == pytest.approx(5.0, rel=0.1)
    assert candidate["p95_ms"] == pytest.approx(40.0, rel=0.1)

    panel = html[html.index('id="rollouts"') :]
    assert re.search(
        r'data-route="active" data-version="1">.*?</tr>\s*'
        r'<tr class="route-row route-candidate current" data-route="candidate" '
        r'data-version="2">',
        panel,
        re.S,
    ), "active and candidate on adjacent rows"
    route, version, share, requests, errors, rate, *_ = cells(
        panel, "route-row", route="active", version=1
    )
    assert (version, share, requests, errors, rate) == (
        "v1",
        "75.0%",
        "6",
        "1",
        "16.7%",
    )
    route, version, share, requests, errors, rate, *_ = cells(
        panel, "route-row", route="candidate", version=2
    )
    assert (version, share, requests, errors, rate) == (
        "v2",
        "25.0%",
        "2",
        "1",
        "50.0%",
    )
    assert re.search(r'class="candidate-version">v2 at <strong>25%</strong>', panel)
    assert "header X-User" in panel


def test_rollouts_panel_lists_a_policy_and_its_guards_before_any_traffic(
    staff_client, iris_versions
):
    policy("iris", candidate=2, weight=0.1, shadow=2, guards=Guards(error_rate=0.05))
    response, html = dashboard(staff_client)
    (rollout,) = response.context["rollouts"]
    assert rollout["routes"] == []
    assert "No requests to iris in this window." in html
    assert "error rate &gt; 0.05" in html
    (pair,) = response.context["shadow_pairs"]
    assert (pair["slug"], pair["version"], pair["compared_rows"]) == ("iris", 2, 0)
    assert cells(html, "shadow-pair", slug="iris", version=2)[2:4] == ["0", "—"]


def test_shadow_pair_shows_agreement_of_a_classifier_shadow(
    staff_client, iris_versions
):
    policy("iris", shadow=2)
    for _ in range(2):
        log("iris", 1, "active", rows=10)
    log("iris", 2, "shadow", rows=10, ms=8.0, comparison=(2.0, 0.0, 0.0))
    log("iris", 2, "shadow", rows=10, ms=8.0, comparison=(3.0, 0.0, 0.0))
    log("iris", 2, "shadow", status=500, ms=8.0)

    response, html = dashboard(staff_client)
    (pair,) = response.context["shadow_pairs"]
    assert (pair["slug"], pair["version"], pair["compared_rows"]) == ("iris", 2, 20)
    assert pair["agreement_percent"] == pytest.approx(75.0)
    assert pair["mae"] is None
    assert (pair["requests"], pair["errors"]) == (3, 1)
    assert pair["p50_ms"] == pytest.approx(8.0, rel=0.1)
    row = cells(html, "shadow-pair", slug="iris", version=2)
    assert row[:6] == ["iris", "v2", "20", "75.0%", "—", "—"]
    assert row[6:8] == ["3", "33.3%"]
    assert "modelhub_shadow_skipped_total" in html
    # The shadow served no one: the model's own counts hold the two requests.
    (model,) = response.context["models"]
    assert model["requests"] == 2


def test_shadow_pair_shows_mae_of_a_regressor_shadow(
    staff_client, diabetes, publish, diabetes_rows
):
    other = LinearRegression().fit(diabetes_rows, range(len(diabetes_rows)))
    publish(other, "diabetes", activate=False)
    policy("diabetes", shadow=2)
    log("diabetes", 1, "active", rows=4)
    # Served 1, 2, 3, 4 (sum 10, squares 30); absolute differences summing to 8.
    log("diabetes", 2, "shadow", rows=4, comparison=(8.0, 10.0, 30.0))

    response, html = dashboard(staff_client)
    (pair,) = response.context["shadow_pairs"]
    assert pair["agreement_percent"] is None
    assert pair["mae"] == pytest.approx(2.0)
    assert pair["served_std"] == pytest.approx(1.118034, rel=1e-5)
    assert pair["mae_to_std"] == pytest.approx(1.7889, abs=1e-4)
    row = cells(html, "shadow-pair", slug="diabetes", version=2)
    assert row[2:6] == ["4", "—", "2", "1.789 of 1.118"]


def test_guard_trip_shows_when_candidate_and_reason_in_a_warning_box(
    staff_client, iris_versions
):
    model = policy("iris", candidate=2, weight=0.5)
    reason = "v2 failed 9 of its last 20 requests (45.0%), above the guard of 5.0%"
    assert rollouts.trip(model, candidate_id=iris_versions[1].pk, reason=reason)
    response, html = dashboard(staff_client)
    (trip,) = response.context["trips"]
    assert (trip["slug"], trip["candidate"], trip["weight"]) == ("iris", 2, "50%")
    assert trip["reason"] == reason
    box = html[html.index('<section class="dash-trips"') :]
    box = box[: box.index("</section>")]
    assert "1 automatic rollback in this window" in box
    when, slug, candidate, shown_reason = cells(box, "trip", slug="iris")
    assert when == timezone.localtime(trip["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    assert (slug, candidate, shown_reason) == ("iris", "v2 was at 50%", reason)
    # The tripped policy stays listed, its candidate at 0%.
    assert response.context["rollouts"][0]["weight"] == "0%"


def test_only_automatic_trips_inside_the_window_are_listed(
    staff_client, iris_versions, monkeypatch
):
    model = policy("iris", candidate=2, weight=0.5)
    assert rollouts.abort(model, channel="api")  # a person's, not a guard's
    response, html = dashboard(staff_client)
    assert response.context["trips"] == [] and 'id="guard-trips"' not in html

    policy("iris", candidate=2, weight=0.5)
    assert rollouts.trip(model, candidate_id=iris_versions[1].pk, reason="too slow")
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert dashboard(staff_client)[0].context["trips"] == []
    assert len(dashboard(staff_client, since="3h")[0].context["trips"]) == 1


def test_dashboard_without_policy_or_rollout_traffic_shows_no_panel(
    staff_client, iris_versions
):
    for _ in range(3):
        log("iris", 1, "active")
    log("iris", 1, "pinned")
    response, html = dashboard(staff_client)
    assert response.context["rollouts"] == []
    assert response.context["shadow_pairs"] == []
    assert response.context["trips"] == []
    for absent in ('id="rollouts"', 'id="shadow-pairs"', 'id="guard-trips"'):
        assert absent not in html
    assert 'data-slug="iris"' in html  # the model table still has it


def test_rollouts_panel_follows_the_model_filter(
    staff_client, iris_versions, diabetes, publish, numpy_regressor
):
    publish(numpy_regressor, "diabetes", activate=False)
    policy("iris", candidate=2, weight=0.5)
    policy("diabetes", shadow=2)
    both = dashboard(staff_client)[0].context["rollouts"]
    assert [r["slug"] for r in both] == ["diabetes", "iris"]
    response, html = dashboard(staff_client, model="iris")
    assert [r["slug"] for r in response.context["rollouts"]] == ["iris"]
    assert response.context["shadow_pairs"] == []


def test_rollouts_panel_escapes_html_in_slugs_and_reasons(staff_client, iris_versions):
    slug = '<b id="x">bold</b>'
    log(slug, 2, "candidate")
    model = policy("iris", candidate=2, weight=0.5)
    reason = "<script>alert('tripped')</script> & more"
    assert rollouts.trip(model, candidate_id=iris_versions[1].pk, reason=reason)

    response, html = dashboard(staff_client)
    assert [r["slug"] for r in response.context["rollouts"]] == [slug, "iris"]
    assert "<script>alert(" not in html and '<b id="x">' not in html
    assert "&lt;script&gt;alert(&#x27;tripped&#x27;)&lt;/script&gt; &amp; more" in html
    assert "&lt;b id=&quot;x&quot;&gt;bold&lt;/b&gt;" in html
    assert "model=%3Cb%20id%3D%22x%22%3Ebold%3C/b%3E" in html
