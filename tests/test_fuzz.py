"""Schema-driven fuzzing of the prediction, V2, management and stats
endpoints: whatever schemathesis sends, no answer is a 5xx and every error
is JSON.

The requests go in-process through Django's WSGI application, as a staff
token, against every operation of the OpenAPI document the app serves
(/api/schema/) plus the Open Inference Protocol's infer and metadata
operations, which that document does not describe. Slugs and versions in
paths are pinned to a published model's, so requests reach decoding and the
model rather than stopping at 404.

Bounded: FUZZ_EXAMPLES examples per operation (environment variable, default
25), derandomized, so a run is repeatable and fits CI's minute (about 20 s
here: marked slow).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.slow,
]

DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
V2_PARAMETERS = {"type": "object", "additionalProperties": True}
V2_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": V2_PARAMETERS,
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string", "enum": DATATYPES},
                    "parameters": V2_PARAMETERS,
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "parameters": V2_PARAMETERS,
                },
            },
        },
    },
}


def _path_parameter(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _v2_operations() -> dict[str, Any]:
    """The Open Inference Protocol's REST operations ModelHub serves."""
    infer = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": V2_INFER_REQUEST}},
        },
        "responses": {"200": {"description": "inference response"}},
    }
    slug = _path_parameter("slug", "string")
    version = _path_parameter("version", "string")
    metadata = {"responses": {"200": {"description": "model metadata"}}}
    return {
        "/v2/models/{slug}/infer": {"post": {**infer, "parameters": [slug]}},
        "/v2/models/{slug}/versions/{version}/infer": {
            "post": {**infer, "parameters": [slug, version]}
        },
        "/v2/models/{slug}": {"get": {**metadata, "parameters": [slug]}},
        "/v2/models/{slug}/ready": {"get": {**metadata, "parameters": [slug]}},
    }


@pytest.fixture
def app_schema(publish, iris_classifier, staff_user) -> Any:
    publish(iris_classifier, "iris")
    document = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert document.status_code == 200
    raw = json.loads(document.content)
    raw["paths"].update(_v2_operations())
    return schemathesis.openapi.from_dict(raw)


@pytest.fixture(autouse=True)
def connection_kept_between_requests(app_schema: Any) -> Any:
    """The WSGI handler closes old connections when each request starts and
    ends; inside a test's transaction that closes the test's own (on
    PostgreSQL: every later case fails). Django's test Client unhooks the
    same receiver while it runs; so does this harness, which calls the
    handler itself, after ``app_schema``'s Client has hooked it back."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(staff_user) -> str:
    return Token.objects.create(user=staff_user).key


schema = schemathesis.pytest.from_fixture("app_schema")


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_never_get_a_5xx_and_errors_are_json(
    case: Any, staff_token: str
) -> None:
    pinned = {"slug": "iris", "version": 1}
    for name in pinned.keys() & case.path_parameters.keys():
        case.path_parameters[name] = pinned[name]
    # Each case undoes its writes: a drawn DELETE or slug change of iris
    # would leave later operations (and /readyz) no model to serve.
    with transaction.atomic():
        response = case.call(
            app=APPLICATION, headers={"Authorization": f"Token {staff_token}"}
        )
        transaction.set_rollback(True)
    assert response.status_code < 500, case.as_curl_command()
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), case.as_curl_command()
        json.loads(response.content)


APPLICATION = WSGIHandler()
