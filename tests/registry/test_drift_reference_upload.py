"""A drift reference given at upload: a CSV sample of the training data that
the preflight child matches to the model's schema and predicts, stored with
the version so drift is scored from its first request, and refused with
nothing stored when it does not fit, whichever way it came (the CLI, the
admin's upload form, the management API)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from monitoring import drift
from monitoring.models import DriftReference, DriftSample
from registry import actions
from registry.models import ModelVersion
from registry.signals import reference_sample_given
from registry.upload_errors import FAILURES
from tests.monitoring.test_drift import FEATURES, iris_like, send, version_drift
from tests.registry.test_upload_errors import (
    EXCEPTION_NAMES,
    SLUG,
    through_admin,
    through_api,
    through_loadmodel,
)

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


def publish(api: Client, token: dict[str, str], path: Path, reference: Path) -> Any:
    """The management API's upload of ``path`` with a ``reference`` part."""
    with path.open("rb") as file, reference.open("rb") as sample:
        return api.post(
            "/api/models/iris/versions/", {"file": file, "reference": sample}, **token
        )


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


def test_the_admin_upload_form_takes_a_reference(
    staff_client, iris_path, iris_reference, fast_preflight
):
    model = actions.create_model(slug="iris")
    form = staff_client.get(reverse("admin:registry_modelversion_add"))
    assert "Drift reference (CSV)" in form.content.decode()
    with iris_path.open("rb") as file, iris_reference.open("rb") as reference:
        response = staff_client.post(
            reverse("admin:registry_modelversion_add"),
            {"model": model.pk, "file": file, "reference": reference, "activate": "on"},
        )
    assert response.status_code == 302, response.content[:500]
    stored = the_reference()
    assert (stored.version.model.slug, stored.source, stored.rows) == (
        "iris",
        "upload",
        1000,
    )


def test_the_management_api_upload_takes_a_reference_part(
    api, token, iris_path, iris_reference, fast_preflight
):
    actions.create_model(slug="iris")
    response = publish(api, token, iris_path, iris_reference)
    assert response.status_code == 201, response.content
    stored = the_reference()
    assert (stored.version.number, stored.source, stored.rows) == (1, "upload", 1000)


def test_an_mlflow_zip_takes_a_reference_too(
    api, token, iris_classifier, iris_frame, iris_reference, tmp_path, fast_preflight
):
    from tests.mlflow_models import save_mlflow_model, zip_directory

    x, _ = iris_frame
    directory = save_mlflow_model(iris_classifier, tmp_path / "model", x)
    archive = zip_directory(directory, tmp_path / "model.zip")
    actions.create_model(slug="iris")
    response = publish(api, token, archive, iris_reference)
    assert response.status_code == 201, response.content
    assert the_reference().rows == 1000


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


def iris_csv(iris_frame, change: Any = None) -> bytes:
    frame = pd.DataFrame(iris_like(iris_frame, 50, seed=3))
    if change is not None:
        frame = change(frame)
    return frame.to_csv(index=False).encode()


def with_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame["sepal width (cm)"] = frame["sepal width (cm)"].astype(object)
    frame.loc[4, "sepal width (cm)"] = "wide"
    return frame


def with_a_gap(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[7, "sepal length (cm)"] = np.nan
    return frame


@dataclass(frozen=True)
class BadReference:
    content: Any  # (iris_frame) -> bytes
    reason: str
    model: str = "iris"
    details: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()


BAD_REFERENCES = {
    "missing-a-feature": BadReference(
        lambda iris: iris_csv(iris, lambda f: f.drop(columns=SHIFTED)),
        "reference_missing_columns",
        details=(("missing", repr(SHIFTED)),),
    ),
    "unnamed-wrong-count": BadReference(
        lambda iris: b"a,b,c\n1,2,3\n4,5,6\n",
        "reference_column_count",
        model="diabetes",
        details=(("given", "3"), ("expected", "10")),
    ),
    "text-in-a-number": BadReference(
        lambda iris: iris_csv(iris, with_text),
        "reference_not_numbers",
        details=(("columns", "'sepal width (cm)'"),),
    ),
    "the-model-fails-on-it": BadReference(
        lambda iris: iris_csv(iris, with_a_gap), "reference_predict_failed"
    ),
    "garbage": BadReference(
        lambda iris: np.random.default_rng(5).bytes(4096), "reference_unreadable"
    ),
    "ragged": BadReference(lambda iris: b"a,b\n1,2\n3,4,5\n", "reference_unreadable"),
    "empty": BadReference(lambda iris: b"", "reference_empty"),
    "header-only": BadReference(
        lambda iris: ",".join(FEATURES).encode() + b"\n", "reference_empty"
    ),
    "over-the-limit": BadReference(
        lambda iris: iris_csv(iris),
        "reference_too_large",
        details=(("limit", "1000 bytes"),),
        settings=(("MODELHUB_MAX_REFERENCE_BYTES", 1000),),
    ),
}


@pytest.mark.parametrize("case", BAD_REFERENCES.values(), ids=BAD_REFERENCES.keys())
def test_a_reference_that_does_not_fit_is_refused_in_every_channel(
    case,
    settings,
    tmp_path,
    iris_frame,
    iris_path,
    regressor_path,
    staff_client,
    api,
    token,
    stored_files,
    fast_preflight,
):
    for name, value in case.settings:
        setattr(settings, name, value)
    model_path = {"iris": iris_path, "diabetes": regressor_path}[case.model]
    reference = tmp_path / "reference.csv"
    reference.write_bytes(case.content(iris_frame))
    actions.create_model(slug=SLUG)
    failure = FAILURES[case.reason]
    expected = failure.sentence.format(**dict(case.details))

    answers = {
        "admin": through_admin(staff_client, model_path, reference),
        "loadmodel": through_loadmodel(model_path, reference),
        "api": through_api(api, token, model_path, reference),
    }

    for channel, answer in answers.items():
        assert answer.sentence == expected, channel
        assert answer.code == "invalid_reference", channel
        assert answer.technical, channel
        assert not EXCEPTION_NAMES.search(answer.sentence), channel
    assert not ModelVersion.objects.exists()
    assert not DriftReference.objects.exists()
    assert stored_files() == []
