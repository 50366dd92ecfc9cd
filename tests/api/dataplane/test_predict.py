"""POST /api/predict/<slug>/: every payload shape gives in-process predictions."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import actions

pytestmark = pytest.mark.django_db


def post(client, slug: str, body: Any, *, query: str = "", **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    content_type = headers.pop("content_type", "application/json")
    return client.post(
        f"/api/predict/{slug}/{query}", data, content_type=content_type, **headers
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict(orient="records")


def shapes_for(frame: pd.DataFrame) -> dict[str, Any]:
    """Every JSON shape carrying the same rows, columns shuffled where keyed."""
    rows = records(frame)
    shuffled = [dict(reversed(list(r.items()))) for r in rows]
    columns = list(frame.columns)[::-1]
    return {
        "data_list": {"data": shuffled},
        "dataframe_records": {"dataframe_records": rows},
        "dataframe_split": {
            "dataframe_split": {
                "columns": columns,
                "data": frame[columns].to_numpy().tolist(),
            }
        },
        "instances_records": {"instances": rows},
        "inputs_columns": {"inputs": {c: frame[c].tolist() for c in columns}},
        "bare_list": shuffled,
    }


def csv_body(frame: pd.DataFrame) -> str:
    return frame[list(frame.columns)[::-1]].to_csv(index=False)


def assert_predictions(response, expected: np.ndarray) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    got = body["predictions"]
    if np.asarray(expected).dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    else:
        assert got == np.asarray(expected).tolist()
    return body


@pytest.fixture
def iris_sample(iris_frame) -> pd.DataFrame:
    x, _ = iris_frame
    return x.iloc[[0, 60, 120]].reset_index(drop=True)


@pytest.fixture
def mixed_sample(mixed_frame) -> pd.DataFrame:
    frame, _ = mixed_frame
    return frame.iloc[:4].reset_index(drop=True)


SHAPES = [
    "data_list",
    "dataframe_records",
    "dataframe_split",
    "instances_records",
    "inputs_columns",
    "bare_list",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_string_label_classifier_matches_in_process_for_every_shape(
    client, publish, iris_classifier, iris_sample, shape
):
    publish(iris_classifier, "iris")
    response = post(client, "iris", shapes_for(iris_sample)[shape])
    assert_predictions(response, iris_classifier.predict(iris_sample))


@pytest.mark.parametrize("shape", SHAPES)
def test_column_transformer_pipeline_matches_in_process_for_every_shape(
    client, publish, pipeline_classifier, mixed_sample, shape
):
    publish(pipeline_classifier, "churn")
    response = post(client, "churn", shapes_for(mixed_sample)[shape])
    assert_predictions(response, pipeline_classifier.predict(mixed_sample))


def test_csv_body_matches_in_process_for_classifier_and_pipeline(
    client, publish, iris_classifier, iris_sample, pipeline_classifier, mixed_sample
):
    publish(iris_classifier, "iris")
    publish(pipeline_classifier, "churn")
    iris = post(client, "iris", csv_body(iris_sample), content_type="text/csv")
    assert_predictions(iris, iris_classifier.predict(iris_sample))
    churn = post(client, "churn", csv_body(mixed_sample), content_type="text/csv")
    assert_predictions(churn, pipeline_classifier.predict(mixed_sample))


def test_single_record_shapes_match_in_process(
    client, publish, iris_classifier, iris_sample
):
    publish(iris_classifier, "iris")
    row = records(iris_sample)[0]
    expected = iris_classifier.predict(iris_sample.iloc[[0]])
    assert_predictions(post(client, "iris", {"data": row}), expected)
    assert_predictions(post(client, "iris", row), expected)
    assert_predictions(post(client, "iris", {**row, "params": {}}), expected)


@pytest.mark.parametrize("key", ["inputs", "instances", "data"])
def test_numpy_fitted_regressor_takes_positional_rows(
    client, publish, numpy_regressor, key
):
    from sklearn.datasets import load_diabetes

    x = load_diabetes().data[:5]
    publish(numpy_regressor, "diabetes")
    response = post(client, "diabetes", {key: x.tolist()})
    assert_predictions(response, numpy_regressor.predict(x))


def test_numpy_fitted_regressor_takes_records_keyed_by_positional_names(
    client, publish, numpy_regressor
):
    from sklearn.datasets import load_diabetes

    x = load_diabetes().data[:3]
    publish(numpy_regressor, "diabetes")
    body = {"dataframe_records": [{f"f{i}": v for i, v in enumerate(r)} for r in x]}
    assert_predictions(post(client, "diabetes", body), numpy_regressor.predict(x))
    split = {"dataframe_split": {"data": x.tolist()}}
    assert_predictions(post(client, "diabetes", split), numpy_regressor.predict(x))


def test_clusterer_predicts_cluster_ids(client, publish, clusterer):
    x = np.random.default_rng(5).normal(size=(6, 3))
    publish(clusterer, "segments")
    body = assert_predictions(
        post(client, "segments", {"instances": x.tolist()}), clusterer.predict(x)
    )
    assert all(isinstance(v, int) for v in body["predictions"])


def test_probabilities_are_keyed_by_label_when_asked(
    client, publish, iris_classifier, iris_sample
):
    publish(iris_classifier, "iris")
    expected = iris_classifier.predict_proba(iris_sample)
    for query, body in (
        ("?proba=1", {"data": records(iris_sample)}),
        ("", {"data": records(iris_sample), "params": {"proba": True}}),
    ):
        result = post(client, "iris", body, query=query).json()
        assert [list(p) for p in result["probabilities"]] == [
            ["setosa", "versicolor", "virginica"]
        ] * 3
        got = [
            [p[k] for k in ("setosa", "versicolor", "virginica")]
            for p in result["probabilities"]
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    plain = post(client, "iris", {"data": records(iris_sample)}).json()
    assert "probabilities" not in plain


def test_probabilities_of_integer_labels_are_keyed_by_string(
    client, publish, pipeline_classifier, mixed_sample
):
    publish(pipeline_classifier, "churn")
    result = post(
        client, "churn", {"data": records(mixed_sample)}, query="?proba=true"
    ).json()
    assert set(result["probabilities"][0]) == {"0", "1"}


def test_multi_output_classifier_with_uneven_classes_serves_predictions_only(
    client, publish
):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    x, y = load_iris(return_X_y=True)
    targets = np.c_[y, (y > 0).astype(int)]  # 3 classes, then 2
    model = MultiOutputClassifier(LogisticRegression(max_iter=500)).fit(x, targets)
    version = publish(model, "two-labels")
    assert version.classes == [[0, 1, 2], [0, 1]]
    response = post(client, "two-labels", {"inputs": x[:3].tolist()}, query="?proba=1")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["predictions"] == model.predict(x[:3]).tolist()
    assert "probabilities" not in result
    outputs = client.get("/v2/models/two-labels").json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict"]


def test_regressor_ignores_proba_request(client, publish, numpy_regressor):
    publish(numpy_regressor, "diabetes")
    result = post(client, "diabetes", {"inputs": [[0.0] * 10]}, query="?proba=1")
    assert result.status_code == 200
    assert "probabilities" not in result.json()


def test_record_ids_are_echoed_aligned_with_predictions(
    client, publish, iris_classifier, iris_sample
):
    publish(iris_classifier, "iris")
    rows = [{"id": f"row-{i}", **r} for i, r in enumerate(records(iris_sample))]
    body = assert_predictions(
        post(client, "iris", {"dataframe_records": rows}),
        iris_classifier.predict(iris_sample),
    )
    assert body["ids"] == ["row-0", "row-1", "row-2"]
    split = {
        "dataframe_split": {
            "columns": ["id", *iris_sample.columns],
            "data": [[i, *r] for i, r in enumerate(iris_sample.to_numpy().tolist())],
        }
    }
    assert post(client, "iris", split).json()["ids"] == [0, 1, 2]
    assert "ids" not in post(client, "iris", {"data": records(iris_sample)}).json()


def test_response_names_model_version_and_request_id(
    client, publish, iris_classifier, iris_sample
):
    publish(iris_classifier, "iris")
    response = post(
        client, "iris", {"data": records(iris_sample)[0]}, HTTP_X_REQUEST_ID="abc-123"
    )
    body = response.json()
    assert body["model"] == "iris"
    assert body["version"] == 1
    assert body["request_id"] == "abc-123"
    assert response["X-Request-ID"] == "abc-123"
    assert response["X-Model-Version"] == "1"
    timing = dict(
        part.strip().split(";dur=") for part in response["Server-Timing"].split(",")
    )
    assert {"decode", "predict", "total"} <= set(timing)
    assert all(float(v) >= 0 for v in timing.values())


def test_unsafe_incoming_request_id_is_replaced(client, publish, iris_classifier):
    publish(iris_classifier, "iris")
    response = post(
        client, "iris", {"inputs": [[1, 2, 3, 4]]}, HTTP_X_REQUEST_ID="bad id\n<x>"
    )
    assert response["X-Request-ID"] != "bad id\n<x>"
    assert len(response.json()["request_id"]) == 32


def test_version_is_pinned_by_path_or_query(
    client, publish, iris_classifier, numpy_regressor
):
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(40, 4))
    other = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    publish(iris_classifier, "m")
    publish(other, "m", activate=False)
    row = [[5.1, 3.5, 1.4, 0.2]]
    assert post(client, "m", {"inputs": row}).json()["version"] == 1
    pinned = client.post(
        "/api/predict/m/v2/", {"inputs": row}, content_type="application/json"
    )
    assert pinned.json()["version"] == 2
    assert pinned.json()["predictions"] == other.predict(np.array(row)).tolist()
    assert post(client, "m", {"inputs": row}, query="?version=2").json()["version"] == 2


def test_activation_and_rollback_are_served_on_next_request(
    client, publish, iris_classifier
):
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(2).normal(size=(30, 4))
    tree = DecisionTreeClassifier(random_state=0).fit(x, (x[:, 1] > 0).astype(int))
    v1 = publish(iris_classifier, "m")
    v2 = publish(tree, "m")
    row = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}
    assert post(client, "m", row).json()["version"] == 2
    actions.activate(v1)
    assert post(client, "m", row).json()["version"] == 1
    actions.rollback(v2.model)
    assert post(client, "m", row).json()["version"] == 2


def test_warm_predict_costs_one_query_and_no_reload(
    client, publish, iris_classifier, iris_sample, settings
):
    from registry.cache import model_cache

    settings.MODELHUB_LOG_ROLLUP_MS = 60_000  # no fold due during the request
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    publish(iris_classifier, "iris")
    body = {"data": records(iris_sample)}
    post(client, "iris", body)
    misses = model_cache.misses
    with CaptureQueriesContext(connection) as queries:
        response = post(client, "iris", body)
    assert response.status_code == 200
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    registry = [sql for sql in statements if "registry_" in sql]
    logging = [sql for sql in statements if "api_request" in sql]
    assert len(registry) == 1, "slug resolution is one query"
    # One insert: the dashboard's rollup is folded from the rows apart from
    # requests (monitoring.rollup).
    assert len(logging) == 1
    assert len(statements) == 2
    assert model_cache.misses == misses


def test_cache_is_bounded_by_setting(client, publish, iris_classifier, settings):
    from registry.cache import model_cache

    settings.MODELHUB_MODEL_CACHE_SIZE = 2
    for slug in ("a", "b", "c"):
        publish(iris_classifier, slug)
        post(client, slug, {"inputs": [[1, 2, 3, 4]]})
    assert len(model_cache) == 2
    assert [ref.slug for ref in model_cache.loaded()] == ["b", "c"]


def test_null_becomes_nan_only_for_models_that_accept_it(client, publish):
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = pd.DataFrame({"a": [0.0, 1.0, np.nan, 3.0] * 10, "b": np.arange(40.0)})
    model = HistGradientBoostingRegressor(max_iter=5).fit(x, np.arange(40.0))
    publish(model, "hgb")
    response = post(client, "hgb", {"data": [{"a": None, "b": 2.0}]})
    expected = model.predict(pd.DataFrame({"a": [np.nan], "b": [2.0]}))
    assert_predictions(response, expected)


class NanAboveHundred:
    """Predicts x, but NaN or infinity for large inputs, like an unstable model."""

    n_features_in_ = 1

    def predict(self, x):
        x = np.asarray(x, dtype=float)[:, 0]
        return np.where(x > 100, np.nan, np.where(x < -100, np.inf, x))


def test_nan_and_infinite_predictions_encode_as_null(client, publish):
    publish(NanAboveHundred(), "unstable")
    response = post(client, "unstable", {"inputs": [[1.0], [500.0], [-500.0]]})
    assert response.status_code == 200
    assert response.json()["predictions"] == [1.0, None, None]


def test_schema_in_another_order_still_feeds_columns_in_fitted_order(
    client, publish, iris_classifier, iris_sample
):
    shuffled = dict(reversed(list(records(iris_sample)[0].items())))
    publish(iris_classifier, "iris", metadata={"input_example": shuffled})
    keyed = post(client, "iris", {"data": records(iris_sample)})
    assert_predictions(keyed, iris_classifier.predict(iris_sample))


def test_predict_response_has_content_length(client, publish, iris_classifier):
    """Without it gunicorn would send every prediction chunked."""
    publish(iris_classifier, "iris")
    response = post(client, "iris", {"inputs": [[5.1, 3.5, 1.4, 0.2]]})
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(response.content))
    assert "Transfer-Encoding" not in response


def test_schema_edit_is_served_by_a_warm_model_from_the_next_request(
    client, publish, numpy_regressor, diabetes_rows
):
    from registry.cache import model_cache

    version = publish(numpy_regressor, "diabetes")
    row = {f"f{i}": value for i, value in enumerate(diabetes_rows[0].tolist())}
    expected = post(client, "diabetes", {"data": row}).json()["predictions"]
    misses = model_cache.misses
    renamed = [{"name": f"x{i}", "type": "number"} for i in range(10)]
    actions.edit_version(version, input_schema=renamed)

    new_row = {f"x{i}": value for i, value in enumerate(diabetes_rows[0].tolist())}
    response = post(client, "diabetes", {"data": new_row})
    assert response.status_code == 200, response.json()
    assert response.json()["predictions"] == expected
    old = post(client, "diabetes", {"data": row})
    assert old.status_code == 400
    assert old.json()["code"] == "missing_features"
    assert model_cache.misses == misses, "the estimator is not loaded again"


def test_private_flag_set_on_a_warm_model_is_enforced_from_the_next_request(
    client, publish, iris_classifier, iris_sample
):
    version = publish(iris_classifier, "iris")
    body = {"data": records(iris_sample)}
    assert post(client, "iris", body).status_code == 200
    model = version.model
    actions.update_model(model, name=model.name, description="", private=True)
    assert post(client, "iris", body).status_code == 404
