"""Every error of POST /api/predict/<slug>/ is JSON with a stable code (DESIGN.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.cache import cache

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
def throttle_cache():
    cache.clear()
    yield
    cache.clear()


# --- 400: the body cannot become model input ---------------------------------

ONE = [5.1, 3.5, 1.4, 0.2]
CSV_ROW = "5.1,3.5,1.4,0.2"
BAD_BODIES: dict[str, tuple[Any, str, str]] = {
    "truncated-json": (b'{"a":', JSON, "malformed_json"),
    "empty-body": (b"", JSON, "malformed_json"),
    "not-utf8": (b'\xff\xfe{"data": 1}', JSON, "malformed_json"),
    "100000-deep-nesting": (b"[" * 100_000, JSON, "malformed_json"),
    "top-level-string": (b'"setosa"', JSON, "invalid_shape"),
    "top-level-number": (b"42", JSON, "invalid_shape"),
    "list-of-scalars": (b"[1, 2]", JSON, "invalid_shape"),
    "two-format-keys": (
        {"inputs": [ONE], "instances": [ONE]},
        JSON,
        "ambiguous_format",
    ),
    "key-beside-format-key": ({"inputs": [ONE], "extra": 1}, JSON, "invalid_shape"),
    "zero-rows": ({"dataframe_records": []}, JSON, "empty_input"),
    "row-too-short": ({"inputs": [[1, 2]]}, JSON, "invalid_shape"),
    "proba-string": (
        {"inputs": [ONE], "params": {"proba": "yes"}},
        JSON,
        "invalid_params",
    ),
    "params-not-object": ({"inputs": [ONE], "params": [1]}, JSON, "invalid_params"),
    "csv-short-row": (f"{IRIS_HEADER}\n5.1,3.5,1.4\n", CSV, "malformed_csv"),
    "csv-long-row": (f"{IRIS_HEADER}\n{CSV_ROW},9\n", CSV, "malformed_csv"),
    "csv-text-cell": (f"{IRIS_HEADER}\n5.1,3.5,abc,0.2\n", CSV, "wrong_type"),
    "csv-duplicate-header": (
        IRIS_HEADER.replace("sepal width", "sepal length") + f"\n{CSV_ROW}\n",
        CSV,
        "duplicate_features",
    ),
}


@pytest.mark.parametrize(
    "payload, content_type, code", BAD_BODIES.values(), ids=BAD_BODIES.keys()
)
def test_predict_returns_400_with_stable_code_for_bad_body(
    api, iris, payload, content_type, code
):
    response = post(api, "/api/predict/iris/", payload, content_type)
    assert_error(response, 400, code)


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


@pytest.mark.parametrize("query", ["?version=abc", "?version=-1", "?proba=maybe"])
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

    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    body = assert_error(response, 503, "model_unavailable")
    assert "sha256" in body["detail"]
    assert post(api, "/api/predict/iris/v1/", {"data": IRIS_ROW}).status_code == 200
    other = post(api, "/api/predict/diabetes/", {"inputs": [[0.0] * 10]})
    assert other.status_code == 200


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


def test_private_model_returns_401_without_token(api, private_iris):
    response = post(api, "/api/predict/secret/", {"data": IRIS_ROW})
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_private_model_returns_401_for_wrong_token(api, private_iris, token):
    response = post(
        api, "/api/predict/secret/", {"data": IRIS_ROW}, **auth("x" + token)
    )
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_private_model_answers_with_valid_token(api, private_iris, token):
    response = post(api, "/api/predict/secret/", {"data": IRIS_ROW}, **auth(token))
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == ["setosa"]


def test_private_model_is_hidden_from_anonymous_clients(api, iris, private_iris, token):
    assert [m["slug"] for m in api.get("/api/models/").json()] == ["iris"]
    assert_error(api.get("/api/models/secret/"), 404, "unknown_model")
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

# fmt: off
CORPUS: list[Any] = [
    (b" \n\t", JSON), (b"null", JSON), (b"true", JSON), (b"[]", JSON), (b"{}", JSON),
    (b"[[]]", JSON), (b"[{}]", JSON), (b"\x00", JSON), (b"\xef\xbb\xbf{}", JSON),
    (b'{"a": 1}{"b": 2}', JSON), (b"a" * 1000, JSON), (b"{" * 5000, JSON),
    (b'{"data": null}', JSON), (b'{"data": []}', JSON), (b'{"data": "x"}', JSON),
    (b'{"data": [[1, 2]]}', JSON), (b'{"data": [{"sepal length (cm)": 1}, 5]}', JSON),
    (b'{"data": {"id": 1}}', JSON), (b'{"params": {"proba": true}}', JSON),
    (b'{"inputs": {}}', JSON), (b'{"inputs": {"a": 1}}', JSON),
    (b'{"inputs": {"a": [1], "b": [1, 2]}}', JSON), (b'{"inputs": "x"}', JSON),
    (b'{"instances": [null]}', JSON), (b'{"instances": [[null, 1, 2, 3]]}', JSON),
    (b'{"instances": [[{}, [], "a", true]]}', JSON),
    (b'{"instances": [[1, 2, 3, 4], [1, 2]]}', JSON),
    (b'{"dataframe_split": []}', JSON), (b'{"dataframe_split": {"data": [[1]]}}', JSON),
    (b'{"dataframe_split": {"columns": [1], "data": [[1]]}}', JSON),
    (b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', JSON),
    (b'{"dataframe_records": {}}', JSON),
    (b'{"dataframe_records": [1, 2]}', JSON), (b'{"dataframe_records": [null]}', JSON),
    (b'{"data": 1}', "application/json; charset=latin-1"),
    (b"", CSV), (b"\n\n", CSV), (b'"unterminated\n1', CSV), (b"\xff\xfe", CSV),
    (b"1,2,3,4\n", CSV), (b"x,y\n1,2\n", CSV), (b"a,a\n1,2\n", CSV),
    (b"\x00,\x00\n\x00,\x00\n", CSV), (b"<x/>", "text/html"),
    (b"\x00\x01", "application/octet-stream"),
]
# fmt: on
@pytest.mark.parametrize(
    "payload, content_type", CORPUS, ids=[f"{i:02d}" for i in range(len(CORPUS))]
)
def test_predict_answers_malformed_input_with_json_4xx(
    api, iris, payload, content_type
):
    response = api.post("/api/predict/iris/", payload, content_type=content_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert {"detail", "code"} <= set(response.json())
    assert response.has_header("X-Request-ID")
