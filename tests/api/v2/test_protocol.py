"""Open Inference Protocol (KServe V2) endpoints through Django's full stack.

Requests are built here by hand, JSON and binary, so the wire format is
pinned independently of tritonclient (test_v2_tritonclient.py drives that).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from monitoring.models import RequestLog

pytestmark = pytest.mark.django_db

IRIS_FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
LITTLE_ENDIAN = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}


# --- building requests and reading responses ------------------------------------------


def tensor(name: str, values: Any, datatype: str = "FP64") -> dict[str, Any]:
    array = np.asarray(values)
    data = array.ravel().tolist()
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": data,
    }


def binary_request(
    document: dict[str, Any], arrays: list[tuple[dict[str, Any], bytes]]
) -> tuple[bytes, int]:
    """Each (input, raw) pair becomes an input with binary_data_size, raw appended."""
    inputs = []
    for spec, raw in arrays:
        inputs.append({**spec, "parameters": {"binary_data_size": len(raw)}})
    header = json.dumps({**document, "inputs": inputs}).encode()
    return header + b"".join(raw for _, raw in arrays), len(header)


def bytes_elements(values: list[str]) -> bytes:
    out = b""
    for value in values:
        encoded = value.encode()
        out += struct.pack("<I", len(encoded)) + encoded
    return out


def infer(
    client,
    slug: str,
    body: Any,
    *,
    version: int | str | None = None,
    header_length: int | None = None,
    **headers: Any,
):
    path = f"/v2/models/{slug}" + (f"/versions/{version}" if version else "")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if header_length is not None:
        headers["HTTP_INFERENCE_HEADER_CONTENT_LENGTH"] = str(header_length)
    content_type = headers.pop("content_type", "application/json")
    return client.post(f"{path}/infer", data, content_type=content_type, **headers)


def outputs_of(response) -> dict[str, np.ndarray]:
    """Every output as numpy, read from JSON data or the binary section."""
    assert response.status_code == 200, response.content
    content = response.content
    length = response.get("Inference-Header-Content-Length")
    header = json.loads(content[: int(length)] if length else content)
    raw = content[int(length) :] if length else b""
    offset, result = 0, {}
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = np.array(output["data"], dtype=object)
        elif output["datatype"] == "BYTES":
            chunk, values, at = raw[offset : offset + size], [], 0
            while at < len(chunk):
                (n,) = struct.unpack_from("<I", chunk, at)
                values.append(chunk[at + 4 : at + 4 + n].decode())
                at += 4 + n
            values = np.array(values, dtype=object)
        else:
            dtype = LITTLE_ENDIAN[output["datatype"]]
            values = np.frombuffer(raw[offset : offset + size], dtype=dtype)
        offset += size or 0
        result[output["name"]] = values.reshape(output["shape"])
    assert offset == len(raw)
    return result


def assert_v2_error(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    for fragment in fragments:
        assert fragment in body["error"]
    return body["error"]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def feature_inputs(frame: pd.DataFrame, *, one_column: bool = False) -> list[dict]:
    """One input per column, in reverse order: order must not matter."""
    inputs = []
    for name in reversed(frame.columns):
        values = frame[name].to_numpy()
        if one_column:
            values = values.reshape(-1, 1)
        datatype = "BYTES" if values.dtype == object else "FP64"
        inputs.append(tensor(name, values, datatype))
    return inputs


@pytest.fixture
def throttle_cache():
    cache.clear()
    yield
    cache.clear()


# --- server endpoints -----------------------------------------------------------------


def test_server_metadata_names_modelhub_and_the_binary_extension(api):
    response = api.get("/v2")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "modelhub"
    assert body["version"] == "0.1.0"
    assert "binary_tensor_data" in body["extensions"]


def test_server_is_live_without_any_model(api):
    response = api.get("/v2/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


def test_server_readiness_follows_readyz(api, publish, iris_classifier, staff_user):
    empty = api.get("/v2/health/ready")
    assert empty.status_code == 503
    assert empty.json()["ready"] is False
    assert api.get("/readyz").status_code == 503

    publish(iris_classifier, "iris")
    ready = api.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["counts"] == {"models": 1, "serving": 1, "failing": 0}
    assert "models" not in ready.json()
    from rest_framework.authtoken.models import Token

    staff = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=staff_user)}"}
    detail = api.get("/v2/health/ready", **staff).json()
    assert detail["models"]["iris"]["status"] == "ok"


def test_unknown_v2_paths_answer_protocol_json_404(api, iris):
    for path in (
        "/v2/",
        "/v2/models/iris/config",
        "/v2/repository/index",
        "/v2/models/iris/infer/",
        "/v2/models/iris/versions/1/infer/extra",
        "/v2/models/bad%20slug",
    ):
        response = api.get(path)
        assert_v2_error(response, 404, "No such endpoint")


def test_a_crash_on_a_v2_path_answers_protocol_json_500(api, iris, monkeypatch):
    from api.v2 import protocol as openinference

    def crash() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(openinference, "server_metadata", crash)
    message = assert_v2_error(api.get("/v2"), 500, "Internal server error")
    assert "a bug" not in message


def test_wrong_methods_answer_405_in_protocol_shape(api, iris):
    assert_v2_error(api.post("/v2/health/live"), 405, "POST")
    response = api.get("/v2/models/iris/infer")
    assert_v2_error(response, 405, "GET")
    assert response["Allow"] == "POST"


# --- model metadata and readiness -----------------------------------------------------


def test_named_model_metadata_lists_one_input_per_feature_and_both_outputs(api, iris):
    response = api.get("/v2/models/iris")
    assert response.status_code == 200
    assert response.json() == {
        "name": "iris",
        "versions": ["1"],
        "platform": "sklearn",
        "inputs": [
            {"name": name, "datatype": "FP64", "shape": [-1, 1]}
            for name in IRIS_FEATURES
        ],
        "parameters": {"content_type": "pd"},
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [-1]},
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [-1, 3],
                "parameters": {"classes": IRIS_CLASSES},
            },
        ],
    }


def test_positional_model_metadata_is_one_tensor_and_predict_only(api, diabetes):
    body = api.get("/v2/models/diabetes").json()
    assert body["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}
    ]
    assert body["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert "parameters" not in body


def test_string_features_are_bytes_inputs_in_metadata(api, churn):
    body = api.get("/v2/models/churn").json()
    datatypes = {i["name"]: i["datatype"] for i in body["inputs"]}
    assert datatypes == {
        "age": "FP64",
        "income": "FP64",
        "city": "BYTES",
        "plan": "BYTES",
    }
    assert body["outputs"][0]["datatype"] == "INT64"


def test_version_metadata_and_readiness_pin_a_version(
    api, publish, iris_classifier, numpy_regressor
):
    publish(iris_classifier, "m")
    publish(numpy_regressor, "m", activate=False)

    active = api.get("/v2/models/m").json()
    assert active["versions"] == ["1", "2"]
    assert len(active["inputs"]) == 4
    pinned = api.get("/v2/models/m/versions/2").json()
    assert pinned["inputs"][0]["shape"] == [-1, 10]
    assert api.get("/v2/models/m/versions/2/ready").json() == {
        "name": "m",
        "ready": True,
    }
    assert_v2_error(api.get("/v2/models/m/versions/9"), 404, "no version 9")
    assert_v2_error(api.get("/v2/models/m/versions/9/ready"), 404, "no version 9")


def test_model_readiness_is_404_for_unknown_and_503_for_unloadable(
    api, publish, iris_classifier
):
    assert_v2_error(api.get("/v2/models/ghost/ready"), 404, "ghost")
    version = publish(iris_classifier, "iris")
    assert api.get("/v2/models/iris/ready").status_code == 200
    Path(version.file.path).unlink()
    from registry.cache import model_cache

    model_cache.clear()
    assert_v2_error(api.get("/v2/models/iris/ready"), 503, "missing")
    assert_v2_error(api.get("/v2/models/iris"), 503, "missing")


def test_model_ready_counts_a_fallback_like_infer_but_not_when_pinned(
    api, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    newest = publish(iris_classifier, "iris")
    Path(newest.file.path).unlink()

    assert api.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert_v2_error(api.get("/v2/models/iris/versions/2/ready"), 503, "missing")


def test_multi_output_classifier_has_metadata_and_two_column_predictions(
    api, publish, iris_frame
):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    x, species = iris_frame
    petal = x["petal width (cm)"].to_numpy()
    width = np.select([petal < 0.8, petal < 1.7], ["narrow", "medium"], "wide")
    targets = np.column_stack([species.to_numpy(), width])
    model = MultiOutputClassifier(LogisticRegression(max_iter=500)).fit(x, targets)
    publish(model, "multi")

    metadata = api.get("/v2/models/multi")
    assert metadata.status_code == 200, metadata.content
    assert metadata.json()["outputs"][1] == {
        "name": "predict_proba",
        "datatype": "FP64",
        "shape": [-1, -1],
    }
    sample = x.iloc[[0, 100]]
    body = {
        "inputs": [tensor("input-0", sample.to_numpy())],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    outputs = outputs_of(infer(api, "multi", body))
    assert outputs["predict"].tolist() == model.predict(sample).tolist()
    np.testing.assert_allclose(
        outputs["predict_proba"].astype(float), np.asarray(model.predict_proba(sample))
    )


# --- infer: JSON tensors --------------------------------------------------------------


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT64", "INT32"])
def test_one_tensor_infer_matches_in_process_for_numeric_datatypes(
    api, diabetes, numpy_regressor, diabetes_rows, datatype
):
    rows = diabetes_rows * 100 if datatype.startswith("INT") else diabetes_rows
    sent = rows.astype(LITTLE_ENDIAN[datatype])
    response = infer(api, "diabetes", {"inputs": [tensor("input-0", sent, datatype)]})
    outputs = outputs_of(response)
    expected = numpy_regressor.predict(sent.astype(np.float64))
    np.testing.assert_allclose(outputs["predict"].astype(float), expected, rtol=1e-12)
    body = json.loads(response.content)
    assert body["model_name"] == "diabetes"
    assert body["model_version"] == "1"
    assert body["outputs"][0]["datatype"] == "FP64"
    assert body["outputs"][0]["shape"] == [5]


def test_nested_and_flat_json_data_are_the_same_tensor(
    api, iris, iris_classifier, iris_sample
):
    rows = iris_sample.to_numpy()
    nested = {"name": "x", "shape": [4, 4], "datatype": "FP64", "data": rows.tolist()}
    outputs = outputs_of(infer(api, "iris", {"inputs": [nested]}))
    assert outputs["predict"].tolist() == iris_classifier.predict(iris_sample).tolist()
    ragged = {**nested, "data": [1.0, [2.0], *rows.ravel()[2:].tolist()]}
    assert_v2_error(infer(api, "iris", {"inputs": [ragged]}), 400, "must be numbers")


def test_named_model_takes_one_tensor_in_schema_order(
    api, iris, iris_classifier, iris_sample
):
    body = {"inputs": [tensor("x", iris_sample.to_numpy())]}
    outputs = outputs_of(infer(api, "iris", body))
    assert outputs["predict"].tolist() == iris_classifier.predict(iris_sample).tolist()


@pytest.mark.parametrize("one_column", [False, True], ids=["rows", "rows_by_1"])
@pytest.mark.parametrize("content_type", [None, "pd"])
def test_feature_inputs_match_in_process_in_any_order(
    api, iris, iris_classifier, iris_sample, one_column, content_type
):
    body: dict[str, Any] = {
        "inputs": feature_inputs(iris_sample, one_column=one_column)
    }
    if content_type:
        body["parameters"] = {"content_type": content_type}
    outputs = outputs_of(infer(api, "iris", body))
    assert outputs["predict"].tolist() == iris_classifier.predict(iris_sample).tolist()


def test_string_features_as_bytes_match_in_process_pipeline(
    api, churn, pipeline_classifier, mixed_sample
):
    body = {
        "inputs": feature_inputs(mixed_sample),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    outputs = outputs_of(infer(api, "churn", body))
    assert (
        outputs["predict"].tolist()
        == pipeline_classifier.predict(mixed_sample).tolist()
    )
    np.testing.assert_allclose(
        outputs["predict_proba"].astype(float),
        pipeline_classifier.predict_proba(mixed_sample),
        rtol=1e-12,
    )


def test_predict_proba_is_sent_only_when_requested(
    api, iris, iris_classifier, iris_sample
):
    inputs = feature_inputs(iris_sample)
    plain = outputs_of(infer(api, "iris", {"inputs": inputs}))
    assert list(plain) == ["predict"]
    asked = outputs_of(
        infer(api, "iris", {"inputs": inputs, "outputs": [{"name": "predict_proba"}]})
    )
    assert list(asked) == ["predict_proba"]
    np.testing.assert_allclose(
        asked["predict_proba"].astype(float),
        iris_classifier.predict_proba(iris_sample),
        rtol=1e-12,
    )


def test_nan_reaches_models_that_accept_it(api, publish):
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = pd.DataFrame({"a": [0.0, 1.0, np.nan, 3.0] * 10, "b": np.arange(40.0)})
    model = HistGradientBoostingRegressor(max_iter=5).fit(x, np.arange(40.0))
    publish(model, "hgb")
    rows = np.array([[np.nan, 2.0], [1.0, 5.0]])
    body, length = binary_request(
        {}, [({"name": "input-0", "shape": [2, 2], "datatype": "FP64"}, rows.tobytes())]
    )
    outputs = outputs_of(infer(api, "hgb", body, header_length=length))
    np.testing.assert_allclose(
        outputs["predict"].astype(float),
        model.predict(pd.DataFrame(rows, columns=["a", "b"])),
    )


# --- infer: the binary tensor data extension ------------------------------------------


def test_binary_inputs_and_outputs_match_in_process(
    api, iris, iris_classifier, iris_sample
):
    rows = iris_sample.to_numpy(dtype="<f8")
    body, length = binary_request(
        {
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
        [({"name": "input-0", "shape": [4, 4], "datatype": "FP64"}, rows.tobytes())],
    )
    response = infer(
        api, "iris", body, header_length=length, content_type="application/octet-stream"
    )
    assert response["Content-Type"] == "application/octet-stream"
    header = json.loads(
        response.content[: int(response["Inference-Header-Content-Length"])]
    )
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [
        sum(4 + len(label) for label in iris_classifier.predict(iris_sample)),
        4 * 3 * 8,
    ]
    outputs = outputs_of(response)
    assert outputs["predict"].tolist() == iris_classifier.predict(iris_sample).tolist()
    np.testing.assert_array_equal(
        outputs["predict_proba"], iris_classifier.predict_proba(iris_sample)
    )


def test_binary_bytes_features_match_in_process_pipeline(
    api, churn, pipeline_classifier, mixed_sample
):
    arrays = []
    for name in mixed_sample.columns:
        values = mixed_sample[name].to_numpy()
        if values.dtype == object:
            spec = {"name": name, "shape": [6], "datatype": "BYTES"}
            arrays.append((spec, bytes_elements(list(values))))
        else:
            spec = {"name": name, "shape": [6, 1], "datatype": "FP32"}
            arrays.append((spec, values.astype("<f4").tobytes()))
    body, length = binary_request({}, arrays)
    outputs = outputs_of(infer(api, "churn", body, header_length=length))
    expected_input = mixed_sample.assign(
        age=mixed_sample["age"].astype("float32").astype(float),
        income=mixed_sample["income"].astype("float32").astype(float),
    )
    assert (
        outputs["predict"].tolist()
        == pipeline_classifier.predict(expected_input).tolist()
    )


def test_output_binary_flag_overrides_the_request_flag(
    api, iris, iris_classifier, iris_sample
):
    body = {
        "inputs": feature_inputs(iris_sample),
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba"},
        ],
    }
    response = infer(api, "iris", body)
    header = json.loads(
        response.content[: int(response["Inference-Header-Content-Length"])]
    )
    assert header["outputs"][0]["data"] == iris_classifier.predict(iris_sample).tolist()
    assert "data" not in header["outputs"][1]
    assert header["outputs"][1]["parameters"]["binary_data_size"] == 4 * 3 * 8
    json_only = infer(api, "iris", {"inputs": feature_inputs(iris_sample)})
    assert "Inference-Header-Content-Length" not in json_only
    assert json_only["Content-Type"] == "application/json"


def test_response_id_echoes_the_request_or_uses_the_request_id(api, iris, iris_sample):
    inputs = feature_inputs(iris_sample)
    given = infer(api, "iris", {"id": "req-7", "inputs": inputs})
    assert given.json()["id"] == "req-7"
    generated = infer(api, "iris", {"inputs": inputs}, HTTP_X_REQUEST_ID="trace-1")
    assert generated.json()["id"] == "trace-1"
    assert generated["X-Request-ID"] == "trace-1"
    assert generated["X-Model-Version"] == "1"
    assert {"decode", "predict", "total"} <= {
        part.split(";")[0].strip() for part in generated["Server-Timing"].split(",")
    }


def test_infer_is_pinned_by_version_path_and_falls_back_when_unpinned(
    api, publish, iris_classifier, iris_sample
):
    publish(iris_classifier, "iris")
    newest = publish(iris_classifier, "iris")
    inputs = {"inputs": feature_inputs(iris_sample)}
    assert infer(api, "iris", inputs).json()["model_version"] == "2"
    assert infer(api, "iris", inputs, version=1).json()["model_version"] == "1"

    Path(newest.file.path).unlink()
    from registry.cache import model_cache

    model_cache.clear()
    fallback = infer(api, "iris", inputs)
    assert fallback.status_code == 200
    assert fallback.json()["model_version"] == "1"
    assert fallback["X-Model-Version"] == "1"
    assert_v2_error(infer(api, "iris", inputs, version=2), 503, "missing")


# --- errors ---------------------------------------------------------------------------

ROW = [5.1, 3.5, 1.4, 0.2]
BAD_REQUESTS = [
    ("malformed_json", b"{", None, 400, "Malformed JSON"),
    ("not_an_object", b"[1, 2]", None, 400, "JSON object"),
    ("no_inputs", b'{"inputs": []}', None, 400, "'inputs'"),
    (
        "missing_feature",
        {"inputs": [tensor(n, [1.0]) for n in IRIS_FEATURES[:3]]},
        None,
        400,
        "Missing features: 'petal width (cm)'",
    ),
    (
        "unknown_feature",
        {"inputs": [*(tensor(n, [1.0]) for n in IRIS_FEATURES), tensor("zz", [1.0])]},
        None,
        400,
        "Unknown features: 'zz'",
    ),
    (
        "pd_without_feature_names",
        {"inputs": [tensor("x", [ROW])], "parameters": {"content_type": "pd"}},
        None,
        400,
        "Missing features",
    ),
    ("wrong_width", {"inputs": [tensor("x", [[1.0, 2.0]])]}, None, 400, "takes 4"),
    (
        "two_tensors",
        {"inputs": [tensor("a", [ROW]), tensor("b", [ROW])]},
        None,
        400,
        "one input per feature",
    ),
    (
        "shape_and_data_disagree",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROW}]},
        None,
        400,
        "holds 8 values",
    ),
    (
        "bad_shape",
        {"inputs": [{"name": "x", "shape": [1, -4], "datatype": "FP64", "data": ROW}]},
        None,
        400,
        "'shape'",
    ),
    (
        "unknown_datatype",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP8", "data": ROW}]},
        None,
        400,
        "datatype must be one of",
    ),
    (
        "strings_in_fp64",
        {"inputs": [tensor("x", [["1", "2", "3", "4"]])]},
        None,
        400,
        "must be numbers",
    ),
    (
        "bool_tensor",
        {"inputs": [tensor("x", [[True, False, True, False]], "BOOL")]},
        None,
        400,
        "must hold numbers",
    ),
    (
        "bytes_tensor_for_numbers",
        {"inputs": [tensor("x", [["a", "b", "c", "d"]], "BYTES")]},
        None,
        400,
        "BYTES tensor",
    ),
    (
        "float_in_int64",
        {"inputs": [tensor("x", [[1.5, 2, 3, 4]], "INT64")]},
        None,
        400,
        "integers",
    ),
    (
        "no_data",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]},
        None,
        400,
        "neither 'data' nor binary",
    ),
    (
        "zero_rows",
        {"inputs": [{"name": "x", "shape": [0, 4], "datatype": "FP64", "data": []}]},
        None,
        400,
        "no rows",
    ),
    (
        "unknown_output",
        {"inputs": [tensor("x", [ROW])], "outputs": [{"name": "scores"}]},
        None,
        400,
        "Unknown output 'scores'",
    ),
    (
        "classification_extension",
        {
            "inputs": [tensor("x", [ROW])],
            "outputs": [{"name": "predict", "parameters": {"class_count": 2}}],
        },
        None,
        400,
        "classification extension",
    ),
    (
        "shared_memory",
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"shared_memory_region": "r"},
                }
            ]
        },
        None,
        400,
        "shared-memory",
    ),
    ("header_not_a_number", {"inputs": [tensor("x", [ROW])]}, "abc", 400, "byte count"),
    (
        "header_not_ascii_digits",
        {"inputs": [tensor("x", [ROW])]},
        "\u00b2",
        400,
        "byte count",
    ),
    (
        "header_past_the_body",
        {"inputs": [tensor("x", [ROW])]},
        "99999",
        400,
        "byte count",
    ),
]


@pytest.mark.parametrize(
    ("body", "header", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_infer_requests_get_protocol_errors(
    api, iris, body, header, status, fragment
):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": header} if header else {}
    response = infer(api, "iris", data, **extra)
    assert_v2_error(response, status, fragment)
    assert RequestLog.objects.get().status == status


def test_binary_data_that_does_not_add_up_is_refused(api, iris):
    spec = {"name": "x", "shape": [1, 4], "datatype": "FP64"}
    raw = np.array([ROW]).tobytes()
    short, length = binary_request({}, [(spec, raw[:-8])])
    assert_v2_error(infer(api, "iris", short, header_length=length), 400, "take 32")
    extra, length = binary_request({}, [(spec, raw)])
    assert_v2_error(
        infer(api, "iris", extra + b"\x00", header_length=length), 400, "after the last"
    )
    without_header, _ = binary_request({}, [(spec, raw)])
    assert_v2_error(infer(api, "iris", without_header), 400, "Malformed JSON")
    declared, length = binary_request({}, [(spec, raw)])
    declared = declared.replace(b'"binary_data_size": 32', b'"binary_data_size": 64')
    assert_v2_error(infer(api, "iris", declared, header_length=length - 0), 400)
    nan = np.array([[np.nan, 1.0, 1.0, 1.0]]).tobytes()
    body, length = binary_request({}, [(spec, nan)])
    assert_v2_error(infer(api, "iris", body, header_length=length), 400, "NaN")


def test_binary_bytes_that_are_not_utf8_are_refused(api, churn, mixed_sample):
    arrays = []
    for name in mixed_sample.columns:
        if name == "city":
            raw = struct.pack("<I", 2) + b"\xff\xfe"
            arrays.append(({"name": name, "shape": [1], "datatype": "BYTES"}, raw))
        else:
            value = mixed_sample[name].to_numpy()[:1]
            if value.dtype == object:
                raw = bytes_elements(list(value))
                spec = {"name": name, "shape": [1], "datatype": "BYTES"}
            else:
                raw = value.astype("<f8").tobytes()
                spec = {"name": name, "shape": [1], "datatype": "FP64"}
            arrays.append((spec, raw))
    body, length = binary_request({}, arrays)
    response = infer(api, "churn", body, header_length=length)
    assert_v2_error(response, 400, "UTF-8")


def test_predict_proba_of_a_regressor_is_an_unknown_output(api, diabetes):
    body = {
        "inputs": [tensor("input-0", np.zeros((1, 10)))],
        "outputs": [{"name": "predict_proba"}],
    }
    assert_v2_error(infer(api, "diabetes", body), 400, "produces 'predict'.")


def test_limits_answer_413(api, iris, settings):
    settings.MODELHUB_MAX_ROWS = 2
    many = {"inputs": [tensor("x", [ROW] * 3)]}
    assert_v2_error(infer(api, "iris", many), 413, "limit of 2")
    settings.MODELHUB_MAX_BODY_BYTES = 100
    big = {"inputs": [tensor("x", [ROW])], "id": "x" * 200}
    assert_v2_error(infer(api, "iris", big), 413, "limit")


def test_bodies_compressed_other_than_gzip_answer_415(api, iris):
    """gzip is decoded (tests/api/v2/test_hostile_requests.py); no other."""
    body = {"inputs": [tensor("x", [ROW])]}
    response = infer(api, "iris", body, HTTP_CONTENT_ENCODING="deflate")
    assert_v2_error(response, 415, "deflate")


def test_unknown_model_and_version_answer_404(api, iris):
    body = {"inputs": [tensor("x", [ROW])]}
    assert_v2_error(infer(api, "ghost", body), 404, "ghost")
    assert_v2_error(infer(api, "iris", body, version=5), 404, "no version 5")
    assert_v2_error(api.get("/v2/models/ghost"), 404, "ghost")


class RejectsNegative:
    """Raises on negative input, as a model's own validation would."""

    n_features_in_ = 1

    def predict(self, x):
        x = np.asarray(x, dtype=float)
        if (x < 0).any():
            raise ValueError("negative values are not supported")
        return x[:, 0]


class SlowAboveTen:
    n_features_in_ = 1

    def predict(self, x):
        x = np.asarray(x, dtype=float)
        if (x > 10).any():
            time.sleep(5)
        return x[:, 0]


def test_model_rejecting_input_is_422_and_time_out_is_504(api, publish, settings):
    publish(RejectsNegative(), "picky")
    publish(SlowAboveTen(), "slow")
    rejected = infer(api, "picky", {"inputs": [tensor("input-0", [[-1.0]])]})
    assert_v2_error(rejected, 422, "negative values are not supported")
    settings.MODELHUB_PREDICT_TIMEOUT = 1
    timed_out = infer(api, "slow", {"inputs": [tensor("input-0", [[11.0]])]})
    assert_v2_error(timed_out, 504, "limit")
    fine = outputs_of(infer(api, "slow", {"inputs": [tensor("input-0", [[3.0]])]}))
    assert fine["predict"].tolist() == [3.0]


# --- auth and throttling --------------------------------------------------------------


@pytest.fixture
def token(django_user_model) -> str:
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("client", password="pw-123456789")
    return Token.objects.create(user=user).key


def test_private_model_is_unknown_on_every_model_endpoint_until_granted(
    api, publish, iris_classifier, iris_sample, token, django_user_model
):
    version = publish(iris_classifier, "secret", private=True)
    body = {"inputs": feature_inputs(iris_sample)}
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    for response in (
        infer(api, "secret", body),
        api.get("/v2/models/secret"),
        api.get("/v2/models/secret/ready"),
        infer(api, "secret", body, **auth),
        api.get("/v2/models/secret/ready", **auth),
    ):
        assert_v2_error(response, 404, "No model with slug 'secret'")
    wrong = infer(api, "secret", body, HTTP_AUTHORIZATION=f"Token x{token}")
    assert_v2_error(wrong, 401, "Invalid token")
    version.model.granted_users.add(django_user_model.objects.get())
    assert infer(api, "secret", body, **auth).status_code == 200
    assert api.get("/v2/models/secret", **auth).status_code == 200
    assert api.get("/v2/models/secret/ready", **auth).status_code == 200


def test_require_token_setting_protects_public_models(
    api, iris, iris_sample, token, settings
):
    settings.MODELHUB_REQUIRE_TOKEN = True
    body = {"inputs": feature_inputs(iris_sample)}
    assert_v2_error(infer(api, "iris", body), 401, "token")
    response = infer(api, "iris", body, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert api.get("/v2/health/live").status_code == 200


def test_infer_is_throttled_like_predict(
    api, iris, iris_sample, settings, throttle_cache
):
    settings.MODELHUB_THROTTLE_RATE = "2/minute"
    body = {"inputs": feature_inputs(iris_sample)}
    for _ in range(2):
        assert infer(api, "iris", body).status_code == 200
    response = infer(api, "iris", body)
    assert_v2_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


# --- logging and metrics --------------------------------------------------------------


def test_infer_requests_leave_one_log_row_each(api, iris, iris_sample):
    good = {"inputs": feature_inputs(iris_sample)}
    missing = {"inputs": feature_inputs(iris_sample)[1:]}
    outcomes = [
        ("/v2/models/iris/infer", good, 200, "", 1, 4),
        ("/v2/models/iris/versions/1/infer", good, 200, "", 1, 4),
        ("/v2/models/iris/infer", missing, 400, "missing_features", 1, 0),
        ("/v2/models/iris/infer", b"{", 400, "malformed_json", 1, 0),
        ("/v2/models/iris/versions/3/infer", good, 404, "unknown_version", None, 0),
        ("/v2/models/iris/versions/x/infer", good, 404, "unknown_alias", None, 0),
        ("/v2/models/ghost/infer", good, 404, "unknown_model", None, 0),
    ]
    for index, (path, body, status, *_rest) in enumerate(outcomes):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = api.post(
            path, data, content_type="application/json", HTTP_X_REQUEST_ID=f"r{index}"
        )
        assert response.status_code == status, (path, response.content)
    assert api.get("/v2/models/iris/infer").status_code == 405
    for path in ("/v2", "/v2/health/live", "/v2/models/iris", "/v2/models/iris/ready"):
        assert api.get(path).status_code == 200

    rows = list(RequestLog.objects.order_by("id"))
    assert len(rows) == len(outcomes) + 1
    for index, (row, (path, _, status, code, version, n_rows)) in enumerate(
        zip(rows, outcomes, strict=False)
    ):
        assert (row.slug, row.status, row.error_code) == (
            path.split("/")[3],
            status,
            code,
        )
        assert (row.version, row.rows) == (version, n_rows)
        assert row.request_id == f"r{index}"
        assert row.latency_ms > 0
    assert rows[0].model_ms is not None and 0 < rows[0].model_ms <= rows[0].latency_ms
    assert (rows[-1].status, rows[-1].error_code) == (405, "method_not_allowed")


def test_infer_requests_are_counted_in_modelhub_metrics(api, iris, iris_sample):
    def count(status: str) -> float:
        labels = {"model": "iris", "version": "1", "route": "active", "status": status}
        return REGISTRY.get_sample_value("modelhub_predictions_total", labels) or 0.0

    before_ok, before_bad = count("200"), count("400")
    infer(api, "iris", {"inputs": feature_inputs(iris_sample)})
    infer(api, "iris", {"inputs": []})
    assert count("200") == before_ok + 1
    assert count("400") == before_bad + 1
