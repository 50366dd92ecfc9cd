"""Hostile bodies to POST /api/predict/ (issue #18): too wide, too deep, lax
numbers and transfer or content encodings. Each is a coded JSON 4xx, fast,
and logged."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from typing import Any

import pytest

from monitoring.models import RequestLog

pytestmark = pytest.mark.django_db

JSON = "application/json"
CSV = "text/csv"
URL = "/api/predict/iris/"
IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
IRIS_HEADER = ",".join(f'"{name}"' for name in IRIS_ROW)


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def post(api, body: Any, content_type: str = JSON, url: str = URL, **headers: Any):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.post(url, data, content_type=content_type, **headers)


def assert_refused(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    row = RequestLog.objects.get()
    assert (row.status, row.error_code) == (status, code)
    return body


def nested(levels: int, inner: Any = 1) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


def deep_text(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


# --- too many features ------------------------------------------------------------


def test_csv_with_too_many_columns_answers_400_too_many_features(api, iris, settings):
    width = settings.MODELHUB_MAX_FEATURES + 1
    header = ",".join(f"c{i}" for i in range(width))
    row = ",".join("1" for _ in range(width))
    response = post(api, f"{header}\n{row}\n".encode(), CSV)
    body = assert_refused(response, 400, "too_many_features")
    assert f"{width:,}" in body["detail"]


def test_records_with_too_many_keys_answer_400_too_many_features(api, iris, settings):
    settings.MODELHUB_MAX_FEATURES = 10
    record = {**IRIS_ROW, **{f"extra{i}": 1 for i in range(7)}}
    assert_refused(post(api, {"data": [record]}), 400, "too_many_features")


def test_split_with_too_many_columns_answers_400_too_many_features(api, iris, settings):
    settings.MODELHUB_MAX_FEATURES = 10
    columns = [*IRIS_ROW, *(f"extra{i}" for i in range(7))]
    body = {"dataframe_split": {"columns": columns, "data": [[1.0] * 11]}}
    assert_refused(post(api, body), 400, "too_many_features")


def test_column_inputs_with_too_many_columns_answer_400_too_many_features(
    api, iris, settings
):
    settings.MODELHUB_MAX_FEATURES = 10
    columns = {name: [1.0] for name in [*IRIS_ROW, *(f"x{i}" for i in range(7))]}
    assert_refused(post(api, {"inputs": columns}), 400, "too_many_features")


def test_feature_limit_never_refuses_the_models_own_features(api, iris, settings):
    settings.MODELHUB_MAX_FEATURES = 1
    csv = f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n".encode()
    assert post(api, csv, CSV).status_code == 200
    assert post(api, {"data": IRIS_ROW}).status_code == 200


def test_wide_csv_with_duplicates_names_them(api, iris, settings):
    """Duplicates are found with a Counter, not a list.count per column."""
    names = [f"c{i}" for i in range(settings.MODELHUB_MAX_FEATURES - 2)]
    header = ",".join([*names, "c7", "c9"])
    row = ",".join("1" for _ in range(len(names) + 2))
    body = assert_refused(
        post(api, f"{header}\n{row}\n".encode(), CSV), 400, "duplicate_features"
    )
    assert body["detail"] == "Duplicate features: 'c7', 'c9'"


# --- too deep -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{**IRIS_ROW, "id": nested(250)}]},
        {"data": IRIS_ROW, "params": {"note": nested(100)}},
        {"dataframe_records": [{**IRIS_ROW, "sepal length (cm)": nested(70)}]},
    ],
    ids=["ids-250", "params-100", "value-70"],
)
def test_json_nested_past_the_limit_answers_400_too_deep(api, iris, body):
    assert_refused(post(api, body), 400, "too_deep")


def test_json_nested_past_orjsons_own_limit_answers_400_too_deep(api, iris):
    assert_refused(post(api, deep_text(5_000).encode()), 400, "too_deep")


def test_json_depth_limit_is_a_setting(api, iris, settings):
    settings.MODELHUB_MAX_JSON_DEPTH = 3
    body = {"data": [{**IRIS_ROW, "id": nested(2)}]}
    assert_refused(post(api, body), 400, "too_deep")


def test_batches_with_many_brackets_but_little_depth_are_served(api, iris):
    body = {"data": [{**IRIS_ROW, "id": [i]} for i in range(500)]}
    response = post(api, body)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["ids"][:2] == [[0], [1]]


def test_brackets_inside_strings_do_not_count_as_depth(api, iris):
    body = {"data": [{**IRIS_ROW, "id": "[" * 500 + "{" * 500}]}
    response = post(api, body)
    assert response.status_code == 200, response.content[:300]


# --- lax numbers in CSV -----------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    ["5_1", "\u0663", "\uff15", " 5.1", "5.1 ", "\u00a05.1", "5.1\t", "1_0e1"],
    ids=[
        "underscore",
        "arabic-indic",
        "fullwidth",
        "lead",
        "trail",
        "nbsp",
        "tab",
        "exp",
    ],
)
def test_csv_numbers_python_reads_but_json_does_not_answer_400_invalid_value(
    api, iris, cell
):
    csv = f'{IRIS_HEADER}\n"{cell}",3.5,1.4,0.2\n'.encode()
    body = assert_refused(post(api, csv, CSV), 400, "invalid_value")
    assert body["column"] == "sepal length (cm)"


@pytest.mark.parametrize("cell", ["5", "-5.1", "+5.1", "5.", ".5", "5e0", "5.1E+0"])
def test_csv_plain_decimal_numbers_are_served(api, iris, cell):
    csv = f"{IRIS_HEADER}\n{cell},3.5,1.4,0.2\n".encode()
    response = post(api, csv, CSV)
    assert response.status_code == 200, response.content[:300]


# --- chunked and encoded bodies -----------------------------------------------------


def chunked(api, body: bytes, url: str = URL, content_type: str = JSON, **headers):
    """As gunicorn hands Django a chunked body: no Content-Length, and a
    wsgi.input that reads the decoded chunks to their end."""
    return api.generic(
        "POST",
        url,
        b"",
        content_type=content_type,
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
        **headers,
    )


def test_chunked_body_is_read_and_served(api, iris):
    response = chunked(api, json.dumps({"data": IRIS_ROW}).encode())
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["predictions"]) == 1


def test_chunked_body_over_the_limit_answers_413(api, iris, settings):
    settings.MODELHUB_MAX_BODY_BYTES = 100
    body = json.dumps({"data": IRIS_ROW, "params": {"pad": "x" * 200}}).encode()
    assert_refused(chunked(api, body), 413, "payload_too_large")


def test_gzip_body_is_decoded_and_served(api, iris):
    body = gzip.compress(json.dumps({"data": IRIS_ROW}).encode())
    response = post(api, body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content[:300]


def test_gzip_csv_body_is_decoded_and_served(api, iris):
    body = gzip.compress(f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n".encode())
    response = post(api, body, CSV, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content[:300]


def test_gzip_bomb_answers_413_on_its_decoded_size(api, iris, settings):
    settings.MODELHUB_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b" " * 50_000_000)
    assert len(bomb) < settings.MODELHUB_MAX_BODY_BYTES
    body = assert_refused(
        post(api, bomb, HTTP_CONTENT_ENCODING="gzip"), 413, "payload_too_large"
    )
    assert "decompressed" in body["detail"]


def test_corrupt_gzip_answers_400_invalid_encoding(api, iris):
    truncated = gzip.compress(json.dumps({"data": IRIS_ROW}).encode())[:-12]
    assert_refused(
        post(api, truncated, HTTP_CONTENT_ENCODING="gzip"), 400, "invalid_encoding"
    )


@pytest.mark.parametrize("encoding", ["deflate", "br", "gzip, gzip", "compress"])
def test_other_content_encodings_answer_415_unsupported_encoding(api, iris, encoding):
    body = zlib.compress(json.dumps({"data": IRIS_ROW}).encode())
    assert_refused(
        post(api, body, HTTP_CONTENT_ENCODING=encoding), 415, "unsupported_encoding"
    )


def test_identity_encoding_is_served(api, iris):
    response = post(api, {"data": IRIS_ROW}, HTTP_CONTENT_ENCODING="identity")
    assert response.status_code == 200, response.content[:300]
