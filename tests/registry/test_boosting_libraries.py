"""XGBoost and LightGBM models (their scikit-learn API) upload, preflight and
serve like scikit-learn's own; a file needing a library this server lacks
is refused with a coded error that says what to install.

Models are trained here, saved with joblib, registered through the real
path (the preflight in its own process) and served over the API.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from registry import actions
from registry.exceptions import InvalidModel, MissingLibrary
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db

NEEDS = "an optional model library (pip install -r requirements-extras.txt)"


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    """Column names without spaces: LightGBM rewrites spaces in the names
    it reports as the model's features."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return frame, data.target.to_numpy()


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 200).astype(float),
            "income": rng.normal(50_000, 10_000, 200),
            "city": rng.choice(["paris", "lyon", "nice"], 200),
        }
    )
    return frame, np.where(frame["income"] > 50_000, "keeps", "leaves")


def _xgboost() -> Any:
    return pytest.importorskip("xgboost", reason=f"xgboost is {NEEDS}")


def _lightgbm() -> Any:
    return pytest.importorskip("lightgbm", reason=f"lightgbm is {NEEDS}")


def _one_hot_then(model: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", model)])


def _scaled(model: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


# name -> (dataset fixture, estimator factory, labels to train on)
MODELS: dict[str, tuple[str, Callable[[], Any], Callable[[Any], Any]]] = {
    "xgb_classifier_on_integer_labels": (
        "iris",
        lambda: _xgboost().XGBClassifier(n_estimators=5, max_depth=3),
        lambda y: y,
    ),
    "xgb_regressor": (
        "diabetes",
        lambda: _xgboost().XGBRegressor(n_estimators=5, max_depth=3),
        lambda y: y,
    ),
    "xgb_classifier_in_pipeline": (
        "iris",
        lambda: _scaled(_xgboost().XGBClassifier(n_estimators=5, max_depth=3)),
        lambda y: y,
    ),
    "lgbm_classifier_on_string_labels": (
        "iris",
        lambda: _lightgbm().LGBMClassifier(n_estimators=5, verbose=-1),
        lambda y: np.array(["setosa", "versicolor", "virginica"])[y],
    ),
    "lgbm_regressor": (
        "diabetes",
        lambda: _lightgbm().LGBMRegressor(n_estimators=5, verbose=-1),
        lambda y: y,
    ),
    "lgbm_classifier_in_pipeline_with_categories": (
        "customers",
        lambda: _one_hot_then(_lightgbm().LGBMClassifier(n_estimators=5, verbose=-1)),
        lambda y: y,
    ),
    "xgb_classifier_in_pipeline_with_categories": (
        "customers",
        lambda: _one_hot_then(_xgboost().XGBClassifier(n_estimators=5)),
        lambda y: (y == "keeps").astype(int),
    ),
}


def publish(path: Path, slug: str) -> ModelVersion:
    with path.open("rb") as source:
        return actions.register_version(slug=slug, source=source, filename=path.name)


def predict(client: Client, slug: str, rows: pd.DataFrame) -> dict[str, Any]:
    response = client.post(
        f"/api/predict/{slug}/?proba=1",
        json.dumps({"dataframe_records": rows.to_dict(orient="records")}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("name", MODELS)
def test_boosting_model_serves_its_own_predictions(request, client, tmp_path, name):
    dataset, make, labels = MODELS[name]
    x, y = request.getfixturevalue(dataset)
    model = make().fit(x, labels(y))
    path = tmp_path / f"{name}.joblib"
    joblib.dump(model, path)

    version = publish(path, name.replace("_", "-"))

    assert (version.status, version.smoke_test) == ("ready", "passed")
    assert [f["name"] for f in version.input_schema["features"]] == list(x.columns)
    assert version.estimator.split(".")[0] in ("xgboost", "lightgbm", "sklearn")
    rows = x.iloc[:6].reset_index(drop=True)
    body = predict(client, version.model.slug, rows)
    expected = model.predict(rows)
    if hasattr(model, "classes_"):
        assert version.kind == "classifier"
        assert version.classes == model.classes_.tolist()
        assert body["predictions"] == expected.tolist()
        labels_ = [str(c) for c in model.classes_]
        assert [list(row) for row in body["probabilities"]] == [labels_] * len(rows)
        table = [[row[c] for c in labels_] for row in body["probabilities"]]
        np.testing.assert_allclose(table, model.predict_proba(rows), rtol=1e-6)
    else:
        assert version.kind == "regressor"
        np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)


def test_xgb_classifier_probabilities_are_labelled_with_its_integer_classes(
    client, tmp_path, iris
):
    x, y = iris
    model = _xgboost().XGBClassifier(n_estimators=5).fit(x, y)
    joblib.dump(model, tmp_path / "xgb.joblib")
    publish(tmp_path / "xgb.joblib", "xgb")
    body = predict(client, "xgb", x.iloc[[0, 60, 120]])
    assert body["predictions"] == [0, 1, 2]
    assert list(body["probabilities"][0]) == ["0", "1", "2"]
    assert max(body["probabilities"][2], key=body["probabilities"][2].get) == "2"


def test_lgbm_classifier_probabilities_are_labelled_with_its_string_classes(
    client, tmp_path, iris
):
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = _lightgbm().LGBMClassifier(n_estimators=5, verbose=-1).fit(x, names)
    joblib.dump(model, tmp_path / "lgbm.joblib")
    publish(tmp_path / "lgbm.joblib", "lgbm")
    body = predict(client, "lgbm", x.iloc[[0, 60, 120]])
    assert body["predictions"] == ["setosa", "versicolor", "virginica"]
    assert list(body["probabilities"][0]) == ["setosa", "versicolor", "virginica"]
    assert max(body["probabilities"][0], key=body["probabilities"][0].get) == "setosa"


@pytest.mark.parametrize("compress", ["zlib", "lzma"])
def test_compressed_joblib_boosting_model_passes_the_preflight(
    tmp_path, diabetes, compress
):
    """Compressed, the file does not show the library's name: the preflight
    prepares every installed one."""
    x, y = diabetes
    model = _lightgbm().LGBMRegressor(n_estimators=3, verbose=-1).fit(x, y)
    joblib.dump(model, tmp_path / "lgbm.joblib", compress=(compress, 3))
    assert publish(tmp_path / "lgbm.joblib", "lgbm").smoke_test == "passed"


@pytest.mark.parametrize(
    ("library", "make", "types"),
    [
        (
            "xgboost",
            lambda: _xgboost().XGBClassifier(n_estimators=2),
            "xgboost.core.Booster, xgboost.sklearn.XGBClassifier",
        ),
        (
            "lightgbm",
            lambda: _lightgbm().LGBMClassifier(n_estimators=2, verbose=-1),
            "lightgbm.basic.Booster, lightgbm.sklearn.LGBMClassifier",
        ),
    ],
)
def test_skops_file_of_a_boosting_model_is_refused_naming_its_types(
    tmp_path, iris, stored_files, library, make, types, settings
):
    """Their boosters are rebuilt by the library's native model parser from
    the file's bytes, which skops cannot vouch for: not trusted by default."""
    settings.MODELHUB_SKOPS_TRUSTED_TYPES = []
    x, y = iris
    path = tmp_path / f"{library}.skops"
    sio.dump(make().fit(x, y), path)
    with pytest.raises(InvalidModel, match="not trusted: .*") as refused:
        publish(path, library)
    assert types in refused.value.message
    assert "MODELHUB_SKOPS_TRUSTED_TYPES" in refused.value.message
    assert stored_files() == []


VANISHING_MODULE = '''
class ThresholdModel:
    """A model whose class lives in a module the server does not have."""

    def predict(self, X):
        return [0 for _ in X]
'''


@pytest.fixture
def model_from_a_missing_package(tmp_path, monkeypatch) -> Path:
    """A pickle of a class from a module that exists only while it is made."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "absent_model_lib.py").write_text(VANISHING_MODULE)
    monkeypatch.syspath_prepend(str(package))
    import absent_model_lib

    path = tmp_path / "needs-absent-lib.joblib"
    joblib.dump(absent_model_lib.ThresholdModel(), path)
    monkeypatch.delitem(sys.modules, "absent_model_lib")
    return path


def test_model_needing_an_uninstalled_package_is_refused_with_missing_library(
    model_from_a_missing_package, stored_files
):
    with pytest.raises(MissingLibrary) as refused:
        publish(model_from_a_missing_package, "absent")
    assert refused.value.code == "missing_library"
    assert refused.value.message == (
        "This model needs the Python package 'absent_model_lib', which is not "
        "installed on this server: install the package that provides it, or put "
        "its module in a directory listed in MODELHUB_PLUGIN_DIRS."
    )
    assert stored_files() == []


def test_missing_boosting_library_says_to_install_the_extras():
    from registry.validation import missing_library

    assert missing_library("xgboost").message == (
        "This model needs the Python package 'xgboost', which is not installed "
        "on this server: install it with pip install -r requirements-extras.txt."
    )


def test_management_api_answers_missing_library_as_a_coded_400(
    model_from_a_missing_package, staff_user
):
    api = Client(raise_request_exception=False)
    headers = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=staff_user)}"}
    api.post(
        "/api/models/", {"slug": "absent"}, content_type="application/json", **headers
    )
    with model_from_a_missing_package.open("rb") as handle:
        response = api.post("/api/models/absent/versions/", {"file": handle}, **headers)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "missing_library"
    assert "'absent_model_lib'" in response.json()["detail"]


def test_loadmodel_reports_the_missing_library(model_from_a_missing_package):
    with pytest.raises(
        CommandError, match="needs the Python package 'absent_model_lib'"
    ):
        call_command("loadmodel", str(model_from_a_missing_package), "--slug", "absent")
