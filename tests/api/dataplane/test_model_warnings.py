"""Warnings from model code: logged once per version, kept off the hot path."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from api.dataplane import model_warnings

pytestmark = pytest.mark.django_db
LOGGER = "api.dataplane.model_warnings"


class WarnsOnPredict:
    """Warns with the text of its class attribute, as drifting models do."""

    n_features_in_ = 1
    category: type[Warning] = UserWarning
    text = "input outside the calibrated range"

    def predict(self, x: Any) -> np.ndarray:
        warnings.warn(self.text, self.category, stacklevel=2)
        return np.asarray(x, dtype=float)[:, 0]


class DeprecatedOnPredict(WarnsOnPredict):
    category = DeprecationWarning
    text = "this keyword is deprecated"


class CountsWarningFilters:
    """Predicts the number of warning filters it runs under."""

    n_features_in_ = 1

    def predict(self, x: Any) -> np.ndarray:
        return np.full(len(x), len(warnings.filters))


class SleepsWithFilter:
    """Installs an error filter, then sleeps past the time limit (not on the
    preflight's zeros, which the tests run in their own process)."""

    n_features_in_ = 1

    def predict(self, x: Any) -> np.ndarray:
        seconds = float(np.asarray(x)[0, 0])
        if seconds:
            warnings.simplefilter("error")
            time.sleep(seconds)
        return np.zeros(len(x))


@pytest.fixture(autouse=True)
def fresh_reports():
    model_warnings.forget()
    yield
    model_warnings.forget()


def post(client, slug: str, rows: list[list[float]] | list[dict[str, float]]):
    key = "dataframe_records" if isinstance(rows[0], dict) else "inputs"
    return client.post(
        f"/api/predict/{slug}/",
        json.dumps({key: rows}),
        content_type="application/json",
    )


def warned(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_model_warning_is_logged_once_per_version_naming_the_model(
    client, publish, caplog
):
    publish(WarnsOnPredict(), "drifty")
    with caplog.at_level("WARNING", logger=LOGGER):
        for _ in range(3):
            assert post(client, "drifty", [[1.0]]).status_code == 200
        publish(WarnsOnPredict(), "drifty")  # v2, activated
        assert post(client, "drifty", [[1.0]]).status_code == 200
    assert warned(caplog) == [
        "drifty v1 warned during predict: UserWarning: "
        "input outside the calibrated range",
        "drifty v2 warned during predict: UserWarning: "
        "input outside the calibrated range",
    ]


def test_deprecation_warnings_from_model_code_are_not_logged(client, publish, caplog):
    publish(DeprecatedOnPredict(), "old-api")
    with caplog.at_level("WARNING", logger=LOGGER):
        assert post(client, "old-api", [[1.0]]).status_code == 200
    assert warned(caplog) == []


def test_predict_runs_under_a_single_warning_filter(client, publish):
    publish(CountsWarningFilters(), "filters")
    before = list(warnings.filters)
    response = post(client, "filters", [[1.0], [2.0]])
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == [1, 1]
    assert warnings.filters == before


def test_process_warning_filters_are_restored_after_a_timeout(
    client, publish, settings
):
    settings.MODELHUB_PREDICT_TIMEOUT = 0.2
    publish(SleepsWithFilter(), "sleepy")
    before = list(warnings.filters)
    response = post(client, "sleepy", [[2.0]])
    assert response.status_code == 504, response.content
    assert warnings.filters == before


def test_forest_fitted_on_a_frame_serves_its_predictions_without_warnings(
    client, publish, caplog
):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 5)), columns=list("abcde"))
    labels = (frame["a"] + frame["b"] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(frame, labels)
    publish(forest, "forest")
    rows = frame.head(20).to_dict("records")
    with caplog.at_level("WARNING"):
        response = post(client, "forest", rows)
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == forest.predict(frame.head(20)).tolist()
    assert warned(caplog) == []


def test_the_batch_process_runs_models_under_one_filter_and_logs_a_warning_once(
    caplog,
):
    with warnings.catch_warnings():
        saved = warnings.showwarning
        try:
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", message="unrelated")
            model_warnings.forget()
            model_warnings.model_code_only()
            assert len(warnings.filters) == 1
            warnings.filterwarnings("ignore", message="added by an import")
            model_warnings.model_code_only()  # after a load: back to one
            assert len(warnings.filters) == 1

            with caplog.at_level("WARNING", logger=LOGGER):
                for _ in range(3):
                    WarnsOnPredict().predict([[1.0]])
                    DeprecatedOnPredict().predict([[1.0]])
        finally:
            warnings.showwarning = saved
            model_warnings.forget()
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(logged) == 1, logged
    assert "UserWarning: input outside the calibrated range" in logged[0]
