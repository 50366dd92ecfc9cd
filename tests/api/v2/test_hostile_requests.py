"""Hostile infer requests (issue #18): too many inputs, deep data, shapes that
would allocate the impossible, encodings. Each answers the protocol's
{"error"} with a 4xx, and the request log keeps its code."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from monitoring.models import RequestLog

pytestmark = pytest.mark.django_db

URL = "/v2/models/iris/infer"
IRIS_FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def infer(api, body: Any, **headers: Any):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.post(URL, data, content_type="application/json", **headers)


def assert_refused(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    row = RequestLog.objects.get()
    assert (row.status, row.error_code) == (status, code)
    return body["error"]


def tensor(name: str, shape: list[Any], data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": "FP64", "data": data}


def test_too_many_inputs_answer_400_too_many_features(api, iris, settings):
    count = settings.MODELHUB_MAX_FEATURES + 1
    inputs = [tensor(f"f{i}", [1], [1.0]) for i in range(count)]
    error = assert_refused(infer(api, {"inputs": inputs}), 400, "too_many_features")
    assert f"{count:,}" in error


def test_many_feature_inputs_are_checked_in_linear_time(api, iris, settings):
    """Duplicates by Counter and missing names by set: 10,000 inputs, fast."""
    names = [*IRIS_FEATURES, *(f"f{i}" for i in range(9_000)), "f7"]
    inputs = [tensor(name, [1], [1.0]) for name in names]
    error = assert_refused(
        infer(api, {"inputs": inputs, "parameters": {"content_type": "pd"}}),
        400,
        "duplicate_features",
    )
    assert error == "Duplicate inputs: 'f7'"


def test_one_tensor_wider_than_the_limit_answers_400_too_many_features(
    api, iris, settings
):
    settings.MODELHUB_MAX_FEATURES = 5
    body = {"inputs": [tensor("input-0", [1, 6], [1.0] * 6)]}
    assert_refused(infer(api, body), 400, "too_many_features")


def nested(levels: int) -> Any:
    value: Any = [1.0]
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [100, 1_000, 5_000])
def test_deeply_nested_data_answers_400_too_deep(api, iris, levels):
    body = {"inputs": [tensor("input-0", [1, 4], nested(levels))]}
    text = json.dumps(body) if levels < 900 else None
    if text is None:  # the standard library's encoder recurses too
        text = json.dumps(body | {"inputs": ["@"]}).replace(
            '"@"',
            '{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": '
            + "[" * levels
            + "1.0"
            + "]" * levels
            + "}",
        )
    assert_refused(infer(api, text.encode()), 400, "too_deep")


@pytest.mark.parametrize(
    ("shape", "data"),
    [
        ([0, 2**62], []),
        ([2**62, 0], []),
        ([0, 2**62, 2**62], []),
        ([2**62], [1.0]),
        ([2**31, 2**31, 4], ROW),
    ],
    ids=["zero-by-huge", "huge-by-zero", "huge-cube", "huge-vector", "overflows"],
)
def test_shapes_too_large_to_allocate_answer_400_invalid_tensor(api, iris, shape, data):
    body = {"inputs": [tensor("input-0", shape, data)]}
    assert "shape" in assert_refused(infer(api, body), 400, "invalid_tensor")


@pytest.mark.parametrize(
    "shape",
    [[1, -4], [1.0, 4], [True, 4], [1, "4"], [1, None], [], [1] * 9, "1,4"],
    ids=["negative", "float", "bool", "string", "null", "empty", "9-dims", "text"],
)
def test_shapes_that_are_not_dimensions_answer_400_invalid_tensor(api, iris, shape):
    body = {"inputs": [tensor("input-0", shape, ROW)]}
    assert "'shape'" in assert_refused(infer(api, body), 400, "invalid_tensor")


def test_gzip_infer_request_is_decoded_and_served(api, iris):
    body = gzip.compress(json.dumps({"inputs": [tensor("x", [1, 4], ROW)]}).encode())
    response = infer(api, body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["outputs"][0]["shape"] == [1]


def test_gzip_bomb_infer_request_answers_413(api, iris, settings):
    settings.MODELHUB_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b" " * 20_000_000)
    error = assert_refused(
        infer(api, bomb, HTTP_CONTENT_ENCODING="gzip"), 413, "payload_too_large"
    )
    assert "decompressed" in error


def test_other_encodings_answer_415_unsupported_encoding(api, iris):
    body = json.dumps({"inputs": [tensor("x", [1, 4], ROW)]}).encode()
    error = assert_refused(
        infer(api, body, HTTP_CONTENT_ENCODING="br"), 415, "unsupported_encoding"
    )
    assert "'br'" in error
