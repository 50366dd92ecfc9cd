"""manage.py checkmodels and check --deploy: stored versions reloaded for real.

Versions are published through the real write path (preflight in-process,
see ``publish``); the checks then reload the stored files in the real
isolated preflight child.
"""

from __future__ import annotations

import json
import secrets
from io import StringIO
from pathlib import Path

import joblib
import pytest
from django.core.checks import run_checks
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from registry.models import ModelVersion

pytestmark = pytest.mark.django_db

ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5}
ROW |= {"petal length (cm)": 1.4, "petal width (cm)": 0.2}


def checkmodels(*args: str) -> tuple[list[str], str | None]:
    """stdout lines, and the CommandError message if it exited 1."""
    out = StringIO()
    try:
        call_command("checkmodels", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue().splitlines(), str(exc)
    return out.getvalue().splitlines(), None


def stored_path(version: ModelVersion) -> Path:
    return Path(default_storage.path(version.file.name))


def replace_file(version: ModelVersion, data: bytes) -> None:
    """Swap the stored file and its recorded sha256, as a bad restore would."""
    import hashlib

    stored_path(version).write_bytes(data)
    ModelVersion.objects.filter(pk=version.pk).update(
        sha256=hashlib.sha256(data).hexdigest()
    )


def production(**overrides: str) -> dict[str, str]:
    """The environment of the production settings profile (tests/test_settings)."""
    return {
        "MODELHUB_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "modelhub.example.com",
        **overrides,
    }


def predict(client, path: str):
    return client.post(path, {"data": ROW}, content_type="application/json")


def test_checkmodels_reports_ok_for_every_ready_version_and_exits_0(
    publish, iris_classifier, numpy_regressor
):
    publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    publish(numpy_regressor, "diabetes")
    lines, failure = checkmodels()
    assert failure is None
    assert lines == ["diabetes v1: ok", "iris v1: ok", "iris v2: ok"]


def test_checkmodels_json_for_one_model(publish, iris_classifier, numpy_regressor):
    publish(iris_classifier, "iris")
    publish(numpy_regressor, "diabetes")
    lines, failure = checkmodels("--model", "iris", "--json")
    assert failure is None
    [result] = json.loads("\n".join(lines))
    assert result["slug"] == "iris"
    assert result["version"] == 1
    assert result["ok"] is True
    assert result["problem"] is None
    assert result["marked_invalid"] is False
    assert 0 < result["seconds"] < 60


def test_checkmodels_refuses_an_unknown_model():
    with pytest.raises(CommandError, match="No model with slug 'nope'"):
        call_command("checkmodels", "--model", "nope")


def test_checkmodels_reports_altered_deleted_and_broken_files_and_exits_1(
    publish, iris_classifier, numpy_regressor
):
    publish(iris_classifier, "healthy")
    altered = publish(iris_classifier, "altered")
    deleted = publish(iris_classifier, "deleted")
    unloadable = publish(iris_classifier, "unloadable")
    unpredictable = publish(numpy_regressor, "unpredictable")
    with stored_path(altered).open("ab") as handle:
        handle.write(b"tampered")
    stored_path(deleted).unlink()
    # A class the installed libraries no longer have, as after an upgrade.
    replace_file(unloadable, b"\x80\x04csklearn.gone\nOldEstimator\n)\x81.")
    broken = joblib.load(stored_path(unpredictable))
    broken.coef_ = broken.coef_[:3]
    joblib.dump(broken, stored_path(unpredictable))
    replace_file(unpredictable, stored_path(unpredictable).read_bytes())

    lines, failure = checkmodels()

    assert failure == "4 of 5 version(s) no longer load or predict."
    assert len(lines) == 5
    by_slug = {line.split(" ")[0]: line for line in lines}
    assert by_slug["healthy"] == "healthy v1: ok"
    assert "does not match its sha256" in by_slug["altered"]
    assert "missing from storage" in by_slug["deleted"]
    assert (
        "ModuleNotFoundError: No module named 'sklearn.gone'" in by_slug["unloadable"]
    )
    assert "ValueError: matmul" in by_slug["unpredictable"]
    statuses = set(ModelVersion.objects.values_list("status", flat=True))
    assert statuses == {"ready"}, "checkmodels marks nothing unless asked"


def test_checkmodels_mark_invalid_stops_serving_only_the_failing_version(
    client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    bad = publish(iris_classifier, "iris")
    with stored_path(bad).open("ab") as handle:
        handle.write(b"tampered")

    lines, failure = checkmodels("--mark-invalid")

    assert failure == "1 of 2 version(s) no longer load or predict."
    assert lines[0] == "iris v1: ok"
    assert lines[1].startswith("iris v2: FAILED: ")
    assert lines[1].endswith("(marked invalid)")
    bad.refresh_from_db()
    assert bad.status == "invalid"
    assert "does not match its sha256" in bad.status_message
    pinned = predict(client, "/api/predict/iris/v2/")
    assert pinned.status_code == 503
    assert pinned.json()["code"] == "model_unavailable"
    assert predict(client, "/api/predict/iris/v1/").status_code == 200
    lines, failure = checkmodels()
    assert (lines, failure) == (["iris v1: ok"], None), "invalid versions are skipped"


def test_deploy_check_reports_failing_versions_and_plain_check_does_not_reload(
    publish, iris_classifier
):
    publish(iris_classifier, "iris")
    bad = publish(iris_classifier, "iris")
    stored_path(bad).unlink()

    plain = run_checks(include_deployment_checks=False)
    assert not [m for m in plain if m.id == "registry.E003"]
    deploy = [
        m
        for m in run_checks(include_deployment_checks=True, tags=["models"])
        if m.id.startswith("registry.")
    ]
    assert [(m.id, str(m.obj)) for m in deploy] == [("registry.E003", "iris v2")]
    assert "missing from storage" in deploy[0].msg
    bad.refresh_from_db()
    assert bad.status == "ready", "the deploy check never marks"


def test_check_deploy_in_production_profile_reports_a_version_that_no_longer_loads(
    manage_cli, iris_path, tmp_path
):
    env = production()
    for _ in range(2):
        done = manage_cli("loadmodel", str(iris_path), "--slug", "iris")
        assert done.returncode == 0, done.stderr
    [second] = manage_cli.media.glob("models/iris/v2-*")
    second.write_bytes(second.read_bytes() + b"tampered")

    deploy = manage_cli("check", "--deploy", **env)
    assert deploy.returncode == 1, deploy.stderr
    assert "iris v2: (registry.E003) no longer loads or predicts here" in deploy.stderr
    assert "iris v1" not in deploy.stderr
    assert "Traceback" not in deploy.stderr

    plain = manage_cli("check", **env)
    assert plain.returncode == 0, plain.stderr
    assert "registry.E003" not in plain.stderr + plain.stdout

    cli = manage_cli("checkmodels")
    assert cli.returncode == 1
    assert cli.stdout.splitlines()[0] == "iris v1: ok"
    assert cli.stdout.splitlines()[1].startswith("iris v2: FAILED")
    assert cli.stderr.strip().splitlines() == [
        "CommandError: 1 of 2 version(s) no longer load or predict."
    ]


def test_check_deploy_without_a_migrated_database_is_quiet(manage_cli, tmp_path):
    env = production(DATABASE_URL=f"sqlite:///{tmp_path / 'never-created.sqlite3'}")
    done = manage_cli("check", "--deploy", "--fail-level", "WARNING", **env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never-created.sqlite3").exists()


def test_check_deploy_with_an_unreachable_database_warns_without_traceback(
    manage_cli,
):
    env = production(DATABASE_URL="postgres://nobody@127.0.0.1:9/nowhere")
    done = manage_cli("check", "--deploy", **env)
    assert done.returncode == 0, done.stderr
    assert "registry.W002" in done.stderr
    assert "Traceback" not in done.stderr
