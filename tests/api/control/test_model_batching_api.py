"""The management API reads and writes a model's batching settings: GET shows
them, POST and PATCH set them, and a bad value is a 400 invalid_batching that
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry import routing
from registry.models import MLModel

from .callers import assert_error

pytestmark = pytest.mark.django_db

BAD = [
    {"batch_max_rows": 1},
    {"batch_max_rows": 1025},
    {"batch_max_rows": -4},
    {"batch_max_rows": 8.5},
    {"batch_max_rows": "32"},
    {"batch_max_rows": True},
    {"batch_max_rows": None},
    {"batch_max_rows": 8, "batch_max_wait_ms": 0},
    {"batch_max_rows": 8, "batch_max_wait_ms": -1.5},
    {"batch_max_rows": 8, "batch_max_wait_ms": 100.01},
    {"batch_max_rows": 8, "batch_max_wait_ms": "2"},
    {"batch_max_rows": 8, "batch_max_wait_ms": None},
    {"batch_max_rows": 8, "batch_max_wait_ms": [2]},
]


@pytest.fixture
def iris(publish, iris_classifier) -> MLModel:
    return publish(iris_classifier, "iris").model


def send(api: Client, method: str, path: str, headers: dict[str, str], body: Any):
    call = getattr(api, method)
    return call(path, json.dumps(body), content_type="application/json", **headers)


def test_get_model_shows_batching_off_by_default(api, iris):
    body = api.get("/api/models/iris/").json()
    assert (body["batch_max_rows"], body["batch_max_wait_ms"]) == (0, 2.0)


def test_patch_model_turns_batching_on_for_every_workers_next_request(api, staff, iris):
    assert routing.resolve("iris").batch_max_rows == 0
    response = send(
        api,
        "patch",
        "/api/models/iris/",
        staff,
        {"batch_max_rows": 32, "batch_max_wait_ms": 2.5},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["batch_max_rows"], body["batch_max_wait_ms"]) == (32, 2.5)
    ref = routing.resolve("iris")
    assert (ref.batch_max_rows, ref.batch_max_wait_ms) == (32, 2.5)
    shown = api.get("/api/models/iris/").json()
    assert (shown["batch_max_rows"], shown["batch_max_wait_ms"]) == (32, 2.5)


def test_patch_model_keeps_the_batching_setting_left_out(api, staff, iris):
    send(api, "patch", "/api/models/iris/", staff, {"batch_max_rows": 16})
    response = send(api, "patch", "/api/models/iris/", staff, {"batch_max_wait_ms": 5})
    assert response.status_code == 200, response.content
    model = MLModel.objects.get()
    assert (model.batch_max_rows, model.batch_max_wait_ms) == (16, 5.0)
    send(api, "patch", "/api/models/iris/", staff, {"name": "Iris"})
    assert MLModel.objects.get().batch_max_rows == 16


@pytest.mark.parametrize("body", BAD)
def test_patch_model_with_bad_batching_is_400_invalid_batching(api, staff, iris, body):
    response = send(api, "patch", "/api/models/iris/", staff, {"name": "x", **body})
    error = assert_error(response, 400, "invalid_batching")
    assert "'batch_max_" in error["detail"]
    model = MLModel.objects.get()
    assert (model.name, model.batch_max_rows, model.batch_max_wait_ms) == (
        "",
        0,
        2.0,
    )


def test_create_model_with_batching_returns_it(api, staff):
    response = send(
        api,
        "post",
        "/api/models/",
        staff,
        {"slug": "forest", "batch_max_rows": 64, "batch_max_wait_ms": 1},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["batch_max_rows"], body["batch_max_wait_ms"]) == (64, 1.0)
    model = MLModel.objects.get(slug="forest")
    assert (model.batch_max_rows, model.batch_max_wait_ms) == (64, 1.0)


@pytest.mark.parametrize("body", BAD)
def test_create_model_with_bad_batching_is_400_and_creates_nothing(api, staff, body):
    response = send(api, "post", "/api/models/", staff, {"slug": "forest", **body})
    assert_error(response, 400, "invalid_batching")
    assert not MLModel.objects.exists()


def test_openapi_schema_documents_the_batching_fields(api):
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    for name in ("ModelDetail", "ModelCreate", "PatchedModelEdit"):
        fields = schema[name]["properties"]
        assert {"batch_max_rows", "batch_max_wait_ms"} <= set(fields), name
    edit = schema["PatchedModelEdit"]["properties"]["batch_max_rows"]
    assert (edit["minimum"], edit["maximum"]) == (0, 1024)
    assert "MODELHUB_WORKERS x MODELHUB_THREADS" in edit["description"]
    assert "invalid_batching" in edit["description"]
