"""The OpenAPI document at /api/schema/: an operation per model the caller
may call, with bodies built from its real features that Swagger's "Try it
out" sends as they are (and get 200); summaries in plain words; the health
endpoints; the V2 endpoints linked with their protocol's documentation; a
valid document, built afresh for each request and each caller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from api.models import ApiKey
from registry import actions
from registry.demo import DEMOS, install_demos

from .callers import key_for, make_user, token_for

pytestmark = pytest.mark.django_db

PRIVATE = "zz-orchid-vault-7q"  # distinctive: any sighting of it is a leak
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def demos(fast_preflight) -> list[Any]:
    """iris and diabetes (with input examples) and wine (positional, none)."""
    return install_demos()


def schema(api: Client, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = api.get("/api/schema/", {"format": "json"}, **(headers or {}))
    assert response.status_code == 200, response.content[:300]
    return json.loads(response.content)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def examples_of(operation: dict[str, Any]) -> dict[str, Any]:
    content = operation["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in content["examples"].items()}


def predict(api: Client, path: str, body: Any, headers: Any = None):
    return api.post(
        path, json.dumps(body), content_type="application/json", **(headers or {})
    )


# --- working examples ------------------------------------------------------------


def test_each_demo_model_has_an_operation_whose_examples_answer_200(api, demos):
    document = schema(api)
    for slug in DEMOS:
        operation = document["paths"][f"/api/predict/{slug}/"]["post"]
        examples = examples_of(operation)
        assert examples, slug
        for name, body in examples.items():
            response = predict(api, f"/api/predict/{slug}/", body)
            assert response.status_code == 200, (slug, name, response.content)
            assert response["X-Model-Version"] == "1"


def test_model_examples_carry_the_input_example_not_placeholders(api, demos):
    iris = examples_of(schema(api)["paths"]["/api/predict/iris/"]["post"])
    first = next(iter(iris.values()))
    version = actions.get_model("iris").active_version
    assert first == {"data": version.metadata["input_example"]}
    assert not any("x_1" in json.dumps(body) for body in iris.values())


def test_model_operation_needs_no_slug_and_says_what_to_send(api, demos):
    operation = schema(api)["paths"]["/api/predict/iris/"]["post"]
    assert operation["summary"] == "Predict with Iris species"
    assert not [p for p in operation["parameters"] if p["in"] == "path"]
    assert "| `petal width (cm)` | number |" in operation["description"]
    assert "`setosa`" in operation["description"]
    assert operation["tags"] == ["served models"]


def test_generic_predict_examples_aim_at_a_served_model_and_answer_200(api, demos):
    generic = schema(api)["paths"]["/api/predict/{slug}/"]["post"]
    slug = next(p for p in generic["parameters"] if p["name"] == "slug")["example"]
    assert slug in DEMOS
    for name, body in examples_of(generic).items():
        response = predict(api, f"/api/predict/{slug}/", body)
        assert response.status_code == 200, (name, response.content)


def test_example_without_an_input_example_uses_the_real_features_and_categories(
    api, churn
):
    body = next(
        iter(examples_of(schema(api)["paths"]["/api/predict/churn/"]["post"]).values())
    )
    assert set(body["data"]) == {"age", "income", "city", "plan"}
    assert body["data"]["city"] in {"paris", "lyon", "nice"}
    assert body["data"]["plan"] in {"free", "pro"}
    for name, example in examples_of(
        schema(api)["paths"]["/api/predict/churn/"]["post"]
    ).items():
        response = predict(api, "/api/predict/churn/", example)
        assert response.status_code == 200, (name, response.content)


def test_positional_model_examples_send_rows_in_feature_order(api, diabetes):
    examples = examples_of(schema(api)["paths"]["/api/predict/diabetes/"]["post"])
    assert set(examples) == {"positional", "instances"}
    assert len(examples["positional"]["inputs"][0]) == 10
    for name, body in examples.items():
        response = predict(api, "/api/predict/diabetes/", body)
        assert response.status_code == 200, (name, response.content)


def test_a_model_serving_nothing_gets_no_operation(api, publish, iris_classifier):
    publish(iris_classifier, "iris", activate=False)
    assert "/api/predict/iris/" not in schema(api)["paths"]


# --- built per request and per caller --------------------------------------------


def test_a_model_registered_after_a_fetch_is_in_the_next_one(
    api, publish, iris_classifier
):
    assert "/api/predict/iris/" not in schema(api)["paths"]
    publish(iris_classifier, "iris")
    operation = schema(api)["paths"]["/api/predict/iris/"]["post"]
    assert "Serves version 1" in operation["description"]
    publish(iris_classifier, "iris")
    operation = schema(api)["paths"]["/api/predict/iris/"]["post"]
    assert "Serves version 2" in operation["description"]


def test_anonymous_schema_never_names_a_private_model(api, publish, iris_classifier):
    publish(iris_classifier, "iris")
    publish(iris_classifier, PRIVATE, private=True)
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert PRIVATE.encode() not in response.content
    assert "/api/predict/iris/" in json.loads(response.content)["paths"]


def test_private_model_operation_is_shown_to_who_may_call_it_with_a_credential(
    api, publish, iris_classifier, staff_user
):
    publish(iris_classifier, PRIVATE, private=True)
    granted = make_user("granted", staff=False)
    actions.get_model(PRIVATE).granted_users.add(granted)
    for headers in (token_for(staff_user), token_for(granted)):
        operation = schema(api, headers)["paths"][f"/api/predict/{PRIVATE}/"]["post"]
        assert operation["security"] == [{"tokenAuth": []}, {"apiKeyAuth": []}]
        for body in examples_of(operation).values():
            assert (
                predict(api, f"/api/predict/{PRIVATE}/", body, headers).status_code
                == 200
            )
    plain = token_for(make_user("plain", staff=False))
    assert f"/api/predict/{PRIVATE}/" not in schema(api, plain)["paths"]


def test_each_key_sees_the_models_its_predict_scope_may_call(
    api, publish, iris_classifier, django_user_model, staff_user
):
    publish(iris_classifier, "iris")
    private = publish(iris_classifier, PRIVATE, private=True).model
    robot = django_user_model.objects.create_user("robot")
    cases = {
        "public": (key_for(robot), {"iris"}),
        "listed": (
            key_for(robot, predict=ApiKey.Predict.LISTED, models=[private]),
            {PRIVATE},
        ),
        "all": (key_for(robot, predict=ApiKey.Predict.ALL), {"iris", PRIVATE}),
        # It may read the whole catalog, but calls only public models.
        "management read": (
            key_for(staff_user, management=ApiKey.Management.READ),
            {"iris"},
        ),
    }
    for name, (headers, expected) in cases.items():
        paths = schema(api, headers)["paths"]
        served = {
            p.removeprefix("/api/predict/").strip("/")
            for p in paths
            if p.startswith("/api/predict/") and "{" not in p
        }
        assert served == expected, name


def test_schema_requires_no_model_when_none_is_registered(api, db):
    document = schema(api)
    assert "/api/predict/{slug}/" in document["paths"]
    assert not [
        p for p in document["paths"] if p.startswith("/api/predict/") and "{" not in p
    ]


# --- words ----------------------------------------------------------------------


def test_every_operation_has_a_summary_in_plain_words(api, demos, staff_user):
    for path, method, operation in operations(schema(api, token_for(staff_user))):
        summary = operation.get("summary", "")
        assert summary and summary[0].isupper(), (method, path)
        assert "_" not in summary, (method, path, summary)


def test_every_json_request_body_carries_an_example(api, db):
    bodies = [
        (method, path, op["requestBody"]["content"]["application/json"])
        for path, method, op in operations(schema(api))
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert ("patch", "/api/models/{slug}/") in {(m, p) for m, p, _ in bodies}
    for method, path, content in bodies:
        assert content.get("examples"), (method, path)


def test_operation_ids_are_unique(api, publish, iris_classifier):
    publish(iris_classifier, "a-b")
    publish(iris_classifier, "a_b")
    ids = [op["operationId"] for _, _, op in operations(schema(api))]
    assert len(ids) == len(set(ids))


def test_predict_description_explains_formats_options_and_errors(api, db):
    generic = schema(api)["paths"]["/api/predict/{slug}/"]["post"]
    text = generic["description"]
    for words in (
        "Features by name",
        "dataframe_split",
        "dataframe_records",
        "instances",
        "text/csv",
        "?proba=1",
        "missing_features",
        "unknown_model",
        "422",
    ):
        assert words in text, words
    assert "CPU" not in text and "dispatch" not in text


def test_health_endpoints_are_described_and_answer_as_described(api, demos):
    document = schema(api)
    for path in ("/healthz", "/readyz"):
        operation = document["paths"][path]["get"]
        assert operation["summary"] and operation["description"]
        assert operation["tags"] == ["health"]
    alive = api.get("/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "alive"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    described = document["paths"]["/readyz"]["get"]["responses"]["200"]
    properties = described["content"]["application/json"]["schema"]["properties"]
    assert set(ready.json()) <= set(properties)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "trace"])
def test_health_endpoints_answer_other_methods_with_a_json_405(api, db, path, method):
    response = getattr(api, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"


def test_docs_page_links_the_v2_endpoints_and_their_protocol(api, demos):
    text = schema(api)["info"]["description"]
    assert "https://github.com/kserve/open-inference-protocol" in text
    assert "POST /v2/models/{slug}/infer" in text
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{slug}"):
        assert f"`GET {path}" in text, path
        assert api.get(path.format(slug="iris")).status_code == 200, path
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"/api/schema/" in docs.content


# --- valid -----------------------------------------------------------------------


def test_generated_schema_is_valid_openapi(
    api, demos, churn, publish, iris_classifier, staff_user
):
    publish(iris_classifier, PRIVATE, private=True)
    for headers in ({}, token_for(staff_user)):
        document = schema(api, headers)
        assert document["openapi"].startswith("3.0")
        validate_schema(document)
