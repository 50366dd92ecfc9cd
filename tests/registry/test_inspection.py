"""Schema, kind and class inference from fitted estimators."""

from __future__ import annotations

import numpy as np
import pytest

from registry.inspection import SchemaError, describe, normalize_features, smoke_test


def test_schema_uses_feature_names_of_dataframe_fitted_model(iris_classifier):
    schema = describe(iris_classifier, {})["input_schema"]
    assert schema["named"] is True
    assert schema["source"] == "feature_names_in_"
    assert [f["name"] for f in schema["features"]] == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    assert {f["type"] for f in schema["features"]} == {"number"}


def test_schema_is_positional_for_numpy_fitted_model(numpy_regressor):
    schema = describe(numpy_regressor, {})["input_schema"]
    assert schema["named"] is False
    assert schema["source"] == "n_features_in_"
    assert [f["name"] for f in schema["features"]] == [f"f{i}" for i in range(10)]


def test_schema_marks_encoded_string_columns_of_pipeline(pipeline_classifier):
    schema = describe(pipeline_classifier, {})["input_schema"]
    by_name = {f["name"]: f for f in schema["features"]}
    assert list(by_name) == ["age", "income", "city", "plan"]
    assert by_name["age"]["type"] == by_name["income"]["type"] == "number"
    assert by_name["city"]["type"] == "string"
    assert sorted(by_name["city"]["categories"]) == ["lyon", "nice", "paris"]
    assert sorted(by_name["plan"]["categories"]) == ["free", "pro"]


def test_describe_reports_string_classes_of_classifier(iris_classifier):
    info = describe(iris_classifier, {})
    assert info["kind"] == "classifier"
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert info["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_describe_detects_regressor_clusterer_and_outlier_detector(
    numpy_regressor, clusterer
):
    from sklearn.ensemble import IsolationForest

    outliers = IsolationForest(n_estimators=5, random_state=0).fit(np.zeros((10, 2)))
    assert describe(numpy_regressor, {})["kind"] == "regressor"
    assert describe(clusterer, {})["kind"] == "clusterer"
    assert describe(outliers, {})["kind"] == "outlier_detector"
    assert describe(numpy_regressor, {})["classes"] is None


def test_metadata_schema_wins_over_inferred_schema(numpy_regressor):
    given = [{"name": f"x{i}", "type": "double"} for i in range(10)]
    schema = describe(numpy_regressor, {"input_schema": given})["input_schema"]
    assert schema["source"] == "metadata"
    assert [f["name"] for f in schema["features"]][:2] == ["x0", "x1"]
    assert schema["named"] is False


def test_input_example_gives_schema_and_smoke_row(pipeline_classifier):
    example = {"age": 30.0, "income": 1.0, "city": "nice", "plan": "pro"}
    schema = describe(pipeline_classifier, {"input_example": example})["input_schema"]
    assert schema["source"] == "input_example"
    assert [f["type"] for f in schema["features"]] == [
        "number",
        "number",
        "string",
        "string",
    ]
    assert (
        smoke_test(pipeline_classifier, schema, {"input_example": example}) == "passed"
    )


def test_smoke_test_builds_row_from_encoder_categories(pipeline_classifier):
    schema = describe(pipeline_classifier, {})["input_schema"]
    assert smoke_test(pipeline_classifier, schema, {}) == "passed"


def test_smoke_test_is_skipped_when_no_row_can_be_built():
    class Opaque:
        def predict(self, rows):
            return [0] * len(rows)

    schema = describe(Opaque(), {})["input_schema"]
    assert schema["source"] == "unknown"
    assert smoke_test(Opaque(), schema, {}).startswith("skipped:")


def test_smoke_test_refuses_non_finite_predictions(numpy_regressor):
    class NanModel:
        n_features_in_ = 2

        def predict(self, rows):
            return np.full(len(rows), np.nan)

    schema = describe(NanModel(), {})["input_schema"]
    with pytest.raises(ValueError, match="non-finite"):
        smoke_test(NanModel(), schema, {})


def test_normalize_features_rejects_duplicates_and_unknown_types():
    with pytest.raises(SchemaError, match="duplicate"):
        normalize_features([{"name": "a"}, {"name": "a"}])
    with pytest.raises(SchemaError, match="unknown type"):
        normalize_features([{"name": "a", "type": "tensor"}])
    assert normalize_features({"features": ["a"]}) == [{"name": "a", "type": "number"}]


def test_metadata_features_must_match_fitted_feature_names(iris_classifier):
    with pytest.raises(SchemaError, match="differ from the model's feature names"):
        describe(iris_classifier, {"input_schema": [{"name": "a", "type": "number"}]})
