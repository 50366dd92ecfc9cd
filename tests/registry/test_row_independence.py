"""Batching is offered only to estimators whose rows come out with the same
bits alone or together: each family is checked against its unbatched self."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from registry.demo import DEMOS
from registry.row_independence import rows_are_independent
from registry.wrappers import ModelWrapper

X, Y = make_classification(600, 20, random_state=0)
XR, YR = make_regression(600, 20, random_state=0)


def outputs(model, rows: np.ndarray) -> list[np.ndarray]:
    methods = [model.predict]
    for name in ("predict_proba", "decision_function"):
        if hasattr(model, name):
            methods.append(getattr(model, name))
    return [np.asarray(method(rows)) for method in methods]


def same_bits_alone_and_together(model, width: int) -> bool:
    rows = np.random.default_rng(1).normal(size=(16, width)) * 2
    together = outputs(model, rows)
    alone = [outputs(model, rows[i : i + 1]) for i in range(len(rows))]
    for k, batch in enumerate(together):
        one_by_one = np.concatenate([np.atleast_1d(a[k]) for a in alone])
        if one_by_one.tobytes() != batch.tobytes():
            return False
    return True


INDEPENDENT = {
    "decision tree": lambda: DecisionTreeClassifier(random_state=0).fit(X, Y),
    "random forest": lambda: RandomForestClassifier(30, random_state=0).fit(X, Y),
    "extra trees": lambda: ExtraTreesRegressor(20, random_state=0).fit(XR, YR),
    "gradient boosting": lambda: GradientBoostingClassifier(
        n_estimators=20, random_state=0
    ).fit(X, Y),
    "hist gradient boosting": lambda: HistGradientBoostingClassifier(
        max_iter=30, random_state=0
    ).fit(X, Y),
    "isolation forest": lambda: IsolationForest(random_state=0).fit(X),
    "adaboost over trees": lambda: AdaBoostClassifier(
        n_estimators=10, random_state=0
    ).fit(X, Y),
    "scalers then a forest": lambda: make_pipeline(
        StandardScaler(), MinMaxScaler(), RandomForestClassifier(10, random_state=0)
    ).fit(X, Y),
    "column transformer then boosting": lambda: make_pipeline(
        ColumnTransformer(
            [("scale", StandardScaler(), list(range(10)))], remainder="passthrough"
        ),
        HistGradientBoostingClassifier(max_iter=10, random_state=0),
    ).fit(X, Y),
}


@pytest.mark.parametrize("family", sorted(INDEPENDENT))
def test_tree_families_are_batched_and_keep_their_bits(family):
    model = INDEPENDENT[family]()
    assert rows_are_independent(model)
    assert same_bits_alone_and_together(model, 20)


def test_a_matrix_product_is_not_batched_because_it_moves_the_last_bit():
    iris_like = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    assert not rows_are_independent(iris_like)
    assert not rows_are_independent(LogisticRegression().fit(X, Y))


@pytest.mark.parametrize("slug", sorted(DEMOS))
def test_a_demo_model_batched_keeps_its_bits(slug):
    model, _ = DEMOS[slug][2]()
    if not rows_are_independent(model):
        pytest.skip(f"{slug} is served unbatched")
    assert same_bits_alone_and_together(model, model.n_features_in_)


def test_the_demo_forest_is_batched_and_the_linear_demos_are_not():
    batched = {slug for slug in DEMOS if rows_are_independent(DEMOS[slug][2]()[0])}
    assert batched == {"diabetes"}


def test_a_wrapper_is_never_assumed_independent():
    assert not rows_are_independent(
        ModelWrapper(RandomForestClassifier(5, random_state=0).fit(X, Y))
    )
