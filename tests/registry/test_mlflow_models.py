"""MLflow models in: directories and zips saved by mlflow, via register_version."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.urls import reverse

from registry import actions
from registry.exceptions import InvalidMetadata, InvalidModel, ModelTooLarge
from registry.models import MLModel, ModelVersion
from tests.mlflow_models import mlflow_predictions, save_mlflow_model, zip_directory

pytestmark = pytest.mark.django_db


def loadmodel(*args: str) -> str:
    out = StringIO()
    call_command("loadmodel", *args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture(scope="session")
def qa_frame() -> tuple[pd.DataFrame, list[str]]:
    frame = pd.DataFrame(
        {
            "question": ["What color is it?", "How big is it?", "Where is it?"] * 6,
            "context": ["It is pink.", "It is large.", "It is here, by the door."] * 6,
        }
    )
    return frame, ["color", "size", "place"] * 6


@pytest.fixture(scope="session")
def text_pipeline(qa_frame):
    """Free-text columns: no categories to invent a smoke row from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame, labels = qa_frame
    pre = ColumnTransformer(
        [("q", TfidfVectorizer(), "question"), ("c", TfidfVectorizer(), "context")]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, labels)


@pytest.fixture(scope="session")
def iris_mlflow_dir(tmp_path_factory, iris_classifier, iris_frame) -> Path:
    x, _ = iris_frame
    directory = tmp_path_factory.mktemp("mlflow") / "iris"
    return save_mlflow_model(iris_classifier, directory, x, example_rows=3)


@pytest.fixture(scope="session")
def mixed_mlflow_dir(tmp_path_factory, pipeline_classifier, mixed_frame) -> Path:
    frame, _ = mixed_frame
    frame = frame.astype({"age": "int64"})
    directory = tmp_path_factory.mktemp("mlflow") / "mixed"
    return save_mlflow_model(
        pipeline_classifier, directory, frame, serialization_format="skops"
    )


@pytest.fixture(scope="session")
def text_mlflow_dir(tmp_path_factory, text_pipeline, qa_frame) -> Path:
    frame, _ = qa_frame
    directory = tmp_path_factory.mktemp("mlflow") / "qa"
    return save_mlflow_model(
        text_pipeline, directory, frame, serialization_format="pickle", example_rows=1
    )


def mlmodel(directory: Path) -> dict:
    return yaml.safe_load((directory / "MLmodel").read_text())


def copy_with_mlmodel(source: Path, target: Path, change) -> Path:
    """A copy of an MLflow model directory with its MLmodel edited by ``change``."""
    import shutil

    shutil.copytree(source, target)
    document = mlmodel(target)
    change(document)
    (target / "MLmodel").write_text(yaml.safe_dump(document))
    return target


def register_zip(path: Path, slug: str = "m") -> ModelVersion:
    with path.open("rb") as source:
        return actions.register_version(slug=slug, source=source, filename=path.name)


def test_loadmodel_registers_mlflow_model_directory(iris_mlflow_dir, stored_files):
    assert loadmodel(str(iris_mlflow_dir), "--slug", "iris") == "iris v1"
    version = MLModel.objects.get(slug="iris").active_version
    assert version.status == "ready"
    assert version.format == "pickle"  # MLflow's cloudpickle is a pickle
    assert version.estimator.endswith("LogisticRegression")
    assert version.classes == ["setosa", "versicolor", "virginica"]
    assert version.smoke_test == "passed"
    assert version.original_filename == "iris.zip"
    origin = mlmodel(iris_mlflow_dir)
    assert version.metadata["mlflow"]["model_uuid"] == origin["model_uuid"]
    assert version.metadata["mlflow"]["mlflow_version"] == origin["mlflow_version"]
    assert version.metadata["mlflow"]["flavor"] == {
        "serialization_format": "cloudpickle",
        "sklearn_version": origin["flavors"]["sklearn"]["sklearn_version"],
        "pickled_model": "model.pkl",
    }
    model_file = iris_mlflow_dir / "model.pkl"
    assert version.size == model_file.stat().st_size
    assert version.sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert [p.suffix for p in stored_files()] == [".pkl"]
    assert stored_files()[0].read_bytes() == model_file.read_bytes()


def test_loadmodel_registers_zipped_mlflow_model(mixed_mlflow_dir, tmp_path):
    archive = zip_directory(mixed_mlflow_dir, tmp_path / "churn.zip")
    assert loadmodel(str(archive), "--slug", "churn") == "churn v1"
    version = MLModel.objects.get(slug="churn").active_version
    assert version.format == "skops"
    assert version.metadata["mlflow"]["flavor"]["serialization_format"] == "skops"
    assert version.smoke_test == "passed"


def test_mlflow_signature_becomes_input_schema_with_names_types_and_order(
    mixed_mlflow_dir,
):
    loadmodel(str(mixed_mlflow_dir), "--slug", "churn")
    schema = MLModel.objects.get(slug="churn").active_version.input_schema
    signature = json.loads(mlmodel(mixed_mlflow_dir)["signature"]["inputs"])
    assert [(c["name"], c["type"]) for c in signature] == [
        ("age", "long"),
        ("income", "double"),
        ("city", "string"),
        ("plan", "string"),
    ]
    features = [(f["name"], f["type"]) for f in schema["features"]]
    assert features == [
        ("age", "number"),
        ("income", "number"),
        ("city", "string"),
        ("plan", "string"),
    ]
    assert schema["source"] == "metadata"


def test_mlflow_input_example_is_the_smoke_row(text_mlflow_dir, tmp_path):
    loadmodel(str(text_mlflow_dir), "--slug", "qa")
    version = MLModel.objects.get(slug="qa").active_version
    assert version.smoke_test == "passed"
    assert version.metadata["input_example"] == [
        {"question": "What color is it?", "context": "It is pink."}
    ]
    # The same file without MLflow's example and signature is smoke-tested on
    # zeros, which its text columns refuse.
    bare = tmp_path / "qa.pkl"
    bare.write_bytes((text_mlflow_dir / "model.pkl").read_bytes())
    refused = r"test prediction[^\n]*\n.*smoke_test_failed\] AttributeError"
    with pytest.raises(CommandError, match=refused):
        loadmodel(str(bare), "--slug", "qa-bare")


def test_caller_metadata_overrides_what_mlflow_says(iris_mlflow_dir, tmp_path):
    given = tmp_path / "meta.json"
    given.write_text(json.dumps({"metrics": {"f1": 0.9}, "input_example": None}))
    loadmodel(str(iris_mlflow_dir), "--slug", "iris", "--metadata", str(given))
    metadata = MLModel.objects.get(slug="iris").active_version.metadata
    assert metadata["metrics"] == {"f1": 0.9}
    assert metadata["input_example"] is None
    assert metadata["mlflow"]["model_uuid"]


def test_loadmodel_refuses_mlflow_model_without_sklearn_flavor(
    iris_mlflow_dir, tmp_path, stored_files
):
    def xgboost_only(document: dict) -> None:
        del document["flavors"]["sklearn"]
        document["flavors"]["xgboost"] = {"data": "model.xgb", "model_format": "xgb"}

    directory = copy_with_mlmodel(iris_mlflow_dir, tmp_path / "xgb", xgboost_only)
    with pytest.raises(CommandError) as refused:
        loadmodel(str(directory), "--slug", "xgb")
    assert "MLflow model has no sklearn flavor (flavors: python_function, xgboost)" in (
        str(refused.value)
    )
    assert not MLModel.objects.exists()
    assert stored_files() == []


def test_loadmodel_refuses_unsupported_serialization_format(iris_mlflow_dir, tmp_path):
    def onnx(document: dict) -> None:
        document["flavors"]["sklearn"]["serialization_format"] = "onnx"

    directory = copy_with_mlmodel(iris_mlflow_dir, tmp_path / "onnx", onnx)
    with pytest.raises(CommandError, match="serialization format 'onnx'"):
        loadmodel(str(directory), "--slug", "onnx")
    assert not ModelVersion.objects.exists()


def test_loadmodel_refuses_signature_column_type_it_cannot_decode(
    iris_mlflow_dir, tmp_path
):
    def datetime_column(document: dict) -> None:
        columns = json.loads(document["signature"]["inputs"])
        columns[0]["type"] = "datetime"
        document["signature"]["inputs"] = json.dumps(columns)

    directory = copy_with_mlmodel(iris_mlflow_dir, tmp_path / "dt", datetime_column)
    with pytest.raises(CommandError, match="has type 'datetime'"):
        loadmodel(str(directory), "--slug", "dt")


def test_loadmodel_refuses_directory_without_mlmodel(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="not an MLflow model"):
        loadmodel(str(tmp_path / "empty"), "--slug", "x")


def test_register_version_refuses_zip_with_path_traversal(
    iris_mlflow_dir, tmp_path, stored_files
):
    archive = zip_directory(iris_mlflow_dir, tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr("../../outside.txt", b"escaped")
    with pytest.raises(InvalidModel, match="points outside it"):
        register_zip(archive)
    assert not (tmp_path.parent / "outside.txt").exists()
    assert stored_files() == []
    assert not MLModel.objects.exists()


def test_register_version_refuses_model_path_that_leaves_the_model(
    iris_mlflow_dir, tmp_path
):
    def escape(document: dict) -> None:
        document["flavors"]["sklearn"]["pickled_model"] = "../model.pkl"

    directory = copy_with_mlmodel(iris_mlflow_dir, tmp_path / "escape", escape)
    archive = zip_directory(directory, tmp_path / "escape.zip")
    with pytest.raises(InvalidModel, match="points outside the model"):
        register_zip(archive)


def test_register_version_refuses_zip_bomb_and_nested_archive(
    iris_mlflow_dir, tmp_path, settings
):
    bomb = zip_directory(iris_mlflow_dir, tmp_path / "bomb.zip")
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("model/zeros.bin", bytes(20 * 1024 * 1024))
    with pytest.raises(InvalidModel, match="compressed more than"):
        register_zip(bomb)
    nested = zip_directory(iris_mlflow_dir, tmp_path / "nested.zip")
    with zipfile.ZipFile(nested, "a") as zipped:
        zipped.write(bomb, "model/inner.zip")
    with pytest.raises(InvalidModel, match="holds another archive"):
        register_zip(nested)
    assert not ModelVersion.objects.exists()


def test_register_version_refuses_model_over_size_limit_once_unpacked(
    iris_mlflow_dir, tmp_path, settings
):
    archive = zip_directory(iris_mlflow_dir, tmp_path / "iris.zip")
    model_size = (iris_mlflow_dir / "model.pkl").stat().st_size
    assert archive.stat().st_size < model_size + 4096
    settings.MODELHUB_MAX_MODEL_BYTES = model_size - 1
    with pytest.raises(ModelTooLarge):
        register_zip(archive)


def test_registered_mlflow_model_predicts_as_mlflow_pyfunc_does(
    client, mixed_mlflow_dir, mixed_frame
):
    loadmodel(str(mixed_mlflow_dir), "--slug", "churn")
    frame, _ = mixed_frame
    body = json.dumps({"dataframe_split": frame.iloc[:8].to_dict(orient="split")})
    response = client.post("/api/predict/churn/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    expected = mlflow_predictions(mixed_mlflow_dir, body, "application/json")
    assert response.json()["predictions"] == expected
    served = (mixed_mlflow_dir / "serving_input_example.json").read_text()
    response = client.post(
        "/api/predict/churn/", served, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    expected = mlflow_predictions(mixed_mlflow_dir, served, "application/json")
    assert response.json()["predictions"] == expected


def test_admin_upload_of_mlflow_zip_creates_version(
    staff_client, iris_mlflow_dir, tmp_path
):
    model = MLModel.objects.create(slug="iris", name="Iris")
    form = staff_client.get(reverse("admin:registry_modelversion_add"))
    assert "a .zip of an MLflow model directory" in form.content.decode()
    archive = zip_directory(iris_mlflow_dir, tmp_path / "iris-mlflow.zip")
    with archive.open("rb") as handle:
        response = staff_client.post(
            reverse("admin:registry_modelversion_add"),
            {"model": model.pk, "file": handle, "activate": "on"},
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    version = model.versions.get()
    assert version.format == "pickle"
    assert version.original_filename == "iris-mlflow.zip"
    assert version.metadata["mlflow"]["model_uuid"]
    assert version.created_by.username == "staff"
    page = staff_client.get(response.url).content.decode()
    assert "model_uuid" in page


def test_mlflow_tensor_signature_leaves_schema_to_the_model(tmp_path, numpy_regressor):
    from sklearn.datasets import load_diabetes

    x, _ = load_diabetes(return_X_y=True)
    directory = save_mlflow_model(
        numpy_regressor, tmp_path / "diabetes", x, serialization_format="pickle"
    )
    loadmodel(str(directory), "--slug", "diabetes")
    version = MLModel.objects.get(slug="diabetes").active_version
    assert version.input_schema["source"] == "n_features_in_"
    assert len(version.input_schema["features"]) == 10
    assert version.metadata["input_example"] == np.asarray(x[:2]).tolist()
    assert version.smoke_test == "passed"


# --- YAML bombs and oversized metadata ----------------------------------------


def yaml_bomb(levels: int, width: int = 9) -> str:
    """Billion laughs: each anchor holds ``width`` aliases of the one before."""
    lines = ['laughs0: &laughs0 ["lolololol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*laughs{level - 1}"] * width)
        lines.append(f"laughs{level}: &laughs{level} [{aliases}]")
    lines.append(f"run_id: *laughs{levels}")
    return "\n".join(lines) + "\n"


def with_mlmodel_text(source: Path, target: Path, extra: str) -> Path:
    """A copy of an MLflow model directory with ``extra`` YAML appended."""
    import shutil

    shutil.copytree(source, target)
    text = (target / "MLmodel").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("run_id:")]
    (target / "MLmodel").write_text("\n".join(lines) + "\n" + extra)
    return target


def loadmodel_in_a_process(
    manage_cli, *args: str, memory_mb: int = 2048
) -> subprocess.CompletedProcess:
    """``manage.py loadmodel`` as an operator runs it, its address space capped
    so a bomb that is not refused fails this test instead of the machine."""
    import resource

    limit = memory_mb * 1024 * 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "manage.py", "loadmodel", *args],
        cwd=Path(__file__).resolve().parents[2],
        env=manage_cli.env,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=cap,
    )


def test_mlflow_model_with_a_yaml_bomb_is_refused_in_one_line_under_a_memory_cap(
    manage_cli, iris_mlflow_dir, tmp_path
):
    bomb = with_mlmodel_text(iris_mlflow_dir, tmp_path / "bomb", yaml_bomb(9))
    done = loadmodel_in_a_process(manage_cli, str(bomb), "--slug", "bomb")
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().count("\n") == 0, done.stderr[-3000:]
    assert "CommandError" in done.stderr
    assert "YAML aliases" in done.stderr


def test_mlflow_input_example_nested_900_deep_is_refused_in_one_line(
    manage_cli, iris_mlflow_dir, tmp_path
):
    import shutil

    deep = tmp_path / "deep"
    shutil.copytree(iris_mlflow_dir, deep)
    example = mlmodel(deep)["saved_input_example_info"]["artifact_path"]
    (deep / example).write_text("[" * 900 + "]" * 900)
    done = loadmodel_in_a_process(manage_cli, str(deep), "--slug", "deep")
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().count("\n") == 0, done.stderr[-3000:]
    assert "input example nests deeper than" in done.stderr


def test_register_version_refuses_an_mlmodel_with_yaml_aliases(
    iris_mlflow_dir, tmp_path, stored_files
):
    small = with_mlmodel_text(iris_mlflow_dir, tmp_path / "laughs", yaml_bomb(4))
    archive = zip_directory(small, tmp_path / "laughs.zip")
    with pytest.raises(InvalidModel, match="YAML aliases"):
        register_zip(archive)
    assert stored_files() == []
    assert not ModelVersion.objects.exists()


def test_register_version_refuses_an_mlflow_field_over_the_metadata_limit(
    iris_mlflow_dir, tmp_path, settings
):
    settings.MODELHUB_MAX_METADATA_BYTES = 4096
    long = with_mlmodel_text(
        iris_mlflow_dir, tmp_path / "long", f"run_id: {'r' * 5000}\n"
    )
    archive = zip_directory(long, tmp_path / "long.zip")
    with pytest.raises(InvalidMetadata, match="'mlflow' .* 4,096 byte limit"):
        register_zip(archive)
    assert not ModelVersion.objects.exists()
