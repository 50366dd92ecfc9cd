"""Model files in an S3-compatible object store (MODELHUB_STORAGE=s3), with
a verified, bounded local copy per host. The store is moto's S3 server on
127.0.0.1 (tests/objectstore.py), spoken to over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry import actions, hostcopy
from registry.cache import model_cache
from registry.models import ModelVersion
from tests.conftest import PROJECT_ROOT, dump
from tests.objectstore import CREDENTIALS, start_s3_server
from tests.servers import IRIS_ROW, clean_env

pytestmark = pytest.mark.django_db(transaction=True)


def register(path: Path, slug: str = "iris", **kwargs) -> ModelVersion:
    with open(path, "rb") as source:
        return actions.register_version(
            slug=slug, source=source, filename=path.name, activate=True, **kwargs
        )


def predict(client, slug: str = "iris"):
    return client.post(
        f"/api/predict/{slug}/", {"data": IRIS_ROW}, content_type="application/json"
    )


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """A ModelHub command as an operator runs it, in its own process."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def copies(settings) -> list[str]:
    directory = Path(settings.MODELHUB_MODEL_COPY_DIR)
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def test_upload_writes_the_file_to_the_bucket_and_nothing_to_the_local_media(
    object_store, iris_path, stored_files
):
    version = register(iris_path)
    assert object_store.keys() == [object_store.key_of(version.file.name)]
    assert version.file.name.startswith("models/iris/v1-")
    assert stored_files() == []


def test_a_host_without_a_copy_loads_from_the_store_and_keeps_a_verified_copy(
    object_store, iris_path, client, settings
):
    version = register(iris_path)
    response = predict(client)
    assert response.status_code == 200, response.content
    assert copies(settings) == [f"{version.sha256}.joblib"]


def test_every_format_is_kept_as_a_local_copy(
    object_store, skops_path, client, settings
):
    version = register(skops_path)
    assert predict(client).status_code == 200
    assert copies(settings) == [f"{version.sha256}.skops"]


def test_a_held_copy_serves_without_the_store(object_store, iris_path, client):
    version = register(iris_path)
    assert predict(client).status_code == 200
    object_store.remove(version.file.name)
    model_cache.clear()  # a new worker of the same host
    response = predict(client)
    assert response.status_code == 200, response.content


def test_a_file_missing_from_the_store_and_not_held_is_a_503_for_that_version(
    object_store, iris_path, client
):
    version = register(iris_path)
    object_store.remove(version.file.name)
    response = predict(client)
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"


def test_a_file_altered_in_the_store_is_never_served(object_store, iris_path, client):
    version = register(iris_path)
    object_store.put(version.file.name, b"\x80\x04 not the uploaded bytes")
    response = predict(client)
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"
    assert "sha256" in response.json()["detail"]


def test_a_damaged_local_copy_is_fetched_again_from_the_store(
    object_store, iris_path, client, settings
):
    version = register(iris_path)
    assert predict(client).status_code == 200
    copy = Path(settings.MODELHUB_MODEL_COPY_DIR) / f"{version.sha256}.joblib"
    copy.write_bytes(b"damaged on disk")
    model_cache.clear()
    assert predict(client).status_code == 200
    assert hostcopy.verified(version.sha256) == copy


def test_a_vanished_bucket_is_a_503_store_unavailable_for_versions_not_held(
    object_store, iris_path, regressor_path, client, settings
):
    register(iris_path)
    register(regressor_path, slug="diabetes")
    assert predict(client).status_code == 200
    object_store.server.drop_bucket(object_store.bucket)
    model_cache.clear()

    held = predict(client)
    assert held.status_code == 200, held.content
    row = {"data": [[0.0] * 10]}
    not_held = client.post(
        "/api/predict/diabetes/", row, content_type="application/json"
    )
    assert not_held.status_code == 503
    assert not_held.json()["code"] == "store_unavailable"
    assert "does not exist" in not_held.json()["detail"]


def test_an_unreachable_store_is_a_503_store_unavailable(
    object_store, iris_path, client, settings
):
    register(iris_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {
                **settings.STORAGES["default"]["OPTIONS"],
                "endpoint_url": "http://127.0.0.1:9",  # nothing listens there
            },
        },
    }
    response = predict(client)
    assert response.status_code == 503
    assert response.json()["code"] == "store_unavailable"


def test_a_version_not_in_the_store_falls_back_to_the_last_one_that_loads(
    object_store, iris_path, tmp_path, iris_frame, client
):
    from sklearn.tree import DecisionTreeClassifier

    register(iris_path)
    assert predict(client).status_code == 200
    x, y = iris_frame
    tree = DecisionTreeClassifier(max_depth=1).fit(x, y)
    second = register(dump(tree, tmp_path / "tree.joblib"))
    object_store.remove(second.file.name)
    response = predict(client)
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 1


def test_copies_are_shared_by_content_so_a_reupload_needs_no_fetch(
    object_store, iris_path, client
):
    register(iris_path)
    assert predict(client).status_code == 200
    again = register(iris_path)  # the same bytes as version 1
    object_store.remove(again.file.name)
    response = predict(client)
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2


def test_an_upload_to_an_unreachable_store_registers_nothing(
    object_store, iris_path, settings
):
    from registry.exceptions import StoreUnavailable

    object_store.server.drop_bucket(object_store.bucket)
    with pytest.raises(StoreUnavailable, match="does not exist"):
        register(iris_path)
    assert not ModelVersion.objects.exists()


def test_deleting_a_version_deletes_its_object_on_commit(
    object_store, iris_path, regressor_path
):
    first = register(iris_path)
    second = register(iris_path)
    assert len(object_store.keys()) == 2
    actions.delete_version(first)
    assert object_store.keys() == [object_store.key_of(second.file.name)]


def test_checkmodels_reloads_versions_from_the_store(object_store, iris_path, capsys):
    version = register(iris_path)
    call_command("checkmodels")
    assert "iris v1" in capsys.readouterr().out
    object_store.remove(version.file.name)
    with pytest.raises(CommandError, match="1 of 1 version"):
        call_command("checkmodels")
    assert (
        "iris v1: FAILED: The file is missing from storage" in capsys.readouterr().out
    )


def test_the_local_copies_stay_within_their_bound_least_recently_used_first(
    object_store, tmp_path, iris_frame, client, settings, monkeypatch
):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setattr(hostcopy, "_IN_USE_SECONDS", 0.0)
    x, y = iris_frame
    versions = [
        register(dump(LogisticRegression(C=c).fit(x, y), tmp_path / f"c{c}.joblib"))
        for c in (0.5, 1.0, 2.0)
    ]
    settings.MODELHUB_MODEL_COPY_MAX_MB = 2.5 * max(v.size for v in versions) / 2**20
    for version in versions:
        response = client.post(
            f"/api/predict/iris/v{version.number}/",
            {"data": IRIS_ROW},
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        os.utime(hostcopy.verified(version.sha256), (0, 1_000 + version.number))
    assert copies(settings) == sorted(f"{v.sha256}.joblib" for v in versions[1:])


def test_wrong_credentials_stop_the_start_with_a_system_check_error(
    object_store, tmp_path
):
    guarded = start_s3_server(tmp_path / "moto.log", check_credentials=True)
    try:
        env = clean_env(
            tmp_path,
            **{
                **object_store.env(),
                "MODELHUB_S3_ENDPOINT_URL": guarded.endpoint,
                "AWS_ACCESS_KEY_ID": "not-a-key-the-store-issued",
            },
        )
        check = run(env, "manage.py", "check")
        assert check.returncode != 0
        assert "registry.E004" in check.stderr
        assert "access denied to bucket" in check.stderr
        start = run(env, "-c", "import modelhub.wsgi")
        assert start.returncode != 0
        assert "ImproperlyConfigured" in start.stderr
        assert "registry.E004" in start.stderr
    finally:
        guarded.stop()


def test_a_missing_bucket_is_a_system_check_error(object_store, tmp_path):
    env = clean_env(
        tmp_path, **{**object_store.env(), "MODELHUB_S3_BUCKET": "nobucket"}
    )
    check = run(env, "manage.py", "check")
    assert check.returncode != 0
    assert "bucket 'nobucket' does not exist" in check.stderr


def test_s3_without_a_bucket_refuses_to_start(tmp_path):
    env = clean_env(tmp_path, MODELHUB_STORAGE="s3", **CREDENTIALS)
    check = run(env, "manage.py", "check")
    assert check.returncode != 0
    assert "MODELHUB_STORAGE=s3 needs MODELHUB_S3_BUCKET" in check.stderr


def test_loadmodel_uploads_to_the_store_once_the_preflight_passed(
    object_store, tmp_path, iris_path, hostile_files
):
    env = clean_env(tmp_path, **object_store.env())
    assert run(env, "manage.py", "migrate", "-v0").returncode == 0
    refused = run(
        env, "manage.py", "loadmodel", "--slug=bad", str(hostile_files["garbage"])
    )
    assert refused.returncode != 0
    assert "usage" not in refused.stderr
    assert object_store.keys() == []
    done = run(env, "manage.py", "loadmodel", "--slug=iris", str(iris_path))
    assert done.returncode == 0, done.stderr
    assert [k.split("/")[1:3] for k in object_store.keys()] == [["models", "iris"]]
    assert not any((tmp_path / "media").rglob("*.joblib"))
