"""Read endpoints, health, readiness and the OpenAPI schema."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_model_list_shows_active_version_and_kind(
    client, publish, iris_classifier, numpy_regressor
):
    publish(iris_classifier, "iris")
    publish(numpy_regressor, "diabetes")
    publish(numpy_regressor, "diabetes", activate=False)
    response = client.get("/api/models/")
    assert response.status_code == 200
    assert response.json() == [
        {
            "slug": "diabetes",
            "name": "diabetes",
            "description": "",
            "private": False,
            "active_version": 1,
            "kind": "regressor",
            "estimator": "sklearn.linear_model._ridge.Ridge",
        },
        {
            "slug": "iris",
            "name": "iris",
            "description": "",
            "private": False,
            "active_version": 1,
            "kind": "classifier",
            "estimator": "sklearn.linear_model._logistic.LogisticRegression",
        },
    ]


def test_model_detail_has_versions_schema_classes_and_example_body(
    client, publish, iris_classifier
):
    publish(iris_classifier, "iris", metadata={"metrics": {"accuracy": 0.97}})
    publish(iris_classifier, "iris", activate=False)
    detail = client.get("/api/models/iris/").json()
    assert [(v["version"], v["active"]) for v in detail["versions"]] == [
        (2, False),
        (1, True),
    ]
    assert detail["classes"] == ["setosa", "versicolor", "virginica"]
    assert detail["metadata"] == {"metrics": {"accuracy": 0.97}}
    assert [f["name"] for f in detail["input_schema"]["features"]][0] == (
        "sepal length (cm)"
    )
    example = detail["example_request"]
    predicted = client.post(
        "/api/predict/iris/", example, content_type="application/json"
    )
    assert predicted.status_code == 200


@pytest.mark.parametrize("fixture", ["pipeline_classifier", "numpy_regressor"])
def test_example_request_body_is_accepted_by_the_model(
    client, publish, request, fixture
):
    publish(request.getfixturevalue(fixture), "m")
    example = client.get("/api/models/m/").json()["example_request"]
    response = client.post("/api/predict/m/", example, content_type="application/json")
    assert response.status_code == 200, response.content


def test_unknown_model_detail_is_json_404(client, db):
    response = client.get("/api/models/nope/")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"


def test_model_health_loads_the_active_version(client, publish, iris_classifier):
    publish(iris_classifier, "iris")
    response = client.get("/api/models/iris/health/")
    assert response.status_code == 200
    assert response.json() == {
        "model": "iris",
        "version": 1,
        "status": "ok",
        "kind": "classifier",
    }


def test_model_health_is_503_when_file_is_gone(client, publish, iris_classifier):
    version = publish(iris_classifier, "iris")
    version.file.storage.delete(version.file.name)
    response = client.get("/api/models/iris/health/")
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"


def test_healthz_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.json() == {"status": "alive"}


def test_readyz_lists_models_to_staff_and_is_ready_while_one_serves(
    client, publish, iris_classifier, numpy_regressor, staff_user
):
    publish(iris_classifier, "iris")
    broken = publish(numpy_regressor, "diabetes")
    broken.file.storage.delete(broken.file.name)
    anonymous = client.get("/readyz").json()
    assert anonymous["counts"] == {"models": 2, "serving": 1, "failing": 1}
    assert "models" not in anonymous
    client.force_login(staff_user)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["models"]["iris"] == {"status": "ok", "version": 1}
    assert body["models"]["diabetes"]["code"] == "model_unavailable"


def test_readyz_is_503_when_no_active_model_can_be_served(
    client, publish, iris_classifier
):
    version = publish(iris_classifier, "iris")
    version.file.storage.delete(version.file.name)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"


def test_openapi_schema_describes_predict_payloads_and_errors(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/predict/{slug}/"]["post"]
    content = operation["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(content)
    assert "dataframe_split" in str(content["application/json"])
    assert {"200", "400", "404", "413", "415", "422", "503"} <= set(
        operation["responses"]
    )
    assert "/api/models/{slug}/" in schema["paths"]


def test_api_docs_page_renders_without_internet_assets(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert re.findall(r'(?:src|href)="(https?:)?//', html) == []
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
