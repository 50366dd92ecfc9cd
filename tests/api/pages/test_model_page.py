"""GET /models/<slug>/: how to call one model, for whoever may call it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from registry import actions
from registry.models import MLModel

pytestmark = pytest.mark.django_db

IRIS_EXAMPLE = {
    "sepal length (cm)": 6.7,
    "sepal width (cm)": 3.0,
    "petal length (cm)": 5.2,
    "petal width (cm)": 2.3,
}


def page(client, slug: str):
    return client.get(f"/models/{slug}/")


def test_model_page_shows_endpoints_as_absolute_urls(client, iris):
    html = page(client, "iris").content.decode()
    for url in (
        "http://testserver/api/predict/iris/",
        "http://testserver/api/predict/iris/v1/",
        "http://testserver/v2/models/iris/infer",
        "http://testserver/v2/models/iris/versions/1/infer",
    ):
        assert f"POST {url}" in html


def test_model_page_snippets_send_the_versions_input_example(
    client, publish, iris_classifier
):
    publish(iris_classifier, "iris", metadata={"input_example": IRIS_EXAMPLE})
    calling = page(client, "iris").context["calling"]
    assert not calling.placeholders
    assert json.loads(calling.body_json) == {"data": IRIS_EXAMPLE}
    assert json.dumps({"data": IRIS_EXAMPLE}) in calling.curl
    assert "'sepal length (cm)': 6.7" in calling.requests
    assert "'petal width (cm)': 2.3" in calling.tritonclient


def test_model_page_without_input_example_uses_the_real_feature_names(client, iris):
    calling = page(client, "iris").context["calling"]
    assert calling.placeholders
    body = json.loads(calling.body_json)
    assert list(body["data"]) == list(IRIS_EXAMPLE)
    html = page(client, "iris").content.decode()
    assert "x_1" not in html
    assert "placeholders of the right type" in html


def test_model_page_shows_the_schema_and_classes(client, churn):
    calling = page(client, "churn").context["calling"]
    rows = {f.name: f for f in calling.features}
    assert [f.name for f in calling.features] == ["age", "income", "city", "plan"]
    assert rows["age"].type == "number"
    assert rows["city"].type == "string"
    assert sorted(rows["city"].categories) == ["lyon", "nice", "paris"]
    assert calling.classes == [0, 1]
    html = page(client, "churn").content.decode()
    assert "<td>lyon, nice, paris</td>" in html
    # A string feature without an example gets one of its own categories.
    assert json.loads(calling.body_json)["data"]["plan"] in ("free", "pro")


def test_model_page_of_a_model_without_feature_names_sends_positional_rows(
    client, diabetes
):
    calling = page(client, "diabetes").context["calling"]
    assert json.loads(calling.body_json) == {"inputs": [[0.0] * 10]}
    assert '"input-0"' in calling.tritonclient


def test_private_model_page_shows_the_auth_header_to_those_it_answers(
    staff_client, publish, iris_classifier
):
    publish(iris_classifier, "vault", private=True)
    response = page(staff_client, "vault")
    assert response.status_code == 200
    calling = response.context["calling"]
    assert calling.auth_header == "Api-Key <your key>"
    assert "-H 'Authorization: Api-Key <your key>'" in calling.curl
    assert "headers={'Authorization': 'Api-Key <your key>'}" in calling.requests
    assert "Authorization: Api-Key &lt;your key&gt;" in response.content.decode()


def test_private_model_page_is_the_404_of_an_unknown_slug(
    client, publish, iris_classifier
):
    version = publish(iris_classifier, "vault", private=True)
    hidden = page(client, "vault")
    actions.delete_models([MLModel.objects.get(pk=version.model_id)])
    unknown = page(client, "vault")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.content == unknown.content
    assert dict(hidden.headers) == dict(unknown.headers)
    assert "vault" in unknown.content.decode()


def test_model_page_of_a_model_without_versions_says_so(client):
    actions.create_model(slug="draft")
    response = page(client, "draft")
    assert response.status_code == 200
    assert "no active version yet" in response.content.decode()


def test_try_it_form_is_for_staff_only(client, staff_user, iris):
    assert "Try it" not in page(client, "iris").content.decode()
    staff = Client()
    staff.force_login(staff_user)
    html = page(staff, "iris").content.decode()
    assert 'data-url="/api/predict/iris/"' in html
    assert "csrfmiddlewaretoken" in html
    assert "pages/tryit.js" in html
