"""PATCH and DELETE /api/models/<slug>/: edit a model's slug, name,
description and privacy, or delete it with its versions and files, through
registry.actions with the admin's permissions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from api.models import ApiKey
from registry import actions
from registry.models import Activation, MLModel, ModelVersion

from .callers import (
    assert_error,
    every_permission_but,
    key_for,
    make_user,
    token_for,
)

pytestmark = pytest.mark.django_db

IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}


@pytest.fixture
def iris_v2(publish, iris_classifier) -> ModelVersion:
    """iris with v1 and v2, v2 served."""
    publish(iris_classifier, "iris")
    return publish(iris_classifier, "iris")


def patch(api: Client, headers: dict[str, str], body: Any, slug: str = "iris"):
    return api.patch(
        f"/api/models/{slug}/",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def predict(api: Client, slug: str = "iris", headers: Any = None):
    return api.post(
        f"/api/predict/{slug}/",
        {"data": IRIS_ROW},
        content_type="application/json",
        **(headers or {}),
    )


# --- PATCH ---------------------------------------------------------------------


def test_patch_model_changes_name_description_and_privacy(api, staff, iris_v2):
    response = patch(
        api, staff, {"name": "Iris", "description": "Three species", "private": True}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["slug"], body["name"], body["description"], body["private"]) == (
        "iris",
        "Iris",
        "Three species",
        True,
    )
    assert body["active_version"] == 2
    model = MLModel.objects.get(slug="iris")
    assert (model.name, model.description, model.private) == (
        "Iris",
        "Three species",
        True,
    )


def test_patch_model_keeps_the_fields_left_out(api, staff, iris_v2):
    patch(api, staff, {"name": "Iris", "description": "Three species"})
    response = patch(api, staff, {"description": ""})
    assert response.status_code == 200
    model = MLModel.objects.get(slug="iris")
    assert (model.name, model.description, model.private) == ("Iris", "", False)


def test_patch_model_to_private_hides_it_from_anonymous_callers_at_once(
    api, staff, iris_v2
):
    assert predict(api).status_code == 200
    assert patch(api, staff, {"private": True}).status_code == 200
    assert_error(predict(api), 404, "unknown_model")
    assert predict(api, headers=staff).status_code == 200


def test_patch_model_slug_moves_predictions_to_the_new_slug(api, staff, iris_v2):
    response = patch(api, staff, {"slug": "iris-species"})
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == "iris-species"
    assert_error(predict(api, "iris"), 404, "unknown_model")
    moved = predict(api, "iris-species")
    assert moved.status_code == 200
    assert moved.json()["version"] == 2


def test_patch_model_to_a_taken_slug_is_409_model_exists(
    api, staff, iris_v2, publish, numpy_regressor
):
    publish(numpy_regressor, "diabetes")
    assert_error(patch(api, staff, {"slug": "diabetes"}), 409, "model_exists")
    assert MLModel.objects.filter(slug="iris").exists()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ([], "invalid_field", None),
        ("iris", "invalid_field", None),
        ({}, "invalid_field", None),
        ({"colour": "red"}, "invalid_field", "colour"),
        ({"active_version": 1}, "invalid_field", "active_version"),
        ({"private": "yes"}, "invalid_field", "private"),
        ({"private": None}, "invalid_field", "private"),
        ({"name": 3}, "invalid_field", "name"),
        ({"name": None}, "invalid_field", "name"),
        ({"name": "x" * 201}, "invalid_field", "name"),
        ({"description": "nul\u0000"}, "invalid_field", "description"),
        ({"slug": "bad slug"}, "invalid_slug", None),
        ({"slug": ""}, "invalid_slug", None),
    ],
)
def test_patch_model_refuses_a_bad_body_with_a_coded_400(
    api, staff, iris_v2, body, code, field
):
    answer = assert_error(patch(api, staff, body), 400, code)
    assert answer.get("field") == field
    model = MLModel.objects.get(slug="iris")
    assert (model.name, model.description, model.private) == ("", "", False)


def test_patch_model_refuses_malformed_json_with_400(api, staff, iris_v2):
    response = api.patch(
        "/api/models/iris/", "{", content_type="application/json", **staff
    )
    assert_error(response, 400, "parse_error")


def test_patch_of_an_unknown_model_is_404(api, staff, db):
    assert_error(patch(api, staff, {"name": "x"}), 404, "unknown_model")


def test_patch_model_needs_the_change_model_permission(api, iris_v2):
    clerk = make_user(
        "clerk", staff=True, permissions=every_permission_but("registry.change_mlmodel")
    )
    body = assert_error(
        patch(api, token_for(clerk), {"name": "x"}), 403, "permission_denied"
    )
    assert "registry.change_mlmodel" in body["detail"]
    assert MLModel.objects.get(slug="iris").name == ""


# --- who may write: as every management write ------------------------------------


def send(api: Client, operation: str, headers: dict[str, str]):
    if operation == "patch":
        return patch(api, headers, {"name": "changed"})
    return api.delete("/api/models/iris/?force=1", **headers)


def unchanged() -> bool:
    model = MLModel.objects.filter(slug="iris").first()
    return model is not None and model.name == "" and model.versions.count() == 2


@pytest.mark.parametrize("operation", ["patch", "delete"])
def test_model_writes_refuse_anonymous_with_401_and_a_staff_session_too(
    api, staff_client, iris_v2, operation
):
    assert_error(send(api, operation, {}), 401, "not_authenticated")
    staff_client.raise_request_exception = False
    assert_error(send(staff_client, operation, {}), 401, "not_authenticated")
    assert unchanged()


@pytest.mark.parametrize("operation", ["patch", "delete"])
def test_model_writes_refuse_a_non_staff_token_with_403(api, iris_v2, operation):
    analyst = make_user(
        "analyst", staff=False, permissions=("change_mlmodel", "delete_mlmodel")
    )
    assert_error(send(api, operation, token_for(analyst)), 403, "permission_denied")
    assert unchanged()


@pytest.mark.parametrize("operation", ["patch", "delete"])
@pytest.mark.parametrize("scope", [ApiKey.Management.NONE, ApiKey.Management.READ])
def test_model_writes_refuse_a_key_without_management_write_with_403(
    api, iris_v2, staff_user, operation, scope
):
    headers = key_for(staff_user, predict=ApiKey.Predict.ALL, management=scope)
    assert_error(send(api, operation, headers), 403, "forbidden")
    assert unchanged()


@pytest.mark.parametrize("operation", ["patch", "delete"])
def test_model_writes_accept_a_management_write_key_of_staff(
    api, iris_v2, staff_user, operation
):
    headers = key_for(staff_user, management=ApiKey.Management.WRITE)
    response = send(api, operation, headers)
    assert response.status_code in (200, 204), response.content
    assert not unchanged()


# --- DELETE --------------------------------------------------------------------


def test_delete_refuses_a_model_with_an_active_version_without_force(
    api, staff, iris_v2, stored_files
):
    before = stored_files()
    assert len(before) == 2
    for query in ("", "?force=0", "?force=false"):
        response = api.delete(f"/api/models/iris/{query}", **staff)
        body = assert_error(response, 409, "model_has_active_version")
        assert "iris" in body["detail"]
    assert stored_files() == before
    assert unchanged()
    assert predict(api).status_code == 200


def test_delete_with_force_removes_the_model_its_versions_history_and_files(
    api, staff, iris_v2, stored_files, django_capture_on_commit_callbacks
):
    assert len(stored_files()) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/models/iris/?force=1", **staff)
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert not MLModel.objects.filter(slug="iris").exists()
    assert not ModelVersion.objects.exists()
    assert not Activation.objects.exists()
    assert stored_files() == []
    assert_error(predict(api), 404, "unknown_model")
    assert_error(api.get("/api/models/iris/", **staff), 404, "unknown_model")


def test_delete_of_a_model_serving_nothing_needs_no_force(
    api,
    staff,
    publish,
    iris_classifier,
    stored_files,
    django_capture_on_commit_callbacks,
):
    publish(iris_classifier, "iris", activate=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/models/iris/", **staff)
    assert response.status_code == 204
    assert stored_files() == []


def test_delete_keeps_the_files_until_the_delete_commits(
    api, staff, iris_v2, stored_files, django_capture_on_commit_callbacks
):
    """The files go only with the rows: a rolled-back delete keeps both."""
    before = stored_files()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            actions.delete_model(iris_v2.model, force=True)
            assert stored_files() == before  # not before the commit
            transaction.set_rollback(True)
    assert callbacks == []
    assert stored_files() == before
    assert unchanged()


def test_delete_with_an_unreadable_force_flag_is_400(api, staff, iris_v2):
    response = api.delete("/api/models/iris/?force=please", **staff)
    assert_error(response, 400, "invalid_params")
    assert unchanged()


def test_delete_of_an_unknown_model_is_404(api, staff, db):
    response = api.delete("/api/models/zz-absent/?force=1", **staff)
    assert_error(response, 404, "unknown_model")


def test_delete_model_needs_the_delete_model_permission(api, iris_v2):
    clerk = make_user(
        "clerk", staff=True, permissions=every_permission_but("registry.delete_mlmodel")
    )
    response = api.delete("/api/models/iris/?force=1", **token_for(clerk))
    body = assert_error(response, 403, "permission_denied")
    assert "registry.delete_mlmodel" in body["detail"]
    assert unchanged()
