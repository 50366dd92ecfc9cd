"""MLflow's documented request bodies, unchanged, give MLflow's own predictions.

Each model is saved by ``mlflow.sklearn.save_model``, registered from its
MLflow directory, and every body is sent both to POST /api/predict/<slug>/
and to MLflow's scoring-server function (``invocations``) in process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.models import RequestLog
from registry import actions, mlflow_models
from tests.mlflow_models import mlflow_predictions, mlflow_refuses, save_mlflow_model

pytestmark = pytest.mark.django_db
JSON = "application/json"
CSV = "text/csv"

# The bodies of MLflow's "Deploy MLflow Model as a Local Inference Server" page
# (docs/docs/classic-ml/deployment/deploy-model-locally in the mlflow repository)
# and of the MLflow 2 models guide, byte for byte where the model can take them.
ABC_BODIES = {
    "dataframe_split": """{
  "dataframe_split": {
      "columns": ["a", "b", "c"],
      "data": [[1, 2, 3], [4, 5, 6]]
  }
}""",
    "dataframe_records": """{
  "dataframe_records": [
    {"a": 1,"b": 2,"c": 3},
    {"a": 4,"b": 5,"c": 6}
  ]
}""",
    "instances_records": """{
    "instances": [
        {"a": 1, "b": 2, "c": 3},
        {"a": 4, "b": 5, "c": 6}
    ]
}""",
    "inputs_columns": """{
    "inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}
}""",
    "inputs_one_record_of_scalars": '{"inputs": {"a": 1, "b": 2, "c": 3}}',
    "inputs_columns_with_params": """{
    "inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]},
    "params": {"max_answer_len": 10}
}""",
}
QUICKSTART_BODY = '{"inputs": [[1, 2], [3, 4], [5, 6]]}'
INSTANCES_BODY = '{"instances": [1.0, 2.0, 5.0]}'
QA_BODY = """{
    "inputs": {"question": ["What color is it?"],
                "context": ["Some people said it was green but I know that it is pink."]},
    "params": {"max_answer_len": 10}
}"""  # noqa: E501 - verbatim from MLflow's documentation


def post(client, slug: str, body: str | bytes, content_type: str = JSON):
    return client.post(f"/api/predict/{slug}/", body, content_type=content_type)


@pytest.fixture
def register_mlflow(db, fast_preflight):
    """Register an MLflow model directory through the one write path."""

    def register(directory: Path, slug: str) -> None:
        actions.register_version(
            slug=slug,
            source=mlflow_models.pack_directory(directory),
            filename=f"{directory.name}.zip",
        )

    return register


@pytest.fixture(scope="session")
def abc_dir(tmp_path_factory) -> Path:
    """A regressor fitted on columns a, b, c, as MLflow's examples name them."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    model = Ridge().fit(frame, 2 * frame.a + frame.b - frame.c)
    return save_mlflow_model(model, tmp_path_factory.mktemp("mlflow") / "abc", frame)


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory) -> Path:
    """Two unnamed features, a tensor signature: the quickstart's body."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    x = rng.normal(size=(80, 2)) * 3
    model = LogisticRegression().fit(x, (x[:, 0] > x[:, 1]).astype(int))
    directory = tmp_path_factory.mktemp("mlflow") / "pair"
    return save_mlflow_model(model, directory, x, serialization_format="pickle")


@pytest.fixture(scope="session")
def single_dir(tmp_path_factory) -> Path:
    from sklearn.linear_model import Ridge

    frame = pd.DataFrame({"x": np.arange(30.0)})
    model = Ridge().fit(frame, 3 * frame.x + 1)
    directory = tmp_path_factory.mktemp("mlflow") / "single"
    return save_mlflow_model(model, directory, frame, serialization_format="skops")


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory) -> Path:
    """Text columns named as in MLflow's ``params`` example."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = pd.DataFrame(
        {
            "question": ["What color is it?", "How big is it?", "Where is it?"] * 5,
            "context": ["It is green.", "It is big.", "It is here."] * 5,
        }
    )
    labels = ["color", "size", "place"] * 5
    pre = ColumnTransformer(
        [("q", TfidfVectorizer(), "question"), ("c", TfidfVectorizer(), "context")]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, labels)
    directory = tmp_path_factory.mktemp("mlflow") / "qa"
    return save_mlflow_model(model, directory, frame, serialization_format="pickle")


def assert_same_predictions(response, expected: list[Any]) -> None:
    assert response.status_code == 200, response.content
    got = response.json()["predictions"]
    if expected and isinstance(expected[0], float):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    else:
        assert got == expected


@pytest.mark.parametrize("name", sorted(ABC_BODIES))
def test_mlflow_documented_body_gives_mlflow_predictions(
    client, register_mlflow, abc_dir, name
):
    register_mlflow(abc_dir, "abc")
    body = ABC_BODIES[name]
    expected = mlflow_predictions(abc_dir, body, JSON)
    assert_same_predictions(post(client, "abc", body), expected)
    row = RequestLog.objects.get()
    assert (row.slug, row.version, row.status, row.rows) == (
        "abc",
        1,
        200,
        2 - (name == "inputs_one_record_of_scalars"),
    )


@pytest.mark.parametrize(
    ("model_dir", "body"),
    [("pair_dir", QUICKSTART_BODY), ("qa_dir", QA_BODY)],
    ids=["quickstart-inputs", "params-example-with-text-columns"],
)
def test_mlflow_documented_example_gives_mlflow_predictions(
    client, register_mlflow, request, model_dir, body
):
    directory = request.getfixturevalue(model_dir)
    register_mlflow(directory, directory.name)
    expected = mlflow_predictions(directory, body, JSON)
    assert_same_predictions(post(client, directory.name, body), expected)


def test_mlflow_flat_instances_body_is_one_row_per_value_for_one_feature(
    client, register_mlflow, single_dir
):
    register_mlflow(single_dir, "single")
    expected = mlflow_predictions(single_dir, INSTANCES_BODY, JSON)
    assert len(expected) == 3
    assert_same_predictions(post(client, "single", INSTANCES_BODY), expected)


def test_pandas_to_dict_bodies_give_mlflow_predictions(
    client, register_mlflow, abc_dir
):
    """``{"dataframe_split": df.to_dict(orient="split")}`` carries an index too."""
    register_mlflow(abc_dir, "abc")
    frame = pd.DataFrame(
        {"c": [0.5, -1.0, 2.0], "a": [1.0, 2.0, 3.0], "b": [0.0, 0.25, -4.0]},
        index=[10, 11, 12],
    )
    for body in (
        {"dataframe_split": frame.to_dict(orient="split")},
        {"dataframe_records": frame.to_dict(orient="records")},
    ):
        text = json.dumps(body)
        expected = mlflow_predictions(abc_dir, text, JSON)
        assert_same_predictions(post(client, "abc", text), expected)


def test_mlflow_serving_input_example_file_gives_mlflow_predictions(
    client, register_mlflow, abc_dir
):
    register_mlflow(abc_dir, "abc")
    body = (abc_dir / "serving_input_example.json").read_bytes()
    expected = mlflow_predictions(abc_dir, body, JSON)
    assert_same_predictions(post(client, "abc", body), expected)


@pytest.mark.parametrize(
    "body",
    [
        "a,b,c\n1,2,3\n4,5,6\n",
        "c,a,b\n3,1,2\n6,4,5\n",
        ",a,b,c\n0,1,2,3\n1,4,5,6\n",  # pandas' to_csv() with its index
    ],
    ids=["header", "reordered", "with-index"],
)
def test_mlflow_csv_body_gives_mlflow_predictions(
    client, register_mlflow, abc_dir, body
):
    register_mlflow(abc_dir, "abc")
    expected = mlflow_predictions(abc_dir, body, CSV)
    assert_same_predictions(post(client, "abc", body, CSV), expected)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"inputs": [[1, 2, 3]], "instances": [[1, 2, 3]]}', "ambiguous_format"),
        (
            '{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]],'
            ' "foo": 1}}',
            "invalid_shape",
        ),
        ('{"dataframe_records": {"a": 1, "b": 2, "c": 3}}', "invalid_shape"),
        ('{"dataframe_records": [{"a": 1, "b": 2}]}', "missing_features"),
    ],
    ids=[
        "two-format-keys",
        "split-unknown-key",
        "records-object",
        "missing-column",
    ],
)
def test_bodies_mlflow_refuses_are_refused_with_a_precise_400(
    client, register_mlflow, abc_dir, body, code
):
    register_mlflow(abc_dir, "abc")
    assert mlflow_refuses(abc_dir, body, JSON)
    response = post(client, "abc", body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    row = RequestLog.objects.get()
    assert (row.status, row.error_code) == (400, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"dataframe_records": [{"a": "1", "b": 2, "c": 3}]}', "wrong_type"),
        (
            '{"dataframe_records": [{"a": 1, "b": 2, "c": 3, "d": 4}]}',
            "unknown_features",
        ),
        ('{"inputs": [[1, 2, 3]], "extra": 1}', "invalid_shape"),
    ],
    ids=["numeric-string", "unknown-column", "unknown-top-level-key"],
)
def test_modelhub_stays_stricter_than_mlflow_where_mlflow_guesses(
    client, register_mlflow, abc_dir, body, code
):
    """MLflow casts "1" to 1.0 and drops what it does not know; we say so instead."""
    register_mlflow(abc_dir, "abc")
    response = post(client, "abc", body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_params_proba_is_honoured_beside_mlflow_params(client, register_mlflow, qa_dir):
    register_mlflow(qa_dir, "qa")
    body = json.loads(QA_BODY)
    body["params"]["proba"] = True
    response = post(client, "qa", json.dumps(body))
    assert response.status_code == 200, response.content
    (probabilities,) = response.json()["probabilities"]
    assert set(probabilities) == {"color", "place", "size"}
    assert sum(probabilities.values()) == pytest.approx(1.0)
