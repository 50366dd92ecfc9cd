"""A drift reference given at upload: a CSV sample of the training data that
the preflight child matches to the model's schema and predicts, stored with
the version so drift is scored from its first request, and refused with
nothing stored when it does not fit."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from monitoring import drift
from monitoring.models import DriftReference, DriftSample
from registry import actions
from registry.models import ModelVersion
from registry.signals import reference_sample_given
from registry.upload_errors import FAILURES
from tests.monitoring.test_drift import FEATURES, iris_like, send, version_drift

pytestmark = pytest.mark.django_db

SHIFTED = "petal width (cm)"


def loadmodel(*args: str) -> str:
    out = io.StringIO()
    call_command("loadmodel", *args, stdout=out)
    return out.getvalue().strip()


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def iris_reference(tmp_path: Path, iris_frame) -> Path:
    """1,000 rows drawn around iris' means and spreads, the columns in
    another order than the model's and one more that it does not read."""
    frame = pd.DataFrame(iris_like(iris_frame, 1000, seed=1))[FEATURES[::-1]]
    frame["notes"] = "not a feature"
    return write_csv(tmp_path / "train_sample.csv", frame)


def the_reference() -> DriftReference:
    (stored,) = DriftReference.objects.all()
    return stored


def test_loadmodel_with_a_reference_scores_drift_from_the_first_request(
    client, staff_client, iris_path, iris_reference, iris_frame, iris_classifier
):
    """Through the real preflight child: it predicts the sample."""
    given = ["--reference", str(iris_reference)]
    assert loadmodel(str(iris_path), "--slug", "iris", *given) == "iris v1"
    stored = the_reference()
    assert (stored.source, stored.rows) == ("upload", 1000)
    assert stored.version == ModelVersion.objects.get()
    assert [b["name"] for b in stored.bins["features"]] == FEATURES
    sample = pd.read_csv(iris_reference)
    for bins in stored.bins["features"]:
        fitted = drift.Bins.of(bins["name"], drift.NUMBER, sample[bins["name"]])
        assert bins == fitted.as_dict()
    own = iris_classifier.predict(sample[FEATURES])
    assert stored.bins["predictions"] == drift.Bins.of("", drift.STRING, own).as_dict()

    send(client, iris_like(iris_frame, 1000, seed=7, shift={SHIFTED: 2.0}))
    found = version_drift(staff_client)
    assert (found["reference"], found["reference_rows"]) == ("upload", 1000)
    assert found["rows"] == 1000, "no row went to a baseline"
    assert not DriftSample.objects.exists()
    assert found["features"][SHIFTED]["status"] == "alert"
    for name in FEATURES:
        if name != SHIFTED:
            assert found["features"][name]["status"] == "ok", found["features"]
    assert found["predictions"]["psi"] is not None


def test_an_unnamed_models_reference_is_taken_column_by_column(
    fast_preflight, regressor_path, numpy_regressor, tmp_path
):
    from sklearn.datasets import load_diabetes

    data = load_diabetes().data[:300]
    frame = pd.DataFrame(data, columns=[f"column {i}" for i in range(10)])
    csv = write_csv(tmp_path / "diabetes.csv", frame)
    with regressor_path.open("rb") as source, csv.open("rb") as reference:
        actions.register_version(
            slug="diabetes",
            source=source,
            filename=regressor_path.name,
            reference=reference,
        )
    stored = the_reference()
    assert stored.rows == 300
    features = stored.bins["features"]
    assert [b["name"] for b in features] == [f"f{i}" for i in range(10)]
    assert features[3] == drift.Bins.of("f3", drift.NUMBER, data[:, 3]).as_dict()
    own = numpy_regressor.predict(data)
    assert stored.bins["predictions"] == drift.Bins.of("", drift.NUMBER, own).as_dict()


def test_a_multi_output_models_reference_bins_its_features_only(tmp_path):
    """Through the real preflight child: drift bins one prediction per row,
    so a model answering two per row has no predictions' reference."""
    import joblib
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(4).normal(size=(40, 3))
    path = tmp_path / "two-outputs.joblib"
    joblib.dump(LinearRegression().fit(x, np.c_[x[:, 0], x[:, 1]]), path)
    csv = write_csv(tmp_path / "sample.csv", pd.DataFrame(x, columns=list("abc")))
    loadmodel(str(path), "--slug", "two", "--reference", str(csv))
    stored = the_reference()
    assert [b["name"] for b in stored.bins["features"]] == ["f0", "f1", "f2"]
    assert stored.bins["predictions"] is None
    assert stored.rows == 40


def test_string_features_keep_their_cells_as_written(fast_preflight, tmp_path):
    """Which cells are numbers is the schema's to say: a post code "007" stays
    "007", however numeric it looks."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"zip": rng.choice(["007", "010", "123"], 90), "x": rng.normal(size=90)}
    )
    pre = ColumnTransformer(
        [
            ("zip", OneHotEncoder(sparse_output=False), ["zip"]),
            ("x", "passthrough", ["x"]),
        ]
    )
    # It predicts rows with a missing x, as the reference's third row is.
    model = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier())])
    model.fit(frame, frame["x"] > 0)
    path = tmp_path / "zips.joblib"
    joblib.dump(model, path)
    csv = tmp_path / "zips.csv"
    csv.write_text("x,zip\n0.5,007\n-1.5,010\n,123\n2.0,007\n")
    with path.open("rb") as source, csv.open("rb") as reference:
        actions.register_version(
            slug="zips", source=source, filename=path.name, reference=reference
        )
    features = {b["name"]: b for b in the_reference().bins["features"]}
    assert features["zip"]["categories"] == ["007", "010", "123"]
    assert features["zip"]["expected"] == [0.5, 0.25, 0.25, 0.0, 0.0]
    assert features["x"]["expected"][-1] == 0.25, "the empty cell is missing"


def test_a_failing_receiver_rolls_the_upload_back(
    fast_preflight, iris_path, iris_reference, stored_files
):
    def fails(**kwargs: Any) -> None:
        raise RuntimeError("monitoring could not store it")

    reference_sample_given.connect(fails, dispatch_uid="test-fails")
    try:
        with iris_path.open("rb") as source, iris_reference.open("rb") as reference:
            with pytest.raises(RuntimeError):
                actions.register_version(
                    slug="iris",
                    source=source,
                    filename=iris_path.name,
                    reference=reference,
                )
    finally:
        reference_sample_given.disconnect(dispatch_uid="test-fails")
    assert not ModelVersion.objects.exists()
    assert not DriftReference.objects.exists()
    assert stored_files() == []


def test_the_preflight_child_refuses_a_reference_missing_a_feature(
    iris_path, iris_frame, tmp_path, stored_files
):
    """Through the real preflight child, which reports the names missing."""
    frame = pd.DataFrame(iris_like(iris_frame, 20, seed=2)).drop(columns=SHIFTED)
    csv = write_csv(tmp_path / "sample.csv", frame)
    with pytest.raises(CommandError) as refused:
        loadmodel(str(iris_path), "--slug", "iris", "--reference", str(csv))
    sentence, technical = str(refused.value).split("\n")
    expected = FAILURES["reference_missing_columns"].sentence
    assert sentence == f"{csv}: " + expected.format(missing=repr(SHIFTED))
    assert technical.startswith("[invalid_reference: reference_missing_columns] ")
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def test_loadmodel_refuses_a_reference_it_cannot_open(iris_path, tmp_path):
    for path in (tmp_path / "missing.csv", tmp_path):
        with pytest.raises(CommandError, match=f"^{path}: "):
            loadmodel(str(iris_path), "--slug", "iris", "--reference", str(path))
    assert not ModelVersion.objects.exists()
