"""The management API: staff tokens create models, publish, activate and delete
versions through the same write path as the admin and the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token

from registry.models import Activation, MLModel, ModelVersion, VersionEdit
from registry.upload_errors import FAILURES

pytestmark = pytest.mark.django_db

IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}


def token_for(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


def make_user(name: str, *, staff: bool, permissions: tuple[str, ...] = ()) -> Any:
    user = get_user_model().objects.create_user(name, is_staff=staff)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="registry", codename__in=permissions
        )
    )
    return user


@pytest.fixture
def non_staff() -> dict[str, str]:
    """A valid token of a user who is not staff, whatever permissions they hold."""
    return token_for(
        make_user(
            "analyst",
            staff=False,
            permissions=("add_mlmodel", "add_modelversion", "upload_pickle"),
        )
    )


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def create(api: Client, headers: dict[str, str], **fields: Any):
    return api.post("/api/models/", fields, content_type="application/json", **headers)


def upload(api: Client, headers: dict[str, str], slug: str, path: Path, **form: Any):
    with path.open("rb") as handle:
        return api.post(
            f"/api/models/{slug}/versions/", {"file": handle, **form}, **headers
        )


def activate(api: Client, headers: dict[str, str], slug: str, body: Any):
    return api.post(
        f"/api/models/{slug}/activate/",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def predict(api: Client, slug: str = "iris"):
    return api.post(
        f"/api/predict/{slug}/", {"data": IRIS_ROW}, content_type="application/json"
    )


@pytest.fixture
def two_iris_versions(publish, iris_classifier):
    """iris v1 (a classifier, not served) and v2 (served)."""
    publish(iris_classifier, "iris")
    return publish(iris_classifier, "iris")


# --- who may: staff tokens only ------------------------------------------------


def management_calls(iris_path: Path) -> dict[str, Any]:
    return {
        "create": lambda api, h: create(api, h, slug="new"),
        "upload": lambda api, h: upload(api, h, "iris", iris_path),
        "activate": lambda api, h: activate(api, h, "iris", {"version": 1}),
        "delete": lambda api, h: api.delete("/api/models/iris/versions/1/", **h),
    }


OPERATIONS = ["create", "upload", "activate", "delete"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_management_api_refuses_anonymous_with_401_and_a_token_challenge(
    api, two_iris_versions, iris_path, stored_files, operation
):
    before = stored_files()
    response = management_calls(iris_path)[operation](api, {})
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert stored_files() == before
    assert MLModel.objects.get(slug="iris").active_version.number == 2
    assert ModelVersion.objects.count() == 2
    assert not MLModel.objects.filter(slug="new").exists()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_management_api_refuses_non_staff_token_with_403(
    api, two_iris_versions, iris_path, non_staff, operation
):
    response = management_calls(iris_path)[operation](api, non_staff)
    assert_error(response, 403, "permission_denied")
    assert MLModel.objects.get(slug="iris").active_version.number == 2
    assert ModelVersion.objects.count() == 2
    assert not MLModel.objects.filter(slug="new").exists()


def test_management_api_refuses_a_wrong_token_with_401(api, db):
    response = create(api, {"HTTP_AUTHORIZATION": "Token not-a-token"}, slug="new")
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_management_api_refuses_a_staff_session_without_token(staff_client, db):
    """Writes take tokens only: a browser session is no credential here."""
    staff_client.raise_request_exception = False
    response = create(staff_client, {}, slug="new")
    assert_error(response, 401, "not_authenticated")
    assert not MLModel.objects.filter(slug="new").exists()


@pytest.mark.parametrize(
    ("operation", "permission"),
    [
        ("create", "registry.add_mlmodel"),
        ("upload", "registry.add_modelversion"),
        ("activate", "registry.change_mlmodel"),
        ("delete", "registry.delete_modelversion"),
    ],
)
def test_staff_token_needs_the_admin_permission_for_the_same_change(
    api, two_iris_versions, iris_path, operation, permission
):
    everything_else = [
        p.codename
        for p in Permission.objects.filter(content_type__app_label="registry")
        if f"registry.{p.codename}" != permission
    ]
    headers = token_for(
        make_user("clerk", staff=True, permissions=tuple(everything_else))
    )
    response = management_calls(iris_path)[operation](api, headers)
    body = assert_error(response, 403, "permission_denied")
    assert permission in body["detail"]
    assert ModelVersion.objects.count() == 2


def test_joblib_upload_needs_the_pickle_permission_and_skops_does_not(
    api, fast_preflight, two_iris_versions, iris_path, skops_path, stored_files
):
    headers = token_for(
        make_user("careful", staff=True, permissions=("add_modelversion",))
    )
    before = stored_files()
    refused = upload(api, headers, "iris", iris_path)
    assert_error(refused, 403, "pickle_permission_required")
    assert stored_files() == before
    accepted = upload(api, headers, "iris", skops_path)
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["format"] == "skops"


# --- POST /api/models/ ---------------------------------------------------------


def test_create_model_returns_201_with_the_model_and_its_location(api, staff):
    response = create(
        api, staff, slug="churn", name="Churn", description="Who leaves", private=True
    )
    assert response.status_code == 201, response.content
    assert response["Location"] == "/api/models/churn/"
    assert response.json() == {
        "slug": "churn",
        "name": "Churn",
        "description": "Who leaves",
        "private": True,
        "active_version": None,
        "kind": None,
        "estimator": None,
        "versions": [],
        "input_schema": None,
        "classes": None,
        "metadata": None,
        "example_request": None,
        "batch_max_rows": 0,
        "batch_max_wait_ms": 2.0,
        "capture_payloads": False,
        "keep_predictions": True,
        "aliases": [],
        "policy": None,
    }
    model = MLModel.objects.get(slug="churn")
    assert (model.name, model.description, model.private) == (
        "Churn",
        "Who leaves",
        True,
    )
    assert api.get("/api/models/").json() == []  # private: hidden from anonymous


def test_create_model_with_only_a_slug_is_public_and_named_after_it(api, staff):
    response = create(api, staff, slug="iris")
    assert response.status_code == 201, response.content
    assert [m["slug"] for m in api.get("/api/models/").json()] == ["iris"]
    assert api.get("/api/models/iris/").json()["name"] == "iris"


def test_create_model_with_a_taken_slug_is_409_model_exists(api, staff):
    assert create(api, staff, slug="iris", name="first").status_code == 201
    assert_error(create(api, staff, slug="iris", name="second"), 409, "model_exists")
    assert MLModel.objects.get(slug="iris").name == "first"


@pytest.mark.parametrize("slug", ["not a slug", "a/b", "ïris", "x" * 101, ""])
def test_create_model_with_a_bad_slug_is_400_invalid_slug(api, staff, slug):
    assert_error(create(api, staff, slug=slug), 400, "invalid_slug")
    assert not MLModel.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "no slug"},
        {"slug": 7},
        {"slug": "iris", "private": "true"},
        {"slug": "iris", "private": 1},
        {"slug": "iris", "name": ["x"]},
        {"slug": "iris", "name": None},
        {"slug": "iris", "description": None},
        {"slug": "iris", "name": "x" * 201},
        {"slug": "iris", "description": "nul \x00 inside"},
        ["iris"],
    ],
)
def test_create_model_refuses_mistyped_fields_with_400_invalid_field(api, staff, body):
    response = api.post(
        "/api/models/", json.dumps(body), content_type="application/json", **staff
    )
    assert_error(response, 400, "invalid_field")
    assert not MLModel.objects.exists()


def test_create_model_refuses_malformed_json_with_400(api, staff):
    response = api.post(
        "/api/models/", b'{"slug": ', content_type="application/json", **staff
    )
    assert_error(response, 400, "parse_error")


# --- POST /api/models/<slug>/versions/ ----------------------------------------


def test_published_model_serves_predictions_at_once(api, staff, iris_path):
    """Create, upload (the real subprocess preflight) and predict, all over HTTP."""
    assert create(api, staff, slug="iris").status_code == 201
    assert_error(predict(api), 404, "no_active_version")
    published = upload(api, staff, "iris", iris_path)
    assert published.status_code == 201, published.content
    response = predict(api)
    assert response.status_code == 200, response.content
    assert response["X-Model-Version"] == "1"
    assert response.json()["predictions"] == ["setosa"]


def test_upload_returns_201_with_the_version_and_its_location(
    api, staff, fast_preflight, iris_path
):
    create(api, staff, slug="iris")
    metadata = {"metrics": {"accuracy": 0.97}, "trained_on": "iris"}
    response = upload(api, staff, "iris", iris_path, metadata=json.dumps(metadata))
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == "/api/models/iris/versions/1/"
    assert body["sha256"] == hashlib.sha256(iris_path.read_bytes()).hexdigest()
    assert body["size"] == iris_path.stat().st_size
    assert {k: body[k] for k in ("model", "version", "active", "status")} == {
        "model": "iris",
        "version": 1,
        "active": True,
        "status": "ready",
    }
    assert (body["format"], body["kind"]) == ("joblib", "classifier")
    assert body["estimator"].endswith("LogisticRegression")
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["metadata"] == metadata
    assert [f["name"] for f in body["input_schema"]["features"]] == list(IRIS_ROW)
    assert api.get(response["Location"]).json() == body


def test_upload_records_the_token_user_and_the_api_channel(
    api, staff, staff_user, fast_preflight, iris_path
):
    create(api, staff, slug="iris")
    assert upload(api, staff, "iris", iris_path).status_code == 201
    version = ModelVersion.objects.get(model__slug="iris")
    assert version.created_by == staff_user
    assert list(
        Activation.objects.values_list("to_number", "channel", "user", "username")
    ) == [(1, "api", staff_user.pk, "staff")]


@pytest.mark.parametrize("flag", ["false", "0", "False"])
def test_upload_with_activate_false_keeps_serving_the_active_version(
    api, staff, two_iris_versions, iris_path, flag
):
    response = upload(api, staff, "iris", iris_path, activate=flag)
    assert response.status_code == 201, response.content
    assert (response.json()["version"], response.json()["active"]) == (3, False)
    assert predict(api)["X-Model-Version"] == "2"
    assert not Activation.objects.filter(to_number=3).exists()


def test_upload_of_an_invalid_file_is_400_invalid_model_and_stores_nothing(
    api, staff, hostile_files, stored_files
):
    """Through the real preflight: unpickling runs in the limited child."""
    create(api, staff, slug="iris")
    for name in ("garbage", "not_a_model", "raises"):
        response = upload(api, staff, "iris", hostile_files[name])
        assert_error(response, 400, "invalid_model")
    assert stored_files() == []
    assert not ModelVersion.objects.exists()


def test_upload_without_a_file_is_400_missing_file(api, staff, db):
    create(api, staff, slug="iris")
    response = api.post("/api/models/iris/versions/", {"activate": "true"}, **staff)
    assert_error(response, 400, "missing_file")


@pytest.mark.parametrize(
    "metadata",
    [
        "{not json",
        "[1, 2]",
        '{"auc": NaN}',
        '{"note": "nul \\u0000 inside"}',
        '{"note": "\\ud800"}',
        "[" * 10 + "]" * 10,  # deeper is too_deep: see below
        '{"input_schema": []}',
    ],
)
def test_upload_with_unusable_metadata_is_400_invalid_metadata(
    api, staff, fast_preflight, iris_path, stored_files, metadata
):
    create(api, staff, slug="iris")
    response = upload(api, staff, "iris", iris_path, metadata=metadata)
    assert_error(response, 400, "invalid_metadata")
    assert stored_files() == []


def test_upload_with_a_metadata_field_over_the_limit_is_400_metadata_too_large(
    api, staff, fast_preflight, iris_path, stored_files, settings
):
    settings.MODELHUB_MAX_METADATA_BYTES = 1024
    create(api, staff, slug="iris")
    metadata = json.dumps({"notes": "n" * 2000})
    response = upload(api, staff, "iris", iris_path, metadata=metadata)
    body = assert_error(response, 400, "metadata_too_large")
    assert "'notes'" in body["detail"]
    assert stored_files() == []


def test_upload_with_metadata_sent_as_a_file_is_400_not_ignored(
    api, staff, fast_preflight, iris_path, tmp_path
):
    create(api, staff, slug="iris")
    meta = tmp_path / "meta.json"
    meta.write_text('{"metrics": {"auc": 0.9}}')
    with meta.open("rb") as handle:
        response = upload(api, staff, "iris", iris_path, metadata=handle)
    assert (
        "curl -F 'metadata=<meta.json'"
        in assert_error(response, 400, "invalid_metadata")["detail"]
    )


def test_upload_with_an_unreadable_activate_flag_is_400(
    api, staff, fast_preflight, iris_path
):
    create(api, staff, slug="iris")
    response = upload(api, staff, "iris", iris_path, activate="maybe")
    assert_error(response, 400, "invalid_params")
    assert not ModelVersion.objects.exists()


def test_upload_to_an_unknown_model_is_404_and_creates_nothing(
    api, staff, iris_path, stored_files
):
    assert_error(upload(api, staff, "nope", iris_path), 404, "unknown_model")
    assert not MLModel.objects.exists()
    assert stored_files() == []


def test_upload_over_the_model_size_limit_is_413_and_stores_nothing(
    api, staff, fast_preflight, iris_path, stored_files, settings
):
    create(api, staff, slug="iris")
    settings.MODELHUB_MAX_MODEL_BYTES = 1000
    response = upload(api, staff, "iris", iris_path)
    assert_error(response, 413, "model_too_large")
    assert stored_files() == []


def test_upload_body_over_every_limit_is_413_before_it_is_read(
    api, staff, fast_preflight, iris_path, settings
):
    create(api, staff, slug="iris")
    settings.MODELHUB_MAX_MODEL_BYTES = 100
    settings.MODELHUB_MAX_REFERENCE_BYTES = 100
    settings.MODELHUB_MAX_BODY_BYTES = 100
    response = upload(api, staff, "iris", iris_path)
    body = assert_error(response, 413, "model_too_large")
    assert body["detail"] == FAILURES["too_large"].sentence.format(limit="100 bytes")
    assert body["technical"].startswith(
        f"The request is {int(response.request['CONTENT_LENGTH']):,} "
    )


def test_upload_as_json_is_415(api, staff, db):
    create(api, staff, slug="iris")
    response = api.post(
        "/api/models/iris/versions/",
        {"file": "aGVsbG8="},
        content_type="application/json",
        **staff,
    )
    assert_error(response, 415, "unsupported_media_type")


# --- POST /api/models/<slug>/activate/ -----------------------------------------


def test_activate_serves_the_version_from_the_next_request(
    api, staff, two_iris_versions
):
    assert predict(api)["X-Model-Version"] == "2"
    response = activate(api, staff, "iris", {"version": 1})
    assert response.status_code == 200, response.content
    assert (response.json()["version"], response.json()["active"]) == (1, True)
    assert predict(api)["X-Model-Version"] == "1"


def test_activate_records_the_api_channel_and_the_token_user(
    api, staff, staff_user, two_iris_versions
):
    activate(api, staff, "iris", {"version": 1})
    latest = Activation.objects.first()
    assert (latest.from_number, latest.to_number, latest.rollback) == (2, 1, False)
    assert (latest.channel, latest.user, latest.username) == (
        "api",
        staff_user,
        "staff",
    )


def test_activate_of_the_active_version_is_200_and_records_nothing(
    api, staff, two_iris_versions
):
    before = Activation.objects.count()
    response = activate(api, staff, "iris", {"version": 2})
    assert response.status_code == 200
    assert response.json()["active"] is True
    assert Activation.objects.count() == before


def test_activate_of_an_invalid_version_is_409_version_not_ready(
    api, staff, two_iris_versions
):
    """As after `checkmodels --mark-invalid` found v1 broken."""
    ModelVersion.objects.filter(number=1).update(status=ModelVersion.Status.INVALID)
    assert_error(activate(api, staff, "iris", {"version": 1}), 409, "version_not_ready")
    assert predict(api)["X-Model-Version"] == "2"


@pytest.mark.parametrize(
    ("slug", "number", "code"),
    [("iris", 3, "unknown_version"), ("nope", 1, "unknown_model")],
)
def test_activate_of_something_unknown_is_404(
    api, staff, two_iris_versions, slug, number, code
):
    assert_error(activate(api, staff, slug, {"version": number}), 404, code)


@pytest.mark.parametrize(
    "body",
    [{}, {"version": "1"}, {"version": True}, {"version": 0}, {"version": 1.0}, [1]],
)
def test_activate_refuses_a_body_without_a_version_number_with_400(
    api, staff, two_iris_versions, body
):
    assert_error(activate(api, staff, "iris", body), 400, "invalid_field")
    assert predict(api)["X-Model-Version"] == "2"


# --- DELETE /api/models/<slug>/versions/<n>/ ----------------------------------


def test_delete_of_the_active_version_is_409_and_keeps_its_file(
    api, staff, two_iris_versions, django_capture_on_commit_callbacks
):
    active = two_iris_versions
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/models/iris/versions/2/", **staff)
    assert_error(response, 409, "version_active")
    assert active.file.storage.exists(active.file.name)
    assert predict(api)["X-Model-Version"] == "2"


def test_delete_of_an_inactive_version_removes_it_and_its_file(
    api, staff, two_iris_versions, django_capture_on_commit_callbacks
):
    old = ModelVersion.objects.get(number=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/models/iris/versions/1/", **staff)
    assert response.status_code == 204
    assert response.content == b""
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [2]
    assert not old.file.storage.exists(old.file.name)
    assert_error(api.get("/api/models/iris/versions/1/"), 404, "unknown_version")


@pytest.mark.parametrize("number", [3, 9_999_999_999_999_999_999])
def test_delete_of_an_unknown_version_is_404(api, staff, two_iris_versions, number):
    response = api.delete(f"/api/models/iris/versions/{number}/", **staff)
    assert_error(response, 404, "unknown_version")
    assert ModelVersion.objects.count() == 2


# --- GET /api/models/<slug>/versions/<n>/ and the schema ----------------------


def test_version_of_a_private_model_is_404_to_anonymous_and_shown_with_a_token(
    api, staff, publish, iris_classifier
):
    publish(iris_classifier, "secret", private=True)
    url = "/api/models/secret/versions/1/"
    assert_error(api.get(url), 404, "unknown_model")
    assert api.get(url, **staff).json()["version"] == 1


def test_openapi_schema_documents_every_management_operation_as_token_or_key(api, db):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    operations = {
        ("/api/models/", "post"): {"201", "400", "401", "403", "409"},
        ("/api/models/{slug}/versions/", "post"): {"201", "400", "401", "403", "413"},
        ("/api/models/{slug}/activate/", "post"): {"200", "401", "403", "404", "409"},
        ("/api/models/{slug}/versions/{version}/", "delete"): {"204", "404", "409"},
    }
    for (path, method), statuses in operations.items():
        operation = paths[path][method]
        assert operation["security"] == [{"tokenAuth": []}, {"apiKeyAuth": []}], path
        assert statuses <= set(operation["responses"]), path
    upload_body = paths["/api/models/{slug}/versions/"]["post"]["requestBody"]
    assert list(upload_body["content"]) == ["multipart/form-data"]
    assert {} in paths["/api/models/"]["get"]["security"]  # reads stay public


@pytest.mark.parametrize("number", [3, 9_999_999_999_999_999_999])
def test_version_detail_of_an_unknown_version_is_404(api, two_iris_versions, number):
    response = api.get(f"/api/models/iris/versions/{number}/")
    assert_error(response, 404, "unknown_version")


# --- editing a version: PATCH /api/models/<slug>/versions/<n>/ ---------------------


def edit(api: Client, headers: dict[str, str], body: Any, slug="diabetes", number=1):
    return api.patch(
        f"/api/models/{slug}/versions/{number}/",
        body,
        content_type="application/json",
        **headers,
    )


RENAMED = [{"name": f"x{i}", "type": "number"} for i in range(10)]


def test_edit_version_schema_returns_200_and_serves_it_from_the_next_request(
    api, staff, publish, numpy_regressor, diabetes_rows
):
    publish(numpy_regressor, "diabetes")
    values = diabetes_rows[0].tolist()
    before = api.post(
        "/api/predict/diabetes/",
        {"data": {f"f{i}": v for i, v in enumerate(values)}},
        content_type="application/json",
    )
    assert before.status_code == 200
    response = edit(api, staff, {"input_schema": RENAMED})
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert [f["name"] for f in body["input_schema"]["features"]] == [
        f"x{i}" for i in range(10)
    ]
    after = api.post(
        "/api/predict/diabetes/",
        {"data": {f"x{i}": v for i, v in enumerate(values)}},
        content_type="application/json",
    )
    assert after.status_code == 200
    assert after.json()["predictions"] == before.json()["predictions"]


def test_edit_version_is_recorded_with_the_token_user_and_the_api_channel(
    api, staff, staff_user, publish, numpy_regressor
):
    publish(numpy_regressor, "diabetes", metadata={"owner": "a"})
    response = edit(
        api, staff, {"input_schema": RENAMED, "metadata": {"owner": "b", "auc": 0.9}}
    )
    assert response.status_code == 200
    assert response.json()["metadata"] == {"owner": "b", "auc": 0.9}
    change = VersionEdit.objects.get()
    assert (change.model.slug, change.number) == ("diabetes", 1)
    assert (change.channel, change.user, change.username) == (
        "api",
        staff_user,
        staff_user.username,
    )
    assert change.changes["input_schema"]["to"] == [f"x{i}" for i in range(10)]
    assert change.changes["metadata"] == ["auc", "owner"]


def test_edit_version_with_a_schema_that_does_not_fit_the_model_is_400(
    api, staff, publish, numpy_regressor
):
    version = publish(numpy_regressor, "diabetes")
    three = [{"name": n, "type": "number"} for n in ("a", "b", "c")]
    assert_error(edit(api, staff, {"input_schema": three}), 400, "invalid_schema")
    version.refresh_from_db()
    assert len(version.input_schema["features"]) == 10
    assert not VersionEdit.objects.exists()


def test_edit_version_renaming_the_fitted_names_of_a_model_is_400(
    api, staff, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    renamed = [{"name": n, "type": "number"} for n in ("a", "b", "c", "d")]
    body = assert_error(
        edit(api, staff, {"input_schema": renamed}, slug="iris"), 400, "invalid_schema"
    )
    assert body["detail"].startswith("The change does not fit the model: ValueError")


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"input_schema": "x"},
        {"metadata": [1]},
        {"number": 2},
        {"input_schema": RENAMED, "status": "ready"},
    ],
)
def test_edit_version_refuses_a_malformed_body_with_400_invalid_field(
    api, staff, publish, numpy_regressor, body
):
    publish(numpy_regressor, "diabetes")
    assert_error(edit(api, staff, body), 400, "invalid_field")


@pytest.mark.parametrize(
    "schema", [[], [{"type": "number"}], [{"name": "a"}, {"name": "a"}]]
)
def test_edit_version_refuses_an_unusable_schema_with_400_invalid_schema(
    api, staff, publish, numpy_regressor, schema
):
    publish(numpy_regressor, "diabetes")
    assert_error(edit(api, staff, {"input_schema": schema}), 400, "invalid_schema")


def test_edit_version_needs_a_token_with_the_change_version_permission(
    api, publish, numpy_regressor
):
    publish(numpy_regressor, "diabetes")
    anonymous = edit(api, {}, {"input_schema": RENAMED})
    assert_error(anonymous, 401, "not_authenticated")
    holder = make_user("editor", staff=True, permissions=("change_mlmodel",))
    assert_error(
        edit(api, token_for(holder), {"input_schema": RENAMED}),
        403,
        "permission_denied",
    )
    allowed = make_user("editor2", staff=True, permissions=("change_modelversion",))
    assert edit(api, token_for(allowed), {"input_schema": RENAMED}).status_code == 200


def test_edit_of_an_unknown_version_is_404(api, staff, publish, numpy_regressor):
    publish(numpy_regressor, "diabetes")
    assert_error(edit(api, staff, {"metadata": {}}, number=7), 404, "unknown_version")
    assert_error(edit(api, staff, {"metadata": {}}, slug="nope"), 404, "unknown_model")


# --- nesting (issue #18) ------------------------------------------------------


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [100, 5_000], ids=["past-the-limit", "5000"])
def test_create_model_refuses_deep_json_with_400_too_deep(api, staff, levels):
    body = '{"slug": "iris", "description": ' + deep(levels) + "}"
    response = api.post("/api/models/", body, content_type="application/json", **staff)
    assert_error(response, 400, "too_deep")
    assert not MLModel.objects.exists()


def test_patch_and_activate_refuse_deep_json_with_400_too_deep(
    api, staff, two_iris_versions
):
    body = '{"metadata": {"x": ' + deep(5_000) + "}}"
    response = api.patch(
        "/api/models/iris/versions/1/", body, content_type="application/json", **staff
    )
    assert_error(response, 400, "too_deep")
    response = api.post(
        "/api/models/iris/activate/",
        '{"version": ' + deep(200) + "}",
        content_type="application/json",
        **staff,
    )
    assert_error(response, 400, "too_deep")


def test_upload_with_deep_metadata_is_400_too_deep_and_stores_nothing(
    api, staff, fast_preflight, iris_path, stored_files
):
    create(api, staff, slug="iris")
    metadata = '{"input_example": ' + deep(900) + "}"
    response = upload(api, staff, "iris", iris_path, metadata=metadata)
    assert_error(response, 400, "too_deep")
    assert stored_files() == []
