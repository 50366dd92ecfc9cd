"""Matching a drift reference's columns to the model's input schema, as the
preflight child does before it predicts them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from registry.inspection import infer_schema
from registry.reference_check import ReferenceMismatch, predict_reference


@pytest.fixture(scope="module")
def unnamed():
    """A regression on two unnamed features: y = x0 + 10 x1."""
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 3.0]])
    return LinearRegression().fit(x, x[:, 0] + 10 * x[:, 1])


def test_an_unnamed_schema_takes_the_columns_in_order(unnamed):
    schema = infer_schema(unnamed, {})
    found = predict_reference(unnamed, schema, {"b": ["1"], "a": ["2"]})
    assert found["columns"] == {"f0": [1.0], "f1": [2.0]}
    assert found["predictions"] == [pytest.approx(21.0)]


def test_an_unnamed_schema_takes_columns_by_name_when_the_csv_names_them_all(
    unnamed,
):
    metadata = {"input_schema": ["x0", "x1"]}
    schema = infer_schema(unnamed, metadata)
    given = {"x1": ["1"], "note": ["n"], "x0": ["2"]}
    found = predict_reference(unnamed, schema, given)
    assert found["columns"] == {"x0": [2.0], "x1": [1.0]}
    assert found["predictions"] == [pytest.approx(12.0)]


def test_a_schema_with_no_features_cannot_take_a_reference(unnamed):
    schema = {"features": [], "named": False, "source": "unknown", "allow_nan": False}
    with pytest.raises(ReferenceMismatch) as refused:
        predict_reference(unnamed, schema, {"a": ["1"]})
    assert refused.value.failure == "reference_no_schema"


@pytest.mark.parametrize("cell", ["1_000", "one", "0x10"])
def test_number_features_take_only_what_reads_as_a_number(unnamed, cell):
    schema = infer_schema(unnamed, {})
    with pytest.raises(ReferenceMismatch) as refused:
        predict_reference(unnamed, schema, {"a": ["1", cell], "b": ["2", "3"]})
    assert refused.value.failure == "reference_not_numbers"
    assert refused.value.details == {"columns": "'f0'"}
    assert repr(cell) in str(refused.value.error)
