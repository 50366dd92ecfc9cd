"""skops files of the models people train load with no setting changed.

Each estimator is trained here, saved with skops, registered through the
real path (actions.register_version, the preflight in its own process) and
served over the API; its predictions must equal the in-process ones.
"""

from __future__ import annotations

import importlib
import inspect
import json
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from registry import actions
from registry.exceptions import InvalidModel
from registry.models import ModelVersion
from registry.skops_trust import DEFAULT_TRUSTED_TYPES, runs_code

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    return data.data, data.target.map(dict(enumerate(data.target_names)))


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 150).astype(float),
            "income": rng.normal(50_000, 10_000, 150),
            "city": rng.choice(["paris", "lyon", "nice"], 150),
        }
    )
    return frame, np.where(frame["income"] > 50_000, "keeps", "leaves")


def _classifiers() -> dict[str, Callable[[], Any]]:
    from sklearn import ensemble, linear_model, tree

    return {
        "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=500),
        "SGDClassifier": lambda: linear_model.SGDClassifier(random_state=0),
        "DecisionTreeClassifier": lambda: tree.DecisionTreeClassifier(max_depth=4),
        "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(
            n_estimators=5, random_state=0
        ),
        "ExtraTreesClassifier": lambda: ensemble.ExtraTreesClassifier(
            n_estimators=5, random_state=0
        ),
        "GradientBoostingClassifier": lambda: ensemble.GradientBoostingClassifier(
            n_estimators=5, random_state=0
        ),
        "HistGradientBoostingClassifier": lambda: (
            ensemble.HistGradientBoostingClassifier(max_iter=5)
        ),
    }


def _regressors() -> dict[str, Callable[[], Any]]:
    from sklearn import ensemble, linear_model, tree

    return {
        "LinearRegression": linear_model.LinearRegression,
        "Ridge": linear_model.Ridge,
        "Lasso": lambda: linear_model.Lasso(alpha=0.1),
        "ElasticNet": lambda: linear_model.ElasticNet(alpha=0.1),
        "DecisionTreeRegressor": lambda: tree.DecisionTreeRegressor(max_depth=4),
        "RandomForestRegressor": lambda: ensemble.RandomForestRegressor(
            n_estimators=5, random_state=0
        ),
        "ExtraTreesRegressor": lambda: ensemble.ExtraTreesRegressor(
            n_estimators=5, random_state=0
        ),
        "GradientBoostingRegressor": lambda: ensemble.GradientBoostingRegressor(
            n_estimators=5, random_state=0
        ),
        "HistGradientBoostingRegressor": lambda: ensemble.HistGradientBoostingRegressor(
            max_iter=5
        ),
    }


def _customer_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    model = RandomForestClassifier(n_estimators=5, random_state=0)
    return Pipeline([("columns", columns), ("model", model)])


CLASSIFIERS = _classifiers()
REGRESSORS = _regressors()


def publish(path, slug: str) -> ModelVersion:
    with path.open("rb") as source:
        return actions.register_version(slug=slug, source=source, filename=path.name)


def served(client, slug: str, rows: pd.DataFrame) -> dict[str, Any]:
    response = client.post(
        f"/api/predict/{slug}/?proba=1",
        json.dumps({"dataframe_records": rows.to_dict(orient="records")}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def assert_serves_like_in_process(client, tmp_path, model, rows, slug) -> None:
    path = tmp_path / f"{slug}.skops"
    sio.dump(model, path)
    version = publish(path, slug)
    assert (version.status, version.format, version.smoke_test) == (
        "ready",
        "skops",
        "passed",
    )
    assert [f["name"] for f in version.input_schema["features"]] == list(rows.columns)
    body = served(client, slug, rows)
    expected = model.predict(rows)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(body["predictions"], expected, rtol=1e-9)
    else:
        assert body["predictions"] == expected.tolist()
    if hasattr(model, "predict_proba") and "probabilities" in body:
        labels = [str(c) for c in model.classes_]
        table = [[row[label] for label in labels] for row in body["probabilities"]]
        np.testing.assert_allclose(table, model.predict_proba(rows), rtol=1e-9)


@pytest.fixture(autouse=True)
def no_trusted_types_configured(settings) -> None:
    settings.MODELHUB_SKOPS_TRUSTED_TYPES = []


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_skops_classifier_serves_with_default_trust(client, tmp_path, iris, name):
    x, y = iris
    model = CLASSIFIERS[name]().fit(x, y)
    rows = x.iloc[[0, 60, 120, 149]].reset_index(drop=True)
    assert_serves_like_in_process(client, tmp_path, model, rows, name.lower())


@pytest.mark.parametrize("name", REGRESSORS)
def test_skops_regressor_serves_with_default_trust(client, tmp_path, diabetes, name):
    x, y = diabetes
    model = REGRESSORS[name]().fit(x, y)
    rows = x.iloc[:5]
    assert_serves_like_in_process(client, tmp_path, model, rows, name.lower())


def test_skops_pipeline_with_column_transformer_serves_with_default_trust(
    client, tmp_path, customers
):
    frame, target = customers
    model = _customer_pipeline().fit(frame, target)
    rows = frame.iloc[:6].reset_index(drop=True)
    assert_serves_like_in_process(client, tmp_path, model, rows, "customers")


def _dumped(model: Any, path) -> Any:
    sio.dump(model, path)
    return path


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted", DEFAULT_TRUSTED_TYPES)
def test_default_trusted_type_is_a_class_of_the_installed_libraries(dotted):
    """A class, never a function: skops calls only the functions it trusts."""
    found = _resolve(dotted)
    assert inspect.isclass(found)
    assert f"{found.__module__}.{found.__qualname__}" == dotted
    assert dotted.split(".")[0] in ("sklearn", "numpy")


def test_default_trust_leaves_out_function_transformer_functions():
    assert not any("FunctionTransformer" in name for name in DEFAULT_TRUSTED_TYPES)
    assert not any(runs_code(name) for name in DEFAULT_TRUSTED_TYPES)
    assert not any(
        name.startswith(("operator.", "_operator.")) for name in DEFAULT_TRUSTED_TYPES
    )


@pytest.fixture
def negating_forest(tmp_path, iris):
    """A forest behind a FunctionTransformer calling operator.neg: the
    function is not trusted by default."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris
    pipe = make_pipeline(
        FunctionTransformer(operator.neg),
        RandomForestClassifier(n_estimators=3, random_state=0),
    )
    return _dumped(pipe.fit(x, y), tmp_path / "negating.skops")


def test_skops_refusal_names_untrusted_types_and_how_to_trust_them(
    negating_forest, stored_files
):
    with pytest.raises(InvalidModel) as refused:
        publish(negating_forest, "negating")
    message = refused.value.message
    assert "does not trust (_operator.neg)" in message
    assert "sklearn.tree._tree.Tree" not in message
    assert "MODELHUB_SKOPS_TRUSTED_TYPES" in message
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def test_skops_trusted_types_setting_adds_to_the_default(
    negating_forest, settings, client, iris
):
    settings.MODELHUB_SKOPS_TRUSTED_TYPES = ["_operator.neg"]
    assert publish(negating_forest, "negating").status == "ready"
    x, _ = iris
    assert len(served(client, "negating", x.iloc[:3])["predictions"]) == 3


def _tree_with(iris, field: str, value: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    x, y = iris
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value
    model.tree_.__setstate__({**state, "nodes": nodes})
    return model


def _hist_tree_with(iris, field: str, value: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = iris
    model = HistGradientBoostingClassifier(max_iter=2).fit(x, y)
    model._predictors[0][0].nodes[field][0] = value
    return model


def _tree_without_width(iris) -> Any:
    model = _tree_with(iris, "threshold", 0)
    del model.n_features_in_
    return model


def _boosting_wider_than_its_predictions(iris) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = iris
    model = GradientBoostingClassifier(n_estimators=2).fit(x, y)
    model.estimators_ = np.concatenate([model.estimators_] * 2, axis=1)
    return model


CRAFTED = {
    "child_out_of_range": lambda iris: _tree_with(iris, "left_child", 10**6),
    "child_loops_back": lambda iris: _tree_with(iris, "right_child", 0),
    "feature_out_of_range": lambda iris: _tree_with(iris, "feature", 50),
    "no_input_width": _tree_without_width,
    "hist_feature_out_of_range": lambda iris: _hist_tree_with(iris, "feature_idx", 9),
    "hist_child_out_of_range": lambda iris: _hist_tree_with(iris, "left", 10**6),
    "boosting_wider_than_its_predictions": _boosting_wider_than_its_predictions,
}


@pytest.mark.parametrize("crafted", CRAFTED)
def test_skops_tree_that_would_read_out_of_bounds_is_refused(
    crafted, tmp_path, iris, stored_files
):
    """skops does not trust tree types by default because scikit-learn's
    compiled code follows their indices unchecked; ModelHub trusts them only
    after checking those indices."""
    path = _dumped(CRAFTED[crafted](iris), tmp_path / f"{crafted}.skops")
    with pytest.raises(InvalidModel, match="MalformedTreeError"):
        publish(path, "crafted")
    assert stored_files() == []


def test_trusting_a_type_that_runs_code_is_a_system_check_warning(settings):
    from django.core.checks import run_checks

    settings.MODELHUB_SKOPS_TRUSTED_TYPES = ["builtins.eval", "_operator.neg"]
    warned = [m for m in run_checks() if m.id == "registry.W003"]
    assert [m.msg.split("'")[1] for m in warned] == ["builtins.eval"]
