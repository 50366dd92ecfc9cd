"""manage.py loadmodel and modelinfo, end to end with real files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry.models import Activation, MLModel, ModelVersion
from registry.upload_errors import FAILURES
from tests.conftest import PROJECT_ROOT, AllocatesOnLoad

pytestmark = pytest.mark.django_db


def loadmodel(*args: str) -> str:
    out = StringIO()
    call_command("loadmodel", *args, stdout=out)
    return out.getvalue().strip()


def test_loadmodel_registers_and_activates_first_version(iris_path, stored_files):
    assert loadmodel(str(iris_path), "--slug", "iris") == "iris v1"
    model = MLModel.objects.get(slug="iris")
    version = model.active_version
    assert version.number == 1
    assert version.status == "ready"
    assert version.kind == "classifier"
    assert version.format == "joblib"
    assert version.classes == ["setosa", "versicolor", "virginica"]
    assert version.size == iris_path.stat().st_size
    assert len(version.sha256) == 64
    assert version.smoke_test == "passed"
    assert version.library_versions["scikit-learn"]
    assert [p.name for p in stored_files()] == [Path(version.file.name).name]
    assert Activation.objects.get().channel == "cli"


def test_loadmodel_numbers_versions_and_respects_no_activate(iris_path):
    loadmodel(str(iris_path), "--slug", "iris")
    assert loadmodel(str(iris_path), "--slug", "iris", "--no-activate") == "iris v2"
    model = MLModel.objects.get(slug="iris")
    assert model.active_version.number == 1
    assert list(model.versions.values_list("number", flat=True)) == [2, 1]


def test_loadmodel_json_output(regressor_path):
    out = json.loads(loadmodel(str(regressor_path), "--slug", "diabetes", "--json"))
    version = ModelVersion.objects.get()
    assert out == {
        "slug": "diabetes",
        "version": 1,
        "status": "ready",
        "sha256": version.sha256,
        "batch_max_rows": 0,
        "batch_max_wait_ms": 2.0,
    }


def test_loadmodel_stores_metadata_file(iris_path, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"metrics": {"accuracy": 0.97}, "owner": "ds-team"}))
    loadmodel(
        str(iris_path),
        "--slug",
        "iris",
        "--metadata",
        str(meta),
        "--name",
        "Iris",
        "--description",
        "demo",
    )
    version = ModelVersion.objects.get()
    assert version.metadata == {"metrics": {"accuracy": 0.97}, "owner": "ds-team"}
    assert version.model.name == "Iris"


def test_loadmodel_accepts_skops_files(skops_path):
    assert loadmodel(str(skops_path), "--slug", "iris") == "iris v1"
    assert ModelVersion.objects.get().format == "skops"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("garbage", "could not be read as a pickle"),
        ("not_a_model", r"has no predict\(\) method"),
        ("raises", "boom while loading"),
        ("empty", "This file is empty"),
    ],
)
def test_loadmodel_refuses_bad_files_and_stores_nothing(
    hostile_files, stored_files, case, message
):
    with pytest.raises(CommandError, match=message):
        loadmodel(str(hostile_files[case]), "--slug", "bad")
    assert not MLModel.objects.exists()
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def test_loadmodel_refuses_file_that_hangs_past_time_limit(
    hostile_files, stored_files, settings
):
    settings.MODELHUB_PREFLIGHT_TIMEOUT = 2
    with pytest.raises(CommandError, match="longer than the 2 s limit"):
        loadmodel(str(hostile_files["sleeps"]), "--slug", "slow")
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def test_loadmodel_refuses_file_that_allocates_past_memory_limit(tmp_path, settings):
    settings.MODELHUB_PREFLIGHT_MEMORY_MB = 512
    path = tmp_path / "hog.pkl"
    path.write_bytes(pickle.dumps(AllocatesOnLoad()))
    with pytest.raises(CommandError, match="ran out of memory"):
        loadmodel(str(path), "--slug", "hog")
    assert not ModelVersion.objects.exists()


def test_loadmodel_refuses_missing_file_and_too_large_file(iris_path, settings):
    with pytest.raises(CommandError, match="no such file"):
        loadmodel("/nonexistent/model.joblib", "--slug", "iris")
    settings.MODELHUB_MAX_MODEL_BYTES = 100
    with pytest.raises(CommandError, match=r"upload limit \(100 bytes\)"):
        loadmodel(str(iris_path), "--slug", "iris")
    assert not MLModel.objects.exists()


def test_loadmodel_refuses_bad_slug_and_bad_metadata(iris_path, tmp_path):
    with pytest.raises(CommandError, match="not a valid slug"):
        loadmodel(str(iris_path), "--slug", "no spaces/please")
    meta = tmp_path / "meta.json"
    meta.write_text("[1, 2]")
    with pytest.raises(CommandError, match="must be a JSON object"):
        loadmodel(str(iris_path), "--slug", "iris", "--metadata", str(meta))
    meta.write_text('{"input_schema": [{"name": "a"}, {"name": "a"}]}')
    with pytest.raises(CommandError, match="duplicate feature names"):
        loadmodel(str(iris_path), "--slug", "iris", "--metadata", str(meta))
    assert not ModelVersion.objects.exists()


def test_loadmodel_refuses_a_metadata_field_over_the_metadata_limit(
    iris_path, tmp_path, settings, stored_files
):
    settings.MODELHUB_MAX_METADATA_BYTES = 1024
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"metrics": {"auc": 0.9}, "notes": "n" * 2000}))
    with pytest.raises(CommandError) as refused:
        loadmodel(str(iris_path), "--slug", "iris", "--metadata", str(meta))
    assert "'notes' is larger than the 1,024 byte limit" in str(refused.value)
    assert "MODELHUB_MAX_METADATA_BYTES" in str(refused.value)
    assert stored_files() == []


def test_modelinfo_prints_metadata_and_schema_of_active_or_given_version(
    iris_path, regressor_path
):
    loadmodel(str(iris_path), "--slug", "m")
    loadmodel(str(regressor_path), "--slug", "m", "--no-activate")
    out = StringIO()
    call_command("modelinfo", "m", stdout=out)
    info = json.loads(out.getvalue())
    assert info["version"] == 1
    assert info["input_schema"]["features"][0]["name"] == "sepal length (cm)"
    out = StringIO()
    call_command("modelinfo", "m", "--version", "2", stdout=out)
    assert json.loads(out.getvalue())["input_schema"]["source"] == "n_features_in_"
    with pytest.raises(CommandError, match="no version 9"):
        call_command("modelinfo", "m", "--version", "9")
    with pytest.raises(CommandError, match="No model with slug 'nope'"):
        call_command("modelinfo", "nope")


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "template.sqlite3"
    run_manage(["migrate", "-v0"], path, tmp_path_factory.mktemp("cli-media"))
    return path


def run_manage(args: list[str], db: Path, media: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "MODELHUB_MEDIA_ROOT": str(media),
        "MODELHUB_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def test_loadmodel_cli_prints_slug_and_version_exactly(
    migrated_sqlite, tmp_path, iris_path
):
    db = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite, db)
    done = run_manage(["loadmodel", str(iris_path), "--slug", "iris"], db, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "iris v1\n"


def test_loadmodel_cli_failure_is_the_sentence_then_its_detail_with_exit_1(
    migrated_sqlite, tmp_path, hostile_files
):
    db = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite, db)
    done = run_manage(
        ["loadmodel", str(hostile_files["raises"]), "--slug", "bad"], db, tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    sentence, detail = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert sentence.endswith(FAILURES["load_error"].sentence)
    assert detail == "[invalid_model: load_error] RuntimeError: boom while loading"
    info = run_manage(["modelinfo", "bad"], db, tmp_path)
    assert info.returncode == 1
    assert "No model with slug 'bad'" in info.stderr


def test_loadmodel_refuses_deeply_nested_metadata_in_one_line(iris_path, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text('{"notes": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(CommandError) as refused:
        loadmodel(str(iris_path), "--slug", "iris", "--metadata", str(meta))
    assert "nested deeper than 64 levels" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not ModelVersion.objects.exists()
