"""GET /dashboard/?model=<slug>&version=<n>: choosing a model (and a version)
filters every card, chart and table, and shows its versions side by side with
their quality."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring import rollup
from registry import rollouts
from registry.models import MLModel
from registry.rollouts import PolicySpec
from tests.monitoring.test_dashboard_rollouts import cells
from tests.monitoring.test_stats_focus import label, log

ROW = [5.1, 3.5, 1.4, 0.2]


def page(client, **params):
    response = client.get("/dashboard/", {"since": "1h", **params})
    assert response.status_code == 200, response.content[:500]
    return response, response.content.decode()


def card(html: str, name: str) -> str:
    match = re.search(rf'id="total-{name}">(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>", "", match.group(1)).split()[0]


def charted(response) -> tuple[int, int]:
    points = response.context["chart"]["points"]
    return sum(p["requests"] for p in points), sum(p["errors"] for p in points)


@pytest.fixture
def two_models(iris_versions, publish, numpy_regressor):
    """iris v1: 3 ok at 2 ms; iris v2: 2 ok at 40 ms and a 500; forest v1:
    4 ok and a 422; a request for an unknown slug."""
    publish(numpy_regressor, "forest")
    for _ in range(3):
        log("iris", 1, ms=2.0)
    for _ in range(2):
        log("iris", 2, ms=40.0)
    log("iris", 2, status=500, code="model_error")
    for _ in range(4):
        log("forest", 1)
    log("forest", 1, status=422, code="model_error")
    log("ghost", None, status=404, code="unknown_model")


def test_choosing_a_model_filters_every_card_and_chart(staff_client, two_models):
    everything, html = page(staff_client)
    assert (card(html, "requests"), card(html, "errors")) == ("12", "3")
    assert charted(everything) == (12, 3)

    response, html = page(staff_client, model="iris")
    assert (card(html, "requests"), card(html, "errors"), card(html, "rows")) == (
        "6",
        "1",
        "5",
    )
    assert charted(response) == (6, 1)
    assert {e["slug"] for e in response.context["recent_errors"]} == {"iris"}
    assert [e["code"] for e in response.context["error_codes"]] == ["model_error"]
    assert [m["slug"] for m in response.context["models"]] == ["iris"]
    assert response.context["totals"]["p99_ms"] == pytest.approx(40.0, rel=0.07)
    assert "Requests and errors per 1 min (iris)" in html
    assert 'aria-label="Iris in this window"' in html


def test_choosing_a_version_filters_every_card_chart_and_table_to_it(
    staff_client, two_models
):
    response, html = page(staff_client, model="iris", version=1)
    assert (card(html, "requests"), card(html, "errors")) == ("3", "0")
    assert card(html, "p50") == "2.1"  # 2 ms, read from the histogram
    assert charted(response) == (3, 0)
    assert response.context["recent_errors"] == []
    assert response.context["error_codes"] == []
    rows = response.context["versions"]["rows"]
    assert [r["version"] for r in rows] == [1]
    assert "Requests and errors per 1 min (iris v1)" in html
    assert "No errors for iris v1 in this window." in html


def test_choosing_a_model_focuses_the_rollouts_panel(staff_client, two_models):
    iris = MLModel.objects.get(slug="iris")
    rollouts.set_policy(
        iris, PolicySpec(candidate=iris.versions.get(number=2), weight=0.5)
    )
    log("forest", 1, route="candidate")
    everything = page(staff_client)[0].context["rollouts"]
    assert [r["slug"] for r in everything] == ["forest", "iris"]
    focused = page(staff_client, model="iris", version=2)[0].context["rollouts"]
    assert [r["slug"] for r in focused] == ["iris"]
    assert {row["version"] for row in focused[0]["routes"]} == {2}


def test_choosing_a_version_without_a_model_is_a_400_page_saying_so(staff_client, db):
    response = staff_client.get("/dashboard/", {"version": "2"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="errornote"' in html
    assert "&#x27;version&#x27; needs &#x27;model&#x27;" in html
    assert "dashboard-series" not in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "iris", "version": "two"}, "must be a version number"),
        ({"model": "iris", "version": "1.5"}, "must be a version number"),
        ({"model": "iris", "version": "-1"}, "must be a version number"),
        ({"model": "iris", "version": "0"}, "must be a version number, from 1"),
        ({"model": "iris", "version": "99999999999"}, "must be a version number"),
        ({"model": "iris", "version": "٣"}, "must be a version number"),
        ({"model": "x" * 101}, "must be a model&#x27;s slug"),
        ({"model": "iris\x00"}, "must be a model&#x27;s slug"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_malformed_model_or_version_is_a_400_page(staff_client, db, params, message):
    response = staff_client.get("/dashboard/", params)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'class="errornote"' in html


def test_an_unknown_model_shows_an_empty_dashboard_saying_so(staff_client, two_models):
    response, html = page(staff_client, model="no-such-model")
    assert 'id="dashboard-unknown"' in html
    assert "No model named <strong>no-such-model</strong> in the registry" in html
    assert card(html, "requests") == "0"
    assert "No requests to no-such-model in this window." in html
    assert response.context["models"] == [] and response.context["versions"] is None
    response, html = page(staff_client, model="iris", version=9)
    assert "iris has no version 9 in the registry" in html
    assert card(html, "requests") == "0"


def test_the_unknown_slugs_of_the_models_table_can_be_chosen(staff_client, two_models):
    response, html = page(staff_client, model="(unknown)")
    assert 'id="dashboard-unknown"' not in html
    assert (card(html, "requests"), card(html, "errors")) == ("1", "1")
    assert [e["code"] for e in response.context["error_codes"]] == ["unknown_model"]
    assert [e["slug"] for e in response.context["recent_errors"]] == ["ghost"]


def test_the_pickers_offer_registry_models_and_the_chosen_models_versions(
    staff_client, two_models
):
    html = page(staff_client)[1]
    models = re.search(
        r'<select name="model" id="dash-model">(.*?)</select>', html, re.S
    )
    assert re.findall(r'<option value="([^"]*)"', models.group(1)) == [
        "",
        "forest",
        "iris",
    ]
    assert 'id="dash-version"' not in html
    html = page(staff_client, model="iris", version=2)[1]
    assert '<option value="iris" selected>iris</option>' in html
    versions = re.search(r'id="dash-version">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"', versions) == ["", "3", "2", "1"]
    assert '<option value="2" selected>v2</option>' in versions
    # The picker keeps the window; a relative one stays relative.
    form = re.search(r'<form method="get" id="dash-focus".*?</form>', html, re.S)
    assert '<input type="hidden" name="since" value="1h">' in form.group(0)


def test_links_keep_the_window_and_focus_and_a_model_link_drops_the_version(
    staff_client, two_models
):
    html = page(staff_client, since="6h", model="iris", version="2", refresh="1")[1]
    assert 'href="?since=15m&amp;model=iris&amp;version=2&amp;refresh=1"' in html
    assert 'href="?since=6h&amp;model=iris&amp;refresh=1">all versions of iris' in html
    assert 'href="?since=6h&amp;refresh=1">show all models' in html
    everything = page(staff_client, since="6h")[1]
    assert '<a href="?since=6h&amp;model=forest">forest</a>' in everything


# --- versions side by side ------------------------------------------------------


def predict(client, slug: str, rows: int, *, version: int | None = None) -> dict:
    path = f"/api/predict/{slug}/" + (f"v{version}/" if version else "")
    body = json.dumps({"inputs": [ROW] * rows})
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def feedback(client, slug: str, answer: dict, labels: list) -> None:
    body = json.dumps({"request_id": answer["request_id"], "labels": labels})
    response = client.post(
        f"/api/feedback/{slug}/", body, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["rejected"] == []


def test_versions_side_by_side_show_traffic_latency_and_quality_of_each(
    client, staff_client, iris_versions
):
    """v1 (active): 4 rows, 3 labelled, 2 right; v2 (pinned): 2 rows, both
    labelled, right, and a request it refused."""
    one = predict(client, "iris", 4)
    wrong = "virginica" if one["predictions"][0] != "virginica" else "setosa"
    feedback(client, "iris", one, [*one["predictions"][:2], wrong])
    two = predict(client, "iris", 2, version=2)
    feedback(client, "iris", two, two["predictions"])
    bad = json.dumps({"inputs": [[1, 2]]})
    refused = client.post("/api/predict/iris/v2/", bad, "application/json")
    assert refused.status_code == 400

    response, html = page(staff_client, model="iris")
    table = html[html.index('id="versions-table"') :]
    table = table[: table.index("</table>")]
    titles = re.findall(r'<th scope="colgroup"[^>]*>(\w+)</th>', table)
    assert titles == ["Traffic", "Latency", "Quality", "Drift"]
    headers = re.findall(r'<th scope="col" class="num[^"]*"[^>]*>([^<]+)</th>', table)
    assert headers == [
        "Requests",
        "Errors",
        "Error rate",
        "Rows",
        "Last request",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "Labelled",
        "Coverage",
        "Accuracy",
        "Macro-F1",
        "Reference",
        "Worst feature PSI",
        "Predictions PSI",
    ]
    v1 = cells(table, "version-side", version=1)
    assert v1[:4] == ["1", "0", "0.0%", "4"]
    assert v1[4].startswith(str(response.context["until"].year))
    assert v1[8:11] == ["3", "75.0%", "0.667"]
    assert float(v1[5]) > 0
    v2 = cells(table, "version-side", version=2)
    assert v2[:4] == ["2", "1", "50.0%", "2"]
    assert v2[8:12] == ["2", "100.0%", "1.000", "1.000"]
    assert 'id="models-table"' not in html  # the versions' table stands for it
    assert 'href="?since=1h&amp;model=iris&amp;version=2">v2</a>' in table


def test_a_regressors_versions_show_mae_and_rmse(client, staff_client, diabetes):
    rows = [[0.01 * i] * 10 for i in range(3)]
    body = json.dumps({"inputs": rows})
    answer = client.post(
        "/api/predict/diabetes/", body, content_type="application/json"
    ).json()
    truth = [
        p + d for p, d in zip(answer["predictions"], (1.0, -3.0, 2.0), strict=True)
    ]
    feedback(client, "diabetes", answer, truth)
    response, html = page(staff_client, model="diabetes")
    assert "MAE" in html and "Accuracy" not in html
    mae, rmse = cells(html, "version-side", version=1)[10:12]
    assert (mae, rmse) == ("2.0000", f"{(14 / 3) ** 0.5:.4f}")


def test_the_quality_chart_draws_each_versions_accuracy_per_step(
    staff_client, two_models
):
    label("iris", 1, True, ago=timedelta(minutes=2))
    label("iris", 1, False, ago=timedelta(minutes=2))
    label("iris", 2, True, ago=timedelta(minutes=5))
    response, html = page(staff_client, model="iris")
    assert 'id="quality-chart"' in html
    chart = response.context["chart"]
    quality = {q["version"]: q for q in chart["quality"]}
    assert set(quality) == {1, 2}
    assert len(quality[1]["values"]) == len(chart["points"])
    assert [v for v in quality[1]["values"] if v is not None] == [0.5]
    assert sum(quality[1]["labelled"]) == 2
    assert [v for v in quality[2]["values"] if v is not None] == [1.0]
    embedded = re.search(
        r'<script id="dashboard-series" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    assert json.loads(embedded.group(1))["quality"][0]["metric"] == "accuracy"


def test_without_labels_the_quality_panel_says_how_to_send_them(
    staff_client, two_models
):
    response, html = page(staff_client, model="forest")
    assert response.context["chart"]["quality"] == []
    assert "quality-chart" not in html
    assert "send them to <code>POST /api/feedback/forest/</code>" in html
    assert "quality-empty" not in page(staff_client)[1]  # only for a chosen model


# --- cost -------------------------------------------------------------------------


def dashboard_queries(client, **params) -> int:
    rollup.refresh()
    with CaptureQueriesContext(connection) as captured:
        page(client, **params)
    return len(captured.captured_queries)


def traffic_of(models: int, versions: int) -> None:
    for m in range(models):
        for v in range(1, versions + 1):
            log(f"model-{m}", v)
            log(f"model-{m}", v, status=500, code=f"code-{v}")
            label(f"model-{m}", v, True, ago=timedelta(minutes=2))


@pytest.mark.parametrize(
    "params",
    [{}, {"model": "model-0"}, {"model": "model-0", "version": "1"}, {"since": ""}],
    ids=["all", "model", "version", "opening-window"],
)
def test_the_dashboard_takes_as_many_queries_for_nine_versions_as_for_one(
    staff_client, params
):
    traffic_of(1, 1)
    one = dashboard_queries(staff_client, **params)
    traffic_of(3, 3)
    nine = dashboard_queries(staff_client, **params)
    assert nine == one
