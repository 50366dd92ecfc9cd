"""The example a page shows is a body its endpoint accepts: the version's
input example in schema order, else typed placeholders under real names."""

from __future__ import annotations

import json

import pytest

from api.pages.examples import INPUT_EXAMPLE, PLACEHOLDERS, example_for
from tests.servers import IRIS_ROW

pytestmark = pytest.mark.django_db


def predict(client, slug: str, body):
    response = client.post(
        f"/api/predict/{slug}/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()["predictions"]


def test_example_keeps_the_input_example_in_schema_order(
    client, publish, iris_classifier
):
    shuffled = dict(reversed(list(IRIS_ROW.items())))
    version = publish(iris_classifier, "iris", metadata={"input_example": shuffled})
    example = example_for(version)
    assert example.source == INPUT_EXAMPLE
    assert list(example.row) == list(IRIS_ROW)
    assert predict(client, "iris", example.rest_body()) == ["virginica"]


def test_example_names_a_positional_input_example_after_the_features(
    client, publish, iris_classifier
):
    row = list(IRIS_ROW.values())
    version = publish(iris_classifier, "iris", metadata={"input_example": [row]})
    example = example_for(version)
    assert example.row == IRIS_ROW
    assert predict(client, "iris", example.rest_body()) == ["virginica"]


def test_example_without_input_example_is_typed_and_accepted(client, churn):
    example = example_for(churn)
    assert example.source == PLACEHOLDERS
    assert example.row["age"] == 0.0
    assert example.row["city"] in ("lyon", "nice", "paris")
    assert example.row["plan"] in ("free", "pro")
    assert len(predict(client, "churn", example.rest_body())) == 1


def test_example_of_a_model_without_feature_names_is_one_positional_row(
    client, diabetes
):
    example = example_for(diabetes)
    assert not example.named
    assert example.rest_body() == {"inputs": [[0.0] * 10]}
    assert len(predict(client, "diabetes", example.rest_body())) == 1
