"""Every error of POST /api/predict/<slug>/ is JSON with a stable code (DESIGN.md)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db

JSON = "application/json"
CSV = "text/csv"
IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
IRIS_HEADER = ",".join(f'"{name}"' for name in IRIS_ROW)
MIXED_ROW = {"age": 30.0, "income": 50_000.0, "city": "paris", "plan": "free"}


class RejectsNegative:
    """Predicts the row sum but raises on negative input, as a model's own check."""

    n_features_in_ = 2

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if (x < 0).any():
            raise ValueError("negative values are not allowed\nsee the model card")
        return x.sum(axis=1)


class SleepsOnPredict:
    """Sleeps for as many seconds as its one feature says."""

    n_features_in_ = 1

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        time.sleep(float(x[0, 0]))
        return x[:, 0]


def body_of(payload: Any) -> bytes:
    """Bytes as given, text (CSV) encoded, anything else as JSON."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def iris_row(drop: str | None = None, **by_prefix: Any) -> dict[str, Any]:
    """IRIS_ROW with values replaced by name prefix (sepal_l=...) or one dropped."""
    row = {k: v for k, v in IRIS_ROW.items() if k != drop}
    for prefix, value in by_prefix.items():
        name = next(k for k in IRIS_ROW if k.replace(" ", "_").startswith(prefix))
        row[name] = value
    return row


def post(api, url: str, payload: Any, content_type: str = JSON, **headers: Any):
    return api.post(url, body_of(payload), content_type=content_type, **headers)


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def assert_error(response, status: int, code: str | set[str]) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert body["code"] in ({code} if isinstance(code, str) else code)
    assert response.has_header("X-Request-ID")
    return body


@pytest.fixture
def api(client):
    """The Django test client, answering a crash with its 500 instead of raising."""
    client.raise_request_exception = False
    return client


@pytest.fixture
def iris(publish, iris_classifier):
    return publish(iris_classifier, "iris")


@pytest.fixture(scope="module")
def nan_tolerant_classifier(iris_frame):
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = iris_frame
    return HistGradientBoostingClassifier(max_iter=5).fit(x, y)


@pytest.fixture
def churn(publish, pipeline_classifier):
    """Strings by name: city and plan are one-hot encoded string columns."""
    return publish(pipeline_classifier, "churn")


@pytest.fixture
def throttle_cache():
    cache.clear()
    yield
    cache.clear()


# --- 400: the body cannot become model input ---------------------------------


def test_predict_names_exactly_the_missing_features(api, iris):
    response = post(
        api, "/api/predict/iris/", {"data": iris_row(drop="petal width (cm)")}
    )
    body = assert_error(response, 400, "missing_features")
    assert body["detail"] == "Missing features: 'petal width (cm)'"
    assert body["features"] == ["petal width (cm)"]


def test_predict_names_the_unknown_features(api, iris):
    response = post(api, "/api/predict/iris/", {**IRIS_ROW, "colour": "blue"})
    body = assert_error(response, 400, "unknown_features")
    assert "'colour'" in body["detail"]
    assert body["features"] == ["colour"]


def test_predict_echoes_a_huge_unknown_feature_name_shortened(api, iris):
    name = "x" * 100_000
    response = post(api, "/api/predict/iris/", {**IRIS_ROW, name: 1.0})
    body = assert_error(response, 400, "unknown_features")
    assert len(response.content) < 1_000
    assert body["features"] == ["x" * 100 + "…"]


@pytest.mark.parametrize(
    "value",
    ["abc", "5.1", True, [5.1], {"v": 5.1}],
    ids=["text", "numeric-string", "boolean", "list", "object"],
)
def test_predict_refuses_non_number_in_numeric_column_naming_it(api, iris, value):
    response = post(api, "/api/predict/iris/", {"data": iris_row(petal_l=value)})
    body = assert_error(response, 400, "wrong_type")
    assert "'petal length (cm)'" in body["detail"]
    assert body["column"] == "petal length (cm)"


def test_predict_takes_the_last_of_duplicate_json_keys(api, iris):
    """As Python's json and MLflow's server do; the corpus has the refused side."""
    raw = raw_record(sepal_l=b'"x", "sepal length (cm)": 5.1')
    response = post(api, "/api/predict/iris/", raw)
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == ["setosa"]


def test_predict_refuses_null_where_the_model_cannot_take_nan(api, iris):
    response = post(api, "/api/predict/iris/", {"data": iris_row(sepal_w=None)})
    body = assert_error(response, 400, "null_value")
    assert body["column"] == "sepal width (cm)"


def test_predict_accepts_null_as_nan_where_the_model_allows_nan(
    api, publish, nan_tolerant_classifier
):
    publish(nan_tolerant_classifier, "hgb")
    response = post(api, "/api/predict/hgb/", {"data": iris_row(sepal_w=None)})
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] in (["setosa"], ["versicolor"], ["virginica"])


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"]
)
def test_predict_refuses_non_finite_numbers(api, iris, literal):
    raw = b'{"inputs": [[%s, 3.5, 1.4, 0.2]]}' % literal
    response = post(api, "/api/predict/iris/", raw)
    assert_error(response, 400, {"malformed_json", "non_finite_number"})


@pytest.mark.parametrize("cell", ["nan", "inf", "-Infinity"])
def test_predict_refuses_non_finite_csv_cells(api, iris, cell):
    response = post(api, "/api/predict/iris/", f"{IRIS_HEADER}\n{cell},1,1,1\n", CSV)
    assert_error(response, 400, "non_finite_number")


def test_predict_refuses_nul_character_in_string_column(
    api, publish, pipeline_classifier
):
    publish(pipeline_classifier, "churn")
    response = post(api, "/api/predict/churn/", {**MIXED_ROW, "city": "pa\x00ris"})
    body = assert_error(response, 400, "invalid_string")
    assert body["column"] == "city"


def test_predict_refuses_lone_surrogate_in_string_column(
    api, publish, pipeline_classifier
):
    publish(pipeline_classifier, "churn")
    raw = b'{"age": 30, "income": 5e4, "city": "\\ud800", "plan": "free"}'
    response = post(api, "/api/predict/churn/", raw)
    assert_error(response, 400, {"malformed_json", "invalid_string"})


@pytest.mark.parametrize(
    # '²' and '١' (Arabic-Indic one) pass str.isdigit(); int() refuses the first.
    "query",
    [
        "?version=abc",
        "?version=-1",
        "?version=%C2%B2",
        "?version=%D9%A1",
        "?proba=maybe",
    ],
)
def test_predict_refuses_invalid_query_parameters(api, iris, query):
    response = post(api, f"/api/predict/iris/{query}", {"data": IRIS_ROW})
    assert_error(response, 400, "invalid_params")


# --- 404, 405: what is addressed does not exist -------------------------------


def test_predict_returns_404_for_unknown_slug(api, db):
    response = post(api, "/api/predict/nope/", {"data": IRIS_ROW})
    assert_error(response, 404, "unknown_model")


@pytest.mark.parametrize(
    "url",
    [
        "/api/predict/iris/v9/",
        "/api/predict/iris/?version=9",
        "/api/predict/iris/v0/",
        "/api/predict/iris/v99999999999999999999/",
    ],
)
def test_predict_returns_404_for_unknown_version(api, iris, url):
    assert_error(post(api, url, {"data": IRIS_ROW}), 404, "unknown_version")


def test_predict_returns_404_for_model_without_active_version(
    api, publish, iris_classifier
):
    publish(iris_classifier, "draft", activate=False)
    response = post(api, "/api/predict/draft/", {"data": IRIS_ROW})
    assert_error(response, 404, "no_active_version")


@pytest.mark.parametrize(
    "url", ["/api/nope/", "/api/predict/iris", "/api/predict/Not_A Slug!/"]
)
def test_unknown_api_path_returns_json_404_not_a_redirect(api, iris, url):
    response = post(api, url, {"data": IRIS_ROW})
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("url", ["/api/predict/Not_A Slug!/", "/api/nope/"])
def test_post_to_unknown_api_path_is_json_404_with_csrf_enforced(db, url):
    """Real clients get CSRF checks; the test client skips them by default."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    assert_error(post(client, url, {"data": IRIS_ROW}), 404, "not_found")


def test_predict_returns_405_for_get(api, iris):
    response = api.get("/api/predict/iris/")
    assert_error(response, 405, "method_not_allowed")


# --- 413, 415: limits and media types -----------------------------------------


def test_predict_returns_413_for_body_over_the_limit(api, iris, settings):
    settings.MODELHUB_MAX_BODY_BYTES = 200
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200  # equal in production settings
    rows = {"dataframe_records": [IRIS_ROW] * 10}
    assert_error(post(api, "/api/predict/iris/", rows), 413, "payload_too_large")


def test_predict_returns_413_for_rows_over_the_limit(api, iris, settings):
    settings.MODELHUB_MAX_ROWS = 2
    response = post(api, "/api/predict/iris/", {"dataframe_records": [IRIS_ROW] * 3})
    assert_error(response, 413, "too_many_rows")
    rows = f"{IRIS_HEADER}\n" + "5.1,3.5,1.4,0.2\n" * 3
    assert_error(post(api, "/api/predict/iris/", rows, CSV), 413, "too_many_rows")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_predict_returns_415_for_unsupported_content_type(api, iris, content_type):
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW}, content_type)
    assert_error(response, 415, "unsupported_media_type")


# --- 422, 503, 504: the model or its file fails -------------------------------


def test_predict_returns_422_with_the_models_own_error(api, publish):
    publish(RejectsNegative(), "strict")
    response = post(api, "/api/predict/strict/", {"inputs": [[1, -1]]})
    body = assert_error(response, 422, "model_error")
    assert body["detail"].endswith("ValueError: negative values are not allowed")
    valid = post(api, "/api/predict/strict/", {"inputs": [[1, 2]]})
    assert valid.json()["predictions"] == [3.0]


def test_predict_returns_503_when_the_stored_file_is_gone(api, iris):
    Path(iris.file.path).unlink()
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert_error(response, 503, "model_unavailable")


def test_predict_returns_503_for_altered_file_of_that_version_only(
    api, publish, iris_classifier, numpy_regressor
):
    publish(iris_classifier, "iris")
    altered = publish(iris_classifier, "iris")
    publish(numpy_regressor, "diabetes")
    path = Path(altered.file.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    response = post(api, "/api/predict/iris/v2/", {"data": IRIS_ROW})
    body = assert_error(response, 503, "model_unavailable")
    assert "sha256" in body["detail"]
    assert post(api, "/api/predict/iris/v1/", {"data": IRIS_ROW}).status_code == 200
    other = post(api, "/api/predict/diabetes/", {"inputs": [[0.0] * 10]})
    assert other.status_code == 200
    # Unpinned requests fall back to the last good version (test_fallback.py).
    fallback = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert fallback["X-Model-Version"] == "1"


def test_predict_returns_504_when_the_model_runs_too_long(api, publish, settings):
    settings.MODELHUB_PREDICT_TIMEOUT = 1
    publish(SleepsOnPredict(), "sleepy")
    started = time.monotonic()
    response = post(api, "/api/predict/sleepy/", {"inputs": [[5]]})
    assert time.monotonic() - started < 3
    assert_error(response, 504, "prediction_timeout")
    follow_up = post(api, "/api/predict/sleepy/", {"inputs": [[0]]})
    assert follow_up.status_code == 200, follow_up.content


# --- 401, 429: who may ask, and how often -------------------------------------


@pytest.fixture
def token(django_user_model) -> str:
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("client", password="pw-123456789")
    return Token.objects.create(user=user).key


@pytest.fixture
def private_iris(publish, iris_classifier):
    return publish(iris_classifier, "secret", private=True)


def test_private_model_answers_404_unknown_model_without_token(api, private_iris):
    response = post(api, "/api/predict/secret/", {"data": IRIS_ROW})
    assert_error(response, 404, "unknown_model")


def test_private_model_returns_401_for_wrong_token(api, private_iris, token):
    response = post(
        api, "/api/predict/secret/", {"data": IRIS_ROW}, **auth("x" + token)
    )
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_private_model_answers_a_token_whose_user_is_granted_it(
    api, private_iris, token, django_user_model
):
    response = post(api, "/api/predict/secret/", {"data": IRIS_ROW}, **auth(token))
    assert_error(response, 404, "unknown_model")
    private_iris.model.granted_users.add(django_user_model.objects.get())
    response = post(api, "/api/predict/secret/", {"data": IRIS_ROW}, **auth(token))
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == ["setosa"]


def test_private_model_is_hidden_from_clients_it_does_not_answer(
    api, iris, private_iris, token, django_user_model
):
    assert [m["slug"] for m in api.get("/api/models/").json()] == ["iris"]
    assert_error(api.get("/api/models/secret/"), 404, "unknown_model")
    seen = api.get("/api/models/", **auth(token)).json()
    assert [m["slug"] for m in seen] == ["iris"]
    private_iris.model.granted_users.add(django_user_model.objects.get())
    seen = api.get("/api/models/", **auth(token)).json()
    assert [m["slug"] for m in seen] == ["iris", "secret"]


def test_require_token_setting_protects_public_models(api, iris, token, settings):
    settings.MODELHUB_REQUIRE_TOKEN = True
    anonymous = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert_error(anonymous, 401, "not_authenticated")
    assert_error(api.get("/api/models/"), 401, "not_authenticated")
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW}, **auth(token))
    assert response.status_code == 200, response.content


def test_predict_returns_429_over_the_rate_limit(api, iris, settings, throttle_cache):
    settings.MODELHUB_THROTTLE_RATE = "2/minute"
    for _ in range(2):
        assert post(api, "/api/predict/iris/", {"data": IRIS_ROW}).status_code == 200
    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_error_responses_reuse_the_incoming_request_id(api, iris):
    response = post(api, "/api/predict/iris/", b"{", HTTP_X_REQUEST_ID="trace-42")
    assert_error(response, 400, "malformed_json")
    assert response["X-Request-ID"] == "trace-42"


# --- no input may produce a 500 -----------------------------------------------
# Every case names the 4xx and the code it must get. The limits are lowered for
# the corpus (see corpus_limits) so the oversized cases stay small.

ONE = [5.1, 3.5, 1.4, 0.2]
CSV_ROW = "5.1,3.5,1.4,0.2"
MAX_BODY = 1_000_000
MAX_ROWS = 50
SEPAL_L = "sepal length (cm)"


@dataclass(frozen=True)
class Hostile:
    """A request and the error it must get."""

    body: Any
    status: int
    code: str
    content_type: str | None = JSON
    method: str = "post"
    model: str = "iris"


def row(**values: Any) -> dict[str, Any]:
    """IRIS_ROW with some features given other values, by exact name."""
    return {**IRIS_ROW, **values}


def raw_record(**raw: bytes) -> bytes:
    """An iris record as JSON text, some values given as raw JSON bytes."""
    parts = [
        json.dumps(name).encode() + b": " + raw.get(key, json.dumps(value).encode())
        for (name, value), key in zip(
            IRIS_ROW.items(), ("sepal_l", "sepal_w", "petal_l", "petal_w"), strict=True
        )
    ]
    return b"{" + b", ".join(parts) + b"}"


def raw_churn(city: bytes) -> bytes:
    return b'{"age": 30, "income": 5e4, "city": ' + city + b', "plan": "free"}'


def bad(body: Any, code: str, **options: Any) -> Hostile:
    return Hostile(body, 400, code, **options)


ROWS_OVER = {"dataframe_records": [IRIS_ROW] * (MAX_ROWS + 1)}
DEEP = 100_000
CORPUS: dict[str, Hostile] = {
    # not JSON at all
    "empty-body": bad(b"", "malformed_json"),
    "whitespace-only": bad(b" \n\t\r ", "malformed_json"),
    "plain-text": bad(b"hello", "malformed_json"),
    "a-thousand-letters": bad(b"a" * 1000, "malformed_json"),
    "truncated-json": bad(b'{"a":', "malformed_json"),
    "lone-nul-byte": bad(b"\x00", "malformed_json"),
    "trailing-second-document": bad(b'{"a": 1}{"b": 2}', "malformed_json"),
    "trailing-garbage": bad(
        json.dumps({"data": IRIS_ROW}).encode() + b" xyz", "malformed_json"
    ),
    "single-quoted-json": bad(b"{'data': 1}", "malformed_json"),
    "bom-prefixed-json": bad(
        b"\xef\xbb\xbf" + json.dumps({"data": IRIS_ROW}).encode(), "malformed_json"
    ),
    "bom-only": bad(b"\xef\xbb\xbf{}", "malformed_json"),
    # bytes and characters
    "not-utf8": bad(b'\xff\xfe{"data": 1}', "malformed_json"),
    "latin1-string-value": bad(
        b'{"data": {"sepal length (cm)": "caf\xe9"}}', "malformed_json"
    ),
    "utf16-json": bad(
        json.dumps({"data": IRIS_ROW}).encode("utf-16"), "malformed_json"
    ),
    "raw-surrogate-bytes": bad(b'{"data": "\xed\xa0\x80"}', "malformed_json"),
    "escaped-lone-surrogate-value": bad(
        raw_record(sepal_l=b'"\\ud800"'), "malformed_json"
    ),
    "escaped-lone-low-surrogate-key": bad(b'{"\\udc00": 1}', "malformed_json"),
    "escaped-nul-in-numeric-column": bad(
        raw_record(petal_w=b'"\\u0000"'), "wrong_type"
    ),
    "raw-nul-in-json-string": bad(raw_record(petal_w=b'"0\x00"'), "malformed_json"),
    "escaped-nul-in-string-column": bad(
        raw_churn(b'"pa\\u0000ris"'), "invalid_string", model="churn"
    ),
    "escaped-surrogate-in-string-column": bad(
        raw_churn(b'"\\udfff"'), "malformed_json", model="churn"
    ),
    "raw-nul-in-string-column": bad(
        raw_churn(b'"pa\x00ris"'), "malformed_json", model="churn"
    ),
    # nesting: past MODELHUB_MAX_JSON_DEPTH, balanced or not
    "100000-deep-unclosed": bad(b"[" * DEEP, "too_deep"),
    "100000-deep-balanced": bad(b"[" * DEEP + b"]" * DEEP, "too_deep"),
    "100000-deep-objects": bad(b'{"a":' * DEEP + b"1" + b"}" * DEEP, "too_deep"),
    "deep-inside-a-cell": bad(
        b'{"inputs": [[' + b"[" * DEEP + b"]" * DEEP + b"]]}", "too_deep"
    ),
    "5000-deep-objects-unclosed": bad(b"{" * 5000, "malformed_json"),
    # the top level is not a payload
    "top-level-null": bad(b"null", "invalid_shape"),
    "top-level-true": bad(b"true", "invalid_shape"),
    "top-level-string": bad(b'"setosa"', "invalid_shape"),
    "top-level-number": bad(b"42", "invalid_shape"),
    "empty-array": bad(b"[]", "empty_input"),
    "empty-object": bad(b"{}", "missing_features"),
    "array-of-empty-array": bad(b"[[]]", "invalid_shape"),
    "array-of-empty-object": bad(b"[{}]", "missing_features"),
    "list-of-scalars": bad(b"[1, 2]", "invalid_shape"),
    # format keys misused
    "two-format-keys": bad({"inputs": [ONE], "instances": [ONE]}, "ambiguous_format"),
    "key-beside-format-key": bad({"inputs": [ONE], "extra": 1}, "invalid_shape"),
    "only-params": bad({"params": {"proba": True}}, "missing_features"),
    "data-null": bad({"data": None}, "invalid_shape"),
    "data-string": bad({"data": "x"}, "invalid_shape"),
    "data-empty-list": bad({"data": []}, "empty_input"),
    "data-record-then-scalar": bad({"data": [{SEPAL_L: 1}, 5]}, "missing_features"),
    "data-only-an-id": bad({"data": {"id": 1}}, "missing_features"),
    "inputs-scalar": bad({"inputs": 5}, "invalid_shape"),
    "inputs-string": bad({"inputs": "x"}, "invalid_shape"),
    "inputs-empty-object": bad({"inputs": {}}, "invalid_shape"),
    "inputs-column-not-a-list": bad({"inputs": {"a": 1}}, "invalid_shape"),
    "inputs-columns-of-unequal-length": bad(
        {"inputs": {"a": [1], "b": [1, 2]}}, "invalid_shape"
    ),
    "instances-null-row": bad({"instances": [None]}, "invalid_shape"),
    "instances-object": bad({"instances": {"a": [1]}}, "invalid_shape"),
    "zero-rows": bad({"dataframe_records": []}, "empty_input"),
    "records-object-not-list": bad({"dataframe_records": {}}, "invalid_shape"),
    "records-of-scalars": bad({"dataframe_records": [1, 2]}, "invalid_shape"),
    "records-null-row": bad({"dataframe_records": [None]}, "invalid_shape"),
    "records-second-row-not-object": bad(
        {"dataframe_records": [IRIS_ROW, [1]]}, "invalid_shape"
    ),
    "split-list-not-object": bad({"dataframe_split": []}, "invalid_shape"),
    "split-data-object": bad(
        {"dataframe_split": {"columns": list(IRIS_ROW), "data": {"a": 1}}},
        "invalid_shape",
    ),
    "split-without-columns-short-row": bad(
        {"dataframe_split": {"data": [[1]]}}, "invalid_shape"
    ),
    "split-numeric-column-names": bad(
        {"dataframe_split": {"columns": [1], "data": [[1]]}}, "invalid_shape"
    ),
    "split-row-longer-than-columns": bad(
        {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "invalid_shape"
    ),
    # wrong shapes of rows
    "row-too-short": bad({"inputs": [[1, 2]]}, "invalid_shape"),
    "ragged-rows": bad({"instances": [ONE, [1, 2]]}, "invalid_shape"),
    "3d-array-one-wide": bad({"inputs": [[ONE]]}, "invalid_shape"),
    "3d-array-four-wide": bad({"inputs": [[[1], [2], [3], [4]]]}, "wrong_type"),
    "row-of-mixed-junk": bad({"instances": [[{}, [], "a", True]]}, "wrong_type"),
    "null-in-row": bad({"instances": [[None, 1, 2, 3]]}, "null_value"),
    "scalar-row-for-four-features": bad({"instances": [5.1, 3.5]}, "invalid_shape"),
    # features
    "missing-feature": bad({"data": iris_row(drop=SEPAL_L)}, "missing_features"),
    "extra-feature": bad({"data": row(colour="blue")}, "unknown_features"),
    "unicode-feature-names": bad(
        {"data": {"sépale ☃ 長さ": 1.0, "🌸": 2.0}}, "missing_features"
    ),
    "unicode-extra-feature": bad(
        {"data": row(**{"пелюстка": 1.0})}, "unknown_features"
    ),
    "duplicate-split-columns": bad(
        {"dataframe_split": {"columns": [SEPAL_L, SEPAL_L], "data": [[1, 2]]}},
        "duplicate_features",
    ),
    "duplicate-json-key-last-wins-invalid": bad(
        raw_record(sepal_l=b'1.0, "sepal length (cm)": "x"'), "wrong_type"
    ),
    "duplicate-format-key-last-wins": bad(b'{"data": {}, "data": 5}', "invalid_shape"),
    "very-long-string-value": bad(
        {"data": row(**{SEPAL_L: "x" * 100_000})}, "wrong_type"
    ),
    "very-long-feature-name": bad(
        {"data": row(**{"f" * 100_000: 1})}, "unknown_features"
    ),
    # strict types in numeric columns
    "boolean-in-numeric-column": bad({"data": row(**{SEPAL_L: True})}, "wrong_type"),
    "boolean-in-positional-row": bad({"inputs": [[True, 3.5, 1.4, 0.2]]}, "wrong_type"),
    "numeric-string": bad({"data": row(**{SEPAL_L: "5.1"})}, "wrong_type"),
    "numeric-string-in-positional-row": bad(
        {"inputs": [["5.1", 3.5, 1.4, 0.2]]}, "wrong_type"
    ),
    "object-in-numeric-column": bad({"data": row(**{SEPAL_L: {"v": 1}})}, "wrong_type"),
    # numbers a double cannot hold
    "nan-literal": bad(raw_record(sepal_l=b"NaN"), "malformed_json"),
    "infinity-literal": bad(raw_record(sepal_l=b"Infinity"), "malformed_json"),
    "minus-infinity-literal": bad(raw_record(sepal_l=b"-Infinity"), "malformed_json"),
    "1e400": bad(raw_record(sepal_l=b"1e400"), "malformed_json"),
    "10**400-integer-literal": bad(
        raw_record(sepal_l=str(10**400).encode()), "malformed_json"
    ),
    "1e400-in-positional-row": bad(b'{"inputs": [[1e400, 1, 1, 1]]}', "malformed_json"),
    # params and query
    "proba-string": bad(
        {"inputs": [ONE], "params": {"proba": "yes"}}, "invalid_params"
    ),
    "proba-number": bad({"inputs": [ONE], "params": {"proba": 1}}, "invalid_params"),
    "params-not-object": bad({"inputs": [ONE], "params": [1]}, "invalid_params"),
    # limits
    "body-over-the-size-limit": Hostile(
        {"data": "x" * MAX_BODY}, 413, "payload_too_large"
    ),
    "garbage-over-the-size-limit": Hostile(
        b"\xff" * (MAX_BODY + 1), 413, "payload_too_large"
    ),
    "records-over-the-row-limit": Hostile(ROWS_OVER, 413, "too_many_rows"),
    "positional-rows-over-the-limit": Hostile(
        {"inputs": [ONE] * (MAX_ROWS + 1)}, 413, "too_many_rows"
    ),
    "columns-over-the-row-limit": Hostile(
        {"inputs": {k: [v] * (MAX_ROWS + 1) for k, v in IRIS_ROW.items()}},
        413,
        "too_many_rows",
    ),
    "csv-rows-over-the-limit": Hostile(
        f"{IRIS_HEADER}\n" + f"{CSV_ROW}\n" * (MAX_ROWS + 1), 413, "too_many_rows", CSV
    ),
    # media types
    "text-plain": Hostile(
        {"data": IRIS_ROW}, 415, "unsupported_media_type", "text/plain"
    ),
    "xml": Hostile(b"<x/>", 415, "unsupported_media_type", "application/xml"),
    "html": Hostile(b"<x/>", 415, "unsupported_media_type", "text/html"),
    "form-urlencoded": Hostile(
        b"data=1", 415, "unsupported_media_type", "application/x-www-form-urlencoded"
    ),
    "multipart": Hostile(
        b"--x\r\n\r\n--x--",
        415,
        "unsupported_media_type",
        "multipart/form-data; boundary=x",
    ),
    "octet-stream": Hostile(
        b"\x00\x01", 415, "unsupported_media_type", "application/octet-stream"
    ),
    "no-content-type-garbage": bad(b"not json", "malformed_json", content_type=None),
    "json-with-latin1-charset": bad(
        b'{"data": 1}',
        "invalid_shape",
        content_type="application/json; charset=latin-1",
    ),
    "vendor-json-suffix": bad(
        b"{", "malformed_json", content_type="application/vnd.x+json"
    ),
    # CSV
    "csv-empty": bad(b"", "malformed_csv", content_type=CSV),
    "csv-blank-lines": bad(b"\n\n", "malformed_csv", content_type=CSV),
    "csv-header-only": bad(f"{IRIS_HEADER}\n", "empty_input", content_type=CSV),
    "csv-unterminated-quote": bad(b'"unterminated\n1', "empty_input", content_type=CSV),
    "csv-not-utf8": bad(b"\xff\xfe", "malformed_csv", content_type=CSV),
    "csv-no-header": bad(b"1,2,3,4\n", "empty_input", content_type=CSV),
    "csv-unknown-columns": bad(b"x,y\n1,2\n", "missing_features", content_type=CSV),
    "csv-extra-column": bad(
        f"{IRIS_HEADER},colour\n{CSV_ROW},blue\n", "unknown_features", content_type=CSV
    ),
    "csv-duplicate-header": bad(
        IRIS_HEADER.replace("sepal width", "sepal length") + f"\n{CSV_ROW}\n",
        "duplicate_features",
        content_type=CSV,
    ),
    "csv-duplicate-unknown-header": bad(
        b"a,a\n1,2\n", "duplicate_features", content_type=CSV
    ),
    "csv-short-row": bad(
        f"{IRIS_HEADER}\n5.1,3.5,1.4\n", "malformed_csv", content_type=CSV
    ),
    "csv-long-row": bad(
        f"{IRIS_HEADER}\n{CSV_ROW},9\n", "malformed_csv", content_type=CSV
    ),
    "csv-text-cell": bad(
        f"{IRIS_HEADER}\n5.1,3.5,abc,0.2\n", "wrong_type", content_type=CSV
    ),
    "csv-boolean-cell": bad(
        f"{IRIS_HEADER}\ntrue,3.5,1.4,0.2\n", "wrong_type", content_type=CSV
    ),
    "csv-empty-cell": bad(
        f"{IRIS_HEADER}\n,3.5,1.4,0.2\n", "null_value", content_type=CSV
    ),
    "csv-nan-cell": bad(
        f"{IRIS_HEADER}\nnan,3.5,1.4,0.2\n", "non_finite_number", content_type=CSV
    ),
    "csv-1e400-cell": bad(
        f"{IRIS_HEADER}\n1e400,3.5,1.4,0.2\n", "non_finite_number", content_type=CSV
    ),
    "csv-nul-cells": bad(
        b"\x00,\x00\n\x00,\x00\n", "duplicate_features", content_type=CSV
    ),
    "csv-nul-in-string-column": bad(
        b"age,income,city,plan\n30,5e4,pa\x00ris,free\n",
        "invalid_string",
        content_type=CSV,
        model="churn",
    ),
    "csv-semicolon-separated": bad(
        IRIS_HEADER.replace(",", ";") + "\n5.1;3.5;1.4;0.2\n",
        "missing_features",
        content_type=CSV,
    ),
    # methods
    "get": Hostile(b"", 405, "method_not_allowed", method="get"),
    "put": Hostile({"data": IRIS_ROW}, 405, "method_not_allowed", method="put"),
    "patch": Hostile({"data": IRIS_ROW}, 405, "method_not_allowed", method="patch"),
    "delete": Hostile(b"", 405, "method_not_allowed", method="delete"),
}


@pytest.fixture
def corpus_limits(settings: Any) -> None:
    settings.MODELHUB_MAX_BODY_BYTES = MAX_BODY
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY  # equal in production settings
    settings.MODELHUB_MAX_ROWS = MAX_ROWS


def send(api, case: Hostile):
    """As a client would: the test client drops Content-Type on empty bodies."""
    content_type = case.content_type or ""  # WSGI: a missing header is ""
    return api.generic(
        case.method.upper(),
        f"/api/predict/{case.model}/",
        body_of(case.body),
        content_type=content_type,
        CONTENT_TYPE=content_type,
    )


@pytest.mark.parametrize("case", CORPUS.values(), ids=CORPUS.keys())
def test_predict_answers_hostile_input_with_its_json_4xx(
    request, api, iris, corpus_limits, case: Hostile
):
    if case.model == "churn":
        request.getfixturevalue("churn")
    assert_error(send(api, case), case.status, case.code)


def test_corpus_cases_are_distinct():
    keys = [
        (body_of(c.body), c.content_type, c.method, c.model) for c in CORPUS.values()
    ]
    assert len(set(keys)) == len(keys) >= 70
