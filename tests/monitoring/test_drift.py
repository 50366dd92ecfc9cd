"""Drift: every feature's and the predictions' PSI against the version's
reference, from what every request predicted, never from captured bodies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring import drift
from monitoring.drift_counts import counter
from monitoring.models import DriftReference, DriftSample
from tests.api.dataplane.test_predict import post

FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]


def iris_like(iris_frame, rows: int, seed: int, shift: dict[str, float] | None = None):
    """Rows drawn around iris' own means and spreads; ``shift`` moves a
    feature by that many standard deviations."""
    x, _ = iris_frame
    rng = np.random.default_rng(seed)
    drawn = {
        name: rng.normal(x[name].mean(), x[name].std(), rows)
        + (shift or {}).get(name, 0.0) * x[name].std()
        for name in FEATURES
    }
    return [{name: float(drawn[name][i]) for name in FEATURES} for i in range(rows)]


def send(client, rows: list[dict], chunk: int = 50) -> None:
    for start in range(0, len(rows), chunk):
        response = post(client, "iris", rows[start : start + chunk])
        assert response.status_code == 200, response.content


def version_drift(staff_client, since: str = "1h") -> dict:
    response = staff_client.get("/api/stats/", {"since": since})
    assert response.status_code == 200, response.content
    (model,) = response.json()["models"]
    (version,) = model["versions"]
    return version["drift"]


@pytest.fixture
def baseline(client, iris, iris_frame):
    """iris v1 with a baseline fitted on its first 1,000 predicted rows (the
    default): with fewer, a PSI's sampling noise nears the warn level
    (README, "Monitoring model quality")."""
    send(client, iris_like(iris_frame, 1000, seed=1))
    counter.fold()
    reference = DriftReference.objects.get(version=iris)
    assert reference.source == "baseline" and reference.rows == 1000
    assert not DriftSample.objects.exists()
    return reference


def test_psi_is_the_sum_over_bins_of_the_share_difference_times_its_log_ratio():
    expected = (0.25, 0.25, 0.5, 0.0)
    counts = [10, 30, 60, 0]
    shares = [0.1, 0.3, 0.6, 1e-4]
    by_hand = sum(
        (a - max(e, 1e-4)) * math.log(a / max(e, 1e-4))
        for a, e in zip(shares, expected, strict=True)
    )
    assert drift.psi(expected, counts) == pytest.approx(by_hand)
    assert drift.psi(expected, [0, 0, 0, 0]) is None


def test_numeric_bins_are_the_references_deciles_with_missing_apart():
    bins = drift.Bins.of("x", drift.NUMBER, np.arange(100.0))
    assert len(bins.edges) == 9 and bins.size == 11
    assert bins.expected[-1] == 0.0
    assert sum(bins.expected) == pytest.approx(1.0)
    counts = bins.count(np.array([-5.0, 50.0, 500.0, np.nan]))
    assert counts.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1]


def test_string_bins_are_the_references_categories_plus_other():
    bins = drift.Bins.of("c", drift.STRING, ["a", "b", "b", None])
    assert bins.categories == ("a", "b")
    assert bins.count(["b", "z", None, "a"]).tolist() == [1, 1, 1, 1]


def test_a_version_collects_its_baseline_before_it_scores_drift(
    settings, client, staff_client, iris, iris_frame
):
    settings.MODELHUB_DRIFT_BASELINE_ROWS = 400
    send(client, iris_like(iris_frame, 150, seed=1))
    assert version_drift(staff_client) == {
        "reference": "baseline",
        "collecting": {"rows": 150, "of": 400},
        "features": {},
        "predictions": None,
    }
    send(client, iris_like(iris_frame, 300, seed=2))
    found = version_drift(staff_client)
    assert found["reference"] == "baseline" and found["reference_rows"] == 400
    # The 50 rows past the baseline are the first ones scored.
    assert found["rows"] == 50


def test_a_feature_shifted_two_deviations_raises_an_alert_and_the_rest_stay_ok(
    client, staff_client, baseline, iris_frame
):
    shifted = "petal width (cm)"
    send(client, iris_like(iris_frame, 1000, seed=7, shift={shifted: 2.0}))
    found = version_drift(staff_client)
    assert found["rows"] == 1000
    assert list(found["features"])[0] == shifted, "worst first"
    assert found["features"][shifted]["status"] == "alert"
    for name in FEATURES:
        if name != shifted:
            assert found["features"][name]["status"] == "ok", found["features"]
    assert found["predictions"]["psi"] is not None


def test_an_unshifted_distribution_stays_ok(client, staff_client, baseline, iris_frame):
    send(client, iris_like(iris_frame, 1000, seed=11))
    found = version_drift(staff_client)
    assert {f["status"] for f in found["features"].values()} == {"ok"}
    assert found["predictions"]["status"] == "ok"


def test_drift_reads_no_captured_payloads(
    client, staff_client, baseline, iris_frame, settings
):
    settings.MODELHUB_LOG_PAYLOADS = False
    send(client, iris_like(iris_frame, 200, seed=5, shift={"sepal width (cm)": 3.0}))
    from monitoring.models import RequestLog

    assert not RequestLog.objects.exclude(payload=None).exists()
    found = version_drift(staff_client)
    assert found["features"]["sepal width (cm)"]["status"] == "alert"


def test_drift_gauges_show_each_features_psi(client, baseline, iris_frame):
    from tests.monitoring.test_feedback import gauge

    send(client, iris_like(iris_frame, 500, seed=7, shift={"petal width (cm)": 2.0}))
    text = client.get("/metrics").content.decode()
    shifted = 'feature="petal width (cm)",model="iris",version="1"'
    steady = 'feature="sepal width (cm)",model="iris",version="1"'
    assert gauge(text, "modelhub_drift_psi", shifted) >= 0.25
    assert gauge(text, "modelhub_drift_psi", steady) < 0.1
    assert gauge(text, "modelhub_drift_predictions_psi", 'model="iris"') is not None


def test_the_warn_and_alert_levels_are_settings(
    settings, client, staff_client, baseline, iris_frame
):
    send(client, iris_like(iris_frame, 500, seed=7, shift={"petal width (cm)": 2.0}))
    settings.MODELHUB_DRIFT_WARN, settings.MODELHUB_DRIFT_ALERT = 5.0, 10.0
    found = version_drift(staff_client)
    assert found["features"]["petal width (cm)"]["status"] == "ok"
    settings.MODELHUB_DRIFT_WARN, settings.MODELHUB_DRIFT_ALERT = 0.001, 0.002
    found = version_drift(staff_client)
    assert {f["status"] for f in found["features"].values()} == {"alert"}
