"""The official Triton HTTP client, with its defaults, against a live server.

tritonclient sends inputs as binary tensor data and, when no outputs are
named, asks for every output in binary: the extension is its default path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

from monitoring.models import RequestLog  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def triton(live_server, settings):
    settings.MODELHUB_LOG_MODE = "sync"  # rows are written before the response
    client = tritonclient_http.InferenceServerClient(
        url=live_server.url.removeprefix("http://")
    )
    yield client
    client.close()


def feature_inputs(client, slug: str, frame: pd.DataFrame) -> list:
    """One input per feature, as the model's metadata describes them."""
    inputs = []
    for spec in client.get_model_metadata(slug)["inputs"]:
        column = frame[spec["name"]].to_numpy()
        if spec["datatype"] == "BYTES":
            column = column.astype(object)
        column = column.reshape(-1, 1)
        tensor = tritonclient_http.InferInput(
            spec["name"], list(column.shape), spec["datatype"]
        )
        inputs.append(tensor.set_data_from_numpy(column))
    return inputs


def text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.ravel()]


def test_tritonclient_sees_a_live_ready_server_and_its_models(triton, iris, diabetes):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    server = triton.get_server_metadata()
    assert server["name"] == "modelhub"
    assert "binary_tensor_data" in server["extensions"]

    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("diabetes", "1")
    assert not triton.is_model_ready("ghost")
    assert not triton.is_model_ready("iris", "7")

    iris_meta = triton.get_model_metadata("iris")
    assert iris_meta["versions"] == ["1"]
    assert [i["shape"] for i in iris_meta["inputs"]] == [[-1, 1]] * 4
    assert [o["name"] for o in iris_meta["outputs"]] == ["predict", "predict_proba"]
    diabetes_meta = triton.get_model_metadata("diabetes", "1")
    assert diabetes_meta["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}
    ]
    with pytest.raises(InferenceServerException) as missing:
        triton.get_model_metadata("ghost")
    assert missing.value.status() == "404"
    assert "ghost" in missing.value.message()


def test_tritonclient_infer_matches_in_process_for_named_feature_model(
    triton, iris, iris_classifier, iris_sample
):
    inputs = feature_inputs(triton, "iris", iris_sample)
    result = triton.infer("iris", inputs)  # outputs in binary, the default
    assert text(result.as_numpy("predict")) == list(
        iris_classifier.predict(iris_sample)
    )
    assert result.as_numpy("predict_proba") is None
    assert result.get_response()["model_version"] == "1"

    outputs = [
        tritonclient_http.InferRequestedOutput("predict", binary_data=False),
        tritonclient_http.InferRequestedOutput("predict_proba"),
    ]
    both = triton.infer("iris", inputs, model_version="1", outputs=outputs)
    assert text(both.as_numpy("predict")) == list(iris_classifier.predict(iris_sample))
    assert "data" in both.get_output("predict")
    assert "binary_data_size" in both.get_output("predict_proba")["parameters"]
    np.testing.assert_array_equal(
        both.as_numpy("predict_proba"), iris_classifier.predict_proba(iris_sample)
    )
    row = RequestLog.objects.order_by("id").last()
    assert (row.slug, row.version, row.status, row.rows) == (
        "iris",
        1,
        200,
        len(iris_sample),
    )


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_matches_in_process_for_positional_model(
    triton, diabetes, numpy_regressor, diabetes_rows, binary
):
    tensor = tritonclient_http.InferInput("input-0", list(diabetes_rows.shape), "FP64")
    tensor.set_data_from_numpy(diabetes_rows, binary_data=binary)
    outputs = [tritonclient_http.InferRequestedOutput("predict", binary_data=binary)]
    result = triton.infer("diabetes", [tensor], outputs=outputs)
    np.testing.assert_array_equal(
        result.as_numpy("predict"), numpy_regressor.predict(diabetes_rows)
    )
    assert result.get_output("predict")["datatype"] == "FP64"


def test_tritonclient_fp32_tensor_matches_in_process_on_the_same_values(
    triton, iris, iris_classifier, iris_sample
):
    rows = iris_sample.to_numpy(dtype=np.float32)
    tensor = tritonclient_http.InferInput("input-0", list(rows.shape), "FP32")
    result = triton.infer("iris", [tensor.set_data_from_numpy(rows)])
    expected = iris_classifier.predict(rows.astype(np.float64))
    assert text(result.as_numpy("predict")) == list(expected)


def test_tritonclient_sends_string_features_as_bytes(
    triton, churn, pipeline_classifier, mixed_sample
):
    result = triton.infer("churn", feature_inputs(triton, "churn", mixed_sample))
    np.testing.assert_array_equal(
        result.as_numpy("predict"), pipeline_classifier.predict(mixed_sample)
    )


def test_tritonclient_raises_the_protocol_error_message(triton, iris, iris_sample):
    inputs = feature_inputs(triton, "iris", iris_sample)[1:]
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("iris", inputs)
    assert refused.value.status() == "400"
    assert "Missing features: 'sepal length (cm)'" in refused.value.message()
    row = RequestLog.objects.get()
    assert (row.status, row.error_code) == (400, "missing_features")
