"""Ground-truth feedback: labels sent for predicted rows are joined to what
each version answered, and /api/stats/ reads live quality from them."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error

from monitoring.models import Feedback, RequestLog
from registry import actions
from registry.models import MLModel
from tests.api.dataplane.test_predict import post, records


def predict(client, slug: str, body: Any, **headers) -> dict:
    response = post(client, slug, body, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def send(client, slug: str, body: Any, **headers):
    return client.post(
        f"/api/feedback/{slug}/",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def accepted(client, slug: str, body: Any) -> dict:
    response = send(client, slug, body)
    assert response.status_code == 200, response.content
    return response.json()


def version_quality(staff_client, slug: str, number: int, since: str = "1h") -> dict:
    response = staff_client.get("/api/stats/", {"since": since})
    assert response.status_code == 200, response.content
    (model,) = [m for m in response.json()["models"] if m["slug"] == slug]
    (version,) = [v for v in model["versions"] if v["version"] == number]
    return version


# --- what was predicted is kept -------------------------------------------------


def test_each_request_keeps_what_it_was_answered_and_the_ids_it_named(
    client, iris, iris_sample
):
    rows = [{"id": f"order-{i}", **row} for i, row in enumerate(records(iris_sample))]
    answer = predict(client, "iris", rows)
    log = RequestLog.objects.get(request_id=answer["request_id"])
    assert json.loads(log.predictions) == answer["predictions"]
    assert json.loads(log.row_ids) == ["order-0", "order-1", "order-2", "order-3"]
    assert log.unjoinable == 0


def test_rows_past_the_cap_are_counted_unjoinable_not_dropped(
    client, staff_client, iris, iris_sample, settings
):
    settings.MODELHUB_LOG_PREDICTIONS_BYTES = len('["setosa","versicolor"]')
    answer = predict(client, "iris", records(iris_sample))
    log = RequestLog.objects.get(request_id=answer["request_id"])
    assert json.loads(log.predictions) == answer["predictions"][:2]
    assert log.unjoinable == 2
    assert version_quality(staff_client, "iris", 1)["quality"]["unjoinable"] == 2

    outcome = accepted(
        client,
        "iris",
        {"request_id": answer["request_id"], "labels": answer["predictions"]},
    )
    assert outcome["accepted"] == 2
    assert [r["code"] for r in outcome["rejected"]] == ["row_not_kept"] * 2


def test_a_model_with_keep_predictions_off_keeps_nothing_and_refuses_feedback(
    client, iris
):
    model = MLModel.objects.get(slug="iris")
    actions.update_model(
        model, name="", description="", private=False, keep_predictions=False
    )
    answer = predict(client, "iris", {"data": records_row()})
    assert RequestLog.objects.get(request_id=answer["request_id"]).predictions is None
    outcome = accepted(
        client, "iris", {"request_id": answer["request_id"], "labels": ["setosa"]}
    )
    assert outcome["accepted"] == 0
    assert outcome["rejected"][0]["code"] == "predictions_not_kept"
    assert not Feedback.objects.exists()


def records_row() -> dict[str, float]:
    return {
        "sepal length (cm)": 5.1,
        "sepal width (cm)": 3.5,
        "petal length (cm)": 1.4,
        "petal width (cm)": 0.2,
    }


# --- quality equals sklearn's on the same rows --------------------------------------


def test_accuracy_and_macro_f1_equal_sklearn_on_the_same_rows(
    client, staff_client, iris, iris_frame
):
    x, y = iris_frame
    chosen = list(range(0, 150, 7))
    truth, predicted = [], []
    for start in range(0, len(chosen), 5):
        rows = x.iloc[chosen[start : start + 5]]
        answer = predict(client, "iris", records(rows))
        # Deliberately wrong for every third row, so the scores are not 1.0.
        labels = [
            "virginica" if (start + i) % 3 == 0 else y.iloc[index]
            for i, index in enumerate(chosen[start : start + 5])
        ]
        assert accepted(
            client, "iris", {"request_id": answer["request_id"], "labels": labels}
        ) == {"accepted": len(labels), "unknown": [], "rejected": []}
        truth += labels
        predicted += answer["predictions"]

    quality = version_quality(staff_client, "iris", 1)["quality"]
    assert quality["labelled"] == len(truth)
    assert quality["coverage"] == 1.0
    assert quality["accuracy"] == round(accuracy_score(truth, predicted), 4)
    assert quality["f1_macro"] == round(f1_score(truth, predicted, average="macro"), 4)
    assert quality["accuracy"] < 1.0


def test_mae_and_rmse_equal_sklearn_on_the_same_rows(
    client, staff_client, diabetes, diabetes_rows
):
    answer = predict(client, "diabetes", {"data": diabetes_rows.tolist()})
    truth = [150.0, 75.5, 141, 206.25, 135]
    accepted(client, "diabetes", {"request_id": answer["request_id"], "labels": truth})

    quality = version_quality(staff_client, "diabetes", 1)["quality"]
    assert quality["labelled"] == 5
    assert quality["mae"] == round(mean_absolute_error(truth, answer["predictions"]), 6)
    rmse = math.sqrt(
        sum((p - t) ** 2 for p, t in zip(answer["predictions"], truth, strict=True)) / 5
    )
    assert quality["rmse"] == round(rmse, 6)
    assert "accuracy" not in quality


def test_coverage_is_labelled_rows_over_predicted_rows(
    client, staff_client, iris, iris_sample
):
    first = predict(client, "iris", records(iris_sample))
    predict(client, "iris", records(iris_sample))
    accepted(
        client,
        "iris",
        {
            "feedback": [
                {"request_id": first["request_id"], "row": 1, "label": "setosa"}
            ]
        },
    )
    quality = version_quality(staff_client, "iris", 1)["quality"]
    assert quality["labelled"] == 1
    assert quality["coverage"] == round(1 / 8, 4)


# --- the three shapes, late, repeated and out of order ----------------------------


def test_rows_named_by_the_ids_the_request_carried(client, iris, iris_sample):
    rows = [{"id": 100 + i, **row} for i, row in enumerate(records(iris_sample))]
    answer = predict(client, "iris", rows)
    outcome = accepted(
        client,
        "iris",
        {
            "request_id": answer["request_id"],
            "ids": [102, "100", 999],
            "labels": ["setosa", "virginica", "setosa"],
        },
    )
    assert outcome["accepted"] == 2
    assert outcome["rejected"] == [
        {
            "request_id": answer["request_id"],
            "id": 999,
            "code": "unknown_id",
            "detail": "The request named no row by this id.",
        }
    ]
    stored = dict(Feedback.objects.values_list("row", "label"))
    assert stored == {2: "setosa", 0: "virginica"}


def test_many_requests_at_once_in_any_order(client, staff_client, iris, iris_sample):
    answers = [predict(client, "iris", records(iris_sample)) for _ in range(3)]
    items = [
        {"request_id": a["request_id"], "row": row, "label": a["predictions"][row]}
        for a in reversed(answers)
        for row in (3, 0, 2)
    ]
    assert accepted(client, "iris", {"feedback": items})["accepted"] == 9
    quality = version_quality(staff_client, "iris", 1)["quality"]
    assert (quality["labelled"], quality["accuracy"]) == (9, 1.0)


def test_sending_a_row_again_replaces_its_label_and_never_counts_twice(
    client, staff_client, iris
):
    answer = predict(client, "iris", {"data": records_row()})
    predicted = answer["predictions"][0]
    wrong = "virginica" if predicted != "virginica" else "setosa"
    body = {"request_id": answer["request_id"], "labels": [wrong]}
    accepted(client, "iris", body)
    accepted(client, "iris", body)
    assert version_quality(staff_client, "iris", 1)["quality"]["accuracy"] == 0.0

    accepted(
        client, "iris", {"request_id": answer["request_id"], "labels": [predicted]}
    )
    quality = version_quality(staff_client, "iris", 1)["quality"]
    assert (quality["labelled"], quality["accuracy"]) == (1, 1.0)
    assert Feedback.objects.count() == 1


def test_feedback_days_later_counts_in_the_window_of_the_prediction(
    client, staff_client, iris
):
    answer = predict(client, "iris", {"data": records_row()})
    three_days_ago = timezone.now() - timedelta(days=3)
    RequestLog.objects.filter(request_id=answer["request_id"]).update(
        created_at=three_days_ago
    )
    accepted(
        client,
        "iris",
        {"request_id": answer["request_id"], "labels": answer["predictions"]},
    )
    stored = Feedback.objects.get()
    assert stored.predicted_at == three_days_ago
    assert stored.received_at > three_days_ago + timedelta(days=2)


# --- what cannot be joined -------------------------------------------------------


def test_unknown_request_ids_are_listed_once(client, iris):
    outcome = accepted(
        client,
        "iris",
        {
            "feedback": [
                {"request_id": "never-seen", "row": 0, "label": "setosa"},
                {"request_id": "never-seen", "row": 1, "label": "setosa"},
            ]
        },
    )
    assert outcome == {"accepted": 0, "unknown": ["never-seen"], "rejected": []}


def test_a_request_of_another_model_is_unknown_here(
    client, iris, diabetes, diabetes_rows
):
    answer = predict(client, "diabetes", {"data": diabetes_rows[:1].tolist()})
    outcome = accepted(
        client, "iris", {"request_id": answer["request_id"], "labels": ["setosa"]}
    )
    assert outcome["unknown"] == [answer["request_id"]]
    assert not Feedback.objects.exists()


def test_a_row_index_past_the_requests_rows_is_rejected(client, iris):
    answer = predict(client, "iris", {"data": records_row()})
    outcome = accepted(
        client,
        "iris",
        {
            "feedback": [
                {"request_id": answer["request_id"], "row": 1, "label": "setosa"}
            ]
        },
    )
    assert outcome["accepted"] == 0
    assert outcome["rejected"][0]["code"] == "row_out_of_range"
    assert outcome["rejected"][0]["row"] == 1


def test_a_label_not_among_the_classes_is_rejected(client, iris):
    answer = predict(client, "iris", {"data": records_row()})
    outcome = accepted(
        client, "iris", {"request_id": answer["request_id"], "labels": ["tulip"]}
    )
    assert outcome["rejected"][0]["code"] == "label_not_in_classes"
    assert "setosa" in outcome["rejected"][0]["detail"]
    assert not Feedback.objects.exists()


def test_a_regressors_label_must_be_a_finite_number(client, diabetes, diabetes_rows):
    answer = predict(client, "diabetes", {"data": diabetes_rows[:2].tolist()})
    outcome = accepted(
        client, "diabetes", {"request_id": answer["request_id"], "labels": ["high", 3]}
    )
    assert outcome["accepted"] == 1
    assert [r["code"] for r in outcome["rejected"]] == ["invalid_label"]


def test_a_failed_request_has_nothing_to_join(client, iris):
    response = post(client, "iris", {"data": [[1, 2]]})
    assert response.status_code == 400
    request_id = response["X-Request-ID"]
    outcome = accepted(client, "iris", {"request_id": request_id, "labels": ["setosa"]})
    assert outcome["rejected"][0]["code"] == "request_failed"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([1, 2], 400, "invalid_feedback"),
        ({"labels": ["setosa"]}, 400, "invalid_feedback"),
        ({"request_id": "r", "labels": "setosa"}, 400, "invalid_feedback"),
        ({"request_id": "r", "labels": []}, 400, "invalid_feedback"),
        ({"request_id": "r", "labels": [{"a": 1}]}, 400, "invalid_feedback"),
        ({"request_id": "r", "labels": [None]}, 400, "invalid_feedback"),
        ({"request_id": 7, "labels": ["setosa"]}, 400, "invalid_feedback"),
        (
            {"request_id": "r", "ids": [1], "labels": ["a", "b"]},
            400,
            "invalid_feedback",
        ),
        ({"request_id": "r", "labels": ["a"], "extra": 1}, 400, "invalid_feedback"),
        ({"feedback": [{"request_id": "r", "label": "a"}]}, 400, "invalid_feedback"),
        (
            {"feedback": [{"request_id": "r", "row": -1, "label": "a"}]},
            400,
            "invalid_feedback",
        ),
        (
            {"feedback": [{"request_id": "r", "row": 0, "id": 1, "label": "a"}]},
            400,
            "invalid_feedback",
        ),
        ({"request_id": "r", "labels": ["a"] * 11}, 413, "too_many_rows"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_body_wrong_as_a_whole_is_a_4xx_and_stores_nothing(
    client, iris, settings, body, status, code
):
    settings.MODELHUB_MAX_ROWS = 10
    answer = predict(client, "iris", {"data": records_row()})
    good = {"request_id": answer["request_id"], "labels": answer["predictions"]}
    accepted(client, "iris", good)
    before = list(Feedback.objects.values_list("label", "received_at"))

    response = send(client, "iris", body)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert list(Feedback.objects.values_list("label", "received_at")) == before


def test_malformed_json_is_a_400(client, iris):
    response = client.post(
        "/api/feedback/iris/", b"{nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_an_unknown_model_is_a_404(client, db):
    response = send(client, "no-such-model", {"request_id": "r", "labels": [1]})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"


# --- Prometheus -------------------------------------------------------------------


def gauge(text: str, name: str, labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_quality_gauges_show_each_version_and_route(client, iris, iris_sample):
    answer = predict(client, "iris", records(iris_sample))
    labels = list(answer["predictions"])
    labels[0] = "virginica" if labels[0] != "virginica" else "setosa"
    accepted(client, "iris", {"request_id": answer["request_id"], "labels": labels})

    text = client.get("/metrics").content.decode()
    where = 'model="iris",route="active",version="1"'
    assert gauge(text, "modelhub_quality_labelled_rows", where) == 4
    assert gauge(text, "modelhub_quality_accuracy", where) == 0.75
    assert gauge(text, "modelhub_quality_f1_macro", where) is not None
    assert gauge(text, "modelhub_quality_mae", where) is None


# --- routes ---------------------------------------------------------------------------


def test_a_label_scores_the_shadow_as_well_as_what_was_served(
    client, staff_client, iris_versions, iris_frame
):
    from api.dataplane import shadow
    from registry import rollouts
    from registry.rollouts import PolicySpec

    shadow.budget.reset()
    model = MLModel.objects.get(slug="iris")
    rollouts.set_policy(model, PolicySpec(shadow=model.versions.get(number=2)))
    x, y = iris_frame
    sample = x.iloc[::5].reset_index(drop=True)
    truth = list(y.iloc[::5])
    answer = predict(client, "iris", records(sample))
    kept = json.loads(
        RequestLog.objects.get(
            request_id=answer["request_id"], route="shadow"
        ).predictions
    )
    accepted(client, "iris", {"request_id": answer["request_id"], "labels": truth})

    one = version_quality(staff_client, "iris", 1)
    two = version_quality(staff_client, "iris", 2)
    assert one["routes"]["active"]["quality"]["accuracy"] == round(
        accuracy_score(truth, answer["predictions"]), 4
    )
    assert two["routes"]["shadow"]["quality"]["labelled"] == 30
    assert two["routes"]["shadow"]["quality"]["accuracy"] == round(
        accuracy_score(truth, kept), 4
    )
    assert one["quality"]["accuracy"] != two["routes"]["shadow"]["quality"]["accuracy"]
    assert two["quality"]["labelled"] == 0, "a shadow answered no client"


def test_the_labels_rollup_counts_each_row_once_at_every_resolution(
    client, iris, iris_sample
):
    from django.db.models import Sum

    from monitoring.models import FeedbackStat

    answer = predict(client, "iris", records(iris_sample))
    body = {"request_id": answer["request_id"], "labels": ["setosa"] * 4}
    accepted(client, "iris", body)
    accepted(client, "iris", {**body, "labels": answer["predictions"]})

    for resolution in ("m", "h", "d"):
        pairs = {
            (label, predicted): n
            for label, predicted, n in FeedbackStat.objects.filter(
                resolution=resolution
            )
            .values_list("label", "predicted")
            .annotate(n=Sum("count"))
            if n
        }
        stored: dict = {}
        for label, predicted in Feedback.objects.values_list("label", "predicted"):
            stored[label, predicted] = stored.get((label, predicted), 0) + 1
        assert pairs == stored
